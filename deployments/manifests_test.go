// Package deployments holds the manifests; its tests check them against a
// real kube-apiserver (the e2e/cluster harness) and plexus's own parsers.
package deployments

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"sigs.k8s.io/yaml"

	"github.com/plexus-cni/plexus/e2e/cluster"
	"github.com/plexus-cni/plexus/pkg/install"
	"github.com/plexus-cni/plexus/pkg/sriov/dpconfig"
	"github.com/plexus-cni/plexus/pkg/testutil"
)

func TestMain(m *testing.M) { cluster.Main(m) }

// manifests is every manifest the project ships.
func manifests(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := filepath.Glob(filepath.Join("examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := filepath.Glob(filepath.Join("policy", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(append(files, ex...), pol...)
	for _, want := range []string{"crd.yaml", "multi-networkpolicy-crd.yaml", "plexus.yaml", "sriov-device-plugin.yaml",
		"examples/macvlan.yaml", "examples/bridge.yaml", "examples/sriov.yaml",
		"policy/nad-delegate-policy.yaml", "policy/nad-plugin-types-policy.yaml"} {
		found := false
		for _, f := range files {
			found = found || f == want
		}
		if !found {
			t.Errorf("manifest %s is missing", want)
		}
	}
	return files
}

// TestServerDryRun: every manifest passes `kubectl apply --dry-run=server`,
// i.e. the real apiserver's decoding, defaulting, validation and admission.
func TestServerDryRun(t *testing.T) {
	cp := cluster.Shared(t)
	for _, f := range manifests(t) {
		t.Run(f, func(t *testing.T) {
			out, err := cp.Kubectl("apply", "--dry-run=server", "-f", f)
			if err != nil {
				t.Fatal(err)
			}
			docs := documents(t, f)
			if n := strings.Count(string(out), "(server dry run)"); n != len(docs) {
				t.Errorf("%d objects accepted, want %d:\n%s", n, len(docs), out)
			}
		})
	}
}

// TestPlexusRBAC: plexus's ServiceAccount may do exactly what plexusd's
// informers and a thin ADD need (the list in plexus.yaml), and not more:
// pods are got, listed and watched (plexusd's informer of its node's
// pods), pods/status is only patched (pkg/k8s/status.go), NADs are got,
// listed and watched (plexusd's informer; pkg/k8s/nads.go), Events are
// core/v1 and only created; MultiNetworkPolicies and namespaces are
// listed and watched (docs/network-policy.md). The thin-only overlay's narrower rules are
// checked by TestKustomize.
func TestPlexusRBAC(t *testing.T) {
	cp := cluster.Shared(t)
	installMNPCRD(t, cp)
	as := "--as=system:serviceaccount:kube-system:plexus"
	for _, tc := range []struct {
		verb, resource string
		want           string
	}{
		{"get", "pods", "yes"},
		{"patch", "pods/status", "yes"},
		{"get", "pods/status", "no"},
		{"update", "pods/status", "no"},
		{"delete", "pods/status", "no"},
		{"get", "network-attachment-definitions.k8s.cni.cncf.io", "yes"},
		{"list", "network-attachment-definitions.k8s.cni.cncf.io", "yes"},
		{"watch", "network-attachment-definitions.k8s.cni.cncf.io", "yes"},
		{"list", "pods", "yes"},
		{"watch", "pods", "yes"},
		{"create", "events", "yes"},
		{"list", "multi-networkpolicies.k8s.cni.cncf.io", "yes"},
		{"watch", "multi-networkpolicies.k8s.cni.cncf.io", "yes"},
		{"list", "namespaces", "yes"},
		{"watch", "namespaces", "yes"},
		{"patch", "events", "no"},
		{"create", "events.events.k8s.io", "no"},
		{"patch", "events.events.k8s.io", "no"},
		// Least privilege: nothing else.
		{"update", "pods", "no"},
		{"patch", "pods", "no"},
		{"delete", "pods", "no"},
		{"create", "network-attachment-definitions.k8s.cni.cncf.io", "no"},
		{"update", "network-attachment-definitions.k8s.cni.cncf.io", "no"},
		{"watch", "pods/status", "no"},
		{"watch", "events", "no"},
		{"get", "secrets", "no"},
		{"get", "nodes", "no"},
		{"delete", "events", "no"},
		{"get", "multi-networkpolicies.k8s.cni.cncf.io", "no"},
		{"create", "multi-networkpolicies.k8s.cni.cncf.io", "no"},
		{"update", "multi-networkpolicies.k8s.cni.cncf.io", "no"},
		{"patch", "namespaces", "no"},
	} {
		t.Run(tc.verb+" "+tc.resource, func(t *testing.T) {
			args := []string{"auth", "can-i", as, "-n", "default", tc.verb}
			if res, sub, ok := strings.Cut(tc.resource, "/"); ok {
				args = append(args, res, "--subresource="+sub)
			} else {
				args = append(args, tc.resource)
			}
			out, _ := cp.Kubectl(args...)
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if got := lines[len(lines)-1]; got != tc.want {
				t.Errorf("plexus can-i %s %s = %q, want %q", tc.verb, tc.resource, got, tc.want)
			}
		})
	}
}

// TestDaemonSets checks what the apiserver does not: the properties the
// DaemonSets must have to run on every node as the docs say, with the
// host paths their containers use and no others (least privilege: the
// device plugin reads pod-resources for its metrics only; plexus's pod
// mounts kubelet's pod-resources, device-info and network namespaces for
// plexusd only, read-only), and a declared metrics port where a
// --metrics-address serves. plexusd itself: checkPlexusd.
func TestDaemonSets(t *testing.T) {
	for file, want := range map[string]struct{ mounts, not []string }{
		"plexus.yaml": {
			mounts: []string{"/opt/cni/bin", "/etc/cni/net.d", "/var/lib/cni/plexus", "/var/lib/cni", "/run/plexus",
				"/var/run/netns", "/var/lib/kubelet/pod-resources", "/var/run/k8s.cni.cncf.io/devinfo"},
			not: []string{"/var/lib/kubelet/device-plugins", "/sys"},
		},
		"sriov-device-plugin.yaml": {
			mounts: []string{"/var/lib/kubelet/device-plugins", "/var/run/k8s.cni.cncf.io/devinfo/dp", "/sys", "/var/lib/kubelet/pod-resources"},
			not:    []string{"/var/run/netns", "/opt/cni/bin"},
		},
	} {
		ds := daemonSetOf(t, file)
		s := ds.Spec.Template.Spec
		if !s.HostNetwork || s.PriorityClassName != "system-node-critical" {
			t.Errorf("%s: hostNetwork %v priorityClassName %q", file, s.HostNetwork, s.PriorityClassName)
		}
		if len(s.Tolerations) != 1 || s.Tolerations[0].Operator != "Exists" || s.Tolerations[0].Key != "" {
			t.Errorf("%s: tolerations %+v do not tolerate every taint", file, s.Tolerations)
		}
		paths := map[string]bool{}
		for _, v := range s.Volumes {
			if v.HostPath != nil {
				paths[v.HostPath.Path] = true
			}
		}
		for _, m := range want.mounts {
			if !paths[m] {
				t.Errorf("%s: no hostPath volume for %s", file, m)
			}
		}
		for _, m := range want.not {
			if paths[m] {
				t.Errorf("%s: hostPath volume for %s, which nothing in the pod uses", file, m)
			}
		}
		if len(paths) != len(want.mounts) {
			t.Errorf("%s: hostPath volumes %v, want exactly %v", file, paths, want.mounts)
		}
		if s.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
			t.Errorf("%s: pod seccompProfile %q, want RuntimeDefault", file, s.SecurityContext.SeccompProfile.Type)
		}
		for _, c := range s.Containers {
			for _, a := range c.Args {
				addr, ok := strings.CutPrefix(a, "--metrics-address=")
				if !ok {
					continue
				}
				_, port, _ := strings.Cut(addr, ":")
				declared := false
				for _, p := range c.Ports {
					declared = declared || (p.Name == "metrics" && strconv.Itoa(p.ContainerPort) == port)
				}
				if !declared {
					t.Errorf("%s: container %s serves metrics on %s but declares no containerPort %s named metrics", file, c.Name, addr, port)
				}
			}
			if c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" || c.Resources.Requests["cpu"] == "" {
				t.Errorf("%s: container %s: resources %+v", file, c.Name, c.Resources)
			}
			if !strings.HasPrefix(c.Image, "ghcr.io/plexus-cni/") || c.ImagePullPolicy != "IfNotPresent" {
				t.Errorf("%s: container %s: image %s pull policy %s", file, c.Name, c.Image, c.ImagePullPolicy)
			}
			if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				!sc.ReadOnlyRootFilesystem || sc.Privileged || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
				t.Errorf("%s: container %s: securityContext %+v, want no privilege escalation, a read-only root and every capability dropped", file, c.Name, sc)
			}
			// Capabilities added back: plexusd's delegates (GC, hot-plug)
			// need netlink and setns; nothing else needs any.
			want := map[string][]string{"plexusd": {"NET_ADMIN", "SYS_ADMIN"}}[c.Name]
			if sc := c.SecurityContext; sc != nil && !slices.Equal(sc.Capabilities.Add, want) {
				t.Errorf("%s: container %s adds capabilities %v, want %v", file, c.Name, sc.Capabilities.Add, want)
			}
		}
	}
	checkPlexusd(t, daemonSetOf(t, "plexus.yaml"), true)
}

