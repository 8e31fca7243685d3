package policysync

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/plexus-cni/plexus/e2e/cluster"
	plexuscache "github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/netpol"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/testutil"
)

func TestMain(m *testing.M) { cluster.Main(m) }

func ipn(t *testing.T, n ns.NetNS, args ...string) {
	t.Helper()
	full := append([]string{"-n", filepath.Base(n.Path())}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(full, " "), err, out)
	}
}

// reachable: b opens a TCP connection to addr:8080 in time.
func reachable(t *testing.T, from ns.NetNS, addr string) bool {
	t.Helper()
	ok := false
	err := from.Do(func(ns.NetNS) error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "8080"), 500*time.Millisecond)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EPERM) {
			return nil
		}
		if err != nil {
			return err
		}
		c.Close()
		ok = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// eventually polls cond for up to 20s (the syncer reacts to watch
// events; this bounds the wait, the condition is what is checked).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("not within 20s: %s", what)
}

// TestSyncer: a real apiserver holds the pods (a, the local one in plexus's
// cache, and its peer b with b's address in its network-status), the
// policies and the namespaces; a and b are real netns on one bridge. The
// Syncer writes a's table when a policy selects it (b is cut off), rewrites
// it when the policy changes (b allowed by podSelector), and removes it
// when the policy goes (open again); a restarted Syncer rewrites it.
func TestSyncer(t *testing.T) {
	testutil.RequireRoot(t)
	cp := cluster.Shared(t)
	if _, err := cp.Kubectl("apply", "--server-side", "-f", filepath.Join(testutil.RepoRoot(), "deployments", "multi-networkpolicy-crd.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Kubectl("wait", "--for=condition=Established", "crd/multi-networkpolicies.k8s.cni.cncf.io"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs, err := cp.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cp.RestConfig())
	if err != nil {
		t.Fatal(err)
	}
	const nsName = "policysync"
	if err := cp.CreateNamespace(ctx, nsName); err != nil {
		t.Fatal(err)
	}

	// The lab: a and b on a bridge (the NAD "lan"'s segment).
	a, b, seg := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	ipn(t, seg, "link", "add", "br0", "type", "bridge")
	ipn(t, seg, "link", "set", "br0", "up")
	for i, p := range []struct {
		n  ns.NetNS
		ip string
	}{{a, "10.77.0.1"}, {b, "10.77.0.2"}} {
		port := "port" + string(rune('a'+i))
		ipn(t, seg, "link", "add", port, "type", "veth", "peer", "name", "net1", "netns", filepath.Base(p.n.Path()))
		ipn(t, seg, "link", "set", port, "master", "br0", "up")
		ipn(t, p.n, "addr", "add", p.ip+"/24", "dev", "net1")
		ipn(t, p.n, "link", "set", "net1", "up")
	}
	var l net.Listener
	if err := a.Do(func(ns.NetNS) error { l, err = net.Listen("tcp4", ":8080"); return err }); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if !reachable(t, b, "10.77.0.1") {
		t.Fatal("b does not reach a without policy: the lab is broken")
	}

	for _, p := range []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"app": "a"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "b", Labels: map[string]string{"app": "b"}, Annotations: map[string]string{
			"k8s.v1.cni.cncf.io/network-status": `[{"name":"policysync/lan","interface":"net1","ips":["10.77.0.2"]}]`}}},
	} {
		p.Namespace = nsName
		p.Spec.Containers = []corev1.Container{{Name: "c", Image: "pause"}}
		if _, err := cs.CoreV1().Pods(nsName).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	store := plexuscache.Store{Dir: t.TempDir()}
	if err := store.Save(&podnet.Entry{Version: plexuscache.EntryVersion, ContainerID: "ctr-a", NetNS: a.Path(),
		PodNamespace: nsName, PodName: "a", Attachments: []podnet.Attachment{{Network: nsName + "/lan", IfName: "net1"},
			// A VF bound to vfio-pci (fake sysfs): selected, cannot be filtered.
			{Network: nsName + "/lan", IfName: "net2", DeviceID: vfioVF}}}); err != nil {
		t.Fatal(err)
	}

	sys := fakeSysfs(t)
	warned := make(chan string, 100)
	run := func(rescan time.Duration) (context.CancelFunc, *Metrics) {
		m := NewMetrics(prometheus.NewRegistry())
		s := New(Options{Client: cs, Dynamic: dyn, Cache: store, Metrics: m, Rescan: rescan,
			VFIO: VFIOAt(sys), Warn: func(ns, name, reason, msg string) { warned <- ns + "/" + name + " " + reason + " " + msg }})
		sctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(sctx) }()
		return func() { stop(); <-done }, m
	}
	stop, m := run(200 * time.Millisecond)
	policy := func(from string) string {
		return `apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata:
  name: only
  namespace: policysync
  annotations: {k8s.v1.cni.cncf.io/policy-for: lan}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
    - from: [{podSelector: {matchLabels: {app: ` + from + `}}}]
`
	}
	apply := func(y string) {
		t.Helper()
		f := filepath.Join(t.TempDir(), "p.yaml")
		if err := writeFile(f, y); err != nil {
			t.Fatal(err)
		}
		if _, err := cp.Kubectl("apply", "-f", f); err != nil {
			t.Fatal(err)
		}
	}
	apply(policy("nobody"))
	eventually(t, "b cut off from a", func() bool { return !reachable(t, b, "10.77.0.1") })
	if got := promtest.ToFloat64(m.Interfaces); got != 1 {
		t.Errorf("interfaces selected %v, want 1", got)
	}
	if got := promtest.ToFloat64(m.Refused); got != 1 {
		t.Errorf("interfaces unenforceable %v, want 1 (the vfio VF)", got)
	}
	select {
	case w := <-warned:
		if !strings.HasPrefix(w, "policysync/a PolicyNotEnforceable pod policysync/a: network policysync/lan: interface net2: a VF bound to vfio-pci") {
			t.Errorf("warning %q", w)
		}
	default:
		t.Error("no Warning for the vfio VF")
	}
	apply(policy("b"))
	eventually(t, "b allowed by podSelector", func() bool { return reachable(t, b, "10.77.0.1") })

	// A restart writes the table from scratch; the old one filters until
	// then (same rules here), and a policy change made while it was down
	// is taken.
	stop()
	apply(policy("nobody"))
	if !reachable(t, b, "10.77.0.1") {
		t.Error("the table was changed with no syncer running")
	}
	// No rescan from here on: only the informers and the cache watch.
	stop, _ = run(time.Hour)
	defer stop()
	eventually(t, "restarted syncer cuts b off", func() bool { return !reachable(t, b, "10.77.0.1") })

	// A new sandbox of a: its table is written when the ADD records its
	// intent in the cache (the watch), not at a rescan (an hour away); no
	// API object changes meanwhile.
	if err := store.Remove("ctr-a"); err != nil {
		t.Fatal(err)
	}
	if err := netpol.Apply(ctx, a.Path(), netpol.Plan{}); err != nil {
		t.Fatal(err)
	}
	if !reachable(t, b, "10.77.0.1") {
		t.Fatal("a filtered after its table was removed")
	}
	start := time.Now()
	if err := store.Save(&podnet.Entry{Version: plexuscache.EntryVersion, ContainerID: "ctr-a2", NetNS: a.Path(),
		PodNamespace: nsName, PodName: "a", Attachments: []podnet.Attachment{{Network: nsName + "/lan", IfName: "net1"}}}); err != nil {
		t.Fatal(err)
	}
	for reachable(t, b, "10.77.0.1") {
		if time.Since(start) > 3*time.Second {
			t.Fatal("the new sandbox's table not written within 3s of its cache entry")
		}
	}
	t.Logf("table written within %v of the cache entry", time.Since(start))

	if _, err := cp.Kubectl("delete", "-n", nsName, "multi-networkpolicies.k8s.cni.cncf.io", "only"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a open again, its table gone", func() bool {
		d, err := netpol.Dump(ctx, a.Path())
		return err == nil && d == "" && reachable(t, b, "10.77.0.1")
	})

}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

const vfioVF = "0000:3b:02.1"

// fakeSysfs is a sysfs where vfioVF is bound to vfio-pci.
func fakeSysfs(t *testing.T) string {
	root := t.TempDir()
	dev := filepath.Join(root, "bus", "pci", "devices", vfioVF)
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../bus/pci/drivers/vfio-pci", filepath.Join(dev, "driver")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestVFIOAt(t *testing.T) {
	root := fakeSysfs(t)
	for _, tc := range []struct {
		id   string
		want bool
	}{{vfioVF, true}, {"0000:3b:02.2", false}, {"../../../etc", false}, {"", false}} {
		if got := VFIOAt(root)(podnet.Attachment{DeviceID: tc.id}); got != tc.want {
			t.Errorf("VFIOAt(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}
