package kube_test

// plexusd's pod and NAD sources (pkg/daemon/sources.go) against the real
// kube-apiserver: the informer miss path (an object too new for the
// informer is fetched with one request), the hit path (no request at all),
// and plexusd's own informers (field selector, transforms) feeding them.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/plexus-cni/plexus/pkg/daemon"
	"github.com/plexus-cni/plexus/pkg/k8s"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

// idleInformer is an informer that is never run: its store holds only what
// the test adds. It fails the test if anything lists or watches through it.
func idleInformer(t *testing.T, obj runtime.Object) cache.SharedIndexInformer {
	lw := &cache.ListWatch{
		ListFunc: func(metav1.ListOptions) (runtime.Object, error) {
			t.Error("the idle informer listed")
			return nil, errors.New("idle informer")
		},
		WatchFunc: func(metav1.ListOptions) (watch.Interface, error) {
			t.Error("the idle informer watched")
			return nil, errors.New("idle informer")
		},
	}
	return cache.NewSharedIndexInformer(lw, obj, 0, cache.Indexers{})
}

// sourcesClient is a plexus API client with the admin's credentials and
// the request counter the tests read.
func sourcesClient(t *testing.T, k *kubeEnv, opts k8s.Options) *k8s.Client {
	cl, err := k8s.NewForConfig(k.cp.RestConfig(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// lookups is plexus_cache_lookups_total{kind, outcome} in m's registry.
func lookups(t *testing.T, m *daemon.Metrics, kind, outcome string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "plexus_cache_lookups_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && labels["outcome"] == outcome {
				return s.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// sourcesNamespace is a namespace of the test's own, deleted at its end.
func (k *kubeEnv) sourcesNamespace(prefix string) string {
	ns := prefix + "-" + k.Suffix
	k.ensureNamespace(ns)
	k.t.Cleanup(func() { k.cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	return ns
}

func ctx10s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A NAD created just now, not in the informer: one LIST of its namespace
// finds it; a NAD that does not exist is ErrNADNotFound after one LIST.
func TestDaemonSourcesNADMiss(t *testing.T) {
	k := newKubeEnv(t)
	ns := k.sourcesNamespace("src-nad")
	cl := sourcesClient(t, k, k8s.Options{})
	m := daemon.NewMetrics()
	src := &daemon.NADSource{Informer: idleInformer(t, &nadv1.NetworkAttachmentDefinition{}), Client: cl, Metrics: m}
	ctx := ctx10s(t)

	k.bridgeNAD(ns, "fresh", 1)
	// The source gives the API one second (missBudget): warm the API
	// server's NAD path first, so that its first-use set-up, slow on a
	// loaded machine, is not what is measured.
	if _, err := k.nads.NetworkAttachmentDefinitions(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	before := cl.Requests()
	n, err := src.NAD(ctx, ns, "fresh")
	if err != nil {
		t.Fatalf("NAD of a NAD created just now, informer empty: %v", err)
	}
	if n.Namespace != ns || n.Name != "fresh" || !strings.Contains(n.Spec.Config, `"type":"bridge"`) {
		t.Errorf("NAD = %s/%s config %s", n.Namespace, n.Name, n.Spec.Config)
	}
	if got := cl.Requests() - before; got != 1 {
		t.Errorf("the miss made %d API requests, want 1 (a LIST of %s)", got, ns)
	}
	if miss, hit := lookups(t, m, "nad", "miss"), lookups(t, m, "nad", "hit"); miss != 1 || hit != 0 {
		t.Errorf("plexus_cache_lookups_total{kind=nad}: miss %v hit %v, want 1 and 0", miss, hit)
	}

	for _, tc := range []struct{ ns, name string }{
		{ns, "absent"},                       // the namespace has NADs, not this one
		{"no-such-ns-" + k.Suffix, "absent"}, // no such namespace
	} {
		before = cl.Requests()
		_, err = src.NAD(ctx, tc.ns, tc.name)
		if !errors.Is(err, podnet.ErrNADNotFound) {
			t.Errorf("NAD(%s/%s) = %v, want ErrNADNotFound", tc.ns, tc.name, err)
		}
		if got := cl.Requests() - before; got != 1 {
			t.Errorf("NAD(%s/%s) made %d API requests, want 1", tc.ns, tc.name, got)
		}
	}
	if miss := lookups(t, m, "nad", "miss"); miss != 3 {
		t.Errorf("plexus_cache_lookups_total{kind=nad,outcome=miss} = %v, want 3", miss)
	}
}

// A pod the informer does not hold: after the informer wait, one GET finds
// it; a pod that does not exist is ErrPodNotFound; a pod whose UID is not
// the runtime's (deleted and re-created) is refused.
func TestDaemonSourcesPodMiss(t *testing.T) {
	k := newKubeEnv(t)
	cl := sourcesClient(t, k, k8s.Options{})
	m := daemon.NewMetrics()
	src := &daemon.PodSource{Informer: idleInformer(t, &corev1.Pod{}), Client: cl, Metrics: m}
	ctx := ctx10s(t)

	p := k.createPod("srcmiss", "net-a,net-b@data0")
	before := cl.Requests()
	got, err := src.Pod(ctx, podnet.PodRef{Namespace: p.Namespace, Name: p.Name, UID: p.UID})
	if err != nil {
		t.Fatalf("Pod of a pod created just now, informer empty: %v", err)
	}
	if got.Namespace != p.Namespace || got.Name != p.Name || got.UID != p.UID || got.Annotations[nadv1.NetworkAttachmentAnnot] != "net-a,net-b@data0" {
		t.Errorf("Pod = %+v", got)
	}
	if n := cl.Requests() - before; n != 1 {
		t.Errorf("the miss made %d API requests, want 1 (a GET)", n)
	}
	if miss, hit := lookups(t, m, "pod", "miss"), lookups(t, m, "pod", "hit"); miss != 1 || hit != 0 {
		t.Errorf("plexus_cache_lookups_total{kind=pod}: miss %v hit %v, want 1 and 0", miss, hit)
	}

	// Without a UID in the request, any UID is accepted.
	if got, err := src.Pod(ctx, podnet.PodRef{Namespace: p.Namespace, Name: p.Name}); err != nil || got.UID != p.UID {
		t.Errorf("Pod without a UID: %+v, %v", got, err)
	}

	_, err = src.Pod(ctx, podnet.PodRef{Namespace: "default", Name: "no-such-pod-" + k.Suffix})
	if !errors.Is(err, podnet.ErrPodNotFound) {
		t.Errorf("Pod of a pod that does not exist: %v, want ErrPodNotFound", err)
	}

	other := "00000000-0000-0000-0000-" + k.Suffix + "000000"
	_, err = src.Pod(ctx, podnet.PodRef{Namespace: p.Namespace, Name: p.Name, UID: other})
	if err == nil || errors.Is(err, podnet.ErrPodNotFound) ||
		!strings.Contains(err.Error(), fmt.Sprintf("UID %s in the API differs from K8S_POD_UID %s", p.UID, other)) {
		t.Errorf("Pod with another UID: %v, want the UID mismatch named", err)
	}

	before = cl.Requests()
	if _, err := src.Pod(ctx, podnet.PodRef{Name: p.Name}); err == nil || !strings.Contains(err.Error(), "namespace and name must both be set") {
		t.Errorf("Pod without a namespace: %v", err)
	}
	if n := cl.Requests() - before; n != 0 {
		t.Errorf("a ref without a namespace made %d API requests", n)
	}
	if miss := lookups(t, m, "pod", "miss"); miss != 4 {
		t.Errorf("plexus_cache_lookups_total{kind=pod,outcome=miss} = %v, want 4", miss)
	}
}

// Objects in the informer's store are answered without any API request; a
// stored pod of another UID (the pod was re-created, the watch has not
// delivered it yet) is a miss that GETs the current one.
func TestDaemonSourcesHit(t *testing.T) {
	k := newKubeEnv(t)
	cl := sourcesClient(t, k, k8s.Options{})
	m := daemon.NewMetrics()
	ctx := ctx10s(t)

	nadInf := idleInformer(t, &nadv1.NetworkAttachmentDefinition{})
	conf := `{"cniVersion":"1.0.0","name":"cached","type":"macvlan"}`
	// Only in the store: the API has no such NAD, so a request would fail.
	if err := nadInf.GetIndexer().Add(&nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Namespace: "src-hit-" + k.Suffix, Name: "cached"},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: conf}}); err != nil {
		t.Fatal(err)
	}
	nads := &daemon.NADSource{Informer: nadInf, Client: cl, Metrics: m}
	before := cl.Requests()
	n, err := nads.NAD(ctx, "src-hit-"+k.Suffix, "cached")
	if err != nil || n.Spec.Config != conf {
		t.Fatalf("NAD from the store: %+v, %v", n, err)
	}
	// The caller gets a copy: changing it leaves the store as it was.
	n.Spec.Config = "changed"
	if n2, err := nads.NAD(ctx, "src-hit-"+k.Suffix, "cached"); err != nil || n2.Spec.Config != conf {
		t.Errorf("the store's NAD was changed through a returned one: %+v, %v", n2, err)
	}

	podInf := idleInformer(t, &corev1.Pod{})
	ann := map[string]string{nadv1.NetworkAttachmentAnnot: "net-a"}
	if err := podInf.GetIndexer().Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: "default", Name: "only-cached-" + k.Suffix, UID: "uid-cached", Annotations: ann}}); err != nil {
		t.Fatal(err)
	}
	pods := &daemon.PodSource{Informer: podInf, Client: cl, Metrics: m}
	for _, uid := range []string{"uid-cached", ""} {
		got, err := pods.Pod(ctx, podnet.PodRef{Namespace: "default", Name: "only-cached-" + k.Suffix, UID: uid})
		if err != nil || got.UID != "uid-cached" || got.Annotations[nadv1.NetworkAttachmentAnnot] != "net-a" {
			t.Errorf("Pod from the store (ref UID %q): %+v, %v", uid, got, err)
		}
	}
	if n := cl.Requests() - before; n != 0 {
		t.Errorf("lookups answered from the store made %d API requests, want 0", n)
	}
	if hit, miss := lookups(t, m, "nad", "hit"), lookups(t, m, "nad", "miss"); hit != 2 || miss != 0 {
		t.Errorf("plexus_cache_lookups_total{kind=nad}: hit %v miss %v, want 2 and 0", hit, miss)
	}
	if hit, miss := lookups(t, m, "pod", "hit"), lookups(t, m, "pod", "miss"); hit != 2 || miss != 0 {
		t.Errorf("plexus_cache_lookups_total{kind=pod}: hit %v miss %v, want 2 and 0", hit, miss)
	}

	// The store holds the pod under a stale UID; the runtime names the
	// current one: the store's pod is not used, the API's is.
	p := k.createPod("srcstale", "net-b")
	if err := podInf.GetIndexer().Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: p.Namespace, Name: p.Name, UID: "uid-of-the-deleted-pod", Annotations: map[string]string{nadv1.NetworkAttachmentAnnot: "stale"}}}); err != nil {
		t.Fatal(err)
	}
	before = cl.Requests()
	got, err := pods.Pod(ctx, podnet.PodRef{Namespace: p.Namespace, Name: p.Name, UID: p.UID})
	if err != nil || got.UID != p.UID || got.Annotations[nadv1.NetworkAttachmentAnnot] != "net-b" {
		t.Errorf("Pod with a stale UID in the store: %+v, %v, want the API's pod", got, err)
	}
	if n := cl.Requests() - before; n != 1 {
		t.Errorf("a stale store entry made %d API requests, want 1", n)
	}
	if miss := lookups(t, m, "pod", "miss"); miss != 1 {
		t.Errorf("plexus_cache_lookups_total{kind=pod,outcome=miss} = %v, want 1", miss)
	}
}

