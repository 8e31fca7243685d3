package deployments

import (
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/plexus-cni/plexus/pkg/deviceplugin"
	"github.com/plexus-cni/plexus/pkg/dra"
)

// TestNodeAgentProbes: the device plugin's and the DRA driver's containers
// say when they are ready: a readinessProbe httpGet /readyz and a
// livenessProbe httpGet /healthz on a declared containerPort that is the
// port the binary serves them on (its --health-address, or the default),
// each DaemonSet on its own port of the node (hostNetwork).
func TestNodeAgentProbes(t *testing.T) {
	seen := map[int32]string{9555: "plexusd", 9556: "sriov-device-plugin metrics"}
	for _, c := range []struct{ file, container, def string }{
		{"sriov-device-plugin.yaml", "sriov-device-plugin", deviceplugin.DefaultHealthAddress},
		{"sriov-dra.yaml", "sriov-dra-driver", dra.DefaultHealthAddress},
	} {
		var ds *appsv1.DaemonSet
		for _, d := range documents(t, c.file) {
			if d["kind"] == "DaemonSet" {
				ds = &appsv1.DaemonSet{}
				remarshal(t, d, ds)
			}
		}
		if ds == nil {
			t.Fatalf("%s: no DaemonSet", c.file)
		}
		var ctr *corev1.Container
		for i := range ds.Spec.Template.Spec.Containers {
			if ds.Spec.Template.Spec.Containers[i].Name == c.container {
				ctr = &ds.Spec.Template.Spec.Containers[i]
			}
		}
		if ctr == nil {
			t.Fatalf("%s: no container %s", c.file, c.container)
		}
		addr := c.def
		for _, a := range ctr.Args {
			if v, ok := strings.CutPrefix(a, "--health-address="); ok {
				addr = v
			}
		}
		_, p, _ := strings.Cut(addr, ":")
		served, err := strconv.Atoi(p)
		if addr == "" || err != nil {
			t.Errorf("%s: --health-address %q: the probes would find nothing", c.file, addr)
			continue
		}
		if other, ok := seen[int32(served)]; ok {
			t.Errorf("%s: health port %d is also %s's on the node", c.file, served, other)
		}
		seen[int32(served)] = c.container
		for _, pr := range []struct {
			what  string
			probe *corev1.Probe
			path  string
		}{{"readinessProbe", ctr.ReadinessProbe, "/readyz"}, {"livenessProbe", ctr.LivenessProbe, "/healthz"}} {
			if pr.probe == nil || pr.probe.HTTPGet == nil || pr.probe.HTTPGet.Path != pr.path {
				t.Errorf("%s: %s %+v, want httpGet %s", c.file, pr.what, pr.probe, pr.path)
				continue
			}
			port := pr.probe.HTTPGet.Port.IntVal
			if name := pr.probe.HTTPGet.Port.StrVal; name != "" {
				port = 0
				for _, cp := range ctr.Ports {
					if cp.Name == name {
						port = cp.ContainerPort
					}
				}
				if port == 0 {
					t.Errorf("%s: %s names port %q, which the container does not declare", c.file, pr.what, name)
					continue
				}
			}
			if int(port) != served {
				t.Errorf("%s: %s asks port %d, the binary serves %s on %d", c.file, pr.what, port, pr.path, served)
			}
		}
	}
}
