package scenarios

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plexus-cni/plexus/e2e/cluster"
	"github.com/plexus-cni/plexus/pkg/testutil"
)

func TestMain(m *testing.M) { cluster.Main(m) }

// TestOnLocalNode runs the same scenarios as the kind e2e on this machine:
// a real kube-apiserver, kubelet, containerd and runc, with plexus put on
// the node the way the DaemonSet puts it there — bin/plexus-install running
// as a process with the node's CNI dirs, plexus's ServiceAccount token
// (its RBAC from deployments/plexus.yaml) and the cluster CA — around a
// bridge primary network, with plexusd running beside it (the daemon
// deployment). The token is rotated halfway. Then a burst of 50 pods with 4
// networks each is created at once; then plexusd is stopped and every
// scenario runs again, on the shim's fallback to the thin path.
func TestOnLocalNode(t *testing.T) {
	testutil.RequireRoot(t)
	install := testutil.Binary(t, "plexus-install")
	testutil.Binary(t, "plexus")
	cp := cluster.Shared(t)
	ctx := context.Background()

	host := t.TempDir()
	binDir, confDir, cacheDir, saDir := filepath.Join(host, "bin"), filepath.Join(host, "net.d"),
		filepath.Join(host, "cache"), filepath.Join(host, "serviceaccount")
	for _, d := range []string{binDir, confDir, saDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"bridge", "macvlan", "static", "tuning", "host-local", "loopback", "whereabouts"} {
		copyFile(t, testutil.RefPlugin(t, p), filepath.Join(binDir, p), 0o755)
	}
	run := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
	primaryBridge := "pxp" + run
	t.Cleanup(func() { deleteLinks(t, primaryBridge) })
	// host-local's per-network directories of this run (networks are named
	// <base>-plexus-e2e-<run>, the primary primary-<run>).
	ipamDirs := func() []string {
		m, _ := filepath.Glob("/var/lib/cni/networks/*-plexus-e2e-" + run)
		return append(m, "/var/lib/cni/networks/primary-"+run)
	}
	t.Cleanup(func() {
		for _, d := range ipamDirs() {
			os.RemoveAll(d)
		}
	})
	writeFile(t, filepath.Join(confDir, "10-primary.conflist"), fmt.Sprintf(`{"cniVersion":"1.0.0","name":"primary-%s","plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,
  "ipam":{"type":"host-local","ranges":[[{"subnet":"10.234.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}}]}`, run, primaryBridge))

	// The service-account volume the DaemonSet's pod would have.
	token := func() string {
		cs, err := cp.Clientset()
		if err != nil {
			t.Fatal(err)
		}
		exp := int64(3600)
		tr, err := cs.CoreV1().ServiceAccounts("kube-system").CreateToken(ctx, "plexus",
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token for kube-system/plexus (RBAC from deployments/plexus.yaml): %v", err)
		}
		return tr.Status.Token
	}
	copyFile(t, cp.CACertFile, filepath.Join(saDir, "ca.crt"), 0o644)
	tok1 := token()
	writeFile(t, filepath.Join(saDir, "token"), tok1)

	kubeconfig := filepath.Join(confDir, "plexus.d", "plexus.kubeconfig")
	sock := filepath.Join(host, "run", "plexusd.sock")
	logf, err := os.Create(filepath.Join(host, "plexus-install.log"))
	if err != nil {
		t.Fatal(err)
	}
	inst := exec.Command(install, "--source-dir="+testutil.BinDir(), "--cni-bin-dir="+binDir, "--cni-conf-dir="+confDir,
		"--cni-dir="+cacheDir, "--kubeconfig="+kubeconfig, "--service-account-dir="+saDir, "--api-server="+cp.Server,
		"--poll-interval=200ms", "--wait-timeout=1m", "--daemon-socket="+sock,
		// Removes its config on SIGTERM (the default keeps it), and keeps
		// its readiness marker in this test's directory, not /run.
		"--keep-config=false", "--ready-file="+filepath.Join(host, "plexus-install.ready"))
	inst.Stdout, inst.Stderr = logf, logf
	if err := inst.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- inst.Wait() }()
	// Cleanups run last-registered first: the node stops (pods' DELs
	// through plexus) before plexus-install, which then removes its config.
	t.Cleanup(func() {
		_ = inst.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("plexus-install exited with %v", err)
			}
		case <-time.After(10 * time.Second):
			_ = inst.Process.Kill()
			t.Error("plexus-install did not exit on SIGTERM")
		}
		if _, err := os.Stat(filepath.Join(confDir, "00-plexus.conflist")); err == nil {
			t.Error("plexus-install left 00-plexus.conflist after SIGTERM")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("plexus-install log:\n%s", b)
		}
	})
	waitFile(t, filepath.Join(confDir, "00-plexus.conflist"), "")
	waitFile(t, kubeconfig, tok1)

	node, err := cluster.StartNode(cp, cluster.NodeOptions{CNIBinDir: binDir, CNIConfDir: confDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node logs:\n%s", node.LogTails())
		}
		if err := node.Stop(); err != nil {
			t.Errorf("stop node: %v", err)
		}
	})

	// plexusd, as the DaemonSet's second container runs it: the node's
	// name, the ServiceAccount's kubeconfig, the node's cache and bin dirs.
	d := testutil.StartPlexusd(t, sock, filepath.Join(host, "plexusd.log"), "--kubeconfig", kubeconfig,
		"--node-name", node.Name, "--cni-dir", cacheDir, "--bin-dir", binDir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plexusd log:\n%s", tail(d.Log(), 60))
		}
	})

	e := &Env{
		Kubectl: filepath.Join(cluster.K8sBinDir(), "kubectl"), Kubeconfig: cp.AdminKubeconfig,
		Namespace: "plexus-e2e-" + run, Image: cluster.BusyboxImage, PullPolicy: "Never",
		NodeName: node.Name, MacvlanMaster: cluster.NodeVethPeer, Timeout: 90 * time.Second, Logf: t.Logf,
	}
	e.Node = &localNode{env: e, cacheDir: cacheDir, binDir: binDir, confDir: confDir}
	e.Whereabouts = setupWhereabouts(t, cp, host)
	t.Cleanup(func() {
		deleteLinks(t, bridgeName(e.Namespace), bridgeName(e.Namespace+"s"), bridgeName(e.Namespace+"t"))
	})
	if err := e.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for i, s := range All {
		if i == 1 {
			// Token rotation: plexus-install rewrites the kubeconfig and
			// the following pods are attached with the new token.
			tok2 := token()
			writeFile(t, filepath.Join(saDir, "token"), tok2)
			waitFile(t, kubeconfig, tok2)
		}
		t.Run("daemon/"+s.Name, func(t *testing.T) {
			if err := s.Run(ctx, e); err != nil {
				t.Fatal(err) // never skipped here: whereabouts is set up
			}
		})
	}
	t.Run("daemon/burst-50x4", func(t *testing.T) { burst(t, ctx, e, d, 50) })
	if n := d.Metric("plexus_shim_fallbacks_total"); n != 0 {
		t.Errorf("%v ADDs or DELs fell back to the thin path while plexusd ran", n)
	}
	if n := d.Metric("plexus_outbox_published_total", `kind="attached"`, `outcome="published"`); n == 0 {
		t.Error("plexusd published no network-status: the scenarios did not run through it")
	}
	// plexusd goes away: the shim runs the thin path, and every scenario
	// passes again.
	d.Kill()
	for _, s := range All {
		t.Run("fallback/"+s.Name, func(t *testing.T) {
			if err := s.Run(ctx, e); err != nil {
				t.Fatal(err)
			}
		})
	}
	if fb, _ := filepath.Glob(filepath.Join(cacheDir, "outbox", "fallback-*.json")); len(fb) == 0 {
		t.Error("no fallback recorded in the outbox while plexusd was down")
	}
	if err := e.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	// Every pod is gone: no IPAM lease may be left on the node.
	for _, d := range ipamDirs() {
		entries, _ := os.ReadDir(d)
		for _, en := range entries {
			if n := en.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
				t.Errorf("IPAM lease %s left in %s after every pod was deleted", n, d)
			}
		}
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// waitFile waits until path exists and contains sub.
func waitFile(t *testing.T, path, sub string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), sub) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not written with the expected content within 30s (%v)", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func deleteLinks(t *testing.T, names ...string) {
	for _, n := range names {
		if l, err := netlinksafe.LinkByName(n); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				t.Logf("delete %s: %v", n, err)
			}
		}
	}
}
