// Package policysync runs MultiNetworkPolicy enforcement on a node: it
// watches the policies, namespaces and every pod of the cluster (trimmed
// by netpol.TrimPod), and for each pod plexus attached on this node (its
// cache entries) compiles the policies (netpol.Compile) and writes the
// pod's table in its netns (netpol.Apply), one transaction per pod. See
// docs/network-policy.md.
package policysync

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	mnp "github.com/k8snetworkplumbingwg/multi-networkpolicy/pkg/apis/k8s.cni.cncf.io/v1beta1"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	plexuscache "github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/netpol"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

// GVR is the MultiNetworkPolicy resource plexus reads (v1beta1, the
// stored version; v1beta2 is the same object).
var GVR = schema.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1beta1", Resource: "multi-networkpolicies"}

// Options configure a Syncer.
type Options struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// Cache is plexus's cache: its entries are the pods to protect.
	Cache plexuscache.Store
	// Apply writes a plan in a netns (netpol.Apply when nil).
	Apply func(ctx context.Context, netns string, plan netpol.Plan) error
	// VFIO tells a VF bound to vfio-pci (SysfsVFIO when nil).
	VFIO func(podnet.Attachment) bool
	// Warn records a Warning Event on a pod (none when nil); called once
	// per distinct message.
	Warn func(namespace, name, reason, message string)
	// Rescan is how often the cache is listed for new and gone
	// containers (2s when 0).
	Rescan time.Duration
	// Resync is how often every local container is queued whatever
	// changed (1 min when 0): the backstop of the per-event queueing.
	Resync  time.Duration
	Log     *slog.Logger
	Metrics *Metrics
	// PoliciesServed tells whether the API serves MultiNetworkPolicy
	// (Client's discovery when nil). Before the informers sync, an ADD goes
	// on without a table only when it does not: no policy can exist.
	PoliciesServed func(ctx context.Context) (bool, error)
}

// servedFor is how long an answer of PoliciesServed is reused: while the
// CRD is not installed, an ADD costs no discovery request of its own.
const servedFor = 10 * time.Second

// discoveryServed asks the API's discovery whether it serves GVR.
func discoveryServed(c kubernetes.Interface) func(context.Context) (bool, error) {
	return func(context.Context) (bool, error) {
		l, err := c.Discovery().ServerResourcesForGroupVersion(GVR.GroupVersion().String())
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		for _, r := range l.APIResources {
			if r.Name == GVR.Resource {
				return true, nil
			}
		}
		return false, nil
	}
}

// Metrics of policy enforcement (bounded labels: none per pod).
type Metrics struct {
	SyncSeconds prometheus.Histogram
	SyncErrors  prometheus.Counter
	Pods        prometheus.Gauge // pods with at least one filtered interface
	Interfaces  prometheus.Gauge // filtered interfaces
	Refused     prometheus.Gauge // selected interfaces that cannot be filtered (vfio)
}

// NewMetrics registers the metrics in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		SyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "plexus_policy_sync_seconds",
			Help: "Time to compile and write one pod's MultiNetworkPolicy table.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		SyncErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "plexus_policy_sync_errors_total",
			Help: "Pod table writes that failed."}),
		Pods: prometheus.NewGauge(prometheus.GaugeOpts{Name: "plexus_policy_pods_selected",
			Help: "Local pods with at least one interface filtered by a MultiNetworkPolicy."}),
		Interfaces: prometheus.NewGauge(prometheus.GaugeOpts{Name: "plexus_policy_interfaces_selected",
			Help: "Local interfaces filtered by a MultiNetworkPolicy."}),
		Refused: prometheus.NewGauge(prometheus.GaugeOpts{Name: "plexus_policy_interfaces_unenforceable",
			Help: "Local interfaces a MultiNetworkPolicy selects that cannot be filtered (VFs bound to vfio-pci)."}),
	}
	if reg != nil {
		reg.MustRegister(m.SyncSeconds, m.SyncErrors, m.Pods, m.Interfaces, m.Refused)
	}
	return m
}

// pciAddress is a PCI address as the device plugin gives it; only such a
// string reaches a sysfs path.
var pciAddress = regexp.MustCompile(`^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$`)

// SysfsVFIO reports whether an attachment's device is bound to vfio-pci,
// from the host's /sys.
func SysfsVFIO(a podnet.Attachment) bool { return VFIOAt("/sys")(a) }

