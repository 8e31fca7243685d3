package k8s_test

// Integration tests against a real etcd + kube-apiserver started by the
// e2e/cluster harness (shared by this package's tests, stopped in TestMain).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/plexus-cni/plexus/e2e/cluster"
	"github.com/plexus-cni/plexus/pkg/k8s"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

func TestMain(m *testing.M) { cluster.Main(m) }

var nadGVR = schema.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1", Resource: "network-attachment-definitions"}

// env is the shared control plane with admin clients for setting up and
// reading back API objects.
type env struct {
	cp  *cluster.ControlPlane
	cs  kubernetes.Interface
	dyn dynamic.Interface
}

func newEnv(t testing.TB) *env {
	t.Helper()
	cp := cluster.Shared(t)
	cs, err := cp.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cp.RestConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &env{cp: cp, cs: cs, dyn: dyn}
}

var nsSeq atomic.Int32

// namespace creates a fresh namespace for one test.
func (e *env) namespace(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("k8s-%d-%d", os.Getpid()%100000, nsSeq.Add(1))
	if err := e.cp.CreateNamespace(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return name
}

func (e *env) createPod(t testing.TB, ns, name string, annotations map[string]string) *corev1.Pod {
	t.Helper()
	no := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
		Spec: corev1.PodSpec{
			NodeName:                     "plexus-node",
			AutomountServiceAccountToken: &no,
			Containers:                   []corev1.Container{{Name: "c", Image: "busybox"}},
		},
	}
	got, err := e.cs.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	return got
}

func (e *env) createNAD(t testing.TB, ns, name, config string, annotations map[string]string) {
	t.Helper()
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "k8s.cni.cncf.io/v1",
		"kind":       "NetworkAttachmentDefinition",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec":       map[string]any{"config": config},
	}}
	if annotations != nil {
		obj.SetAnnotations(annotations)
	}
	if _, err := e.dyn.Resource(nadGVR).Namespace(ns).Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create NAD %s/%s: %v", ns, name, err)
	}
}