// checkPlexusd checks the plexus DaemonSet's plexusd container, or that
// there is none (want false: the thin deployment). plexusd runs from
// plexus-install's image, on the node it is told by the downward API,
// serves the socket plexus-install writes into plexus's config from a
// host directory the shim on the host reaches, uses plexus-install's
// cache and bin dirs, declares its metrics port and is ready on /readyz
// there, and sees the host's network namespaces as they come and go.
func checkPlexusd(t *testing.T, ds *daemonSet, want bool) {
	t.Helper()
	s := ds.Spec.Template.Spec
	inst := s.Containers[0]
	cfg, _, err := install.ParseFlags(inst.Args, io.Discard)
	if err != nil {
		t.Fatalf("plexus-install refuses the args %v: %v", inst.Args, err)
	}
	var d *container
	for i := range s.Containers {
		if s.Containers[i].Name == "plexusd" {
			d = &s.Containers[i]
		}
	}
	if !want {
		if d != nil || len(s.Containers) != 1 {
			t.Errorf("thin deployment: containers %d (plexusd %v), want plexus-install alone", len(s.Containers), d != nil)
		}
		if cfg.DaemonSocket != "" {
			t.Errorf("thin deployment: plexus-install --daemon-socket=%s: the shim would wait for a daemon that is not there", cfg.DaemonSocket)
		}
		return
	}
	if inst.Name != "plexus-install" || d == nil {
		t.Fatalf("containers %v, want plexus-install first and plexusd", containerNames(s.Containers))
	}
	if d.Image != inst.Image || len(d.Command) != 1 || d.Command[0] != "/usr/bin/plexusd" {
		t.Errorf("plexusd: image %s command %v, want %s (plexus-install's) running /usr/bin/plexusd", d.Image, d.Command, inst.Image)
	}
	flags := map[string]string{}
	for _, a := range d.Args {
		k, v, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		flags[k] = v
	}
	if cfg.DaemonSocket == "" || flags["socket"] != cfg.DaemonSocket {
		t.Errorf("plexusd --socket=%q, plexus-install --daemon-socket=%q: want the same path", flags["socket"], cfg.DaemonSocket)
	}
	if flags["cni-dir"] != cfg.CNIDir || flags["bin-dir"] != cfg.CNIBinDir {
		t.Errorf("plexusd --cni-dir=%q --bin-dir=%q, want plexus-install's %q %q", flags["cni-dir"], flags["bin-dir"], cfg.CNIDir, cfg.CNIBinDir)
	}
	if conf := filepath.Join(cfg.CNIConfDir, cfg.ConfName); flags["cni-config"] != conf {
		t.Errorf("plexusd --cni-config=%q, want the config plexus-install writes, %s (hot-plug reads plexus's config there)", flags["cni-config"], conf)
	}
	port := 0
	for _, p := range d.Ports {
		if p.Name == "metrics" {
			port = p.ContainerPort
		}
	}
	if port != 9555 || !strings.HasSuffix(flags["metrics-address"], ":9555") {
		t.Errorf("plexusd: port metrics %d, --metrics-address=%q; want 9555 on both", port, flags["metrics-address"])
	}
	if p := d.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || (string(p.HTTPGet.Port) != `"metrics"` && string(p.HTTPGet.Port) != "9555") {
		t.Errorf("plexusd: readinessProbe %+v, want httpGet /readyz on the metrics port", p)
	}
	nodeName := false
	for _, e := range d.Env {
		nodeName = nodeName || (e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName")
	}
	if !nodeName && flags["node-name"] == "" {
		t.Error("plexusd: no NODE_NAME from spec.nodeName (nor --node-name): it would not start")
	}
	hostPaths := map[string]string{}
	for _, v := range s.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	mounts := map[string]bool{}
	for _, m := range d.VolumeMounts {
		hp, ok := hostPaths[m.Name]
		if !ok {
			t.Errorf("plexusd: volume %s is not a hostPath", m.Name)
			continue
		}
		if hp != m.MountPath {
			t.Errorf("plexusd: %s (host %s) mounted at %s: host paths are mounted at the same path, as plexus's config names them", m.Name, hp, m.MountPath)
		}
		mounts[hp] = true
		if hp == "/var/run/netns" && m.MountPropagation != "HostToContainer" {
			t.Errorf("plexusd: network namespaces mounted with propagation %q: want HostToContainer (namespaces made after plexusd started)", m.MountPropagation)
		}
		switch m.Name {
		case "cni-bin", "cni-conf", "netns", "pod-resources":
			if !m.ReadOnly {
				t.Errorf("plexusd: %s mounted writable; plexusd only reads it", m.Name)
			}
		}
	}
	// What plexusd reaches: its socket's directory, plexus's cache (and
	// the delegates' state beside it, for GC's DELs), the CNI dirs,
	// network namespaces, kubelet's pod-resources.
	covered := func(p string) bool {
		for m := range mounts {
			if p == m || strings.HasPrefix(p, m+"/") {
				return true
			}
		}
		return false
	}
	for _, p := range []string{filepath.Dir(cfg.DaemonSocket), cfg.CNIDir, "/var/lib/cni/networks", cfg.CNIBinDir, cfg.CNIConfDir, "/var/run/netns",
		filepath.Dir(flags["pod-resources-socket"])} {
		if !covered(p) {
			t.Errorf("plexusd: host path %s not mounted", p)
		}
	}
	for _, m := range inst.VolumeMounts {
		if m.Name == "netns" || m.Name == "pod-resources" || m.Name == "plexusd-socket" {
			t.Errorf("plexus-install mounts %s, which only plexusd uses", m.Name)
		}
	}
}

func containerNames(cs []container) []string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return n
}

