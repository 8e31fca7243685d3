package kube_test

// plexusd reads the node's files (clusterNetwork, confDir, deviceInfoDir)
// through its container's mounts. Here it runs in a mount namespace of its
// own in which one directory of the node is hidden under an empty tmpfs,
// as a directory its DaemonSet does not mount would be: a path plexusd
// cannot read is "unavailable" and the shim resolves in the runtime's
// context (plexus-thin), which reads the node's own files.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/testutil"
)

// startPlexusdHiding runs plexusd for the kubeEnv's node (no API proxy)
// with dir hidden from it, and makes the shim use it.
func (k *kubeEnv) startPlexusdHiding(dir string) *testutil.Plexusd {
	k.t.Helper()
	if k.node == "" {
		k.node = "pxd-node-" + k.Suffix
	}
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		k.t.Fatal(err)
	}
	addr := ml.Addr().String()
	ml.Close()
	sock := filepath.Join(k.Dir, "run", "plexusd.sock")
	bin := testutil.BuildBinary(k.t, "plexusd")
	// unshare execs sh, which mounts and execs plexusd: one process, the
	// one Kill signals. Slave propagation, as the DaemonSet's
	// HostToContainer mounts: the host's new netns still reach plexusd
	// (its readiness checks that), its tmpfs does not reach the host.
	args := []string{"--mount", "--propagation", "slave", "sh", "-c", `mount -t tmpfs plexusd-view "$0" && exec "$@"`, dir, bin,
		"--socket", sock, "--metrics-address", addr, "--log-level", "debug",
		"--kubeconfig", k.kubeconfig, "--node-name", k.node, "--cni-dir", k.CNIDir, "--bin-dir", k.BinDir, "--cni-config", "-"}
	d := &testutil.Plexusd{T: k.t, Bin: "unshare", Args: args, Socket: sock, Metrics: addr, LogFile: filepath.Join(k.Dir, "plexusd.log")}
	d.Start()
	k.t.Cleanup(d.Kill)
	k.Extra["daemonSocket"] = sock
	return d
}

func TestDaemonNodeFilesItCannotRead(t *testing.T) {
	k := newKubeEnv(t)
	hidden := filepath.Join(k.Dir, "hidden")
	primary, err := os.ReadFile(filepath.Join(k.ConfDir, "10-primary.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(hidden, 0o755); err != nil {
		t.Fatal(err)
	}
	k.WriteFile(filepath.Join(hidden, "primary.conflist"), string(primary))
	d := k.startPlexusdHiding(hidden)
	k.bridgeNAD("default", "nf-br", 1)

	// The clusterNetwork file where plexusd cannot read it: the ADD runs
	// through the thin path, which can, and succeeds.
	k.Extra["clusterNetwork"] = filepath.Join(hidden, "primary.conflist")
	p := k.createPod("nf-cn", "nf-br")
	if _, err := k.Add(p); err != nil {
		t.Fatalf("ADD with a clusterNetwork plexusd cannot read: %v, want it resolved by the thin path\nshim log:\n%s\nplexusd log:\n%s", err, k.Log(), d.Log())
	}
	if !strings.Contains(k.Log(), "plexusd did not answer: running the thin path") {
		t.Errorf("the shim did not fall back:\n%s", k.Log())
	}
	if got := len(k.podStatus(p)); got != 2 {
		t.Errorf("network-status of %d interfaces, want 2", got)
	}
	if err := k.Del(p); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	k.AssertClean(p)
	delete(k.Extra, "clusterNetwork")

	// The deviceInfoDir where plexusd cannot read it, holding a
	// device-plugin pool's device-info: a NAD hard-coding that VF is
	// refused (the guard fails closed), by the thin path.
	dev := "0000:01:00.5"
	k.Extra["deviceInfoDir"] = filepath.Join(hidden, "devinfo")
	dp := devinfo.DPPath(filepath.Join(hidden, "devinfo"), "example.com/pool", dev)
	if err := os.MkdirAll(filepath.Dir(dp), 0o755); err != nil {
		t.Fatal(err)
	}
	k.WriteFile(dp, fmt.Sprintf(`{"type":"pci","version":"1.1.0","pci":{"pci-address":%q}}`, dev))
	conf := strings.Replace(k.BridgeConf("nf-hd", k.Name("b2"), 2), `"type":"bridge",`, `"type":"bridge","deviceID":"`+dev+`",`, 1)
	k.createNAD("default", "nf-hd", conf)
	p2 := k.createPod("nf-hd", "nf-hd")
	_, err = k.Add(p2)
	want := `field "deviceID": device ` + dev + ` belongs to a device-plugin pool (device-info ` + dp
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("ADD of a NAD hard-coding a pool's VF, the pool's device-info hidden from plexusd: %v, want a refusal containing %q\nplexusd log:\n%s", err, want, d.Log())
	}
	k.AssertClean(p2)
}
