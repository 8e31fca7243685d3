package daemon

// Hot-plug (docs/hotplug.md): when the k8s.v1.cni.cncf.io/networks
// annotation of a Running pod of this node changes, plexusd attaches the
// elements it gained and detaches the ones it lost, in the pod's current
// sandbox, with the code of ADD and DEL (pkg/resolve, pkg/attach) and
// under the same per-pod lock as the runtime's ADD and DEL. What is
// attached is the sandbox's cache entry: it lists at every moment at least
// what is attached (additions' intents are written before their delegates
// run), so a runtime DEL racing a hot-plug, a GC, or plexusd restarted in
// the middle of one finds everything there is to undo; and it records
// where each attachment came from, so that what plexus's config attached
// is never taken for something the annotation lost. A pass plans from the
// entry and the annotation alone (planPass, hotplug_plan.go), then
// executes the plan within the pod's budget (hotplugLimits). plexus never
// rewrites the annotation.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/plexus-cni/plexus/pkg/attach"
	"github.com/plexus-cni/plexus/pkg/config"
	"github.com/plexus-cni/plexus/pkg/k8s"
	"github.com/plexus-cni/plexus/pkg/outbox"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/resolve"
	"github.com/plexus-cni/plexus/pkg/selection"
)

// DefaultCNIConfig is where plexus-install writes plexus's conflist; hot-plug
// reads plexus's config from it (the runtime hands it to the shim on stdin).
const DefaultCNIConfig = config.DefaultConfDir + "/00-plexus.conflist"

// hotplugWorkers reconcile pods in parallel (each pod by one at a time: the
// work queue never hands out a key that is being processed).
const hotplugWorkers = 2

// configRetry is how soon a pod is looked at again while plexus's config
// cannot be read (plexus-install not done yet).
const configRetry = 30 * time.Second

// hotplugLimits is each pod's hot-plug budget (docs/hotplug.md, "Budget per pod"):
// no pod keeps the node's workers, its own lock or the API to itself.
type hotplugLimits struct {
	// elements is how many of a pod's annotation elements hot-plug
	// attaches (the first ones); the others are refused with a Warning.
	elements int
	// pass is how long a pass starts operations: after it, what is left
	// waits for the pod's next turn at the back of the queue.
	pass time.Duration
	// op bounds the operation running when pass ends (its delegate). A
	// pass is not cancelled when plexusd stops (SIGTERM): it finishes,
	// so that a stop never leaves a half-made interface for the next
	// start to undo. pass+op stays below the runtime's wait for the
	// pod's lock (cache.DefaultLockTimeout).
	op time.Duration
	// retries is how many failed passes in a row a state of the pod
	// (sandbox, annotations) gets before hot-plug gives up on it with a
	// Warning, until that state changes.
	retries int
}

// defaultHotplugLimits are the defaults documented in docs/hotplug.md.
var defaultHotplugLimits = hotplugLimits{elements: 32, pass: 10 * time.Second, op: 30 * time.Second, retries: 8}

// hotplug reconciles the networks annotation of the node's Running pods
// with their sandboxes' cache entries.
type hotplug struct {
	d      *Daemon
	queue  workqueue.TypedRateLimitingInterface[string]
	m      *hotplugMetrics
	limits hotplugLimits
	// nads and devices feed the resolver: the daemon's informer-backed
	// sources, as for the shim's ADD.
	nads    resolve.NADSource
	devices resolve.DeviceSource

	mu sync.Mutex
	// done is, per pod key, the state last reconciled (pod UID, container,
	// annotation): an event that changes none of them is a no-op, and an
	// element that failed is not tried again until the annotation changes.
	done map[string]string
	// failedEls are, per pod key, the elements that failed in the state
	// being reconciled (a pass cut short by its budget goes on without
	// them; they are tried again when the state changes).
	failedEls map[string]failedElements
	// sandbox remembers each pod UID's container (a hint: verified on use).
	sandbox map[string]string
	// resume are the pods of plexusd's first list: their network-status is
	// checked against the cache once (a restart between an attach and its
	// outbox record).
	resume map[string]bool
	// confErr is the last config error logged (logged once).
	confErr string
}

// failedElements are the elements that failed in one state of a pod, and
// how many passes that state has had (its refusals are reported by the
// first only).
type failedElements struct {
	state  string
	els    map[int]bool
	passes int
}