// VFIOAt is SysfsVFIO with sysfs at root (a test's fake sysfs).
func VFIOAt(root string) func(podnet.Attachment) bool {
	return func(a podnet.Attachment) bool {
		if !pciAddress.MatchString(a.DeviceID) {
			return false
		}
		d, err := os.Readlink(filepath.Join(root, "bus", "pci", "devices", a.DeviceID, "driver"))
		return err == nil && filepath.Base(d) == "vfio-pci"
	}
}

// podState is what was last written for one container.
type podState struct {
	// mu serializes the compile and write of this container's table
	// (Sync from the queue, Prepare from an ADD or hot-plug).
	mu                  sync.Mutex
	plan                string // the plan's fingerprint
	interfaces, refused int
	warned              map[string]bool
	// pending are interfaces Prepare wrote rules for before plexus's cache
	// lists them (their ADD is under way); Sync keeps them in the plan
	// until the cache entry has them or pendingUntil passes.
	pending      []netpol.Attachment
	pendingUntil time.Time
	// pod and nads: the container's pod and the NADs of its attachments
	// as last seen by Sync or Prepare (under Syncer.mu), for the
	// queueing decision.
	pod  [2]string
	nads []netpol.NAD
}

// pendingFor is how long a prepared interface is kept in a container's
// plan without its cache entry listing it (an ADD that never wrote its
// intent, or was rolled back).
const pendingFor = 2 * time.Minute

// Syncer keeps every local pod's table in line with the policies.
type Syncer struct {
	opts     Options
	log      *slog.Logger
	pods     cache.SharedIndexInformer
	nss      cache.SharedIndexInformer
	policies cache.SharedIndexInformer
	queue    workqueue.TypedRateLimitingInterface[string]
	mu       sync.Mutex
	state    map[string]*podState // by container ID
	gen      uint64               // informer changes seen
	idx      *netpol.Index
	idxGen   uint64
	synced   atomic.Bool
	handled  []cache.InformerSynced
	// compiles counts plans compiled (TestIncrementalQueueing).
	compiles atomic.Int64
	// servedAt and served: PoliciesServed's last answer (under mu).
	servedAt time.Time
	served   bool
}

// New builds a Syncer; Run starts it.
func New(o Options) *Syncer {
	if o.Apply == nil {
		o.Apply = netpol.Apply
	}
	if o.VFIO == nil {
		o.VFIO = SysfsVFIO
	}
	if o.Rescan == 0 {
		o.Rescan = 2 * time.Second
	}
	if o.Resync == 0 {
		o.Resync = time.Minute
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.PoliciesServed == nil {
		o.PoliciesServed = discoveryServed(o.Client)
	}
	f := informers.NewSharedInformerFactory(o.Client, 0)
	s := &Syncer{opts: o, log: o.Log, state: map[string]*podState{},
		pods: f.Core().V1().Pods().Informer(),
		nss:  f.Core().V1().Namespaces().Informer(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "policy"}),
	}
	_ = s.pods.SetTransform(netpol.TrimPod)
	_ = s.nss.SetTransform(func(obj any) (any, error) {
		if n, ok := obj.(*corev1.Namespace); ok {
			n = &corev1.Namespace{ObjectMeta: *n.ObjectMeta.DeepCopy()}
			n.ManagedFields, n.Annotations = nil, nil
			return n, nil
		}
		return obj, nil
	})
	df := dynamicinformer.NewDynamicSharedInformerFactory(o.Dynamic, 0)
	s.policies = df.ForResource(GVR).Informer()
	_ = s.policies.SetTransform(func(obj any) (any, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return obj, nil
		}
		p := &mnp.MultiNetworkPolicy{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, p); err != nil {
			// Kept as an empty-ruled policy of its name: it isolates what
			// its podSelector (if any survived) selects, allows nothing.
			o.Log.Warn("MultiNetworkPolicy does not decode", "policy", u.GetNamespace()+"/"+u.GetName(), "err", err)
		}
		p.ManagedFields = nil
		return p, nil
	})
	// The handlers' registrations: Run waits until they have been given
	// the initial lists.
	for _, r := range []func() (cache.ResourceEventHandlerRegistration, error){
		func() (cache.ResourceEventHandlerRegistration, error) {
			return s.pods.AddEventHandler(handler(s, func(old, new *corev1.Pod) []string {
				return PodAffects(old, new, s.locals(), s.policyNamespaces())
			}))
		},
		func() (cache.ResourceEventHandlerRegistration, error) {
			return s.nss.AddEventHandler(handler(s, func(old, new *corev1.Namespace) []string {
				return NamespaceAffects(old, new, s.locals(), s.policyNamespaces())
			}))
		},
		func() (cache.ResourceEventHandlerRegistration, error) {
			return s.policies.AddEventHandler(handler(s, func(old, new *mnp.MultiNetworkPolicy) []string {
				return PolicyAffects(old, new, s.locals())
			}))
		},
	} {
		if reg, err := r(); err == nil {
			s.handled = append(s.handled, reg.HasSynced)
		}
	}
	return s
}

