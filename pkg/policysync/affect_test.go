package policysync

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	mnp "github.com/k8snetworkplumbingwg/multi-networkpolicy/pkg/apis/k8s.cni.cncf.io/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	plexuscache "github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/netpol"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

func nad(ns, name string) netpol.NAD { return netpol.NAD{Namespace: ns, Name: name} }

func pol(ns, name, policyFor string, sel map[string]string) *mnp.MultiNetworkPolicy {
	p := &mnp.MultiNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if policyFor != "" {
		p.Annotations = map[string]string{netpol.PolicyForAnnotation: policyFor}
	}
	p.Spec.PodSelector.MatchLabels = sel
	return p
}

func pod(ns, name string, lbl map[string]string, status string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbl}}
	if status != "" {
		p.Annotations = map[string]string{"k8s.v1.cni.cncf.io/network-status": status}
	}
	return p
}

// TestAffects: which local containers an informer change queues.
func TestAffects(t *testing.T) {
	locals := []Local{
		{ID: "a1", Namespace: "a", Name: "p1", Labels: map[string]string{"app": "x"}, NADs: []netpol.NAD{nad("a", "lan")}},
		{ID: "a2", Namespace: "a", Name: "p2", Labels: map[string]string{"app": "y"}, NADs: []netpol.NAD{nad("a", "lan")}},
		{ID: "a3", Namespace: "a", Name: "p3", Labels: map[string]string{"app": "x"}, NADs: []netpol.NAD{nad("a", "wan")}},
		{ID: "a4", Namespace: "a", Name: "p4", NADs: []netpol.NAD{nad("a", "lan")}}, // labels not known yet
		{ID: "b1", Namespace: "b", Name: "p1", Labels: map[string]string{"app": "x"}, NADs: []netpol.NAD{nad("a", "lan")}},
		{ID: "c1", Namespace: "c", Name: "p1", Labels: map[string]string{}, NADs: []netpol.NAD{nad("c", "lan")}},
	}
	withPolicies := map[string]bool{"a": true, "b": true}
	x := map[string]string{"app": "x"}
	y := map[string]string{"app": "y"}
	lan := `[{"name":"a/lan","ips":["10.0.0.9"]}]`
	for _, tc := range []struct {
		name string
		got  []string
		want []string
	}{
		{"policy added: selected pods of its namespace on its NAD", PolicyAffects(nil, pol("a", "p", "lan", x), locals), []string{"a1", "a4"}},
		{"policy in another namespace", PolicyAffects(nil, pol("d", "p", "lan,a/lan", nil), locals), nil},
		{"policy for another NAD", PolicyAffects(nil, pol("a", "p", "other", nil), locals), nil},
		{"policy without policy-for", PolicyAffects(nil, pol("a", "p", "", nil), locals), nil},
		{"policy-for that does not parse: its namespace", PolicyAffects(nil, pol("a", "p", "x/y/z", x), locals), []string{"a1", "a2", "a3", "a4"}},
		{"policy selector changed: old and new selected", PolicyAffects(pol("a", "p", "lan", x), pol("a", "p", "lan", y), locals), []string{"a1", "a2", "a4"}},
		{"policy-for changed: old and new NADs", PolicyAffects(pol("a", "p", "lan", x), pol("a", "p", "wan", x), locals), []string{"a1", "a3", "a4"}},
		{"policy deleted", PolicyAffects(pol("b", "p", "a/lan", nil), nil, locals), []string{"b1"}},
		{"pod added on a/lan: policied pods on a/lan", PodAffects(nil, pod("z", "q", x, lan), locals, withPolicies), []string{"a1", "a2", "a4", "b1"}},
		{"pod without secondary networks", PodAffects(nil, pod("z", "q", x, ""), locals, withPolicies), nil},
		{"pod unchanged for plans", PodAffects(pod("z", "q", x, lan), pod("z", "q", x, lan), locals, withPolicies), nil},
		{"peer's labels changed", PodAffects(pod("z", "q", x, lan), pod("z", "q", y, lan), locals, withPolicies), []string{"a1", "a2", "a4", "b1"}},
		{"peer's IP changed", PodAffects(pod("z", "q", x, lan), pod("z", "q", x, `[{"name":"a/lan","ips":["10.0.0.10"]}]`), locals, withPolicies), []string{"a1", "a2", "a4", "b1"}},
		{"peer moved off a/lan (old NAD counts)", PodAffects(pod("z", "q", x, lan), pod("z", "q", x, ""), locals, withPolicies), []string{"a1", "a2", "a4", "b1"}},
		{"peer deleted", PodAffects(pod("z", "q", x, lan), nil, locals, withPolicies), []string{"a1", "a2", "a4", "b1"}},
		{"a local pod's own labels", PodAffects(pod("c", "p1", x, ""), pod("c", "p1", y, ""), locals, withPolicies), []string{"c1"}},
		{"a local pod in a namespace without policy as peer", PodAffects(nil, pod("c", "p1", x, `[{"name":"c/lan","ips":["10.1.0.1"]}]`), locals, withPolicies), []string{"c1"}},
		{"namespace labels changed: pods of policied namespaces", NamespaceAffects(&corev1.Namespace{}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Labels: x}}, locals, withPolicies), []string{"a1", "a2", "a3", "a4", "b1"}},
		{"namespace added", NamespaceAffects(nil, &corev1.Namespace{}, locals, withPolicies), []string{"a1", "a2", "a3", "a4", "b1"}},
		{"namespace labels unchanged", NamespaceAffects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Labels: x}}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Labels: x, Annotations: y}}, locals, withPolicies), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slices.Sort(tc.got)
			if !slices.Equal(tc.got, tc.want) {
				t.Errorf("queued %v, want %v", tc.got, tc.want)
			}
		})
	}
}