type hotplugMetrics struct {
	ops     *prometheus.CounterVec
	seconds *prometheus.HistogramVec
	// skipped counts passes over pods hot-plug leaves alone, by reason;
	// limited counts the budget limits reached, by limit.
	skipped *prometheus.CounterVec
	limited *prometheus.CounterVec
}

func newHotplug(d *Daemon) *hotplug {
	m := &hotplugMetrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_hotplug_operations_total",
			Help: "Interfaces hot-plugged into (attach) or out of (detach) running pods, by result (refused: a limit or a bad element, nothing run)."}, []string{"op", "result"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "plexus_hotplug_duration_seconds",
			Help: "Duration of one hot-plug attach or detach (resolution and delegate), by op and result.", Buckets: latencyBuckets}, []string{"op", "result"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_hotplug_not_reconciled_total",
			Help: "Passes over a pod hot-plug leaves as it is because its cache entry does not say what plexus's config attached, by reason (no-origin: written before plexus recorded it; unknown-origin; unreadable-entry)."}, []string{"reason"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_hotplug_limited_total",
			Help: "Hot-plug budget limits reached, by limit (elements: annotation elements refused beyond the per-pod limit, once per change; pass-time: a pass cut short, its pod requeued; retries: a failing pod given up until its annotation changes)."}, []string{"limit"}),
	}
	if d.metrics != nil {
		d.metrics.Registry.MustRegister(m.ops, m.seconds, m.skipped, m.limited)
	}
	return &hotplug{
		d: d, m: m, nads: d.nadSrc, devices: d.devices, limits: defaultHotplugLimits, failedEls: map[string]failedElements{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "plexus-hotplug"}),
		done: map[string]string{}, sandbox: map[string]string{}, resume: map[string]bool{},
	}
}

func (m *hotplugMetrics) observeTook(op string, took time.Duration, err error) {
	r := outcome(err)
	m.ops.WithLabelValues(op, r).Inc()
	m.seconds.WithLabelValues(op, r).Observe(took.Seconds())
}

func outcome(err error) string {
	if err != nil {
		return "error"
	}
	return "success"
}

// handler queues a pod when it is listed, becomes Running or its networks
// annotation changes.
func (h *hotplug) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			p, ok := obj.(*corev1.Pod)
			if !ok {
				return
			}
			if initial {
				h.mu.Lock()
				h.resume[p.Namespace+"/"+p.Name] = true
				h.mu.Unlock()
			}
			h.enqueue(p)
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*corev1.Pod)
			n, ok2 := newObj.(*corev1.Pod)
			if !ok1 || !ok2 {
				return
			}
			if o.Status.Phase != n.Status.Phase || o.UID != n.UID ||
				o.Annotations[nadv1.NetworkAttachmentAnnot] != n.Annotations[nadv1.NetworkAttachmentAnnot] ||
				o.Annotations[resolve.DefaultNetworkAnnot] != n.Annotations[resolve.DefaultNetworkAnnot] {
				h.enqueue(n)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				h.mu.Lock()
				key := p.Namespace + "/" + p.Name
				delete(h.done, key)
				delete(h.failedEls, key)
				delete(h.resume, key)
				delete(h.sandbox, string(p.UID))
				h.mu.Unlock()
			}
		},
	}
}

func (h *hotplug) enqueue(p *corev1.Pod) {
	if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
		h.queue.Add(p.Namespace + "/" + p.Name)
	}
}

// run reconciles queued pods until ctx is done; it starts once the
// informers have synced (the first list queued every pod: a restarted
// plexusd resumes what it was doing).
func (h *hotplug) run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		h.queue.ShutDown()
	}()
	for !h.d.Synced() {
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return
		}
	}
	var wg sync.WaitGroup
	for range hotplugWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h.next(ctx) {
			}
		}()
	}
	wg.Wait()
}

func (h *hotplug) next(ctx context.Context) bool {
	key, quit := h.queue.Get()
	if quit {
		return false
	}
	defer h.queue.Done(key)
	state, err := h.reconcile(ctx, key)
	switch {
	case errors.Is(err, errDeferred):
		// Work left once the pass's time ran out: the pod goes to the back
		// of the queue, behind the pods waiting meanwhile (not a failure).
		h.m.limited.WithLabelValues("pass-time").Inc()
		h.queue.Forget(key)
		h.queue.Add(key)
	case err != nil && h.queue.NumRequeues(key)+1 >= h.limits.retries:
		h.giveUp(key, state, err)
	case err != nil:
		h.d.log.Warn("hot-plug: retrying", "pod", key, "err", err)
		h.queue.AddRateLimited(key)
	default:
		h.queue.Forget(key)
	}
	return true
}

