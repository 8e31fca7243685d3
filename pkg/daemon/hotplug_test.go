package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/plexus-cni/plexus/pkg/attach"
	pxcache "github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/config"
	"github.com/plexus-cni/plexus/pkg/outbox"
	"github.com/plexus-cni/plexus/pkg/podnet"
	tu "github.com/plexus-cni/plexus/pkg/testutil"
)

// Hot-plug's reconciliation over a real network namespace and a real
// cache, with pkg/testutil/testplugin as every delegate (it makes no
// interface; "failAdd"/"failDel" make it fail). The node e2e
// (e2e/node/hotplug_test.go) runs the same through the real kubelet with
// real plugins.

type hpNADs map[string]string // namespace/name -> conflist

func (f hpNADs) NAD(_ context.Context, namespace, name string) (*nadv1.NetworkAttachmentDefinition, error) {
	c, ok := f[namespace+"/"+name]
	if !ok {
		return nil, fmt.Errorf("%s/%s: %w", namespace, name, podnet.ErrNADNotFound)
	}
	return &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: c}}, nil
}

func testConf(name string, extra ...string) string {
	p := `{"type":"testplugin"` + strings.Join(extra, "") + `}`
	return `{"cniVersion":"1.0.0","name":"` + name + `","plugins":[` + p + `]}`
}

type hpEnv struct {
	t     testing.TB
	h     *hotplug
	conf  *config.Conf
	store pxcache.Store
	box   outbox.Box
	netns string
	pod   *podnet.Pod
}

func newHPEnv(t testing.TB, confKeys string) *hpEnv {
	t.Helper()
	tu.RequireRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	if err := os.Symlink(tu.BuildPackage(t, "testplugin", "./pkg/testutil/testplugin"), filepath.Join(bin, "testplugin")); err != nil {
		t.Fatal(err)
	}
	cniDir := filepath.Join(dir, "cni")
	c, err := config.Load([]byte(`{"cniVersion":"1.0.0","name":"plexus-net","type":"plexus","clusterNetwork":"/nonexistent/primary.conflist",` +
		`"cniDir":"` + cniDir + `","binDir":"` + bin + `","deviceInfoDir":"` + filepath.Join(dir, "devinfo") + `"` + confKeys + `}`))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	d := &Daemon{opts: Options{CNIDir: cniDir, BinDir: bin}, log: log, metrics: NewMetrics(), box: outbox.Box{Dir: outbox.Dir(cniDir)}, kick: make(chan struct{}, 1)}
	h := newHotplug(d)
	h.nads = hpNADs{
		"default/a": testConf("a"), "default/b": testConf("b"), "default/c": testConf("c"),
		"default/bad":     testConf("bad", `,"failAdd":true`),
		"default/faildel": testConf("faildel", `,"failDel":true`),
		"kube-system/dn":  testConf("dn"),
	}
	h.devices = nil
	return &hpEnv{t: t, h: h, conf: c, store: pxcache.Store{Dir: cniDir}, box: d.box, netns: tu.NewNS(t).Path(),
		pod: &podnet.Pod{Namespace: "default", Name: "p", UID: "uid-1", Annotations: map[string]string{}}}
}

// attached is an attachment of the annotation as a finished ADD recorded
// it.
func attached(network, ifName, conf string) podnet.Attachment {
	return podnet.Attachment{Network: network, IfName: ifName, ConfList: json.RawMessage(conf), Added: true, Origin: podnet.OriginAnnotation,
		Result: json.RawMessage(`{"cniVersion":"1.0.0"}`), CNIArgs: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "p"}}}
}

// sandbox records the pod's sandbox with the primary and atts.
func (e *hpEnv) sandbox(atts ...podnet.Attachment) {
	e.t.Helper()
	prim := attached("primary", "eth0", testConf("primary"))
	prim.Primary, prim.Origin = true, podnet.OriginPrimary
	entry := &podnet.Entry{ContainerID: "c1", NetNS: e.netns, PodNamespace: "default", PodName: "p", PodUID: "uid-1", CNIVersion: "1.0.0",
		Attachments: append([]podnet.Attachment{prim}, atts...)}
	if err := e.store.Save(entry); err != nil {
		e.t.Fatal(err)
	}
}

