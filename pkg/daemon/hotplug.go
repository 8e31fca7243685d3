package daemon

// Hot-plug (docs/hotplug.md): when the k8s.v1.cni.cncf.io/networks
// annotation of a Running pod of this node changes, plexusd attaches the
// elements it gained and detaches the ones it lost, in the pod's current
// sandbox, with the code of ADD and DEL (pkg/resolve, pkg/attach) and
// under the same per-pod lock as the runtime's ADD and DEL. What is
// attached is the sandbox's cache entry: it lists exactly what is attached
// at every moment (an addition's intent is written before its delegate
// runs), so a runtime DEL racing a hot-plug, a GC, or plexusd restarted in
// the middle of one finds everything there is to undo. plexus never
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

// opBound bounds one pass's delegates. A pass is not cancelled when plexusd
// stops (SIGTERM): it finishes, so that a stop never leaves a half-made
// interface for the next start to undo.
const opBound = 2 * time.Minute

// hotplug reconciles the networks annotation of the node's Running pods
// with their sandboxes' cache entries.
type hotplug struct {
	d     *Daemon
	queue workqueue.TypedRateLimitingInterface[string]
	m     *hotplugMetrics
	// nads and devices feed the resolver: the daemon's informer-backed
	// sources, as for the shim's ADD.
	nads    resolve.NADSource
	devices resolve.DeviceSource

	mu sync.Mutex
	// done is, per pod key, the state last reconciled (pod UID, container,
	// annotation): an event that changes none of them is a no-op, and an
	// element that failed is not tried again until the annotation changes.
	done map[string]string
	// sandbox remembers each pod UID's container (a hint: verified on use).
	sandbox map[string]string
	// resume are the pods of plexusd's first list: their network-status is
	// checked against the cache once (a restart between an attach and its
	// outbox record).
	resume map[string]bool
	// confErr is the last config error logged (logged once).
	confErr string
}

type hotplugMetrics struct {
	ops     *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

func newHotplug(d *Daemon) *hotplug {
	m := &hotplugMetrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_hotplug_operations_total",
			Help: "Interfaces hot-plugged into (attach) or out of (detach) running pods, by result (refused: a limit or a bad element, nothing run)."}, []string{"op", "result"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "plexus_hotplug_duration_seconds",
			Help: "Duration of one hot-plug attach or detach (resolution, delegate, cache), by op and result.", Buckets: latencyBuckets}, []string{"op", "result"}),
	}
	if d.metrics != nil {
		d.metrics.Registry.MustRegister(m.ops, m.seconds)
	}
	return &hotplug{
		d: d, m: m, nads: d.nadSrc, devices: d.devices,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "plexus-hotplug"}),
		done: map[string]string{}, sandbox: map[string]string{}, resume: map[string]bool{},
	}
}

func (m *hotplugMetrics) observe(op string, start time.Time, err error) {
	r := outcome(err)
	m.ops.WithLabelValues(op, r).Inc()
	m.seconds.WithLabelValues(op, r).Observe(time.Since(start).Seconds())
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
	if err := h.reconcile(ctx, key); err != nil {
		h.d.log.Warn("hot-plug: retrying", "pod", key, "err", err)
		h.queue.AddRateLimited(key)
		return true
	}
	h.queue.Forget(key)
	return true
}

