package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/plexus-cni/plexus/pkg/attach"
	"github.com/plexus-cni/plexus/pkg/outbox"
	"github.com/plexus-cni/plexus/pkg/podnet"
	tu "github.com/plexus-cni/plexus/pkg/testutil"
)

// Hot-plug's budget (docs/hotplug.md, "Budget per pod"): a pod cannot keep the
// node's hot-plug workers, its lock or the API to itself.

// staticInformer is an informer over a fixed list (its watch never sends
// anything): the real client-go informer, with its indexer and its
// handlers, without an API server.
func staticInformer(objs []runtime.Object, example runtime.Object) cache.SharedIndexInformer {
	lw := &cache.ListWatch{
		ListFunc: func(metav1.ListOptions) (runtime.Object, error) {
			l := &corev1.PodList{}
			for _, o := range objs {
				if p, ok := o.(*corev1.Pod); ok {
					l.Items = append(l.Items, *p)
				}
			}
			return l, nil
		},
		WatchFunc: func(metav1.ListOptions) (watch.Interface, error) { return watch.NewFake(), nil },
	}
	return cache.NewSharedIndexInformer(listOnly{lw}, example, 0, cache.Indexers{})
}

// listOnly tells the reflector the list-watch has no watch-list
// semantics (no initial events stream): it lists, then watches.
type listOnly struct{ *cache.ListWatch }

func (listOnly) IsWatchListSemanticsUnSupported() bool { return true }

// apiPod is a Running pod of the node with the networks annotation ann.
func apiPod(name, uid, ann string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(uid),
		Annotations: map[string]string{nadv1.NetworkAttachmentAnnot: ann}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
}

// daemonize gives the env what hot-plug's queue and workers use: the pod
// informer (over pods), the config file plexusd reads, the attacher.
func (e *hpEnv) daemonize(confJSON string, pods ...*corev1.Pod) {
	e.t.Helper()
	path := filepath.Join(filepath.Dir(e.store.Dir), "00-plexus.conflist")
	if err := os.WriteFile(path, []byte(confJSON), 0o600); err != nil {
		e.t.Fatal(err)
	}
	d := e.h.d
	d.opts.CNIConfig = path
	var objs []runtime.Object
	for _, p := range pods {
		objs = append(objs, p)
	}
	d.pods = staticInformer(objs, &corev1.Pod{})
	d.nads = staticInformer(nil, &corev1.Pod{})
	d.att = attach.ForConfig(e.conf, d.log, "")
	_, _ = d.pods.AddEventHandler(e.h.handler())
}

// podSandbox records a sandbox of pod uid (its own netns) with the
// primary and atts (origins as given).
func (e *hpEnv) podSandbox(cid, name, uid string, atts ...podnet.Attachment) {
	e.t.Helper()
	prim := attached("primary", "eth0", testConf("primary"))
	prim.Primary, prim.Origin = true, podnet.OriginPrimary
	entry := &podnet.Entry{ContainerID: cid, NetNS: tu.NewNS(e.t).Path(), PodNamespace: "default", PodName: name, PodUID: uid, CNIVersion: "1.0.0",
		Attachments: append([]podnet.Attachment{prim}, atts...)}
	if err := e.store.Save(entry); err != nil {
		e.t.Fatal(err)
	}
}