// TestSRIOVConfigMap: the example resourceList is one the device plugin accepts.
func TestSRIOVConfigMap(t *testing.T) {
	for _, d := range documents(t, "sriov-device-plugin.yaml") {
		if d["kind"] != "ConfigMap" {
			continue
		}
		data := d["data"].(map[string]any)["sriov-dp.json"].(string)
		cfg, err := dpconfig.Parse([]byte(data), "plexus.io")
		if err != nil {
			t.Fatalf("example resourceList: %v", err)
		}
		if len(cfg.Resources) == 0 || cfg.Resources[0].FullName() != "plexus.io/sriov_netdevice" {
			t.Errorf("first pool is %v, want plexus.io/sriov_netdevice (the examples use it)", cfg.Resources)
		}
		return
	}
	t.Fatal("no ConfigMap in sriov-device-plugin.yaml")
}

// TestExampleNADs: every example NAD's spec.config is a CNI config libcni
// loads, and the SR-IOV one names the device plugin's pool.
func TestExampleNADs(t *testing.T) {
	n := 0
	files, _ := filepath.Glob(filepath.Join("examples", "*.yaml"))
	for _, f := range files {
		for _, d := range documents(t, f) {
			if d["kind"] != "NetworkAttachmentDefinition" {
				continue
			}
			n++
			meta := d["metadata"].(map[string]any)
			name := meta["name"].(string)
			conf := []byte(d["spec"].(map[string]any)["config"].(string))
			var probe map[string]any
			if err := json.Unmarshal(conf, &probe); err != nil {
				t.Fatalf("%s: NAD %s: spec.config: %v", f, name, err)
			}
			var err error
			if _, ok := probe["plugins"]; ok {
				_, err = libcni.ConfListFromBytes(conf)
			} else {
				_, err = libcni.NetworkPluginConfFromBytes(conf)
			}
			if err != nil {
				t.Errorf("%s: NAD %s: spec.config: %v", f, name, err)
			}
			if probe["name"] != name {
				t.Errorf("%s: NAD %s: config name %v differs from the NAD's", f, name, probe["name"])
			}
			if probe["type"] == "sriov" {
				ann, _ := meta["annotations"].(map[string]any)
				if ann["k8s.v1.cni.cncf.io/resourceName"] != "plexus.io/sriov_netdevice" {
					t.Errorf("%s: NAD %s: resourceName annotation %v", f, name, ann["k8s.v1.cni.cncf.io/resourceName"])
				}
			}
		}
	}
	if n < 3 {
		t.Errorf("%d example NADs, want macvlan, bridge and sriov ones", n)
	}
}