// errDeferred ends a pass whose time budget ran out with work left.
var errDeferred = errors.New("hot-plug: the pass's time budget is spent; the pod's turn comes again")

// giveUp stops retrying the pod's state after its last failed pass: a
// Warning names the limit and the error; a change of the pod's sandbox or
// annotations (or a plexusd restart) tries again. What a failed removal
// left stays in the cache entry: the runtime's DEL undoes it.
func (h *hotplug) giveUp(key, state string, err error) {
	h.queue.Forget(key)
	h.m.limited.WithLabelValues("retries").Inc()
	msg := fmt.Sprintf("hot-plug: gave up after %d failed passes (limit %d per change of the pod): %v; change the annotation to try again", h.limits.retries, h.limits.retries, err)
	h.d.log.Warn(msg, "pod", key)
	if state != "" {
		h.mu.Lock()
		h.done[key] = state
		h.mu.Unlock()
	}
	ns, name, _ := strings.Cut(key, "/")
	ref := podnet.PodRef{Namespace: ns, Name: name}
	cid := ""
	if obj, ok, _ := h.d.pods.GetIndexer().GetByKey(key); ok {
		p := obj.(*corev1.Pod)
		ref.UID = string(p.UID)
		cid = h.findSandbox(ref.UID)
	}
	if cid == "" {
		return
	}
	if werr := h.d.box.Write(&outbox.Record{Kind: outbox.KindWarned, ContainerID: cid, Pod: ref, Warnings: []string{msg}}); werr != nil {
		h.d.log.Warn("hot-plug: queueing for publication", "err", werr)
	}
	h.d.wake()
}

// reconcile makes the pod's current sandbox carry what its networks
// annotation asks for. An error is transient (retried with backoff, within
// the retry budget), or errDeferred; what the pod asks for wrongly is
// reported in a Warning event instead. state is the pod's state the pass
// worked on ("" when there was none to work on).
func (h *hotplug) reconcile(ctx context.Context, key string) (string, error) {
	obj, ok, err := h.d.pods.GetIndexer().GetByKey(key)
	if err != nil || !ok {
		return "", nil
	}
	p := obj.(*corev1.Pod)
	if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
		return "", nil
	}
	uid := string(p.UID)
	cid := h.findSandbox(uid)
	if cid == "" {
		return "", nil // no sandbox of this pod attached by plexus on this node
	}
	ann := p.Annotations[nadv1.NetworkAttachmentAnnot]
	state := uid + "\x00" + cid + "\x00" + ann + "\x00" + p.Annotations[resolve.DefaultNetworkAnnot]
	h.mu.Lock()
	same, resume := h.done[key] == state, h.resume[key]
	delete(h.resume, key)
	failed := h.failedEls[key]
	if failed.state != state {
		failed = failedElements{state: state, els: map[int]bool{}}
	}
	first := failed.passes == 0
	failed.passes++
	h.failedEls[key] = failed
	h.mu.Unlock()
	if same {
		return state, nil
	}
	conf, err := h.config()
	if err != nil {
		h.mu.Lock()
		first := h.confErr != err.Error()
		h.confErr = err.Error()
		h.mu.Unlock()
		if first {
			h.d.log.Warn("hot-plug waits: plexus's config is unusable", "err", err, "retry", configRetry.String())
		}
		h.restore(key, resume)
		h.queue.AddAfter(key, configRetry)
		return state, nil
	}
	pod := k8s.PodFromAPI(p)
	rec := &reconciliation{h: h, conf: conf, pod: pod, cid: cid, ann: ann, failed: failed.els, later: !first, log: h.d.log.With("pod", key, "container", cid)}
	if err := rec.run(ctx, resume); err != nil {
		h.restore(key, resume)
		return state, err
	}
	h.mu.Lock()
	h.done[key] = state
	delete(h.failedEls, key)
	h.mu.Unlock()
	return state, nil
}

// restore keeps a pod's resume check for its next pass.
func (h *hotplug) restore(key string, resume bool) {
	if resume {
		h.mu.Lock()
		h.resume[key] = true
		h.mu.Unlock()
	}
}

