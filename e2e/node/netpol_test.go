package node_test

// MultiNetworkPolicy on the real node (issue 20, docs/network-policy.md):
// the world's plexusd runs with --network-policy; pods made by the real
// kubelet, containerd and runc get their interfaces from plexus, and real
// TCP connections between them (sockets the test opens inside the pods'
// network namespaces) are allowed or dropped by the `inet plexus` table
// plexusd writes in the protected pod's netns.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/plexus-cni/plexus/e2e/cluster"
)

var mnpGVR = schema.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1beta1", Resource: "multi-networkpolicies"}

// npPod is a pod of the truth table: its netns and its IPv4 address per
// interface (network-status).
type npPod struct {
	ns, name, netns string
	ip              map[string]string
}

// createLabeledPodIn creates a busybox pod in namespace ns with labels and
// networks; it is deleted when the test ends.
func (w *world) createLabeledPodIn(t *testing.T, namespace, name, networks string, labels map[string]string) {
	t.Helper()
	no, zero := false, int64(0)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels, Annotations: map[string]string{nadv1.NetworkAttachmentAnnot: networks}},
		Spec: corev1.PodSpec{
			NodeName: w.node.Name, AutomountServiceAccountToken: &no, TerminationGracePeriodSeconds: &zero,
			Containers: []corev1.Container{{Name: "c", Image: cluster.BusyboxImage, ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "3600"}}},
		},
	}
	if _, err := w.cs.CoreV1().Pods(namespace).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.cs.CoreV1().Pods(namespace).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		for i := 0; i < 600; i++ {
			if _, err := w.cs.CoreV1().Pods(namespace).Get(context.Background(), name, metav1.GetOptions{}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("pod %s/%s not gone after 60s", namespace, name)
	})
}

// npReady waits until the pod runs with ifaces interfaces in its
// network-status and returns its netns and addresses.
func (w *world) npReady(t *testing.T, namespace, name string, ifaces int) *npPod {
	t.Helper()
	p := &npPod{ns: namespace, name: name, ip: map[string]string{}}
	until(t, 90*time.Second, "pod "+namespace+"/"+name+" Running with its network-status", func() bool {
		pod, err := w.cs.CoreV1().Pods(namespace).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil || pod.Status.Phase != corev1.PodRunning {
			return false
		}
		var st []nadv1.NetworkStatus
		if json.Unmarshal([]byte(pod.Annotations[nadv1.NetworkStatusAnnot]), &st) != nil || len(st) != ifaces {
			return false
		}
		for _, s := range st {
			if len(s.IPs) != 1 {
				return false
			}
			p.ip[s.Interface] = s.IPs[0]
		}
		if e := entryOf(string(pod.UID)); e != nil {
			p.netns = e.NetNS
		}
		return p.netns != ""
	}, w.dump(name))
	return p
}

// listen accepts (and closes) TCP connections on every IPv4 address of the
// pod's netns on ports, until the test ends.
func listen(t *testing.T, p *npPod, ports ...int) {
	t.Helper()
	n, err := ns.GetNS(p.netns)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, port := range ports {
		var l net.Listener
		if err := n.Do(func(ns.NetNS) error {
			var err error
			l, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
}

// dial connects from the client pod's netns to addr: nil when the
// connection was made, errDropped when the SYN went unanswered within
// timeout (what the table's drop does), another error otherwise.
var errDropped = errors.New("dropped (connect timed out)")

func dial(from *npPod, addr string, timeout time.Duration) error {
	n, err := ns.GetNS(from.netns)
	if err != nil {
		return err
	}
	defer n.Close()
	return n.Do(func(ns.NetNS) error {
		c, err := net.DialTimeout("tcp4", addr, timeout)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return errDropped
			}
			return err
		}
		return c.Close()
	})
}

type npCase struct {
	what     string
	from     *npPod
	to       string // ip:port
	allowed  bool
	lastSeen error
}

// probeAll runs every case's connection at once; it returns the cases
// whose outcome differs from the expectation (want nil: every case must
// connect).
func probeAll(cases []*npCase, enforced bool) []*npCase {
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.lastSeen = dial(c.from, c.to, 300*time.Millisecond)
		}()
	}
	wg.Wait()
	var bad []*npCase
	for _, c := range cases {
		want := c.allowed || !enforced
		if (want && c.lastSeen != nil) || (!want && !errors.Is(c.lastSeen, errDropped)) {
			bad = append(bad, c)
		}
	}
	return bad
}

func describe(cases []*npCase) string {
	var b strings.Builder
	for _, c := range cases {
		fmt.Fprintf(&b, "  %s (%s/%s → %s): want allowed=%v, got %v\n", c.what, c.from.ns, c.from.name, c.to, c.allowed, c.lastSeen)
	}
	return b.String()
}