// withOrigins adds to a saved entry the origins ADD records (JSON, so
// that the test reads the same whatever the Go field): the primary's,
// then "annotation" for the others, unless given.
func withOrigins(t testing.TB, cniDir, cid string, origins ...string) {
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
	for i, a := range m["attachments"].([]any) {
		o := "annotation"
		switch {
		case i < len(origins):
			o = origins[i]
		case i == 0:
			o = "primary"
		}
		a.(map[string]any)["origin"] = o
	}
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (e *hpEnv) confJSON(keys string) string {
	return `{"cniVersion":"1.0.0","name":"plexus-net","plugins":[{"type":"plexus","clusterNetwork":"/nonexistent/primary.conflist",` +
		`"cniDir":"` + e.store.Dir + `","binDir":"` + e.conf.BinDir + `"` + keys + `}]}`
}

// ifacesOf is container cid's attachments as network@ifname.
func (e *hpEnv) ifacesOf(cid string) []string {
	entry, err := e.store.Load(cid)
	if err != nil || entry == nil {
		return nil
	}
	var out []string
	for _, a := range entry.Attachments {
		out = append(out, a.Network+"@"+a.IfName)
	}
	return out
}

// hogAnnotation names n interfaces of network a: h0, h1, …
func hogAnnotation(n int) string {
	els := make([]string, n)
	for i := range els {
		els[i] = fmt.Sprintf(`{"name":"a","interface":"h%d"}`, i)
	}
	return "[" + strings.Join(els, ",") + "]"
}

// Two pods whose annotations name 5,000 interfaces each (one per worker)
// do not keep a third pod's single addition waiting for more than one of
// their passes: each pass is bounded, and a pod with work left goes to the
// back of the queue.
func TestHotplugFairness(t *testing.T) {
	e := newHPEnv(t, "")
	hog := hogAnnotation(5000)
	e.podSandbox("hog1", "hog1", "uid-hog1")
	e.podSandbox("hog2", "hog2", "uid-hog2")
	e.podSandbox("small", "small", "uid-small")
	e.daemonize(e.confJSON(""), apiPod("hog1", "uid-hog1", hog), apiPod("hog2", "uid-hog2", hog), apiPod("small", "uid-small", "b"))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); e.h.d.pods.Run(ctx.Done()) }()
	go func() { defer wg.Done(); e.h.d.nads.Run(ctx.Done()) }()
	start := time.Now()
	wg.Add(1)
	go func() { defer wg.Done(); e.h.run(ctx) }()
	defer func() {
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Error("the hot-plug workers did not stop within a minute of plexusd stopping")
		}
	}()
	var waited time.Duration
	for {
		if got := e.ifacesOf("small"); len(got) == 2 && got[1] == "default/b@net1" {
			waited = time.Since(start)
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("the small pod's addition waited more than 60 s behind two pods of 5,000 elements (attached: hog1 %d, hog2 %d)",
				len(e.ifacesOf("hog1")), len(e.ifacesOf("hog2")))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// One pass of a hog is at most the pass budget (plus its last
	// operation): the small pod waited for at most one of them.
	if limit := defaultHotplugLimits.pass + 10*time.Second; waited > limit {
		t.Fatalf("the small pod's addition took %v behind the hogs; want at most one pass (%v)", waited, limit)
	}
	t.Logf("small pod attached after %v; hogs have %d and %d interfaces", waited, len(e.ifacesOf("hog1")), len(e.ifacesOf("hog2")))
}

// countingNADs counts the lookups of the NAD source.
type countingNADs struct {
	hpNADs
	n atomic.Int64
}

func (c *countingNADs) NAD(ctx context.Context, namespace, name string) (*nadv1.NetworkAttachmentDefinition, error) {
	c.n.Add(1)
	return c.hpNADs.NAD(ctx, namespace, name)
}

// A missing NAD named many times is looked up once per pass (a miss is
// a LIST against the API: the informer does not have it).
func TestHotplugNADMissCached(t *testing.T) {
	e := newHPEnv(t, "")
	c := &countingNADs{hpNADs: e.h.nads.(hpNADs)}
	e.h.nads = c
	e.sandbox()
	withOrigins(t, e.store.Dir, "c1")
	recs := e.want("nope@x1,nope@x2,nope@x3,nope@x4,a", "primary@eth0,default/a@net5")
	if f := recs[outbox.KindFailed]; f == nil || f.Network != "default/nope" {
		t.Fatalf("missing NAD: records %+v", recs)
	}
	if n := c.n.Load(); n != 2 {
		t.Fatalf("%d NAD lookups for one missing NAD named 4 times and one present; want 2", n)
	}
}

// renames counts the cache entry's writes while f runs: each is an
// atomic replace through a temporary file of a unique name created beside
// it (inotify would merge the renames onto one name).
func renames(t *testing.T, dir string, f func()) int {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE); err != nil {
		t.Fatal(err)
	}
	f()
	n := 0
	buf := make([]byte, 64<<10)
	for {
		k, err := unix.Read(fd, buf)
		if err != nil || k <= 0 {
			return n
		}
		for off := 0; off < k; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			if strings.HasPrefix(name, ".intent.json.tmp-") {
				n++
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// A pass writes the cache entry once per phase (the removals; the
// additions' intents; their results), not once or twice per element.
func TestHotplugSavesOncePerPhase(t *testing.T) {
	e := newHPEnv(t, "")
	var els, atts []string
	var held []podnet.Attachment
	for i := range 10 {
		held = append(held, attached("default/a", fmt.Sprintf("old%d", i), testConf("a")))
		els = append(els, fmt.Sprintf("b@new%d", i))
		atts = append(atts, fmt.Sprintf("default/b@new%d", i))
	}
	e.sandbox(held...)
	withOrigins(t, e.store.Dir, "c1")
	n := renames(t, e.store.ContainerDir("c1"), func() {
		e.want(strings.Join(els, ","), "primary@eth0,"+strings.Join(atts, ","))
	})
	t.Logf("%d writes", n)
	if n > 3 {
		t.Fatalf("a pass detaching 10 interfaces and attaching 10 wrote the cache entry %d times; want at most 3 (one per phase)", n)
	}
}

// A pass that keeps failing (a removal whose DEL fails) is retried a
// bounded number of times, then given up with a Warning naming the limit,
// until the annotation changes.
func TestHotplugRetryBudget(t *testing.T) {
	e := newHPEnv(t, "")
	e.podSandbox("c9", "p9", "uid-9", attached("default/faildel", "net1", testConf("faildel", `,"failDel":true`)))
	e.daemonize(e.confJSON(""), apiPod("p9", "uid-9", ""))
	ctx := context.Background()
	obj := apiPod("p9", "uid-9", "")
	if err := e.h.d.pods.GetIndexer().Add(obj); err != nil {
		t.Fatal(err)
	}
	e.h.queue.ShutDown()
	e.h.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Millisecond, time.Millisecond),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "test"})
	defer e.h.queue.ShutDown()
	e.h.queue.Add("default/p9")
	passes := 0
	for passes < 20 {
		got := make(chan bool, 1)
		go func() { got <- e.h.next(ctx) }()
		select {
		case <-got:
			passes++
			continue
		case <-time.After(2 * time.Second):
		}
		break
	}
	if passes >= 20 {
		t.Fatalf("a failing pass was retried %d times and is still queued", passes)
	}
	recs := e.records()
	w := recs[outbox.KindWarned]
	if w == nil || !strings.Contains(strings.Join(w.Warnings, ";"), "gave up") {
		t.Fatalf("after %d passes: no Warning of giving up: %+v", passes, recs)
	}
	t.Logf("gave up after %d passes: %s", passes, w.Warnings)
}