// config is plexus's config as the runtime hands it to the shim: the
// plugin of type plexus in the conflist, with the list's name and
// cniVersion. It is read on every reconciliation, as the shim reads it on
// every exec.
func (h *hotplug) config() (*config.Conf, error) {
	path := h.d.opts.CNIConfig
	if path == "" {
		return nil, fmt.Errorf("no plexus config (--cni-config)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	conf, err := pluginConf(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c, err := config.Load(conf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if filepath.Clean(c.CNIDir) != filepath.Clean(h.d.opts.CNIDir) {
		return nil, fmt.Errorf("%s: key \"cniDir\" is %q but plexusd's --cni-dir is %q", path, c.CNIDir, h.d.opts.CNIDir)
	}
	return c, nil
}

// pluginConf is the plexus plugin's config out of a conflist (a plain conf
// is returned as it is).
func pluginConf(b []byte) ([]byte, error) {
	var list map[string]json.RawMessage
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	raw, ok := list["plugins"]
	if !ok {
		return b, nil
	}
	var plugins []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &plugins); err != nil {
		return nil, fmt.Errorf("key \"plugins\": %v", err)
	}
	for _, p := range plugins {
		var typ string
		_ = json.Unmarshal(p["type"], &typ)
		if typ != "plexus" {
			continue
		}
		for _, k := range []string{"name", "cniVersion"} {
			if v, ok := list[k]; ok {
				p[k] = v
			}
		}
		return json.Marshal(p)
	}
	return nil, fmt.Errorf("key \"plugins\": no plugin of type \"plexus\"")
}

// findSandbox is the container of the pod's current sandbox: the cache
// entry of that pod UID whose ADD completed and whose network namespace
// exists (the newest, should two).
func (h *hotplug) findSandbox(uid string) string {
	st := h.d.att.Cache
	h.mu.Lock()
	hint := h.sandbox[uid]
	h.mu.Unlock()
	if hint != "" {
		if e, err := st.Load(hint); err == nil && live(e, uid) {
			return hint
		}
	}
	ids, err := st.List()
	if err != nil {
		h.d.log.Warn("hot-plug: listing the cache", "err", err)
		return ""
	}
	best, bestTime := "", time.Time{}
	for _, id := range ids {
		e, err := st.Load(id)
		if err != nil || !live(e, uid) {
			continue
		}
		fi, err := os.Stat(st.ContainerDir(id))
		if err != nil {
			continue
		}
		if best == "" || fi.ModTime().After(bestTime) {
			best, bestTime = id, fi.ModTime()
		}
	}
	if best != "" {
		h.mu.Lock()
		h.sandbox[uid] = best
		h.mu.Unlock()
	}
	return best
}

// live: e is a sandbox of pod uid that ADD attached completely (the
// primary's result is recorded only once every delegate of the ADD ran),
// not left for DEL or GC, whose network namespace exists.
func live(e *podnet.Entry, uid string) bool {
	if e == nil || e.PodUID != uid || e.Incomplete || len(e.Attachments) == 0 || !e.Attachments[0].Added || e.NetNS == "" {
		return false
	}
	_, err := os.Stat(e.NetNS)
	return err == nil
}

// reconciliation is one pass over one pod: it reads the entry and the
// annotation, plans (planPass, hotplug_plan.go), then executes the plan
// within the pod's budget.
type reconciliation struct {
	h    *hotplug
	conf *config.Conf
	pod  *podnet.Pod
	cid  string
	ann  string
	log  *slog.Logger
	// failed are the elements that failed earlier in this state of the
	// pod; this pass adds the ones that fail now. later: not the state's
	// first pass (its refusals were reported).
	failed map[int]bool
	later  bool

	att      *attach.Attacher
	r        *resolve.Resolver
	entry    *podnet.Entry
	req      *podnet.Request
	deadline time.Time
	ops      int // operations started
	// What the pass reports: the Warning messages of failed additions,
	// the refusals, ADD's warnings; changed says network-status must be
	// published.
	fails    []string
	failNet  string
	refused  []string
	changed  bool
	warnings []string
	// transient are additions that failed because a source could not be
	// asked (the API unreachable): no Warning, the pass is retried.
	transient []error
}