func (w *world) createPolicy(t *testing.T, dyn dynamic.Interface, y string) string {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(y), &obj); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: obj}
	if _, err := dyn.Resource(mnpGVR).Namespace("default").Create(context.Background(), u, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	name := u.GetName()
	t.Cleanup(func() {
		dyn.Resource(mnpGVR).Namespace("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

func (w *world) deletePolicy(t *testing.T, dyn dynamic.Interface, name string) {
	t.Helper()
	if err := dyn.Resource(mnpGVR).Namespace("default").Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (w *world) relabel(t *testing.T, namespace, name, role string) {
	t.Helper()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{"role": role}}})
	if _, err := w.cs.CoreV1().Pods(namespace).Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// hasTable says whether the pod's netns holds plexus's table.
func hasTable(p *npPod) bool {
	return exec.Command("nsenter", "--net="+p.netns, "nft", "list", "table", "inet", "plexus").Run() == nil
}

// converge starts a connection of c every 10 ms (each waits 100 ms at
// most, so probes overlap) until one has the outcome want (true: made;
// false: dropped) and returns the time from start to the beginning of
// that probe: a dropped SYN was dropped when it was sent.
func converge(t *testing.T, c *npCase, want bool, start time.Time, dump func() string) time.Duration {
	t.Helper()
	type seen struct {
		at  time.Duration
		err error
	}
	out := make(chan seen, 2000)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case <-tick.C:
			go func(at time.Duration) { out <- seen{at, dial(c.from, c.to, 100*time.Millisecond)} }(time.Since(start))
		case s := <-out:
			if (want && s.err == nil) || (!want && errors.Is(s.err, errDropped)) {
				return s.at
			}
			if s.err != nil && !errors.Is(s.err, errDropped) {
				t.Fatalf("%s: %v", c.what, s.err)
			}
		case <-timeout:
			t.Fatalf("%s: not allowed=%v within 15s\n%s", c.what, want, dump())
			return 0
		}
	}
}

func TestNetworkPolicyOnRealNode(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(w.cp.RestConfig())
	if err != nil {
		t.Fatal(err)
	}
	// A second namespace for the namespaceSelector, labelled team=peer.
	const peerNS = "np-peer"
	if err := w.cp.CreateNamespace(ctx, peerNS); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cs.CoreV1().Namespaces().Patch(ctx, peerNS, types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"peer"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// NAD A is macvlan-n (macvlan on the uplink, host-local), NAD B
	// bridge-n; eth0 is the primary bridge.
	both := "macvlan-n,bridge-n"
	w.createLabeledPodIn(t, "default", "np-srv", both, map[string]string{"role": "server"})
	w.createLabeledPodIn(t, "default", "np-cli-a", both, map[string]string{"role": "client"})
	w.createLabeledPodIn(t, "default", "np-cli-b", both, map[string]string{"role": "other"})
	w.createLabeledPodIn(t, peerNS, "np-cli-ns", "default/macvlan-n", map[string]string{"role": "client"})
	srv := w.npReady(t, "default", "np-srv", 3)
	cliA := w.npReady(t, "default", "np-cli-a", 3)
	cliB := w.npReady(t, "default", "np-cli-b", 3)
	cliNS := w.npReady(t, peerNS, "np-cli-ns", 2)
	listen(t, srv, 7000, 8080, 8081, 9000, 9002, 9003)
	at := func(ifc string, port int) string { return fmt.Sprintf("%s:%d", srv.ip[ifc], port) }

	cases := []*npCase{
		{what: "default deny: no rule allows port 7000", from: cliB, to: at("net1", 7000)},
		{what: "podSelector role=client allows 8080", from: cliA, to: at("net1", 8080), allowed: true},
		{what: "podSelector: a pod without the label", from: cliB, to: at("net1", 8080)},
		{what: "podSelector selects the policy's namespace only", from: cliNS, to: at("net1", 8080)},
		{what: "namespaceSelector team=peer allows 8081", from: cliNS, to: at("net1", 8081), allowed: true},
		{what: "namespaceSelector: a pod of another namespace", from: cliA, to: at("net1", 8081)},
		{what: "ipBlock 10.248.1.0/24 on port 9000", from: cliB, to: at("net1", 9000), allowed: true},
		{what: "ipBlock from another namespace's pod", from: cliNS, to: at("net1", 9000), allowed: true},
		{what: "ipBlock except the client's /32", from: cliA, to: at("net1", 9000)},
		{what: "port 9000 endPort 9002: the range's end", from: cliB, to: at("net1", 9002), allowed: true},
		{what: "port 9000 endPort 9002: past the range", from: cliB, to: at("net1", 9003)},
		{what: "NAD B (bridge-n), no policy for it", from: cliB, to: at("net2", 7000), allowed: true},
		{what: "eth0 (the primary network)", from: cliB, to: at("eth0", 7000), allowed: true},
	}

	// Without a policy every connection is made: each denial below is the
	// enforcement's (a no-op enforcement fails every deny case).
	if bad := probeAll(cases, false); len(bad) > 0 {
		t.Fatalf("before any policy, connections fail:\n%s", describe(bad))
	}
	for _, p := range []*npPod{srv, cliA, cliB, cliNS} {
		if hasTable(p) {
			t.Fatalf("pod %s has a plexus table before any policy", p.name)
		}
	}

	sel := `podSelector: {matchLabels: {role: server}}
  policyTypes: [Ingress]`
	meta := func(name, nad string) string {
		return `apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata: {name: ` + name + `, namespace: default, annotations: {k8s.v1.cni.cncf.io/policy-for: ` + nad + `}}
spec:
  `
	}
	start := time.Now()
	w.createPolicy(t, dyn, meta("np-from-pods", "macvlan-n")+sel+`
  ingress: [{from: [{podSelector: {matchLabels: {role: client}}}], ports: [{protocol: TCP, port: 8080}]}]`)
	w.createPolicy(t, dyn, meta("np-from-ns", "macvlan-n")+sel+`
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: peer}}}], ports: [{protocol: TCP, port: 8081}]}]`)
	w.createPolicy(t, dyn, meta("np-ipblock", "macvlan-n")+sel+`
  ingress: [{from: [{ipBlock: {cidr: 10.248.1.0/24, except: [`+cliA.ip["net1"]+`/32]}}], ports: [{protocol: TCP, port: 9000, endPort: 9002}]}]`)
	var bad []*npCase
	for deadline := time.Now().Add(20 * time.Second); ; {
		if bad = probeAll(cases, true); len(bad) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(bad) > 0 {
		t.Fatalf("the truth table does not hold 20s after the policies:\n%s\n%s", describe(bad), w.dump("np-srv")())
	}
	t.Logf("truth table (%d cases) holds %v after the 3 policies were created", len(cases), time.Since(start).Round(time.Millisecond))
	// And holds again (not a transient).
	if bad := probeAll(cases, true); len(bad) > 0 {
		t.Fatalf("the truth table held, then not:\n%s", describe(bad))
	}
	if !hasTable(srv) {
		t.Fatal("np-srv, selected, has no plexus table")
	}
	for _, p := range []*npPod{cliA, cliB, cliNS} {
		if hasTable(p) {
			t.Errorf("pod %s, which no policy selects, has a plexus table", p.name)
		}
	}

	// A pod label changed: np-cli-b becomes a client (8080 allowed),
	// np-cli-a stops being one (8080 dropped).
	gainB := &npCase{what: "np-cli-b relabelled role=client → 8080", from: cliB, to: at("net1", 8080)}
	loseA := &npCase{what: "np-cli-a relabelled role=other → 8080", from: cliA, to: at("net1", 8080)}
	start = time.Now()
	w.relabel(t, "default", cliB.name, "client")
	gain := converge(t, gainB, true, start, w.dump("np-srv"))
	start = time.Now()
	w.relabel(t, "default", cliA.name, "other")
	lose := converge(t, loseA, false, start, w.dump("np-srv"))
	t.Logf("label change → connection: allowed after %v, dropped after %v", gain.Round(time.Millisecond), lose.Round(time.Millisecond))

	// A policy added then removed, with connections tried all along: a
	// default-deny policy for NAD B, 5 times.
	flip := &npCase{what: "np-cli-b → np-srv on NAD B port 7000", from: cliB, to: at("net2", 7000)}
	var adds, dels []time.Duration
	for i := 0; i < 5; i++ {
		start = time.Now()
		name := w.createPolicy(t, dyn, meta(fmt.Sprintf("np-flip-%d", i), "bridge-n")+sel)
		adds = append(adds, converge(t, flip, false, start, w.dump("np-srv")))
		start = time.Now()
		w.deletePolicy(t, dyn, name)
		dels = append(dels, converge(t, flip, true, start, w.dump("np-srv")))
	}
	// The NAD A policies still hold after the flips.
	cases[1], cases[2] = gainB, loseA
	gainB.allowed = true
	if bad := probeAll(cases, true); len(bad) > 0 {
		t.Fatalf("after the flips and relabels:\n%s", describe(bad))
	}
	t.Logf("policy convergence (API create/delete returned → start of the first connection with the new verdict; one started every 10 ms), 5 cycles: added (dropped) %s; removed (allowed) %s",
		p50max(adds), p50max(dels))
}

// p50max is "p50 X / max Y".
func p50max(ds []time.Duration) string {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("p50 %v / max %v", s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}