func daemonSetOf(t *testing.T, file string) *daemonSet {
	t.Helper()
	for _, d := range documents(t, file) {
		if d["kind"] == "DaemonSet" {
			ds := &daemonSet{}
			remarshal(t, d, ds)
			return ds
		}
	}
	t.Fatalf("%s: no DaemonSet", file)
	return nil
}

// TestPlexusRollout: the plexus DaemonSet rolls out without a window in
// which a node runs without plexus, one node at a time, gated by a
// readiness probe that asks plexus-install whether the config is
// installed: plexus-install keeps its config on exit, the probe is
// plexus-install --check with the marker file the installer writes, kept
// in an emptyDir (per pod, so a new pod starts not ready), and
// plexus-install is not given a NODE_NAME it does not read (plexusd is).
func TestPlexusRollout(t *testing.T) {
	ds := daemonSetOf(t, "plexus.yaml")
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ds.Spec.UpdateStrategy.Type != "RollingUpdate" || ru == nil ||
		string(ru.MaxUnavailable) != "1" || string(ru.MaxSurge) != "0" {
		t.Errorf("updateStrategy %+v, want RollingUpdate maxUnavailable 1 maxSurge 0", ds.Spec.UpdateStrategy)
	}
	c := ds.Spec.Template.Spec.Containers[0]
	if len(c.Command) != 1 {
		t.Fatalf("command %v, want plexus-install alone (flags in args)", c.Command)
	}
	cfg, _, err := install.ParseFlags(c.Args, io.Discard)
	if err != nil {
		t.Fatalf("plexus-install refuses the DaemonSet's args: %v", err)
	}
	if !cfg.KeepConfig {
		t.Error("plexus-install removes its config on exit: a rolling update leaves the node without plexus")
	}
	if cfg.ReadyFile == "" {
		t.Fatal("plexus-install writes no readiness marker")
	}
	p := c.ReadinessProbe
	if p == nil || p.Exec == nil || len(p.Exec.Command) < 2 || p.Exec.Command[0] != c.Command[0] {
		t.Fatalf("readinessProbe %+v, want an exec of %v --check", p, c.Command)
	}
	probe, _, err := install.ParseFlags(p.Exec.Command[1:], io.Discard)
	if err != nil {
		t.Fatalf("plexus-install refuses the probe's args: %v", err)
	}
	if !slices.Contains(p.Exec.Command, "--check") || probe.ReadyFile != cfg.ReadyFile {
		t.Errorf("probe %v: want --check of the installer's ready file %s", p.Exec.Command, cfg.ReadyFile)
	}
	emptyDirs := map[string]bool{}
	for _, v := range ds.Spec.Template.Spec.Volumes {
		emptyDirs[v.Name] = v.EmptyDir != nil
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || (filepath.Dir(cfg.ReadyFile) == m.MountPath && emptyDirs[m.Name])
	}
	if !mounted {
		t.Errorf("ready file %s: its directory is not an emptyDir mount (the root filesystem is read-only; a hostPath would outlive the pod)", cfg.ReadyFile)
	}
	for _, e := range c.Env {
		if e.Name == "NODE_NAME" {
			t.Error("plexus-install's env NODE_NAME: neither plexus-install nor plexus reads it")
		}
	}
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

func documents(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	for i, doc := range docSep.Split(string(b), -1) {
		if len(bytes.TrimSpace([]byte(doc))) == 0 {
			continue
		}
		var m map[string]any
		if err := yaml.UnmarshalStrict([]byte(doc), &m); err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		if m != nil {
			docs = append(docs, m)
		}
	}
	return docs
}

func remarshal(t *testing.T, in, out any) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}