// reconcile makes the pod's current sandbox carry what its networks
// annotation asks for. An error is transient (retried with backoff);
// what the pod asks for wrongly is reported in a Warning event instead.
func (h *hotplug) reconcile(ctx context.Context, key string) error {
	obj, ok, err := h.d.pods.GetIndexer().GetByKey(key)
	if err != nil || !ok {
		return nil
	}
	p := obj.(*corev1.Pod)
	if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
		return nil
	}
	uid := string(p.UID)
	cid := h.findSandbox(uid)
	if cid == "" {
		return nil // no sandbox of this pod attached by plexus on this node
	}
	ann := p.Annotations[nadv1.NetworkAttachmentAnnot]
	state := uid + "\x00" + cid + "\x00" + ann + "\x00" + p.Annotations[resolve.DefaultNetworkAnnot]
	h.mu.Lock()
	same, resume := h.done[key] == state, h.resume[key]
	delete(h.resume, key)
	h.mu.Unlock()
	if same {
		return nil
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
		return nil
	}
	pod := k8s.PodFromAPI(p)
	rec := &reconciliation{h: h, conf: conf, pod: pod, cid: cid, ann: ann, log: h.d.log.With("pod", key, "container", cid)}
	opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opBound)
	defer cancel()
	if err := rec.run(opCtx, resume); err != nil {
		h.restore(key, resume)
		return err
	}
	h.mu.Lock()
	h.done[key] = state
	h.mu.Unlock()
	return nil
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

// reconciliation is one pass over one pod.
type reconciliation struct {
	h    *hotplug
	conf *config.Conf
	pod  *podnet.Pod
	cid  string
	ann  string
	log  *slog.Logger

	att   *attach.Attacher
	r     *resolve.Resolver
	entry *podnet.Entry
	req   *podnet.Request
	// failed are the Warning messages of additions that failed and of
	// requests refused; changed says network-status must be published.
	failed   []string
	failNet  string
	refused  []string
	changed  bool
	warnings []string
	// transient is an addition that failed because a source could not be
	// asked (the API unreachable): no Warning, the pass is retried.
	transient []error
}

func (rc *reconciliation) run(ctx context.Context, resume bool) error {
	d := rc.h.d
	rc.att = attach.ForConfig(rc.conf, d.log, d.opts.BinDir)
	rc.att.Runner.Observe = func(command, plugins string, dur time.Duration, err error) {
		if d.metrics != nil {
			d.metrics.delegate.WithLabelValues(command, plugins, outcome(err)).Observe(dur.Seconds())
		}
	}
	src := rc.h.d.sources // as for the shim's ADD
	src.NADs, src.Devices = rc.h.nads, rc.h.devices
	rc.r = resolve.New(rc.conf, src)
	rc.req = &podnet.Request{ContainerID: rc.cid, Pod: podnet.PodRef{Namespace: rc.pod.Namespace, Name: rc.pod.Name, UID: rc.pod.UID}}
	// The runtime's lock: no ADD, DEL or GC of this pod runs meanwhile.
	unlock, err := rc.att.Lock(rc.req)
	if err != nil {
		return err
	}
	defer unlock()
	// Read again under the lock: a DEL may have run since.
	rc.entry, err = rc.att.Cache.Load(rc.cid)
	if err != nil {
		return err
	}
	if !live(rc.entry, rc.pod.UID) {
		return nil
	}
	rc.req.NetNS = rc.entry.NetNS
	rc.req.Args = rc.entry.Attachments[0].CNIArgs // the runtime's CNI_ARGS, as ADD passed them
	if err := rc.resume(ctx); err != nil {
		return err
	}
	if err := rc.reconcile(ctx); err != nil {
		return err
	}
	if !rc.changed && resume && rc.statusStale() {
		rc.log.Info("hot-plug: network-status does not match what is attached; publishing it again")
		rc.changed = true
	}
	rc.report()
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
	return nil
}

// resume undoes an addition plexusd did not finish (it died between the
// intent and the result): its delegate may have run, so it is DELeted; it
// is attached again below if the annotation still asks for it.
func (rc *reconciliation) resume(ctx context.Context) error {
	for i := len(rc.entry.Attachments) - 1; i > 0; i-- {
		a := rc.entry.Attachments[i]
		if a.Added && len(a.Result) > 0 {
			continue
		}
		rc.log.Info("hot-plug: undoing an attachment whose result was never recorded", "network", a.Network, "interface", a.IfName)
		start := time.Now()
		err := rc.att.DelOne(ctx, rc.entry, i)
		rc.h.m.observe("detach", start, err)
		if err != nil {
			return fmt.Errorf("pod %s: hot-plug: %w", rc.req.Pod, err)
		}
		rc.changed = true
	}
	return nil
}