// events returns the Events recorded on pod ns/name.
func (e *env) events(t testing.TB, ns, name string) []corev1.Event {
	t.Helper()
	list, err := e.cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func load(t testing.TB, kubeconfig string, opts k8s.Options) *k8s.Client {
	t.Helper()
	c, err := k8s.Load(kubeconfig, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func nadConfig(name string) string {
	return fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"bridge","bridge":"br-%s"}`, name, name)
}

func TestPodGet(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t)
	want := e.createPod(t, ns, "web", map[string]string{nadv1.NetworkAttachmentAnnot: "net1,net2"})
	c := load(t, e.cp.AdminKubeconfig, k8s.Options{})
	pod, err := c.Pods().Pod(context.Background(), podnet.PodRef{Namespace: ns, Name: "web", UID: string(want.UID)})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Namespace != ns || pod.Name != "web" || pod.UID != string(want.UID) || pod.Annotations[nadv1.NetworkAttachmentAnnot] != "net1,net2" {
		t.Fatalf("got %+v, want pod %s/web uid %s with the networks annotation", pod, ns, want.UID)
	}
	if n := c.Requests(); n != 1 {
		t.Fatalf("%d requests for one pod GET, want 1", n)
	}
	// An empty UID (CNI_ARGS without K8S_POD_UID) is not checked.
	if _, err := c.Pods().Pod(context.Background(), podnet.PodRef{Namespace: ns, Name: "web"}); err != nil {
		t.Fatal(err)
	}
}

func TestPodUIDMismatch(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t)
	pod := e.createPod(t, ns, "web", nil)
	c := load(t, e.cp.AdminKubeconfig, k8s.Options{})
	_, err := c.Pods().Pod(context.Background(), podnet.PodRef{Namespace: ns, Name: "web", UID: "0000-stale"})
	if err == nil {
		t.Fatal("UID mismatch accepted")
	}
	for _, w := range []string{"0000-stale", string(pod.UID)} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
	// The engine names the pod once, in front; the source does not repeat it.
	if strings.Contains(err.Error(), ns+"/web") {
		t.Errorf("error %q repeats the pod", err)
	}
	if errors.Is(err, podnet.ErrPodNotFound) {
		t.Errorf("UID mismatch reported as not found: %v", err)
	}
	if n := c.Requests(); n != 1 {
		t.Fatalf("%d requests, want 1 (no retry on a mismatch)", n)
	}
}

// TestMirrorPodUID: kubelet's mirror of a static pod has an API UID that
// differs from the one the runtime passes; it is accepted.
func TestMirrorPodUID(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t)
	e.createPod(t, ns, "static-web", map[string]string{
		"kubernetes.io/config.mirror": "d41d8cd98f00b204e9800998ecf8427e",
		"kubernetes.io/config.source": "file",
	})
	c := load(t, e.cp.AdminKubeconfig, k8s.Options{})
	pod, err := c.Pods().Pod(context.Background(), podnet.PodRef{Namespace: ns, Name: "static-web", UID: "d41d8cd98f00b204e9800998ecf8427e"})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Name != "static-web" {
		t.Fatalf("got %+v", pod)
	}
}

func TestPodNotFoundWaitsBounded(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t)
	const wait = 700 * time.Millisecond
	c := load(t, e.cp.AdminKubeconfig, k8s.Options{PodWait: wait})
	start := time.Now()
	_, err := c.Pods().Pod(context.Background(), podnet.PodRef{Namespace: ns, Name: "ghost", UID: "u"})
	took := time.Since(start)
	if !errors.Is(err, podnet.ErrPodNotFound) {
		t.Fatalf("err = %v, want ErrPodNotFound", err)
	}
	if strings.Contains(err.Error(), ns+"/ghost") {
		t.Errorf("error %q repeats the pod (the engine names it once)", err)
	}
	if took < wait || took > wait+2*time.Second {
		t.Fatalf("gave up after %v, want about the pod wait %v", took, wait)
	}
	t.Logf("not found after %v and %d requests (pod wait %v)", took, c.Requests(), wait)
}

// TestPodAppearsDuringWait: on ADD the pod may lag; a pod created while
// plexus waits is found.
func TestPodAppearsDuringWait(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t)
	c := load(t, e.cp.AdminKubeconfig, k8s.Options{PodWait: 10 * time.Second})
	created := make(chan *corev1.Pod, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: ns},
			Spec:       corev1.PodSpec{NodeName: "plexus-node", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}
		p, err := e.cs.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
		if err != nil {
			t.Error(err)
		}
		created <- p
	}()
	pod, err := c.Pods().Pod(context.Background(), podnet.PodRef{Namespace: ns, Name: "late"})
	if err != nil {
		t.Fatal(err)
	}
	if p := <-created; p == nil || pod.UID != string(p.UID) {
		t.Fatalf("got %+v, want the created pod", pod)
	}
	if c.Requests() < 2 {
		t.Fatalf("%d requests: the pod cannot have been found on the first GET", c.Requests())
	}
}

// TestNADsOneListPerNamespace: every lookup in a namespace is answered from
// one LIST.
func TestNADsOneListPerNamespace(t *testing.T) {
	e := newEnv(t)
	nsA, nsB := e.namespace(t), e.namespace(t)
	for i := 0; i < 5; i++ {
		e.createNAD(t, nsA, fmt.Sprintf("net%d", i), nadConfig(fmt.Sprintf("a%d", i)), nil)
	}
	e.createNAD(t, nsB, "sriov", nadConfig("sriov"), map[string]string{"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov"})
	e.createNAD(t, nsB, "other", nadConfig("other"), nil)

	c := load(t, e.cp.AdminKubeconfig, k8s.Options{})
	nads := c.NADs()
	ctx := context.Background()
	for round := 0; round < 2; round++ {
		for i := 0; i < 5; i++ {
			nad, err := nads.NAD(ctx, nsA, fmt.Sprintf("net%d", i))
			if err != nil {
				t.Fatal(err)
			}
			if nad.Spec.Config != nadConfig(fmt.Sprintf("a%d", i)) || nad.Namespace != nsA {
				t.Fatalf("NAD %s/net%d: got %s/%s config %s", nsA, i, nad.Namespace, nad.Name, nad.Spec.Config)
			}
		}
	}
	if n := c.Requests(); n != 1 {
		t.Fatalf("%d requests for 10 lookups of 5 NADs in one namespace, want 1", n)
	}
	sriov, err := nads.NAD(ctx, nsB, "sriov")
	if err != nil {
		t.Fatal(err)
	}
	if sriov.Annotations["k8s.v1.cni.cncf.io/resourceName"] != "intel.com/sriov" {
		t.Fatalf("resourceName annotation lost: %v", sriov.Annotations)
	}
	_, err = nads.NAD(ctx, nsB, "absent")
	if !errors.Is(err, podnet.ErrNADNotFound) || strings.Contains(err.Error(), nsB+"/absent") {
		t.Fatalf("missing NAD: err = %v, want ErrNADNotFound not repeating %s/absent (the engine names the network once)", err, nsB)
	}
	if n := c.Requests(); n != 2 {
		t.Fatalf("%d requests after lookups in 2 namespaces, want 2", n)
	}
	// A namespace without NADs is one LIST too, and every name in it missing.
	nsC := e.namespace(t)
	if _, err := nads.NAD(ctx, nsC, "net0"); !errors.Is(err, podnet.ErrNADNotFound) {
		t.Fatalf("err = %v, want ErrNADNotFound", err)
	}
	if n := c.Requests(); n != 3 {
		t.Fatalf("%d requests after 3 namespaces, want 3", n)
	}
	// Results are copies: the caller may modify them.
	a, _ := nads.NAD(ctx, nsA, "net0")
	a.Spec.Config = "changed"
	if b, _ := nads.NAD(ctx, nsA, "net0"); b.Spec.Config == "changed" {
		t.Fatal("NAD returned by reference into the cache")
	}
}

func testStatus(ns string) []nadv1.NetworkStatus {
	return []nadv1.NetworkStatus{
		{Name: "cbr0", Interface: "eth0", IPs: []string{"10.1.0.5"}, Mac: "0a:58:0a:01:00:05", Default: true},
		{Name: ns + "/net1", Interface: "net1", IPs: []string{"192.168.10.5"}, Mac: "0a:58:c0:a8:0a:05",
			DeviceInfo: &nadv1.DeviceInfo{Type: "pci", Version: "1.1.0", Pci: &nadv1.PciDevice{PciAddress: "0000:01:00.2"}}},
	}
}

func TestStatusAttached(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t)
	created := e.createPod(t, ns, "web", map[string]string{"keep": "me"})
	c := load(t, e.cp.AdminKubeconfig, k8s.Options{})
	ctx := context.Background()
	pod, err := c.Pods().Pod(ctx, podnet.PodRef{Namespace: ns, Name: "web", UID: string(created.UID)})
	if err != nil {
		t.Fatal(err)
	}
	status := testStatus(ns)
	if err := c.Status().Attached(ctx, pod, "ctr-1", status); err != nil {
		t.Fatal(err)
	}
	if n := c.Requests(); n != 3 {
		t.Fatalf("%d requests for pod GET + status + Event, want 3", n)
	}
	got, err := e.cs.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var published []nadv1.NetworkStatus
	if err := json.Unmarshal([]byte(got.Annotations[nadv1.NetworkStatusAnnot]), &published); err != nil {
		t.Fatalf("annotation %s = %q: %v", nadv1.NetworkStatusAnnot, got.Annotations[nadv1.NetworkStatusAnnot], err)
	}
	if !reflect.DeepEqual(published, status) {
		t.Fatalf("published network-status %+v, want %+v", published, status)
	}
	if got.Annotations["keep"] != "me" {
		t.Fatalf("other annotations lost: %v", got.Annotations)
	}
	evs := e.events(t, ns, "web")
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1: %+v", len(evs), evs)
	}
	ev := evs[0]
	if ev.Type != corev1.EventTypeNormal || ev.Reason != k8s.ReasonAttached || ev.Source.Component != "plexus" ||
		ev.InvolvedObject.UID != created.UID || ev.InvolvedObject.Kind != "Pod" || ev.Source.Host != "plexus-node" {
		t.Fatalf("event %+v", ev)
	}
	for _, w := range []string{"eth0", "net1", "10.1.0.5", "192.168.10.5", ns + "/net1"} {
		if !strings.Contains(ev.Message, w) {
			t.Errorf("event message %q does not mention %q", ev.Message, w)
		}
	}
	// A second ADD's status replaces the first.
	if err := c.Status().Attached(ctx, pod, "ctr-2", status[:1]); err != nil {
		t.Fatal(err)
	}
	got, _ = e.cs.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
	published = nil
	_ = json.Unmarshal([]byte(got.Annotations[nadv1.NetworkStatusAnnot]), &published)
	if !reflect.DeepEqual(published, status[:1]) {
		t.Fatalf("after the second write: %+v", published)
	}
}

// TestStatusRecreatedPod: a status for a pod that was deleted and re-created
// under the same name is refused instead of landing on the new pod.
func TestStatusRecreatedPod(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t)
	old := e.createPod(t, ns, "web", nil)
	ctx := context.Background()
	if err := e.cs.CoreV1().Pods(ns).Delete(ctx, "web", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatal(err)
	}
	e.createPod(t, ns, "web", nil)
	c := load(t, e.cp.AdminKubeconfig, k8s.Options{})
	err := c.Status().Attached(ctx, &podnet.Pod{Namespace: ns, Name: "web", UID: string(old.UID)}, "ctr", testStatus(ns))
	if err == nil {
		t.Fatal("status written onto the re-created pod")
	}
	if !strings.Contains(err.Error(), ns+"/web") {
		t.Fatalf("error %q does not name the pod", err)
	}
	got, _ := e.cs.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
	if _, ok := got.Annotations[nadv1.NetworkStatusAnnot]; ok {
		t.Fatal("network-status on the re-created pod")
	}
}

func TestStatusFailed(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t)
	created := e.createPod(t, ns, "web", nil)
	c := load(t, e.cp.AdminKubeconfig, k8s.Options{})
	pod := &podnet.Pod{Namespace: ns, Name: "web", UID: string(created.UID)}
	c.Status().Failed(context.Background(), pod, ns+"/missing", fmt.Errorf("network-attachment-definition %s/missing: %w", ns, podnet.ErrNADNotFound))
	evs := e.events(t, ns, "web")
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Type != corev1.EventTypeWarning || ev.Reason != k8s.ReasonFailed || ev.Source.Component != "plexus" || ev.InvolvedObject.UID != created.UID {
		t.Fatalf("event %+v", ev)
	}
	for _, w := range []string{`"` + ns + `/missing"`, "not found"} {
		if !strings.Contains(ev.Message, w) {
			t.Errorf("event message %q does not contain %q", ev.Message, w)
		}
	}
	if n := c.Requests(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	if errs := c.EventErrors(); len(errs) != 0 {
		t.Fatalf("event errors: %v", errs)
	}
}

// TestAttachedEventForbidden: network-status is the contract; a ServiceAccount
// that may write it but not record Events still gets Attached to succeed,
// and the Event's failure is reported by EventErrors.
func TestAttachedEventForbidden(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t)
	created := e.createPod(t, ns, "web", nil)
	ctx := context.Background()
	if _, err := e.cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "noevents"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "noevents"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"pods/status"}, Verbs: []string{"patch"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "noevents"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "noevents"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "noevents", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kc, err := e.cp.ServiceAccountKubeconfig(ns, "noevents")
	if err != nil {
		t.Fatal(err)
	}
	c := load(t, kc, k8s.Options{})
	pod, err := c.Pods().Pod(ctx, podnet.PodRef{Namespace: ns, Name: "web", UID: string(created.UID)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Status().Attached(ctx, pod, "ctr", testStatus(ns)); err != nil {
		t.Fatalf("Attached failed for want of an Event: %v", err)
	}
	got, _ := e.cs.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
	if got.Annotations[nadv1.NetworkStatusAnnot] == "" {
		t.Fatal("network-status not written")
	}
	errs := c.EventErrors()
	if len(errs) != 1 || !apierrors.IsForbidden(errs[0]) || !strings.Contains(errs[0].Error(), ns+"/web") {
		t.Fatalf("event errors %v, want one Forbidden naming the pod", errs)
	}
	if n := c.Requests(); n != 3 {
		t.Fatalf("%d requests, want 3 (Forbidden is not retried)", n)
	}
}

// plexusServiceAccount names the ServiceAccount of deployments/plexus.yaml
// (applied with its RBAC by the harness).
const plexusNS, plexusSA = "kube-system", "plexus"

// TestServiceAccountRBAC: the least-privilege RBAC of deployments/plexus.yaml
// is enough for a whole ADD, in 4 requests; without it, requests fail
// Forbidden at once (not retried).
func TestServiceAccountRBAC(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t)
	created := e.createPod(t, ns, "web", nil)
	e.createNAD(t, ns, "net1", nadConfig("net1"), nil)
	e.createNAD(t, ns, "net2", nadConfig("net2"), nil)
	kc, err := e.cp.ServiceAccountKubeconfig(plexusNS, plexusSA)
	if err != nil {
		t.Fatal(err)
	}
	c := load(t, kc, k8s.Options{})
	ctx := context.Background()
	pod, err := c.Pods().Pod(ctx, podnet.PodRef{Namespace: ns, Name: "web", UID: string(created.UID)})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"net1", "net2"} {
		if _, err := c.NADs().NAD(ctx, ns, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Status().Attached(ctx, pod, "ctr", testStatus(ns)); err != nil {
		t.Fatal(err)
	}
	if n := c.Requests(); n != 4 {
		t.Fatalf("an ADD with 2 NADs cost %d requests, want 4", n)
	}
	got, _ := e.cs.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
	if got.Annotations[nadv1.NetworkStatusAnnot] == "" {
		t.Fatal("no network-status written with the plexus ServiceAccount")
	}
	if len(e.events(t, ns, "web")) != 1 {
		t.Fatal("no event recorded with the plexus ServiceAccount")
	}

	// kube-system/default has no RBAC: Forbidden, one request, no retries.
	kcDefault, err := e.cp.ServiceAccountKubeconfig("kube-system", "default")
	if err != nil {
		t.Fatal(err)
	}
	d := load(t, kcDefault, k8s.Options{})
	_, err = d.Pods().Pod(ctx, podnet.PodRef{Namespace: ns, Name: "web"})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("err = %v, want Forbidden", err)
	}
	if n := d.Requests(); n != 1 {
		t.Fatalf("Forbidden cost %d requests, want 1", n)
	}
}

// TestTokenReplacedBetweenLoads: Load reads the kubeconfig anew, so a token
// replaced in the file (rotation) is used by the next invocation, whether
// inline or in a tokenFile.
func TestTokenReplacedBetweenLoads(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t)
	e.createPod(t, ns, "web", nil)
	ref := podnet.PodRef{Namespace: ns, Name: "web"}
	ctx := context.Background()

	kc, err := e.cp.ServiceAccountKubeconfig(plexusNS, plexusSA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := load(t, kc, k8s.Options{}).Pods().Pod(ctx, ref); err != nil {
		t.Fatal(err)
	}
	first := readToken(t, kc)
	if _, err := e.cp.ServiceAccountKubeconfig(plexusNS, plexusSA); err != nil { // new token, same file
		t.Fatal(err)
	}
	if readToken(t, kc) == first {
		t.Fatal("the harness did not replace the token")
	}
	if _, err := load(t, kc, k8s.Options{}).Pods().Pod(ctx, ref); err != nil {
		t.Fatalf("after token replacement: %v", err)
	}

	// tokenFile: an invalid token is refused (so the file is really read),
	// the valid one replaced into the same file works again.
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	kcFile := filepath.Join(dir, "kubeconfig")
	ca, err := os.ReadFile(e.cp.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, kcFile, fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: plexus, user: {tokenFile: token}}]
contexts: [{name: c, context: {cluster: c, user: plexus}}]
current-context: c
`, e.cp.Server, base64.StdEncoding.EncodeToString(ca)))
	writeFile(t, tokenFile, "not-a-valid-token\n")
	c := load(t, kcFile, k8s.Options{})
	if _, err := c.Pods().Pod(ctx, ref); !apierrors.IsUnauthorized(err) {
		t.Fatalf("invalid token: err = %v, want Unauthorized", err)
	}
	if n := c.Requests(); n != 1 {
		t.Fatalf("Unauthorized cost %d requests, want 1", n)
	}
	writeFile(t, tokenFile, readToken(t, kc)+"\n")
	if _, err := load(t, kcFile, k8s.Options{}).Pods().Pod(ctx, ref); err != nil {
		t.Fatalf("after writing a valid token into the tokenFile: %v", err)
	}
}