// handler queues the containers affects names for each change of an
// informer's objects of type T; an object of another type (a tombstone
// that does not unwrap) queues every local container.
func handler[T any](s *Syncer, affects func(old, new *T) []string) cache.ResourceEventHandlerFuncs {
	obj := func(o any) (*T, bool) {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		t, ok := o.(*T)
		return t, ok
	}
	on := func(old, new any) {
		s.mu.Lock()
		s.gen++
		s.mu.Unlock()
		var o, n *T
		ok := true
		if old != nil {
			o, ok = obj(old)
		}
		if new != nil && ok {
			n, ok = obj(new)
		}
		if !ok {
			s.enqueueAll()
			return
		}
		for _, id := range affects(o, n) {
			s.queue.Add(id)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { on(nil, o) },
		UpdateFunc: func(o, n any) { on(o, n) },
		DeleteFunc: func(o any) { on(o, nil) },
	}
}

// locals are the local containers Sync or Prepare has seen, with their
// pods' labels from the pod informer.
func (s *Syncer) locals() []Local {
	s.mu.Lock()
	out := make([]Local, 0, len(s.state))
	for id, st := range s.state {
		out = append(out, Local{ID: id, Namespace: st.pod[0], Name: st.pod[1], NADs: st.nads})
	}
	s.mu.Unlock()
	for i, l := range out {
		if o, ok, _ := s.pods.GetStore().GetByKey(l.Namespace + "/" + l.Name); ok {
			if p, ok := o.(*corev1.Pod); ok {
				out[i].Labels = p.Labels
				if out[i].Labels == nil {
					out[i].Labels = map[string]string{}
				}
			}
		}
	}
	return out
}

// policyNamespaces are the namespaces having a policy.
func (s *Syncer) policyNamespaces() map[string]bool {
	out := map[string]bool{}
	for _, o := range s.policies.GetStore().List() {
		if p, ok := o.(*mnp.MultiNetworkPolicy); ok {
			out[p.Namespace] = true
		}
	}
	return out
}

// seen records container id's pod and NADs for the queueing decision.
func (s *Syncer) seen(id, namespace, name string, atts []netpol.Attachment) {
	var nads []netpol.NAD
	for _, a := range atts {
		nads = append(nads, a.NAD)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.state[id]; st != nil {
		st.pod, st.nads = [2]string{namespace, name}, nads
	}
}

// index is the address index of the informers' pods and namespaces,
// rebuilt once after each change of them (not once per local pod).
func (s *Syncer) index() netpol.Index {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idx != nil && s.idxGen == s.gen {
		return *s.idx
	}
	var pods []*corev1.Pod
	for _, o := range s.pods.GetStore().List() {
		pods = append(pods, o.(*corev1.Pod))
	}
	var nss []*corev1.Namespace
	for _, o := range s.nss.GetStore().List() {
		nss = append(nss, o.(*corev1.Namespace))
	}
	idx := netpol.BuildIndex(pods, nss)
	s.idx, s.idxGen = &idx, s.gen
	return idx
}

// enqueueAll queues every local container (the start, the periodic
// resync, a change that cannot be told); a pod whose plan did not change
// is not written again.
func (s *Syncer) enqueueAll() {
	ids, err := s.opts.Cache.List()
	if err != nil {
		s.log.Warn("policy: listing plexus's cache", "err", err)
		return
	}
	for _, id := range ids {
		s.queue.Add(id)
	}
}

// enqueueNew queues the containers of the cache Sync has not seen yet and
// those it knows that the cache no longer lists (the cache watch's
// backstop).
func (s *Syncer) enqueueNew() {
	ids, err := s.opts.Cache.List()
	if err != nil {
		s.log.Warn("policy: listing plexus's cache", "err", err)
		return
	}
	listed := map[string]bool{}
	s.mu.Lock()
	var add []string
	for _, id := range ids {
		listed[id] = true
		if s.state[id] == nil {
			add = append(add, id)
		}
	}
	for id := range s.state {
		if !listed[id] {
			add = append(add, id)
		}
	}
	s.mu.Unlock()
	for _, id := range add {
		s.queue.Add(id)
	}
}

// Run syncs until ctx ends. Each local pod's table is written from
// scratch once the informers have synced (a restarted plexusd rewrites
// them all; until then the previous tables keep filtering).
func (s *Syncer) Run(ctx context.Context) error {
	defer s.queue.ShutDown()
	for _, inf := range []cache.SharedIndexInformer{s.pods, s.nss, s.policies} {
		go inf.Run(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), append([]cache.InformerSynced{s.pods.HasSynced, s.nss.HasSynced, s.policies.HasSynced}, s.handled...)...) {
		return ctx.Err()
	}
	s.synced.Store(true)
	s.log.Info("policy: informers synced", "pods", len(s.pods.GetStore().ListKeys()),
		"namespaces", len(s.nss.GetStore().ListKeys()), "policies", len(s.policies.GetStore().ListKeys()))
	go s.watchCache(ctx)
	go func() {
		// Every container at start and each Resync; new and gone ones
		// each Rescan; the others when an event concerns them.
		t := time.NewTicker(s.opts.Rescan)
		defer t.Stop()
		full := time.NewTicker(s.opts.Resync)
		defer full.Stop()
		s.enqueueAll()
		for {
			select {
			case <-ctx.Done():
				return
			case <-full.C:
				s.enqueueAll()
			case <-t.C:
				s.enqueueNew()
			}
		}
	}()
	go func() { <-ctx.Done(); s.queue.ShutDown() }()
	for {
		id, quit := s.queue.Get()
		if quit {
			return nil
		}
		if err := s.Sync(ctx, id); err != nil {
			s.opts.Metrics.SyncErrors.Inc()
			s.log.Warn("policy: sync", "container", id, "err", err)
			s.queue.AddRateLimited(id)
		} else {
			s.queue.Forget(id)
		}
		s.queue.Done(id)
	}
}

// watchCache queues a container as soon as the ADD records its intent in
// plexus's cache (before the delegates run: pkg/attach), so that its table
// is written while its interfaces are being made rather than at the next
// rescan. (iifname/oifname match by name: the rules may precede the
// interfaces.) The ADDs plexusd answers and hot-plug's are written before
// their delegates by Prepare; this watch covers the others (the shim's
// fallback), racing their delegates; the rescan stays the backstop.
func (s *Syncer) watchCache(ctx context.Context) {
	dir := filepath.Join(s.opts.Cache.Dir, "containers")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		s.log.Warn("policy: watching plexus's cache", "err", err)
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		s.log.Warn("policy: watching plexus's cache", "err", err)
		return
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		s.log.Warn("policy: watching plexus's cache", "dir", dir, "err", err)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-w.Errors:
			s.log.Warn("policy: watching plexus's cache", "err", err)
		case ev := <-w.Events:
			switch {
			case filepath.Dir(ev.Name) == dir && ev.Has(fsnotify.Create):
				// A new container: its intent.json follows in it.
				_ = w.Add(ev.Name)
				s.queue.Add(filepath.Base(ev.Name))
			case filepath.Dir(filepath.Dir(ev.Name)) == dir && filepath.Base(ev.Name) == "intent.json" &&
				(ev.Has(fsnotify.Create) || ev.Has(fsnotify.Write)):
				s.queue.Add(filepath.Base(filepath.Dir(ev.Name)))
			}
		}
	}
}