func (rc *reconciliation) run(ctx context.Context, resume bool) error {
	d := rc.h.d
	if rc.failed == nil {
		rc.failed = map[int]bool{}
	}
	lim := rc.h.limits
	rc.att = attach.ForConfig(rc.conf, d.log, d.opts.BinDir)
	rc.att.Runner.Observe = func(command, plugins string, dur time.Duration, err error) {
		if d.metrics != nil {
			d.metrics.delegate.WithLabelValues(command, plugins, outcome(err)).Observe(dur.Seconds())
		}
	}
	// As for the shim's ADD, over NAD lookups remembered for the pass (a
	// missing NAD is a LIST against the API each time it is asked).
	src := rc.h.d.sources
	src.NADs = &passNADs{src: rc.h.nads, seen: map[string]nadLookup{}}
	src.Devices = rc.h.devices
	rc.r = resolve.New(rc.conf, src)
	rc.req = &podnet.Request{ContainerID: rc.cid, Pod: podnet.PodRef{Namespace: rc.pod.Namespace, Name: rc.pod.Name, UID: rc.pod.UID}}
	// The runtime's lock: no ADD, DEL or GC of this pod runs meanwhile.
	unlock, err := rc.att.Lock(rc.req)
	if err != nil {
		return err
	}
	defer unlock()
	rc.deadline = time.Now().Add(lim.pass)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lim.pass+lim.op)
	defer cancel()
	// Read again under the lock: a DEL may have run since.
	rc.entry, err = rc.att.Cache.Load(rc.cid)
	if err != nil {
		rc.skip(resume, &notReconciled{reasonUnreadable, err.Error()})
		return nil
	}
	if !live(rc.entry, rc.pod.UID) {
		return nil
	}
	rc.req.NetNS = rc.entry.NetNS
	rc.req.Args = rc.entry.Attachments[0].CNIArgs // the runtime's CNI_ARGS, as ADD passed them

	in := planInput{atts: rc.entry.Attachments, maxElements: lim.elements, skip: rc.failed}
	if v := rc.pod.Annotations[resolve.DefaultNetworkAnnot]; v != "" {
		if els, _, err := selection.ParseWithWarnings(v, rc.conf.MultusNamespace, true); err == nil && len(els) == 1 {
			in.primary = els[0].Namespace + "/" + els[0].Name
		}
	}
	elems, parseWarnings, err := selection.ParseWithWarnings(rc.ann, rc.pod.Namespace, rc.conf.StrictAnnotations)
	if err != nil {
		in.annotationErr = err.Error()
	}
	in.elems = elems
	plan, err := planPass(in)
	var nr *notReconciled
	if errors.As(err, &nr) {
		rc.skip(resume, nr)
		return nil
	}
	if !rc.later {
		if plan.overLimit > 0 {
			rc.h.m.limited.WithLabelValues("elements").Inc()
		}
		for _, m := range plan.refusals {
			rc.refuse(m)
		}
	}
	deferred, err := rc.execute(ctx, plan, elems, parseWarnings)
	if err == nil && !rc.changed && resume && rc.statusStale() {
		rc.log.Info("hot-plug: network-status does not match what is attached; publishing it again")
		rc.changed = true
	}
	rc.report()
	if err != nil {
		return fmt.Errorf("pod %s: hot-plug: %w", rc.req.Pod, err)
	}
	for _, a := range rc.entry.Attachments {
		if !a.Added || len(a.Result) == 0 {
			// A rolled-back addition whose DEL failed: the next pass (with
			// backoff) DELetes it again; the entry lists it meanwhile.
			rc.transient = append(rc.transient, fmt.Errorf("network %q (interface %s): left over from a failed addition", a.Network, a.IfName))
		}
	}
	if len(rc.transient) > 0 {
		return fmt.Errorf("pod %s: hot-plug: %w", rc.req.Pod, errors.Join(rc.transient...))
	}
	if deferred {
		rc.log.Info("hot-plug: the pass's time budget is spent; the rest waits for the pod's next turn", "budget", lim.pass.String())
		return errDeferred
	}
	return nil
}

// more: the pass may start another operation: its time budget is not
// spent, or it has started none yet (every pass makes progress).
func (rc *reconciliation) more() bool {
	if rc.ops > 0 && !time.Now().Before(rc.deadline) {
		return false
	}
	rc.ops++
	return true
}