// TestIncrementalQueueing: with n local pods, a policy in another
// namespace compiles no pod and a policy selecting two of them compiles
// those two only (every event compiled all n before).
func TestIncrementalQueueing(t *testing.T) {
	const n = 10
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs := fake.NewClientset()
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{GVR: "MultiNetworkPolicyList"})
	store := plexuscache.Store{Dir: t.TempDir()}
	netnsDir := t.TempDir()
	for _, ns := range []string{"a", "other"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		name := fmt.Sprintf("p%02d", i)
		lbl := map[string]string{"app": "plain"}
		if i >= n-2 { // the last two in the cache's order: the old code reaches them last
			lbl["app"] = "selected"
		}
		if _, err := cs.CoreV1().Pods("a").Create(ctx, pod("a", name, lbl, ""), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		netns := filepath.Join(netnsDir, name)
		if err := os.WriteFile(netns, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := store.Save(&podnet.Entry{Version: plexuscache.EntryVersion, ContainerID: "ctr-" + name, NetNS: netns,
			PodNamespace: "a", PodName: name, Attachments: []podnet.Attachment{{Network: "a/lan", IfName: "net1"}}}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	applied := map[string]int{} // tables written, by netns
	s := New(Options{Client: cs, Dynamic: dyn, Cache: store, Rescan: time.Hour, Resync: time.Hour, VFIO: func(podnet.Attachment) bool { return false },
		Apply: func(_ context.Context, netns string, _ netpol.Plan) error {
			mu.Lock()
			defer mu.Unlock()
			applied[filepath.Base(netns)]++
			return nil
		}})
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
		}
		t.Fatalf("not within 20s: %s", what)
	}
	// The start: every pod's (empty) table written once.
	wait("every pod synced at start", func() bool { return len(applied) == n })
	base := s.compiles.Load()
	if base != n {
		t.Fatalf("%d compiles at start, want %d", base, n)
	}

	create := func(p *mnp.MultiNetworkPolicy) {
		t.Helper()
		p.TypeMeta = metav1.TypeMeta{APIVersion: "k8s.cni.cncf.io/v1beta1", Kind: "MultiNetworkPolicy"}
		o, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dyn.Resource(GVR).Namespace(p.Namespace).Create(ctx, &unstructured.Unstructured{Object: o}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Two events of one informer, delivered in order: an unrelated
	// policy, then one selecting the last two pods. The queue is FIFO with
	// one worker: once both selected tables are rewritten, whatever the
	// first event queued has been compiled too.
	create(pol("other", "unrelated", "lan", nil))
	create(pol("a", "relevant", "lan", map[string]string{"app": "selected"}))
	wait("the selected pods' tables rewritten", func() bool {
		return applied[fmt.Sprintf("p%02d", n-2)] == 2 && applied[fmt.Sprintf("p%02d", n-1)] == 2
	})
	if got := s.compiles.Load() - base; got != 2 {
		t.Errorf("%d pods compiled for an unrelated and a relevant policy, want 2 (the selected ones)", got)
	}
	mu.Lock()
	for i := range n - 2 {
		if c := applied[fmt.Sprintf("p%02d", i)]; c != 1 {
			t.Errorf("p%02d: %d tables written, want 1", i, c)
		}
	}
	mu.Unlock()
}