// Sync writes one container's table when its plan changed.
func (s *Syncer) Sync(ctx context.Context, id string) error {
	start := time.Now()
	st := s.stateOf(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	e, err := s.opts.Cache.Load(id)
	if err != nil {
		return err
	}
	if e == nil || e.NetNS == "" || e.PodName == "" {
		if len(st.pending) == 0 || time.Now().After(st.pendingUntil) {
			s.forget(id)
		}
		return nil
	}
	s.seen(id, e.PodNamespace, e.PodName, st.withPending(netpol.AttachmentsOf(e, s.opts.VFIO)))
	obj, ok, err := s.pods.GetStore().GetByKey(e.PodNamespace + "/" + e.PodName)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("pod %s/%s: not in the pod informer yet", e.PodNamespace, e.PodName)
	}
	pod := obj.(*corev1.Pod)
	atts := netpol.AttachmentsOf(e, s.opts.VFIO)
	atts = st.withPending(atts)
	plan, fp, err := s.compile(pod, atts)
	if err != nil {
		return err
	}
	for _, err := range plan.Errors {
		s.warn(st, pod, "PolicyError", err.Error())
	}
	for _, r := range plan.Refused {
		s.warn(st, pod, "PolicyNotEnforceable", fmt.Sprintf("pod %s/%s: network %s: interface %s: %s", pod.Namespace, pod.Name, r.NAD, r.Interface, r.Reason))
	}
	if st.plan == fp {
		s.setCounts(id, len(plan.Interfaces), len(plan.Refused))
		return nil
	}
	if err := s.opts.Apply(ctx, e.NetNS, plan); err != nil {
		if _, serr := os.Stat(e.NetNS); os.IsNotExist(serr) {
			s.forget(id) // the sandbox is gone: nothing to filter
			return nil
		}
		return fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	st.plan = fp
	s.setCounts(id, len(plan.Interfaces), len(plan.Refused))
	s.opts.Metrics.SyncSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// stateOf is a container's state, made when new.
func (s *Syncer) stateOf(id string) *podState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state[id]
	if st == nil {
		st = &podState{warned: map[string]bool{}, plan: "\x00never"}
		s.state[id] = st
	}
	return st
}

// withPending is atts plus the prepared interfaces the cache entry does
// not list yet; those it lists (or expired) are no longer pending. st.mu
// held.
func (st *podState) withPending(atts []netpol.Attachment) []netpol.Attachment {
	if len(st.pending) == 0 {
		return atts
	}
	if time.Now().After(st.pendingUntil) {
		st.pending = nil
		return atts
	}
	have := map[string]bool{}
	for _, a := range atts {
		have[a.Interface] = true
	}
	var still []netpol.Attachment
	for _, a := range st.pending {
		if !have[a.Interface] {
			still = append(still, a)
		}
	}
	st.pending = still
	return append(atts, still...)
}

// compile is pod's plan for its attachments atts, and the plan's
// fingerprint.
func (s *Syncer) compile(pod *corev1.Pod, atts []netpol.Attachment) (netpol.Plan, string, error) {
	s.compiles.Add(1)
	target := netpol.Pod{Namespace: pod.Namespace, Name: pod.Name, Labels: pod.Labels, Ports: netpol.PodPorts(pod),
		Attachments: atts}
	var pols []*mnp.MultiNetworkPolicy
	for _, o := range s.policies.GetStore().List() {
		if p, ok := o.(*mnp.MultiNetworkPolicy); ok && p.Namespace == pod.Namespace {
			pols = append(pols, p)
		}
	}
	plan := netpol.Compile(pols, target, s.index())
	b, err := json.Marshal(plan.Interfaces)
	if err != nil {
		return plan, "", err
	}
	return plan, string(b), nil
}

// policiesServed is PoliciesServed's answer, reused for servedFor.
func (s *Syncer) policiesServed(ctx context.Context) (bool, error) {
	s.mu.Lock()
	if !s.servedAt.IsZero() && time.Since(s.servedAt) < servedFor {
		defer s.mu.Unlock()
		return s.served, nil
	}
	s.mu.Unlock()
	served, err := s.opts.PoliciesServed(ctx)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	s.served, s.servedAt = served, time.Now()
	s.mu.Unlock()
	return served, nil
}

// Synced reports whether the informers have synced (Prepare needs them).
func (s *Syncer) Synced() bool { return s.synced.Load() }

// Prepare writes the table of container id (of pod, in netns) for its
// attachments atts before their delegates run, so that no interface is
// up and unfiltered between its ADD and its rules (docs/network-policy.md):
// plexusd calls it when it answers the shim's resolution of an ADD, and
// before hot-plug attaches. atts are every secondary attachment the
// container will have (the primary is skipped); the rules match by
// interface name, so they precede the interfaces. A pod no policy
// selects on these networks gets no table and cannot fail here; else an
// error (informers not synced, the pod unknown, nft failing) names the
// networks and the policies (the caller names the pod), and the ADD must
// fail: fail closed.
func (s *Syncer) Prepare(ctx context.Context, id, netns string, ref podnet.PodRef, atts []podnet.Attachment) error {
	start := time.Now()
	want := netpol.AttachmentsOf(&podnet.Entry{Attachments: atts}, s.opts.VFIO)
	if len(want) == 0 {
		return nil
	}
	first := want[0].NAD.String()
	if !s.Synced() {
		if served, err := s.policiesServed(ctx); err == nil && !served {
			return nil // no MultiNetworkPolicy API: nothing can select the pod
		}
		return podnet.WithNetwork(first, fmt.Errorf("network %s: MultiNetworkPolicy enforcement: policies, pods and namespaces not synced yet (plexusd just started; the ADD is retried)", first))
	}
	obj, ok, err := s.pods.GetStore().GetByKey(ref.Namespace + "/" + ref.Name)
	// The cluster-wide pod informer may lag plexusd's own: wait a little
	// (well within the shim's 2 s for plexusd's answer).
	for deadline := time.Now().Add(500 * time.Millisecond); err == nil && !ok && time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(20 * time.Millisecond)
		obj, ok, err = s.pods.GetStore().GetByKey(ref.Namespace + "/" + ref.Name)
	}
	if err != nil || !ok {
		return podnet.WithNetwork(first, fmt.Errorf("network %s: MultiNetworkPolicy enforcement: the pod is not in plexusd's pod informer yet (the ADD is retried)", first))
	}
	pod := obj.(*corev1.Pod)
	st := s.stateOf(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	s.seen(id, ref.Namespace, ref.Name, slices.Concat(want, st.pending))
	plan, fp, err := s.compile(pod, want)
	if err != nil {
		return err
	}
	if len(plan.Interfaces) == 0 && st.plan == "\x00never" {
		return nil // nothing selected, no table written before: nothing to do
	}
	st.pending, st.pendingUntil = want, time.Now().Add(pendingFor)
	if st.plan == fp {
		return nil
	}
	if err := s.opts.Apply(ctx, netns, plan); err != nil {
		s.opts.Metrics.SyncErrors.Inc()
		if len(plan.Interfaces) == 0 {
			// Nothing to filter: a stale table is Sync's to remove, the
			// ADD goes on.
			s.log.Warn("policy: removing a table before ADD", "pod", ref.String(), "err", err)
			return nil
		}
		var nets, pols []string
		for _, ifc := range plan.Interfaces {
			nets = append(nets, ifc.NAD.String()+" ("+ifc.Name+")")
			pols = append(pols, ifc.Policies...)
		}
		return podnet.WithNetwork(plan.Interfaces[0].NAD.String(), fmt.Errorf("network %s: MultiNetworkPolicy %s: cannot write its rules before the interfaces come up: %w",
			strings.Join(nets, ", "), strings.Join(slices.Compact(slices.Sorted(slices.Values(pols))), ", "), err))
	}
	st.plan = fp
	s.setCounts(id, len(plan.Interfaces), len(plan.Refused))
	s.opts.Metrics.SyncSeconds.Observe(time.Since(start).Seconds())
	return nil
}

func (s *Syncer) warn(st *podState, pod *corev1.Pod, reason, msg string) {
	if st.warned[msg] {
		return
	}
	st.warned[msg] = true
	s.log.Warn("policy: "+reason, "pod", pod.Namespace+"/"+pod.Name, "msg", msg)
	if s.opts.Warn != nil {
		s.opts.Warn(pod.Namespace, pod.Name, reason, msg)
	}
}

// setCounts records a container's filtered and refused interfaces and
// updates the gauges.
func (s *Syncer) setCounts(id string, interfaces, refused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.state[id]; st != nil {
		st.interfaces, st.refused = interfaces, refused
	}
	s.gauges()
}

func (s *Syncer) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.state, id)
	s.gauges()
}

// gauges recomputes the gauges; s.mu held.
func (s *Syncer) gauges() {
	pods, ifs, ref := 0, 0, 0
	for _, st := range s.state {
		if st.interfaces > 0 {
			pods++
		}
		ifs += st.interfaces
		ref += st.refused
	}
	s.opts.Metrics.Pods.Set(float64(pods))
	s.opts.Metrics.Interfaces.Set(float64(ifs))
	s.opts.Metrics.Refused.Set(float64(ref))
}
