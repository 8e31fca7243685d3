package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/plexus-cni/plexus/e2e/cluster"
	"github.com/plexus-cni/plexus/pkg/testutil"
)

// setupWhereabouts prepares whereabouts on the local node the way its
// DaemonSet would on a cluster: its CRDs (from the module's doc/crds, put
// into bin/cni/whereabouts-crds by `make cni-plugins`) applied to the
// apiserver, and a flat config file (here in the test's dir, named by the
// NAD's configuration_path instead of /etc/cni/net.d/whereabouts.d/) with
// the kubeconfig it reaches the API with: the harness's admin kubeconfig,
// whose context has no namespace, so the pools live in kube-system.
func setupWhereabouts(t *testing.T, cp *cluster.ControlPlane, host string) WhereaboutsEnv {
	t.Helper()
	crds := filepath.Join(testutil.CNIBinDir(), "whereabouts-crds")
	if _, err := os.Stat(crds); err != nil {
		t.Fatalf("whereabouts CRDs missing (run `make cni-plugins`): %v", err)
	}
	if out, err := cp.Kubectl("apply", "--server-side", "-f", crds); err != nil {
		t.Fatalf("applying whereabouts CRDs: %v\n%s", err, out)
	}
	if out, err := cp.Kubectl("wait", "--for=condition=Established", "--timeout=30s",
		"crd/ippools.whereabouts.cni.cncf.io", "crd/overlappingrangeipreservations.whereabouts.cni.cncf.io"); err != nil {
		t.Fatalf("whereabouts CRDs not Established: %v\n%s", err, out)
	}
	dir := filepath.Join(host, "whereabouts.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "whereabouts.log")
	flat, _ := json.Marshal(map[string]any{
		"datastore":  "kubernetes",
		"kubernetes": map[string]string{"kubeconfig": cp.AdminKubeconfig},
		"log_file":   logFile, "log_level": "debug",
	})
	conf := filepath.Join(dir, "whereabouts.conf")
	writeFile(t, conf, string(flat))
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("whereabouts log:\n%s", b)
		}
	})
	return WhereaboutsEnv{ConfigPath: conf}
}

// PlexusGC runs a CNI GC of plexus's conflist (as the node's runtime has
// it, at CNI 1.1.0, the first version with GC) with the live pods'
// containers — and every container plexus holds for another namespace —
// as valid. libcni's own cache is an empty dir: it issues no DEL of its own.
func (n *localNode) PlexusGC(ctx context.Context, node, namespace string, livePods []string) error {
	b, err := os.ReadFile(filepath.Join(n.confDir, "00-plexus.conflist"))
	if err != nil {
		return err
	}
	var top map[string]any
	if err := json.Unmarshal(b, &top); err != nil {
		return err
	}
	top["cniVersion"] = "1.1.0"
	b, _ = json.Marshal(top)
	list, err := libcni.ConfListFromBytes(b)
	if err != nil {
		return err
	}
	intents, _ := filepath.Glob(filepath.Join(n.cacheDir, "containers", "*", "intent.json"))
	var valid []types.GCAttachment
	live := 0
	for _, f := range intents {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var entry struct {
			ContainerID  string `json:"containerID"`
			PodNamespace string `json:"podNamespace"`
			PodName      string `json:"podName"`
		}
		if err := json.Unmarshal(b, &entry); err != nil || entry.ContainerID == "" {
			return fmt.Errorf("plexus cache entry %s: %v", f, err)
		}
		if entry.PodNamespace == namespace {
			if !contains(livePods, entry.PodName) {
				continue
			}
			live++
		}
		valid = append(valid, types.GCAttachment{ContainerID: entry.ContainerID, IfName: "eth0"})
	}
	if live != len(livePods) {
		return fmt.Errorf("plexus's cache holds %d of the %d live pods %v", live, len(livePods), livePods)
	}
	// The plugins' stderr (whereabouts logs there too) goes into the error.
	var stderr bytes.Buffer
	exec := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: &stderr}, PluginDecoder: version.PluginDecoder{}}
	cni := libcni.NewCNIConfigWithCacheDir([]string{n.binDir}, filepath.Join(n.cacheDir, "libcni-gc"), exec)
	if err := cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: valid}); err != nil {
		return fmt.Errorf("%w; plugins' stderr:\n%s", err, stderr.String())
	}
	return nil
}