func (rc *reconciliation) reconcile(ctx context.Context) error {
	entry := rc.entry
	if v := rc.pod.Annotations[resolve.DefaultNetworkAnnot]; v != "" {
		if els, _, err := selection.ParseWithWarnings(v, rc.conf.MultusNamespace, true); err == nil && len(els) == 1 &&
			els[0].Namespace+"/"+els[0].Name != entry.Attachments[0].Network {
			rc.refuse(fmt.Sprintf("annotation %s: the primary (%s, network %q) cannot be changed on a running pod; recreate the pod", resolve.DefaultNetworkAnnot, entry.Attachments[0].IfName, entry.Attachments[0].Network))
		}
	}
	layout, err := rc.r.Layout(rc.pod)
	if err != nil {
		rc.refuse(err.Error())
		return nil
	}
	elems, parseWarnings, err := selection.ParseWithWarnings(rc.ann, rc.pod.Namespace, rc.conf.StrictAnnotations)
	if err != nil {
		rc.refuse(fmt.Sprintf("annotation %s: %v; nothing attached or detached", nadv1.NetworkAttachmentAnnot, err))
		return nil
	}
	// The attachments that came from the annotation: after the primary,
	// the first ones of each network the config attaches to every pod are
	// the config's (ADD puts them before the annotation's).
	fixedLeft := map[string]int{}
	for k, v := range layout.Fixed {
		fixedLeft[k] = v
	}
	fixed := map[string]string{} // interface -> why it cannot change
	var mine []int
	for i, a := range entry.Attachments {
		switch {
		case a.Primary || i == 0:
			fixed[a.IfName] = "the primary's"
		case fixedLeft[a.Network] > 0:
			fixedLeft[a.Network]--
			fixed[a.IfName] = fmt.Sprintf("network %q's, attached to every pod by plexus's config (defaultNetworks)", a.Network)
		default:
			mine = append(mine, i)
		}
	}
	// Match the elements to what is attached: a named interface to the
	// attachment of that network and name; an unnamed one to an
	// attachment of that network, preferring the name ADD would give it.
	match := make([]int, len(elems))
	taken := map[int]bool{}
	for k := range match {
		match[k] = -1
	}
	find := func(k int, ok func(a *podnet.Attachment) bool) {
		for _, i := range mine {
			a := &entry.Attachments[i]
			if !taken[i] && a.Added && len(a.Result) > 0 && a.Network == elems[k].Namespace+"/"+elems[k].Name && ok(a) {
				match[k], taken[i] = i, true
				return
			}
		}
	}
	for k, el := range elems {
		if el.InterfaceRequest != "" {
			find(k, func(a *podnet.Attachment) bool { return a.IfName == el.InterfaceRequest })
		}
	}
	for k, el := range elems {
		if el.InterfaceRequest == "" {
			find(k, func(a *podnet.Attachment) bool { return a.IfName == resolve.DefaultIfName(layout.Offset+k) })
		}
	}
	for k, el := range elems {
		if el.InterfaceRequest == "" && match[k] < 0 {
			find(k, func(*podnet.Attachment) bool { return true })
		}
	}
	// Removals first, last attached first.
	var errs []error
	for j := len(mine) - 1; j >= 0; j-- {
		i := mine[j]
		if taken[i] {
			continue
		}
		a := entry.Attachments[i]
		start := time.Now()
		err := rc.att.DelOne(ctx, entry, i)
		rc.h.m.observe("detach", start, err)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rc.changed = true
		rc.log.Info("hot-plug: detached", "network", a.Network, "interface", a.IfName, "took", time.Since(start).String())
	}
	if len(errs) > 0 {
		// Additions wait: the interface names of what is still attached
		// are taken.
		return fmt.Errorf("pod %s: hot-plug: %w", rc.req.Pod, errors.Join(errs...))
	}
	// Then additions, in annotation order; what ADD would warn about the
	// annotation goes with the first.
	added := false
	for k, el := range elems {
		if match[k] >= 0 {
			continue
		}
		name := el.Namespace + "/" + el.Name
		ifName := el.InterfaceRequest
		if ifName == "" {
			ifName = resolve.DefaultIfName(layout.Offset + k)
		}
		if why, ok := fixed[ifName]; ok {
			rc.refuse(fmt.Sprintf("network %q: field \"interface\": %q is %s: the primary and defaultNetworks cannot be changed on a running pod", name, ifName, why))
			continue
		}
		start := time.Now()
		err := rc.add(ctx, el, ifName)
		if errors.Is(err, errRefused) {
			rc.h.m.ops.WithLabelValues("attach", "refused").Inc()
		} else {
			rc.h.m.observe("attach", start, err)
		}
		if errors.Is(err, errUnavailable) {
			rc.transient = append(rc.transient, err)
			continue
		}
		if err != nil {
			rc.fail(name, err)
			continue
		}
		if !added {
			for _, w := range parseWarnings {
				rc.warnings = append(rc.warnings, fmt.Sprintf("annotation %s: %s", nadv1.NetworkAttachmentAnnot, w))
			}
		}
		added, rc.changed = true, true
		rc.log.Info("hot-plug: attached", "network", name, "interface", ifName, "took", time.Since(start).String())
	}
	return nil
}