type daemonSet struct {
	Spec struct {
		UpdateStrategy struct {
			Type          string `json:"type"`
			RollingUpdate *struct {
				MaxUnavailable json.RawMessage `json:"maxUnavailable"`
				MaxSurge       json.RawMessage `json:"maxSurge"`
			} `json:"rollingUpdate"`
		} `json:"updateStrategy"`
		Template struct {
			Spec struct {
				HostNetwork       bool   `json:"hostNetwork"`
				PriorityClassName string `json:"priorityClassName"`
				SecurityContext   struct {
					SeccompProfile struct {
						Type string `json:"type"`
					} `json:"seccompProfile"`
				} `json:"securityContext"`
				Tolerations []struct {
					Key, Operator string
				} `json:"tolerations"`
				Containers []container `json:"containers"`
				Volumes    []struct {
					Name     string    `json:"name"`
					EmptyDir *struct{} `json:"emptyDir"`
					HostPath *struct {
						Path string `json:"path"`
					} `json:"hostPath"`
				} `json:"volumes"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

type container struct {
	Name            string   `json:"name"`
	Image           string   `json:"image"`
	ImagePullPolicy string   `json:"imagePullPolicy"`
	Command         []string `json:"command"`
	Args            []string `json:"args"`
	Env             []struct {
		Name      string `json:"name"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `json:"fieldPath"`
			} `json:"fieldRef"`
		} `json:"valueFrom"`
	} `json:"env"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	ReadinessProbe *struct {
		Exec *struct {
			Command []string `json:"command"`
		} `json:"exec"`
		HTTPGet *struct {
			Path string          `json:"path"`
			Port json.RawMessage `json:"port"`
		} `json:"httpGet"`
	} `json:"readinessProbe"`
	VolumeMounts []struct {
		Name             string `json:"name"`
		MountPath        string `json:"mountPath"`
		ReadOnly         bool   `json:"readOnly"`
		MountPropagation string `json:"mountPropagation"`
	} `json:"volumeMounts"`
	Resources struct {
		Requests map[string]string `json:"requests"`
		Limits   map[string]string `json:"limits"`
	} `json:"resources"`
	SecurityContext *struct {
		Privileged               bool  `json:"privileged"`
		AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `json:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `json:"drop"`
			Add  []string `json:"add"`
		} `json:"capabilities"`
	} `json:"securityContext"`
}