// reconcile runs one pass with the annotation ann.
func (e *hpEnv) reconcile(ann string, resume bool) error {
	e.pod.Annotations[nadv1.NetworkAttachmentAnnot] = ann
	rc := &reconciliation{h: e.h, conf: e.conf, pod: e.pod, cid: "c1", ann: ann, log: e.h.d.log}
	return rc.run(context.Background(), resume)
}

// interfaces is the entry's attachments as network@ifname, marking those
// whose result is not recorded with "?".
func (e *hpEnv) interfaces() string {
	e.t.Helper()
	entry, err := e.store.Load("c1")
	if err != nil || entry == nil {
		e.t.Fatalf("entry: %v %v", entry, err)
	}
	var out []string
	for _, a := range entry.Attachments {
		s := a.Network + "@" + a.IfName
		if !a.Added || len(a.Result) == 0 {
			s += "?"
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

// records are the outbox's records by kind, then emptied.
func (e *hpEnv) records() map[string]*outbox.Record {
	recs, _ := e.box.List()
	out := map[string]*outbox.Record{}
	for _, r := range recs {
		out[r.Kind] = r
		e.box.Remove(r)
	}
	return out
}

func (e *hpEnv) want(ann, ifaces string) map[string]*outbox.Record {
	e.t.Helper()
	if err := e.reconcile(ann, false); err != nil {
		e.t.Fatalf("annotation %q: %v", ann, err)
	}
	if got := e.interfaces(); got != ifaces {
		e.t.Fatalf("annotation %q: attached %s, want %s", ann, got, ifaces)
	}
	return e.records()
}

func TestHotplugAddRemoveAndNames(t *testing.T) {
	e := newHPEnv(t, "")
	e.sandbox(attached("default/a", "net1", testConf("a")))
	recs := e.want("a,b", "primary@eth0,default/a@net1,default/b@net2")
	if r := recs[outbox.KindAttached]; r == nil || len(r.Entry.Attachments) != 3 || r.Pod.UID != "uid-1" {
		t.Fatalf("network-status record %+v", r)
	}
	if len(recs) != 1 {
		t.Errorf("records %v", recs)
	}
	// What hot-plug attached records the annotation as its origin.
	if entry, _ := e.store.Load("c1"); entry.Attachments[2].Origin != podnet.OriginAnnotation {
		t.Errorf("hot-plugged %s: origin %q, want %q", entry.Attachments[2].IfName, entry.Attachments[2].Origin, podnet.OriginAnnotation)
	}
	// Nothing changed: no work, nothing published.
	if recs := e.want("a,b", "primary@eth0,default/a@net1,default/b@net2"); len(recs) != 0 {
		t.Errorf("an unchanged annotation published %v", recs)
	}
	// Removing the first element keeps b on net2 (matched by network, not
	// by position).
	recs = e.want("b", "primary@eth0,default/b@net2")
	if r := recs[outbox.KindAttached]; r == nil || len(r.Entry.Attachments) != 2 {
		t.Fatalf("network-status record after removal %+v", recs)
	}
	// c would be net2 by ADD's rule: taken by b, so it is refused, naming
	// the network and the field.
	recs = e.want("b,c", "primary@eth0,default/b@net2")
	f := recs[outbox.KindFailed]
	if f == nil || f.Network != "default/c" || !strings.Contains(f.Error, `"net2"`) || !strings.Contains(f.Error, `"interface"`) || recs[outbox.KindAttached] != nil {
		t.Fatalf("refused addition: records %+v", recs)
	}
	// With a name of its own it is attached.
	e.want("b,c@net5", "primary@eth0,default/b@net2,default/c@net5")
	// The primary's name is refused with the limit named.
	recs = e.want(`[{"name":"b"},{"name":"c","interface":"net5"},{"name":"a","interface":"eth0"}]`, "primary@eth0,default/b@net2,default/c@net5")
	if w := recs[outbox.KindWarned]; w == nil || !strings.Contains(strings.Join(w.Warnings, ";"), `"eth0" is the primary's`) {
		t.Fatalf("limit: records %+v", recs)
	}
	// Everything removed; the primary stays.
	e.want("", "primary@eth0")
	m := e.h.m
	if a, d := value(m.ops.WithLabelValues("attach", "success")), value(m.ops.WithLabelValues("detach", "success")); a != 2 || d != 3 {
		t.Errorf("metrics: %v attaches, %v detaches; want 2, 3", a, d)
	}
}

func TestHotplugFailedAdditionAlone(t *testing.T) {
	e := newHPEnv(t, "")
	e.sandbox(attached("default/a", "net1", testConf("a")))
	recs := e.want("a,bad,b", "primary@eth0,default/a@net1,default/b@net3")
	f := recs[outbox.KindFailed]
	if f == nil || f.Network != "default/bad" || !strings.Contains(f.Error, `network "default/bad"`) {
		t.Fatalf("failed addition: records %+v", recs)
	}
	if r := recs[outbox.KindAttached]; r == nil || len(r.Entry.Attachments) != 3 {
		t.Fatalf("network-status record %+v", recs)
	}
	// Not tried again until the annotation changes (through reconcile's
	// done state; a pass run directly tries again and fails the same way).
	e.want("a,bad,b", "primary@eth0,default/a@net1,default/b@net3")
	// An element whose NAD does not exist, and a malformed annotation.
	recs = e.want("a,b,nope", "primary@eth0,default/a@net1,default/b@net3")
	if f := recs[outbox.KindFailed]; f == nil || f.Network != "default/nope" {
		t.Fatalf("missing NAD: records %+v", recs)
	}
	recs = e.want(`[{"name":"a"`, "primary@eth0,default/a@net1,default/b@net3")
	if w := recs[outbox.KindWarned]; w == nil || !strings.Contains(w.Warnings[0], "nothing attached or detached") {
		t.Fatalf("malformed annotation: records %+v", recs)
	}
}

// A pass that died between an addition's intent and its result: the
// attachment is undone, then attached again (never twice).
func TestHotplugResume(t *testing.T) {
	e := newHPEnv(t, "")
	half := attached("default/b", "net2", testConf("b"))
	half.Added, half.Result = false, nil
	e.sandbox(attached("default/a", "net1", testConf("a")), half)
	if err := e.reconcile("a,b", true); err != nil {
		t.Fatal(err)
	}
	if got := e.interfaces(); got != "primary@eth0,default/a@net1,default/b@net2" {
		t.Fatalf("after resume: %s", got)
	}
	m := e.h.m
	if a, d := value(m.ops.WithLabelValues("attach", "success")), value(m.ops.WithLabelValues("detach", "success")); a != 1 || d != 1 {
		t.Errorf("resume: %v attaches, %v detaches; want 1, 1", a, d)
	}
	// The element is gone from the annotation meanwhile: only undone.
	e.sandbox(attached("default/a", "net1", testConf("a")), half)
	if err := e.reconcile("a", true); err != nil {
		t.Fatal(err)
	}
	if got := e.interfaces(); got != "primary@eth0,default/a@net1" {
		t.Fatalf("after resume without the element: %s", got)
	}
	// A pass that finds a stale network-status (plexusd died before its
	// outbox record) publishes it again.
	e.records()
	e.pod.Annotations[nadv1.NetworkStatusAnnot] = `[{"name":"primary","interface":"eth0"}]`
	if err := e.reconcile("a", true); err != nil {
		t.Fatal(err)
	}
	if r := e.records()[outbox.KindAttached]; r == nil || len(r.Entry.Attachments) != 2 {
		t.Fatalf("stale network-status not republished: %+v", r)
	}
}

func TestHotplugFailedRemovalStays(t *testing.T) {
	e := newHPEnv(t, "")
	e.sandbox(attached("default/faildel", "net1", testConf("faildel", `,"failDel":true`)), attached("default/a", "net2", testConf("a")))
	err := e.reconcile("a,b", false)
	if err == nil || !strings.Contains(err.Error(), `"default/faildel"`) {
		t.Fatalf("failed removal: %v", err)
	}
	// It stays (the runtime's DEL or the next pass finish it), and nothing
	// is added while it holds its name.
	if got := e.interfaces(); got != "primary@eth0,default/faildel@net1,default/a@net2" {
		t.Fatalf("after a failed removal: %s", got)
	}
}

func TestHotplugKeepsDefaultNetworks(t *testing.T) {
	e := newHPEnv(t, `,"defaultNetworks":["kube-system/dn"]`)
	dn := attached("kube-system/dn", "net1", testConf("dn"))
	dn.Origin = podnet.OriginDefaultNetworks
	e.sandbox(dn, attached("default/a", "net2", testConf("a")))
	// ADD would name the first element net2 (after the default network).
	e.want("a,b", "primary@eth0,kube-system/dn@net1,default/a@net2,default/b@net3")
	e.want("", "primary@eth0,kube-system/dn@net1")
	// The default network's own name is refused with the limit named.
	recs := e.want(`[{"name":"a","interface":"net1"}]`, "primary@eth0,kube-system/dn@net1")
	if w := recs[outbox.KindWarned]; w == nil || !strings.Contains(strings.Join(w.Warnings, ";"), "defaultNetworks") {
		t.Fatalf("records %+v", recs)
	}
	// The same network in the annotation is a second attachment of it.
	e.want("kube-system/dn", "primary@eth0,kube-system/dn@net1,kube-system/dn@net2")
	e.want("", "primary@eth0,kube-system/dn@net1")
}

// A DEL that ran meanwhile (the runtime's, under the same lock) leaves
// nothing for the pass to do.
func TestHotplugSandboxGone(t *testing.T) {
	e := newHPEnv(t, "")
	e.sandbox(attached("default/a", "net1", testConf("a")))
	e.store.Remove("c1")
	if err := e.reconcile("a,b", false); err != nil {
		t.Fatal(err)
	}
	if ids, _ := e.store.List(); len(ids) != 0 {
		t.Fatalf("cache entries %v after a pass over a deleted sandbox", ids)
	}
	if recs := e.records(); len(recs) != 0 {
		t.Fatalf("records %v", recs)
	}
}

func TestPluginConf(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{`{"cniVersion":"1.0.0","name":"plexus-net","plugins":[{"type":"portmap"},{"type":"plexus","cniDir":"/x"}]}`,
			`{"cniDir":"/x","cniVersion":"1.0.0","name":"plexus-net","type":"plexus"}`, ""},
		{`{"cniVersion":"1.0.0","name":"n","type":"plexus"}`, `{"cniVersion":"1.0.0","name":"n","type":"plexus"}`, ""},
		{`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}`, "", `no plugin of type "plexus"`},
		{`[1]`, "", "not a JSON object"},
	} {
		got, err := pluginConf([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

type hpDevices map[string][]string // resource -> the pod's devices

func (f hpDevices) Devices(_ context.Context, _ *podnet.Pod, res string) ([]string, error) {
	return f[res], nil
}

// SR-IOV elements get a device the pod already holds and no interface
// uses; with none left they are refused, naming the resource.
func TestHotplugDevices(t *testing.T) {
	e := newHPEnv(t, "")
	const res = "plexus.io/vf"
	e.h.nads.(hpNADs)["default/vf"] = testConf("vf", `,"capabilities":{"deviceID":true}`)
	nads := &resNADs{hpNADs: e.h.nads.(hpNADs), res: map[string]string{"default/vf": res}}
	e.h.nads = nads
	e.h.devices = hpDevices{res: {"0000:01:00.2", "0000:01:00.3"}}
	held := attached("default/vf", "net1", testConf("vf", `,"capabilities":{"deviceID":true}`))
	held.ResourceName, held.DeviceID = res, "0000:01:00.3" // not the first: removals reorder
	e.sandbox(held)
	e.want("vf,vf", "primary@eth0,default/vf@net1,default/vf@net2")
	entry, _ := e.store.Load("c1")
	if got := entry.Attachments[2].DeviceID; got != "0000:01:00.2" {
		t.Fatalf("hot-plugged VF %q, want the free 0000:01:00.2", got)
	}
	recs := e.want("vf,vf,vf", "primary@eth0,default/vf@net1,default/vf@net2")
	if f := recs[outbox.KindFailed]; f == nil || f.Network != "default/vf" || !strings.Contains(f.Error, `resource "plexus.io/vf"`) || !strings.Contains(f.Error, "already allocated to the pod") {
		t.Fatalf("a third VF: records %+v", recs)
	}
}

// resNADs gives NADs the resourceName annotation.
type resNADs struct {
	hpNADs
	res map[string]string
}

func (f *resNADs) NAD(ctx context.Context, namespace, name string) (*nadv1.NetworkAttachmentDefinition, error) {
	n, err := f.hpNADs.NAD(ctx, namespace, name)
	if err == nil && f.res[namespace+"/"+name] != "" {
		n.Annotations = map[string]string{"k8s.v1.cni.cncf.io/resourceName": f.res[namespace+"/"+name]}
	}
	return n, err
}

// An addition whose ADD and rollback DEL both fail stays listed in the
// entry and the pass asks to be retried.
func TestHotplugFailedRollbackRetried(t *testing.T) {
	e := newHPEnv(t, "")
	e.h.nads.(hpNADs)["default/worse"] = testConf("worse", `,"failAdd":true,"failDel":true`)
	e.sandbox()
	err := e.reconcile("worse", false)
	if err == nil || !strings.Contains(err.Error(), "left over") {
		t.Fatalf("pass: %v", err)
	}
	if got := e.interfaces(); got != "primary@eth0,default/worse@net1?" {
		t.Fatalf("entry %s", got)
	}
	if f := e.records()[outbox.KindFailed]; f == nil || f.Network != "default/worse" {
		t.Fatalf("no Warning for the failed addition: %+v", f)
	}
}

// BenchmarkHotplug is one attach and one detach of a secondary interface
// by a pass each (lock, cache, resolution, the delegate exec'd), with
// testplugin as the delegate; the node e2e's TestHotplugLatency measures
// it with macvlan through the API.
func BenchmarkHotplug(b *testing.B) {
	e := newHPEnv(b, "")
	e.sandbox(attached("default/a", "net1", testConf("a")))
	var add, del time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := time.Now()
		e.want("a,b", "primary@eth0,default/a@net1,default/b@net2")
		add += time.Since(s)
		s = time.Now()
		e.want("a", "primary@eth0,default/a@net1")
		del += time.Since(s)
	}
	b.ReportMetric(float64(add.Microseconds())/1000/float64(b.N), "ms/attach")
	b.ReportMetric(float64(del.Microseconds())/1000/float64(b.N), "ms/detach")
}

// The informer's events queue a pod when it runs and when its networks
// annotation changes, nothing else.
func TestHotplugEvents(t *testing.T) {
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h := newHotplug(d)
	defer h.queue.ShutDown()
	hd := h.handler().(cache.ResourceEventHandlerDetailedFuncs)
	pod := func(phase corev1.PodPhase, nets string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u", Annotations: map[string]string{nadv1.NetworkAttachmentAnnot: nets}},
			Status: corev1.PodStatus{Phase: phase}}
	}
	drain := func() int {
		n := h.queue.Len()
		for h.queue.Len() > 0 {
			k, _ := h.queue.Get()
			h.queue.Done(k)
		}
		return n
	}
	hd.AddFunc(pod(corev1.PodPending, "a"), true)
	if n := drain(); n != 0 || !h.resume["ns/p"] {
		t.Fatalf("a pending pod: %d queued, resume %v", n, h.resume)
	}
	hd.UpdateFunc(pod(corev1.PodPending, "a"), pod(corev1.PodRunning, "a"))
	if n := drain(); n != 1 {
		t.Fatalf("pod became Running: %d queued", n)
	}
	hd.UpdateFunc(pod(corev1.PodRunning, "a"), pod(corev1.PodRunning, "a"))
	if n := drain(); n != 0 {
		t.Fatalf("an update without change: %d queued", n)
	}
	hd.UpdateFunc(pod(corev1.PodRunning, "a"), pod(corev1.PodRunning, "a,b"))
	if n := drain(); n != 1 {
		t.Fatalf("annotation changed: %d queued", n)
	}
	h.done["ns/p"] = "x"
	hd.DeleteFunc(cache.DeletedFinalStateUnknown{Key: "ns/p", Obj: pod(corev1.PodRunning, "a")})
	if len(h.done) != 0 || len(h.resume) != 0 {
		t.Fatalf("deleted pod still known: %v %v", h.done, h.resume)
	}
}

// What ADD warns about (an unknown field of the element) comes with the
// network-status of the addition, as with ADD's.
func TestHotplugWarnings(t *testing.T) {
	e := newHPEnv(t, "")
	e.sandbox()
	recs := e.want(`[{"name":"a","bogus":1}]`, "primary@eth0,default/a@net1")
	r := recs[outbox.KindAttached]
	if r == nil || !strings.Contains(strings.Join(r.Warnings, ";"), "bogus") {
		t.Fatalf("records %+v", recs)
	}
}

// The pod's current sandbox: its UID's entry whose ADD completed, not left
// for DEL or GC, whose netns exists.
func TestHotplugFindSandbox(t *testing.T) {
	e := newHPEnv(t, "")
	e.h.d.att = &attach.Attacher{Cache: e.store}
	save := func(id, uid, netns string, added, incomplete bool) {
		a := attached("primary", "eth0", testConf("primary"))
		a.Primary, a.Added = true, added
		if err := e.store.Save(&podnet.Entry{ContainerID: id, NetNS: netns, PodUID: uid, Incomplete: incomplete, Attachments: []podnet.Attachment{a}}); err != nil {
			t.Fatal(err)
		}
	}
	save("gone", "uid-1", "/var/run/netns/plexus-test-no-such-ns", true, false)
	save("incomplete", "uid-1", e.netns, true, true)
	save("adding", "uid-1", e.netns, false, false)
	save("other", "uid-2", e.netns, true, false)
	if got := e.h.findSandbox("uid-1"); got != "" {
		t.Fatalf("sandbox %q among entries none of which is live", got)
	}
	save("live", "uid-1", e.netns, true, false)
	if got := e.h.findSandbox("uid-1"); got != "live" {
		t.Fatalf("sandbox %q, want live", got)
	}
	// The hint is checked: once the entry goes, it is not returned.
	e.store.Remove("live")
	if got := e.h.findSandbox("uid-1"); got != "" {
		t.Fatalf("sandbox %q after its entry went", got)
	}
}

// What plexus's config attached stays attached whatever the config says
// now: which attachments are fixed comes from the origins ADD recorded in
// the entry. Here the pod was attached with a defaultNetwork and an
// auxiliary chain; the config has neither any more (an administrator
// removed them, or made the namespace a system one, or the aux directory
// cannot be read), and a plexusd restart reconciles the pod.
func TestHotplugKeepsConfigAttachmentsAfterConfigChange(t *testing.T) {
	e := newHPEnv(t, "")
	e.sandbox(attached("kube-system/dn", "net1", testConf("dn")), attached("default/a", "net2", testConf("a")), attached("aux", "net3", testConf("aux")))
	withOrigins(t, e.store.Dir, "c1", "primary", "defaultNetworks", "annotation", "auxiliary")
	e.want("a", "primary@eth0,kube-system/dn@net1,default/a@net2,aux@net3")
	if err := e.reconcile("a", true); err != nil { // a restart's pass
		t.Fatal(err)
	}
	if got := e.interfaces(); got != "primary@eth0,kube-system/dn@net1,default/a@net2,aux@net3" {
		t.Fatalf("after a restart's pass: %s", got)
	}
	// ADD's names count the config's attachments recorded in the entry
	// (dn), not those of the config now: b is the 2nd element, net3 is
	// taken by aux, so b is refused; named, it is attached.
	e.want("a,b@net4", "primary@eth0,kube-system/dn@net1,default/a@net2,aux@net3,default/b@net4")
	e.want("", "primary@eth0,kube-system/dn@net1,aux@net3")
	recs := e.want(`[{"name":"a","interface":"net3"}]`, "primary@eth0,kube-system/dn@net1,aux@net3")
	if w := recs[outbox.KindWarned]; w == nil || !strings.Contains(strings.Join(w.Warnings, ";"), `"net3"`) {
		t.Fatalf("an element asking for the auxiliary chain's name: records %+v", recs)
	}
}

// An entry written before origins were recorded (plexus v0.1/v0.2) is not
// reconciled: nothing is attached or detached, and a Warning says why.
func TestHotplugLegacyEntryNotReconciled(t *testing.T) {
	e := newHPEnv(t, "")
	e.sandbox(attached("kube-system/dn", "net1", testConf("dn")), attached("default/a", "net2", testConf("a")))
	legacy(t, e.store.Dir, "c1")
	if err := e.reconcile("b", false); err != nil {
		t.Fatal(err)
	}
	if got := e.interfaces(); got != "primary@eth0,kube-system/dn@net1,default/a@net2" {
		t.Fatalf("a legacy entry was reconciled: %s", got)
	}
	recs := e.records()
	if w := recs[outbox.KindWarned]; w == nil || !strings.Contains(strings.Join(w.Warnings, ";"), "not reconciled") || recs[outbox.KindAttached] != nil {
		t.Fatalf("records %+v", recs)
	}
	if n := value(e.h.m.skipped.WithLabelValues(reasonNoOrigin)); n != 1 {
		t.Errorf("plexus_hotplug_not_reconciled_total{reason=%q} = %v, want 1", reasonNoOrigin, n)
	}
	// plexusd's start (a resume pass): the log and the metric, no Event
	// (it would repeat on every such pod at every restart).
	if err := e.reconcile("b", true); err != nil {
		t.Fatal(err)
	}
	if recs := e.records(); len(recs) != 0 || e.interfaces() != "primary@eth0,kube-system/dn@net1,default/a@net2" {
		t.Fatalf("resume pass over a legacy entry: records %+v, attached %s", recs, e.interfaces())
	}
	// A corrupt entry is not reconciled either (and not retried).
	os.WriteFile(filepath.Join(e.store.ContainerDir("c1"), "intent.json"), []byte("{"), 0o600)
	if err := e.reconcile("b", false); err != nil {
		t.Fatal(err)
	}
	if n := value(e.h.m.skipped.WithLabelValues(reasonUnreadable)); n != 1 {
		t.Errorf("plexus_hotplug_not_reconciled_total{reason=%q} = %v, want 1", reasonUnreadable, n)
	}
}

// legacy removes the origins from a saved entry, as plexus v0.1/v0.2
// wrote it.
func legacy(t testing.TB, cniDir, cid string) {
	t.Helper()
	path := filepath.Join(cniDir, "containers", cid, "intent.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, a := range m["attachments"].([]any) {
		delete(a.(map[string]any), "origin")
	}
	b, _ = json.Marshal(m)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// An element beyond the per-pod limit is refused with a Warning naming
// the limit; those before it are attached.
func TestHotplugElementLimit(t *testing.T) {
	e := newHPEnv(t, "")
	e.sandbox()
	withOrigins(t, e.store.Dir, "c1")
	var els []string
	for i := range 40 {
		els = append(els, fmt.Sprintf("a@x%d", i))
	}
	if err := e.reconcile(strings.Join(els, ","), false); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(e.interfaces(), "default/a@"); n != 32 {
		t.Fatalf("%d of 40 elements attached; want the first 32", n)
	}
	recs := e.records()
	if w := recs[outbox.KindWarned]; w == nil || !strings.Contains(strings.Join(w.Warnings, ";"), "32") || !strings.Contains(strings.Join(w.Warnings, ";"), "limit") {
		t.Fatalf("records %+v", recs)
	}
}

// The same through plexusd's queue path: the config file changes (the
// defaultNetwork removed, the pod's namespace made a system namespace, an
// auxiliary chain whose directory cannot be read) and plexusd restarts:
// its first pass over the pod leaves the defaultNetwork's interface.
func TestHotplugRestartWithChangedConfig(t *testing.T) {
	e := newHPEnv(t, `,"defaultNetworks":["kube-system/dn"]`)
	dn := attached("kube-system/dn", "net1", testConf("dn"))
	dn.Origin = podnet.OriginDefaultNetworks
	e.podSandbox("c5", "p5", "uid-5", dn, attached("default/a", "net2", testConf("a")))
	e.daemonize(e.confJSON(`,"defaultNetworks":["kube-system/dn"]`), apiPod("p5", "uid-5", "a"))
	if err := e.h.d.pods.GetIndexer().Add(apiPod("p5", "uid-5", "a")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := e.h.reconcile(ctx, "default/p5"); err != nil {
		t.Fatal(err)
	}
	want := "primary@eth0,kube-system/dn@net1,default/a@net2"
	if got := strings.Join(e.ifacesOf("c5"), ","); got != want {
		t.Fatalf("before the config change: %s, want %s", got, want)
	}
	e.daemonize(e.confJSON(`,"systemNamespaces":["default"],"auxiliaryCNIChainName":"aux"`), apiPod("p5", "uid-5", "a"))
	if err := e.h.d.pods.GetIndexer().Add(apiPod("p5", "uid-5", "a")); err != nil {
		t.Fatal(err)
	}
	// plexusd restarts: nothing done yet, every Running pod resumed.
	e.h.done, e.h.resume = map[string]string{}, map[string]bool{"default/p5": true}
	if _, err := e.h.reconcile(ctx, "default/p5"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(e.ifacesOf("c5"), ","); got != want {
		t.Fatalf("after a config change and a restart: %s, want %s", got, want)
	}
	// An addition is named after what the entry records (dn), not the
	// config of the day: the 2nd element is net3.
	e.h.d.pods.GetIndexer().Update(apiPod("p5", "uid-5", "a,b"))
	if _, err := e.h.reconcile(ctx, "default/p5"); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(e.ifacesOf("c5"), ","), want+",default/b@net3"; got != want {
		t.Fatalf("addition after the config change: %s, want %s", got, want)
	}
}
