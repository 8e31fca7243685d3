package deployments

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/e2e/cluster"
	"github.com/plexus-cni/plexus/pkg/install"
)

// kustomization is one kustomization directory, the host paths it must
// give the plexus DaemonSet and the device plugin, and whether it is the
// daemon deployment (plexusd) or the thin one.
type kustomization struct {
	dir, bin, conf string
	daemon         bool
}

// kustomizations are the base and every overlay.
var kustomizations = []kustomization{
	{".", install.DefaultCNIBinDir, install.DefaultCNIConfDir, true},
	{"overlays/base", install.DefaultCNIBinDir, install.DefaultCNIConfDir, true},
	{"overlays/thin-only", install.DefaultCNIBinDir, install.DefaultCNIConfDir, false},
	{"overlays/k3s", "/var/lib/rancher/k3s/data/cni", "/var/lib/rancher/k3s/agent/etc/cni/net.d", true},
	{"overlays/rke2", "/opt/cni/bin", "/var/lib/rancher/rke2/agent/etc/cni/net.d", true},
	{"overlays/openshift", "/var/lib/cni/bin", "/etc/kubernetes/cni/net.d", true},
}

// Paths that are kubelet's and the device-info spec's on every
// distribution the overlays cover (kubelet's root is /var/lib/kubelet).
const (
	devicePluginDir = "/var/lib/kubelet/device-plugins"
	devinfoDir      = "/var/run/k8s.cni.cncf.io/devinfo/dp"
)

// kustomize renders dir with the repository's kubectl, as
// `kubectl apply -k dir` would.
func kustomize(t *testing.T, dir string) []byte {
	t.Helper()
	out, err := exec.Command(filepath.Join(cluster.K8sBinDir(), "kubectl"), "kustomize", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, out)
	}
	return out
}