// A pass whose time budget runs out writes what it did and puts the pod
// at the back of the queue; the next passes go on from there, without
// trying again an element that failed in this state of the pod.
func TestHotplugPassTimeBudget(t *testing.T) {
	e := newHPEnv(t, "")
	e.h.limits.pass = time.Nanosecond // one operation per pass
	e.podSandbox("c7", "p7", "uid-7")
	var els, want []string
	for i := range 6 {
		els = append(els, fmt.Sprintf("a@x%d", i))
		want = append(want, fmt.Sprintf("default/a@x%d", i))
	}
	els = append(els[:3], append([]string{"bad@y"}, els[3:]...)...)
	e.daemonize(e.confJSON(""), apiPod("p7", "uid-7", strings.Join(els, ",")))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); e.h.d.pods.Run(ctx.Done()) }()
	go func() { defer wg.Done(); e.h.d.nads.Run(ctx.Done()) }()
	go func() { defer wg.Done(); e.h.run(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	m := e.h.m
	deadline := time.Now().Add(30 * time.Second)
	for {
		e.h.mu.Lock()
		_, done := e.h.done["default/p7"]
		e.h.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not done after 30 s: attached %v", e.ifacesOf("c7"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, want := strings.Join(e.ifacesOf("c7"), ","), "primary@eth0,"+strings.Join(want, ","); got != want {
		t.Fatalf("attached %s, want %s", got, want)
	}
	// 7 operations, one per pass: 6 passes ended with work left.
	if n := value(m.limited.WithLabelValues("pass-time")); n != 6 {
		t.Errorf("plexus_hotplug_limited_total{limit=\"pass-time\"} = %v; want 6", n)
	}
	if n := value(m.ops.WithLabelValues("attach", "error")); n != 1 {
		t.Errorf("the failing element was attempted %v times in one state of the pod; want 1", n)
	}
	if n := value(m.ops.WithLabelValues("attach", "success")); n != 6 {
		t.Errorf("%v attaches; want 6", n)
	}
}