// TestClientCertificate: a kubeconfig authenticating with a client
// certificate (inline data) signed by the cluster CA.
func TestClientCertificate(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t)
	e.createPod(t, ns, "web", nil)
	certPEM, keyPEM := issueClientCert(t, e.cp, "plexus-cert-user", "system:masters")
	ca, err := os.ReadFile(e.cp.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	writeFile(t, kc, fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: u, user: {client-certificate-data: %s, client-key-data: %s}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, e.cp.Server, b64(ca), b64(certPEM), b64(keyPEM)))
	if _, err := load(t, kc, k8s.Options{}).Pods().Pod(context.Background(), podnet.PodRef{Namespace: ns, Name: "web"}); err != nil {
		t.Fatal(err)
	}
}

// TestAPIServerStopped: with kube-apiserver down every operation fails
// within its budget after a few attempts; Failed returns promptly. Runs
// last-ish and restarts the API server for whatever follows.
func TestAPIServerStopped(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t)
	e.createPod(t, ns, "web", nil)
	kc, err := e.cp.ServiceAccountKubeconfig(plexusNS, plexusSA)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.cp.StartAPIServer(); err != nil {
			t.Errorf("restart kube-apiserver: %v", err)
		}
	})
	opts := k8s.Options{}
	c := load(t, kc, opts) // Load itself needs no API server
	ctx := context.Background()
	pod := &podnet.Pod{Namespace: ns, Name: "web", UID: "u"}
	ops := []struct {
		name     string
		requests int // attempts made
		run      func() error
	}{
		{"pod GET", k8s.DefaultAttempts, func() error { _, err := c.Pods().Pod(ctx, podnet.PodRef{Namespace: ns, Name: "web"}); return err }},
		{"NAD LIST", k8s.DefaultAttempts, func() error { _, err := c.NADs().NAD(ctx, ns, "net1"); return err }},
		{"status (PATCH and Event)", 2 * k8s.DefaultAttempts, func() error { return c.Status().Attached(ctx, pod, "ctr", testStatus(ns)) }},
		{"failure event", k8s.DefaultAttempts, func() error {
			n := len(c.EventErrors())
			c.Status().Failed(ctx, pod, "net1", errors.New("boom"))
			if errs := c.EventErrors(); len(errs) > n {
				return errs[len(errs)-1]
			}
			return nil
		}},
	}
	for _, op := range ops {
		before := c.Requests()
		start := time.Now()
		err := op.run()
		took := time.Since(start)
		if err == nil {
			t.Fatalf("%s succeeded with the API server stopped", op.name)
		}
		if took > k8s.DefaultBudget {
			t.Errorf("%s took %v, more than the budget %v", op.name, took, k8s.DefaultBudget)
		}
		if !strings.Contains(err.Error(), "refused") {
			t.Errorf("%s: error %q does not say the connection was refused", op.name, err)
		}
		t.Logf("%s with the API server stopped: error after %v, %d requests: %v", op.name, took, c.Requests()-before, err)
		if n := c.Requests() - before; n != op.requests {
			t.Errorf("%s: %d attempts, want %d", op.name, n, op.requests)
		}
	}
}