// TestKustomize: the base and every overlay render, the apiserver accepts
// every object they render (server dry run), and the rendered DaemonSets
// name the distribution's paths consistently — hostPath volumes, their
// mounts in plexus-install and plexusd, and their flags — with no default
// path left behind and plexus's images at the VERSION file's tag; the
// daemon deployments run plexusd, thin-only runs none and grants its
// ServiceAccount no list/watch of pods nor watch of NADs.
func TestKustomize(t *testing.T) {
	cp := cluster.Shared(t)
	b, err := os.ReadFile(filepath.Join("..", "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	release := strings.TrimSpace(string(b))
	for _, k := range kustomizations {
		t.Run(k.dir, func(t *testing.T) {
			out := kustomize(t, k.dir)
			file := filepath.Join(t.TempDir(), "rendered.yaml")
			if err := os.WriteFile(file, out, 0o600); err != nil {
				t.Fatal(err)
			}
			docs := documents(t, file)
			res, err := cp.Kubectl("apply", "--dry-run=server", "-f", file)
			if err != nil {
				t.Fatalf("server dry run: %v\n%s", err, res)
			}
			if n := strings.Count(string(res), "(server dry run)"); n != len(docs) {
				t.Errorf("%d objects accepted, want %d:\n%s", n, len(docs), res)
			}
			checkRenderedPaths(t, docs, k.bin, k.conf)
			checkRenderedDeployment(t, docs, k.daemon)
			checkRenderedImages(t, out, release)
			for def, want := range map[string]string{install.DefaultCNIBinDir: k.bin, install.DefaultCNIConfDir: k.conf} {
				if def != want && pathIn(def).Match(out) {
					t.Errorf("the default %s is left in the rendered output:\n%s", def, grepPath(out, def))
				}
			}
		})
	}
}

// checkRenderedPaths checks the plexus DaemonSet's and the device
// plugin's host paths in one rendered kustomization.
func checkRenderedPaths(t *testing.T, docs []map[string]any, bin, conf string) {
	t.Helper()
	plexus, dp := findDaemonSet(t, docs, "plexus"), findDaemonSet(t, docs, "plexus-sriov-device-plugin")

	s := plexus.Spec.Template.Spec
	hostPaths := volumePaths(s.Volumes)
	for name, want := range map[string]string{"cni-bin": bin, "cni-conf": conf, "plexus-cache": install.DefaultCNIDir} {
		if hostPaths[name] != want {
			t.Errorf("plexus: hostPath volume %s is %q, want %q", name, hostPaths[name], want)
		}
		// Mounted at the host's path: plexus-install writes paths into
		// plexus's config that plexus reads on the host.
		if m := mountPath(s.Containers[0].VolumeMounts, name); m != want {
			t.Errorf("plexus: volume %s mounted at %q, want the host path %q", name, m, want)
		}
	}
	// plexusd, where it runs, mounts the CNI dirs at the host's paths too
	// and runs delegates from the host's bin dir.
	for _, c := range s.Containers[1:] {
		for name, want := range map[string]string{"cni-bin": bin, "cni-conf": conf} {
			if m := mountPath(c.VolumeMounts, name); m != want {
				t.Errorf("%s: volume %s mounted at %q, want the host path %q", c.Name, name, m, want)
			}
		}
		if c.Name == "plexusd" && (!slices.Contains(c.Args, "--bin-dir="+bin) || !slices.Contains(c.Args, "--cni-config="+conf+"/"+install.DefaultConfName)) {
			t.Errorf("plexusd: args %v lack --bin-dir=%s or --cni-config=%s/%s", c.Args, bin, conf, install.DefaultConfName)
		}
	}
	cfg, _, err := install.ParseFlags(s.Containers[0].Args, io.Discard)
	if err != nil {
		t.Fatalf("plexus-install refuses the rendered args %v: %v", s.Containers[0].Args, err)
	}
	if cfg.CNIBinDir != bin || cfg.CNIConfDir != conf || cfg.PrimaryConfigDir != conf || cfg.CNIDir != install.DefaultCNIDir {
		t.Errorf("plexus-install: --cni-bin-dir %s --cni-conf-dir %s (primary from %s) --cni-dir %s, want %s %s (%s) %s",
			cfg.CNIBinDir, cfg.CNIConfDir, cfg.PrimaryConfigDir, cfg.CNIDir, bin, conf, conf, install.DefaultCNIDir)
	}
	if !strings.HasPrefix(cfg.Kubeconfig, conf+"/") {
		t.Errorf("plexus-install: --kubeconfig %s is not under the conf dir %s (no volume holds it)", cfg.Kubeconfig, conf)
	}

	d := dp.Spec.Template.Spec
	hostPaths = volumePaths(d.Volumes)
	for name, want := range map[string]string{"device-plugins": devicePluginDir, "devinfo": devinfoDir} {
		if hostPaths[name] != want || mountPath(d.Containers[0].VolumeMounts, name) != want {
			t.Errorf("device plugin: volume %s: hostPath %q mounted at %q, want %q", name, hostPaths[name], mountPath(d.Containers[0].VolumeMounts, name), want)
		}
	}
	for _, a := range []string{"--device-plugin-dir=" + devicePluginDir, "--devinfo-dir=" + devinfoDir} {
		if !slices.Contains(d.Containers[0].Args, a) {
			t.Errorf("device plugin: args %v lack %s", d.Containers[0].Args, a)
		}
	}
}

// checkRenderedDeployment checks the daemon or thin deployment in one
// rendered kustomization: plexusd (checkPlexusd), the hostPath volumes
// only plexusd mounts, and the ClusterRole's verbs on pods and NADs.
func checkRenderedDeployment(t *testing.T, docs []map[string]any, daemon bool) {
	t.Helper()
	ds := findDaemonSet(t, docs, "plexus")
	checkPlexusd(t, ds, daemon)
	if !daemon {
		var names []string
		for _, v := range ds.Spec.Template.Spec.Volumes {
			names = append(names, v.Name)
		}
		if want := []string{"cni-bin", "cni-conf", "plexus-cache", "ready"}; !slices.Equal(names, want) {
			t.Errorf("thin deployment: volumes %v, want %v (nothing for plexusd)", names, want)
		}
	}
	var role struct {
		Rules []struct {
			APIGroups []string `json:"apiGroups"`
			Resources []string `json:"resources"`
			Verbs     []string `json:"verbs"`
		} `json:"rules"`
	}
	found := false
	for _, d := range docs {
		if meta, _ := d["metadata"].(map[string]any); d["kind"] == "ClusterRole" && meta["name"] == "plexus" {
			remarshal(t, d, &role)
			found = true
		}
	}
	if !found {
		t.Fatal("no ClusterRole plexus rendered")
	}
	verbs := map[string][]string{}
	for _, r := range role.Rules {
		for _, res := range r.Resources {
			verbs[res] = append(verbs[res], r.Verbs...)
		}
	}
	want := map[string][]string{"pods": {"get"}, "network-attachment-definitions": {"get", "list"},
		"multi-networkpolicies": nil, "namespaces": nil}
	if daemon {
		want = map[string][]string{"pods": {"get", "list", "watch"}, "network-attachment-definitions": {"get", "list", "watch"},
			"multi-networkpolicies": {"list", "watch"}, "namespaces": {"list", "watch"}}
	}
	for res, w := range want {
		got := slices.Clone(verbs[res])
		slices.Sort(got)
		if !slices.Equal(got, w) {
			t.Errorf("ClusterRole plexus: %s verbs %v, want %v (daemon deployment: %v)", res, got, w, daemon)
		}
	}
}

// checkRenderedImages: every image is tagged, and each of plexus's own is
// at the release VERSION names (TestImageTags, for rendered output).
func checkRenderedImages(t *testing.T, out []byte, release string) {
	t.Helper()
	ours := 0
	for _, m := range imageField.FindAllStringSubmatch(string(out), -1) {
		if i := strings.LastIndex(m[2], ":"); i < strings.LastIndex(m[2], "/") || m[2][i+1:] == "latest" {
			t.Errorf("image %s: want a version tag", m[2])
		}
	}
	for _, ref := range plexusRef.FindAllString(string(out), -1) {
		ours++
		if want := ref[:strings.IndexAny(ref+":", ":@")] + ":" + release; ref != want {
			t.Errorf("image %s, want %s (the VERSION file's release)", ref, want)
		}
	}
	if ours < 2 {
		t.Errorf("%d plexus images rendered, want the plexus and device plugin DaemonSets'", ours)
	}
}

// TestKustomizeOverlaysListed: every overlay directory is one
// TestKustomize renders, so a new overlay cannot go untested.
func TestKustomizeOverlaysListed(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("overlays", "*", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 5 {
		t.Errorf("overlays %v, want base, thin-only, k3s, rke2 and openshift", dirs)
	}
	for _, f := range dirs {
		dir := filepath.ToSlash(filepath.Dir(f))
		if !slices.ContainsFunc(kustomizations, func(k kustomization) bool { return k.dir == dir }) {
			t.Errorf("%s is not in kustomize_test.go's kustomizations", dir)
		}
	}
}

// TestKustomizeBaseCopies: the overlays' base holds the flat manifests as
// they are (kustomize cannot reach deployments/*.yaml from below it).
func TestKustomizeBaseCopies(t *testing.T) {
	for _, f := range []string{"crd.yaml", "multi-networkpolicy-crd.yaml", "plexus.yaml", "sriov-device-plugin.yaml"} {
		flat, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := os.ReadFile(filepath.Join("overlays", "base", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(flat, cp) {
			t.Errorf("overlays/base/%s differs from %s: cp deployments/{crd,multi-networkpolicy-crd,plexus,sriov-device-plugin}.yaml deployments/overlays/base/", f, f)
		}
	}
	// The two bases render the same objects.
	if a, b := kustomize(t, "."), kustomize(t, filepath.Join("overlays", "base")); !bytes.Equal(a, b) {
		t.Error("deployments/ and deployments/overlays/base render differently")
	}
}

// pathIn matches p as a whole path in text: not the tail of a longer path
// (/var/lib/rancher/rke2/agent/etc/cni/net.d holds /etc/cni/net.d) nor the
// head of one (/opt/cni/binaries).
func pathIn(p string) *regexp.Regexp {
	return regexp.MustCompile(`(^|[^\w./-])` + regexp.QuoteMeta(p) + `($|[^\w.-])`)
}

func grepPath(out []byte, p string) string {
	var lines []string
	re := pathIn(p)
	for _, l := range strings.Split(string(out), "\n") {
		if re.MatchString(l) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func findDaemonSet(t *testing.T, docs []map[string]any, name string) *daemonSet {
	t.Helper()
	for _, d := range docs {
		if meta, _ := d["metadata"].(map[string]any); d["kind"] == "DaemonSet" && meta["name"] == name {
			ds := &daemonSet{}
			remarshal(t, d, ds)
			if len(ds.Spec.Template.Spec.Containers) == 0 {
				t.Fatalf("DaemonSet %s has no container", name)
			}
			return ds
		}
	}
	t.Fatalf("no DaemonSet %s rendered", name)
	return nil
}

type volumes = []struct {
	Name     string    `json:"name"`
	EmptyDir *struct{} `json:"emptyDir"`
	HostPath *struct {
		Path string `json:"path"`
	} `json:"hostPath"`
}

func volumePaths(vs volumes) map[string]string {
	m := map[string]string{}
	for _, v := range vs {
		if v.HostPath != nil {
			m[v.Name] = v.HostPath.Path
		}
	}
	return m
}

func mountPath(ms []struct {
	Name             string `json:"name"`
	MountPath        string `json:"mountPath"`
	ReadOnly         bool   `json:"readOnly"`
	MountPropagation string `json:"mountPropagation"`
}, name string) string {
	for _, m := range ms {
		if m.Name == name {
			return m.MountPath
		}
	}
	return ""
}