// execute carries out plan: the removals (one phase), then the additions
// (resolved one by one, then attached in one phase). deferred says the
// time budget ran out with work left; an error is a removal that failed
// (the additions wait: the names of what is still attached are taken).
func (rc *reconciliation) execute(ctx context.Context, plan passPlan, elems []*nadv1.NetworkSelectionElement, parseWarnings []string) (deferred bool, err error) {
	if deferred, err = rc.detach(ctx, plan); deferred || err != nil {
		return deferred, err
	}
	atts, from, took, deferred := rc.resolveAdditions(ctx, plan, elems)
	if len(atts) == 0 {
		return deferred, nil
	}
	// With --network-policy, the new interfaces' rules are in the pod's
	// table before their delegates run; else the pass is retried.
	if p := rc.h.d.policy; p != nil {
		all := append(append([]podnet.Attachment(nil), rc.entry.Attachments...), atts...)
		if err := p.Prepare(ctx, rc.cid, rc.entry.NetNS, rc.req.Pod, all); err != nil {
			rc.transient = append(rc.transient, err)
			return deferred, nil
		}
	}
	added := false
	for k, o := range rc.att.AddSome(ctx, rc.entry, atts, rc.more) {
		ad := plan.attach[from[k]]
		if attach.NotRun(o.Err) {
			deferred = true
			continue
		}
		rc.h.m.observeTook("attach", took[k]+o.Took, o.Err)
		if o.Err != nil {
			rc.failOne(ad, elems[ad.elem], o.Err, false)
			continue
		}
		added, rc.changed = true, true
		rc.log.Info("hot-plug: attached", "network", atts[k].Network, "interface", atts[k].IfName, "took", (took[k] + o.Took).String())
	}
	if added {
		// What ADD would warn about the annotation goes with the
		// additions; so do the resolver's warnings.
		for _, w := range parseWarnings {
			rc.warnings = append(rc.warnings, fmt.Sprintf("annotation %s: %s", nadv1.NetworkAttachmentAnnot, w))
		}
		rc.warnings = append(rc.warnings, rc.r.Warnings()...)
	}
	return deferred, nil
}

// detach runs the plan's removals in one phase.
func (rc *reconciliation) detach(ctx context.Context, plan passPlan) (deferred bool, err error) {
	if len(plan.detach) == 0 {
		return false, nil
	}
	what := make([]podnet.Attachment, len(plan.detach))
	for j, i := range plan.detach {
		what[j] = rc.entry.Attachments[i]
		if j < plan.undo {
			rc.log.Info("hot-plug: undoing an attachment whose result was never recorded", "network", what[j].Network, "interface", what[j].IfName)
		}
	}
	var errs []error
	for j, o := range rc.att.DelSome(ctx, rc.entry, plan.detach, rc.more) {
		if attach.NotRun(o.Err) {
			deferred = true
			continue
		}
		rc.h.m.observeTook("detach", o.Took, o.Err)
		if o.Err != nil {
			errs = append(errs, o.Err)
			continue
		}
		rc.changed = true
		if j >= plan.undo {
			rc.log.Info("hot-plug: detached", "network", what[j].Network, "interface", what[j].IfName, "took", o.Took.String())
		}
	}
	return deferred, errors.Join(errs...)
}

// resolveAdditions resolves the plan's additions the way ADD does, while
// the pass has time: what resolution refuses fails alone. It returns the
// attachments, the plan.attach index and the resolution time of each.
func (rc *reconciliation) resolveAdditions(ctx context.Context, plan passPlan, elems []*nadv1.NetworkSelectionElement) (atts []podnet.Attachment, from []int, took []time.Duration, deferred bool) {
	for j, ad := range plan.attach {
		if (len(atts) > 0 || rc.ops > 0) && !time.Now().Before(rc.deadline) {
			return atts, from, took, true
		}
		el := elems[ad.elem]
		start := time.Now()
		held := append(append([]podnet.Attachment(nil), rc.entry.Attachments...), atts...)
		a, err := rc.r.Element(ctx, rc.pod, rc.req, el, ad.ifName, held)
		if err == nil {
			err = rc.r.AssignDevice(ctx, rc.pod, rc.req, held, &a)
		}
		if err != nil {
			rc.failOne(ad, el, err, true)
			continue
		}
		atts, from, took = append(atts, a), append(from, j), append(took, time.Since(start))
	}
	return atts, from, took, false
}