func readToken(t testing.TB, kubeconfig string) string {
	t.Helper()
	b, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "token:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no token in %s", kubeconfig)
	return ""
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issueClientCert signs a client certificate for user in group with the
// control plane's CA.
func issueClientCert(t testing.TB, cp *cluster.ControlPlane, user, group string) (certPEM, keyPEM []byte) {
	t.Helper()
	caCert := readPEM(t, cp.CACertFile)
	ca, err := x509.ParseCertificate(caCert)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := x509.ParseECPrivateKey(readPEM(t, filepath.Join(filepath.Dir(cp.CACertFile), "ca.key")))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: user, Organization: []string{group}},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func readPEM(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
		return nil
	}
	return blk.Bytes
}

// TestWireFormats: pods and Events travel as protobuf, NADs (a CRD) as JSON.
func TestWireFormats(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t)
	e.createPod(t, ns, "web", nil)
	e.createNAD(t, ns, "net1", nadConfig("net1"), nil)
	var mu sync.Mutex
	seen := map[string]string{} // "METHOD path" -> response Content-Type
	cfg := e.cp.RestConfig()
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(r)
			if err == nil {
				mu.Lock()
				seen[r.Method+" "+r.URL.Path] = resp.Header.Get("Content-Type")
				mu.Unlock()
			}
			return resp, err
		})
	}
	c, err := k8s.NewForConfig(cfg, k8s.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pod, err := c.Pods().Pod(ctx, podnet.PodRef{Namespace: ns, Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.NADs().NAD(ctx, ns, "net1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Status().Attached(ctx, pod, "ctr", testStatus(ns)); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"GET /api/v1/namespaces/" + ns + "/pods/web":                                        "application/vnd.kubernetes.protobuf",
		"GET /apis/k8s.cni.cncf.io/v1/namespaces/" + ns + "/network-attachment-definitions": "application/json",
		"PATCH /api/v1/namespaces/" + ns + "/pods/web/status":                               "application/vnd.kubernetes.protobuf",
		"POST /api/v1/namespaces/" + ns + "/events":                                         "application/vnd.kubernetes.protobuf",
	}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("requests and response types:\n got %v\nwant %v", seen, want)
	}
	if c.Requests() != 4 {
		t.Fatalf("%d requests, want 4", c.Requests())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestNADsConcurrentLookups: lookups racing in one namespace share one LIST.
func TestNADsConcurrentLookups(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t)
	for i := 0; i < 4; i++ {
		e.createNAD(t, ns, fmt.Sprintf("net%d", i), nadConfig(fmt.Sprintf("c%d", i)), nil)
	}
	c := load(t, e.cp.AdminKubeconfig, k8s.Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.NADs().NAD(context.Background(), ns, fmt.Sprintf("net%d", i%4)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := c.Requests(); n != 1 {
		t.Fatalf("16 concurrent lookups cost %d requests, want 1", n)
	}
}