var (
	imageField = regexp.MustCompile(`(?m)^[ \t]*(?:-[ \t]*)?(image|newTag):[ \t]*["']?([^\s"'#]+)`)
	plexusRef  = regexp.MustCompile(`ghcr\.io/plexus-cni/[a-z0-9._-]+(?::[\w.-]+|@sha256:[0-9a-f]+)?`)
)

// TestImageTags: every image a file under deployments/ names has a tag, none
// is latest, and each of plexus's own (and every kustomize newTag) is the
// release the VERSION file names — the tag `make images` gives a release.
func TestImageTags(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	release := strings.TrimSpace(string(b))
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+(-[\w.]+)?$`).MatchString(release) {
		t.Fatalf("VERSION holds %q, want a release version such as v0.2.0", release)
	}
	ours := 0
	err = filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return err
		}
		text, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range imageField.FindAllStringSubmatch(string(text), -1) {
			field, val := m[1], m[2]
			if field == "newTag" {
				if val != release {
					t.Errorf("%s: newTag %s, want %s (VERSION)", path, val, release)
				}
				continue
			}
			tag := ""
			if i := strings.LastIndex(val, ":"); i > strings.LastIndex(val, "/") {
				tag = val[i+1:]
			}
			if tag == "" || tag == "latest" {
				t.Errorf("%s: image %s: want a version tag, not latest", path, val)
			}
		}
		for _, ref := range plexusRef.FindAllString(string(text), -1) {
			ours++
			if want := ref[:strings.IndexAny(ref+":", ":@")] + ":" + release; ref != want {
				t.Errorf("%s: %s, want %s (the VERSION file's release)", path, ref, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ours < 2 {
		t.Errorf("%d references to ghcr.io/plexus-cni images under deployments/, want the plexus and device plugin DaemonSets'", ours)
	}
}

// TestContainerFlags: every container of the DaemonSets runs its binary
// (as `make build` leaves it in bin/) with flags that binary defines and
// values it accepts, so that no node crash-loops on a mistyped flag. The
// binaries stop at the appended --help, after parsing everything before.
func TestContainerFlags(t *testing.T) {
	for _, file := range []string{"plexus.yaml", "sriov-device-plugin.yaml", "sriov-dra.yaml"} {
		for _, c := range daemonSetOf(t, file).Spec.Template.Spec.Containers {
			if len(c.Command) != 1 {
				t.Errorf("%s: container %s: command %v, want the binary alone (flags in args)", file, c.Name, c.Command)
				continue
			}
			bin := testutil.Binary(t, filepath.Base(c.Command[0]))
			out, _ := exec.Command(bin, append(slices.Clone(c.Args), "--help")...).CombinedOutput()
			for _, bad := range []string{"flag provided but not defined", "invalid value", "invalid boolean", "bad flag syntax"} {
				if strings.Contains(string(out), bad) {
					t.Errorf("%s: container %s: %s refuses its args %v:\n%s", file, c.Name, c.Command[0], c.Args, out)
				}
			}
			if !strings.Contains(string(out), "Usage of") {
				t.Errorf("%s: container %s: %s %v --help printed no usage:\n%s", file, c.Name, c.Command[0], c.Args, out)
			}
		}
	}
}