// failOne records an addition that failed: a Warning (unless a source
// could not be asked: then the pass is retried), and the element is not
// tried again in this state of the pod.
func (rc *reconciliation) failOne(ad addition, el *nadv1.NetworkSelectionElement, err error, resolving bool) {
	name := el.Namespace + "/" + el.Name
	if errors.Is(err, errUnavailable) {
		rc.transient = append(rc.transient, err)
		return
	}
	if resolving {
		rc.h.m.ops.WithLabelValues("attach", "refused").Inc()
	}
	rc.failed[ad.elem] = true
	if rc.failNet == "" {
		rc.failNet = name
	}
	rc.fails = append(rc.fails, "hot-plug: "+k8s.FailedMessage(name, err))
}

func (rc *reconciliation) refuse(msg string) { rc.refused = append(rc.refused, "hot-plug: "+msg) }

// skip leaves the pod as it is: a Warning says why (not on the pass of
// plexusd's start, which would repeat it on every pod at every restart:
// the log and the metric say it then), and the pass succeeds: nothing is
// retried until the pod's state changes.
func (rc *reconciliation) skip(resume bool, nr *notReconciled) {
	rc.h.m.skipped.WithLabelValues(nr.reason).Inc()
	msg := "not reconciled: cache entry of container " + rc.cid + ": " + nr.msg
	rc.log.Warn("hot-plug: "+msg, "reason", nr.reason)
	if !resume {
		rc.refuse(msg)
		rc.report()
	}
}

// report hands what the pass did to the publisher: network-status of what
// is attached now (one PATCH and one Event), a Warning for each failed or
// refused request.
func (rc *reconciliation) report() {
	d := rc.h.d
	ref := rc.req.Pod
	write := func(r *outbox.Record) {
		if err := d.box.Write(r); err != nil {
			rc.log.Warn("hot-plug: queueing for publication", "kind", r.Kind, "err", err)
		}
	}
	if rc.changed {
		shown := *rc.entry
		shown.Attachments = nil
		for _, a := range rc.entry.Attachments {
			if a.Added && len(a.Result) > 0 {
				shown.Attachments = append(shown.Attachments, a)
			}
		}
		write(&outbox.Record{Kind: outbox.KindAttached, ContainerID: rc.cid, Pod: ref, Entry: &shown, Warnings: rc.warnings})
	}
	if len(rc.fails) > 0 {
		for _, m := range rc.fails {
			rc.log.Warn(m)
		}
		write(&outbox.Record{Kind: outbox.KindFailed, ContainerID: rc.cid, Pod: ref, Network: rc.failNet, Error: strings.Join(rc.fails, "; ")})
	}
	if len(rc.refused) > 0 {
		for _, m := range rc.refused {
			rc.log.Warn(m)
		}
		write(&outbox.Record{Kind: outbox.KindWarned, ContainerID: rc.cid, Pod: ref, Warnings: rc.refused})
	}
	if rc.changed || len(rc.fails) > 0 || len(rc.refused) > 0 {
		d.wake()
	}
}

// passNADs remembers a pass's NAD lookups, misses included: an element
// naming a missing NAD costs the API one LIST per pass, not one per
// element.
type passNADs struct {
	src  resolve.NADSource
	seen map[string]nadLookup
}

type nadLookup struct {
	nad *nadv1.NetworkAttachmentDefinition
	err error
}

func (p *passNADs) NAD(ctx context.Context, namespace, name string) (*nadv1.NetworkAttachmentDefinition, error) {
	key := namespace + "/" + name
	if l, ok := p.seen[key]; ok {
		return l.nad, l.err
	}
	n, err := p.src.NAD(ctx, namespace, name)
	if err == nil || errors.Is(err, podnet.ErrNADNotFound) {
		p.seen[key] = nadLookup{n, err} // an unavailable API is asked again
	}
	return n, err
}

// statusStale: the pod's network-status does not list the interfaces the
// entry holds, and no record waits in the outbox to publish them.
func (rc *reconciliation) statusStale() bool {
	if rc.h.d.box.Pending(rc.cid, outbox.KindAttached) {
		return false
	}
	var st []nadv1.NetworkStatus
	_ = json.Unmarshal([]byte(rc.pod.Annotations[nadv1.NetworkStatusAnnot]), &st)
	have := map[string]bool{}
	for _, s := range st {
		have[s.Interface] = true
	}
	n := 0
	for _, a := range rc.entry.Attachments {
		if !a.Added || len(a.Result) == 0 {
			continue
		}
		n++
		if !have[a.IfName] {
			return true
		}
	}
	return n != len(have)
}