// errRefused marks an addition refused before anything ran.
var errRefused = errors.New("refused")

type refusedError struct{ err error }

func (r refusedError) Error() string   { return r.err.Error() }
func (r refusedError) Unwrap() []error { return []error{r.err, errRefused} }
func refused(err error) error          { return refusedError{err} }

func (rc *reconciliation) refuse(msg string) { rc.refused = append(rc.refused, "hot-plug: "+msg) }

// add resolves one element the way ADD does, gives it a device the pod
// holds when its NAD names a resource, and attaches it.
func (rc *reconciliation) add(ctx context.Context, el *nadv1.NetworkSelectionElement, ifName string) error {
	before := len(rc.r.Warnings())
	a, err := rc.r.Element(ctx, rc.pod, rc.req, el, ifName, rc.entry.Attachments)
	if err != nil {
		return refused(err)
	}
	if err := rc.r.AssignDevice(ctx, rc.pod, rc.req, rc.entry.Attachments, &a); err != nil {
		return refused(err)
	}
	if _, err := rc.att.AddOne(ctx, rc.entry, a); err != nil {
		return err
	}
	rc.warnings = append(rc.warnings, rc.r.Warnings()[before:]...)
	return nil
}

func (rc *reconciliation) fail(network string, err error) {
	if rc.failNet == "" {
		rc.failNet = network
	}
	var re refusedError
	if errors.As(err, &re) {
		err = re.err
	}
	rc.failed = append(rc.failed, "hot-plug: "+k8s.FailedMessage(network, err))
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
	if len(rc.failed) > 0 {
		for _, m := range rc.failed {
			rc.log.Warn(m)
		}
		write(&outbox.Record{Kind: outbox.KindFailed, ContainerID: rc.cid, Pod: ref, Network: rc.failNet, Error: strings.Join(rc.failed, "; ")})
	}
	if len(rc.refused) > 0 {
		for _, m := range rc.refused {
			rc.log.Warn(m)
		}
		write(&outbox.Record{Kind: outbox.KindWarned, ContainerID: rc.cid, Pod: ref, Warnings: rc.refused})
	}
	if rc.changed || len(rc.failed) > 0 || len(rc.refused) > 0 {
		d.wake()
	}
}

// statusStale: the pod's network-status does not list the interfaces the
// entry holds, and no record waits in the outbox to publish them.
func (rc *reconciliation) statusStale() bool {
	if _, err := os.Stat(filepath.Join(rc.h.d.box.Dir, filepath.Base(rc.cid)+"."+outbox.KindAttached+".json")); err == nil {
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