// plexusd's own informers, run against the API: the pod informer holds the
// pods of its node only, trimmed to what plexus reads; the NAD informer
// keeps name, config and the annotations resolution reads
// (resolve.NADAnnotations); sources over them answer without a request.
func TestDaemonSourcesInformers(t *testing.T) {
	k := newKubeEnv(t)
	ns := k.sourcesNamespace("src-inf")
	// The informers' watches outlive a request timeout, as in plexusd.
	cl := sourcesClient(t, k, k8s.Options{RequestTimeout: -1, Total: time.Hour})
	node := "src-node-" + k.Suffix
	podInf, nadInf := daemon.NewPodInformer(cl, node), daemon.NewNADInformer(cl)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go podInf.Run(ctx.Done())
	go nadInf.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx10s(t).Done(), podInf.HasSynced, nadInf.HasSynced) {
		t.Fatal("informers did not sync within 10s")
	}

	// A pod of another node first, then one of ours: once ours is in the
	// store, the watch has passed the other one (events come in order).
	k.node = "elsewhere-" + k.Suffix
	elsewhere := k.createPod("srcother", "net-a")
	k.node = node
	p := k.createPod("srcmine", "net-a,net-b")
	big := map[string]string{
		"example.com/large":                "x" + strings.Repeat("y", 4096),
		"v1.multus-cni.io/default-network": "alt",
	}
	pod, err := k.cs.CoreV1().Pods(p.Namespace).Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for key, v := range big {
		pod.Annotations[key] = v
	}
	pod.Labels = map[string]string{"app": "x"}
	if _, err := k.cs.CoreV1().Pods(p.Namespace).Update(context.Background(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the updated pod in the informer", func() bool {
		obj, ok, _ := podInf.GetIndexer().GetByKey(p.Namespace + "/" + p.Name)
		return ok && obj.(*corev1.Pod).Annotations["v1.multus-cni.io/default-network"] == "alt"
	})
	if _, ok, _ := podInf.GetIndexer().GetByKey(elsewhere.Namespace + "/" + elsewhere.Name); ok {
		t.Errorf("the pod of another node is in the informer")
	}
	obj, _, _ := podInf.GetIndexer().GetByKey(p.Namespace + "/" + p.Name)
	stored := obj.(*corev1.Pod)
	if len(stored.Spec.Containers) != 0 || len(stored.Labels) != 0 || len(stored.ManagedFields) != 0 || stored.Spec.NodeName != node ||
		len(stored.Annotations) != 2 || stored.Annotations["example.com/large"] != "" || string(stored.UID) != p.UID {
		t.Errorf("stored pod not trimmed to what plexus reads: containers %d, labels %v, managedFields %d, node %q, annotations %v",
			len(stored.Spec.Containers), stored.Labels, len(stored.ManagedFields), stored.Spec.NodeName, stored.Annotations)
	}

	k.createNAD(ns, "sriov-net", `{"cniVersion":"1.0.0","name":"sriov-net","type":"sriov"}`)
	nad, err := k.nads.NetworkAttachmentDefinitions(ns).Get(context.Background(), "sriov-net", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nad.Annotations = map[string]string{"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov", "example.com/other": "drop me"}
	nad.Labels = map[string]string{"team": "x"}
	if _, err := k.nads.NetworkAttachmentDefinitions(ns).Update(context.Background(), nad, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the updated NAD in the informer", func() bool {
		obj, ok, _ := nadInf.GetIndexer().GetByKey(ns + "/sriov-net")
		return ok && obj.(*nadv1.NetworkAttachmentDefinition).Annotations["k8s.v1.cni.cncf.io/resourceName"] != ""
	})

	m := daemon.NewMetrics()
	pods := &daemon.PodSource{Informer: podInf, Client: cl, Metrics: m}
	nads := &daemon.NADSource{Informer: nadInf, Client: cl, Metrics: m}
	before := cl.Requests()
	got, err := pods.Pod(ctx, podnet.PodRef{Namespace: p.Namespace, Name: p.Name, UID: p.UID})
	if err != nil || got.Annotations[nadv1.NetworkAttachmentAnnot] != "net-a,net-b" || got.Annotations["v1.multus-cni.io/default-network"] != "alt" {
		t.Errorf("Pod from plexusd's informer: %+v, %v", got, err)
	}
	n, err := nads.NAD(ctx, ns, "sriov-net")
	if err != nil || n.Annotations["k8s.v1.cni.cncf.io/resourceName"] != "intel.com/sriov" || len(n.Annotations) != 1 || len(n.Labels) != 0 ||
		!strings.Contains(n.Spec.Config, `"type":"sriov"`) {
		t.Errorf("NAD from plexusd's informer: %+v, %v", n, err)
	}
	if d := cl.Requests() - before; d != 0 {
		t.Errorf("lookups of informed objects made %d API requests, want 0", d)
	}
	if hit := lookups(t, m, "pod", "hit") + lookups(t, m, "nad", "hit"); hit != 2 {
		t.Errorf("plexus_cache_lookups_total hits = %v, want 2", hit)
	}
}
