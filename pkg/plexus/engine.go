// Package plexus is the meta-plugin's engine: ADD, DEL, CHECK, GC and STATUS
// over the sources in sources.go. One ADD reads top to bottom like the steps
// in DESIGN.md; each step is a call into the package that owns it.
package plexus

import (
	"github.com/plexus-cni/plexus/pkg/podnet"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/atomicfile"
	"github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/config"
	"github.com/plexus-cni/plexus/pkg/delegate"
	"github.com/plexus-cni/plexus/pkg/nad"
	"github.com/plexus-cni/plexus/pkg/publish"
	"github.com/plexus-cni/plexus/pkg/selection"
)

// Engine runs plexus's CNI commands for one invocation.
type Engine struct {
	Conf    *config.Conf
	Pods    PodSource
	NADs    NADSource
	Status  StatusSink
	Devices DeviceSource // nil when no device lookups are possible
	Runner  *delegate.Runner
	Cache   cache.Store
	Log     *slog.Logger
	// DeviceInfoDir is the base of device-info files (dp/ and cni/ below it).
	DeviceInfoDir string
	// LocalNADs serves NADs without the API (clusterless mode's directory),
	// for STATUS; nil in Kubernetes mode.
	LocalNADs NADSource
	// LockTimeout bounds the wait for another operation on the same pod
	// (cache.DefaultLockTimeout when 0).
	LockTimeout time.Duration

	// warnings about the pod's networks, reported once at the end of ADD.
	warnings []string
}

// MaxDelAttempts is how many times DEL of a container fails before plexus
// gives up on what it could not delete: it then succeeds, so the runtime
// can remove the sandbox, and names the leaked resources in the log, a
// Warning event and a record under cniDir/leaked/.
const MaxDelAttempts = 3

// Request is one CNI invocation.
type Request struct {
	ContainerID string
	NetNS       string
	IfName      string
	Pod         PodRef
	// Networks is the short-form network list from CNI_ARGS
	// (K8S_POD_NETWORKS), used in clusterless mode.
	Networks string
	// Args are the CNI_ARGS pairs, passed on to every delegate.
	Args [][2]string
}

// Add attaches every network of the pod and returns the primary's result.
func (e *Engine) Add(ctx context.Context, req *Request) (types.Result, error) {
	steps := newStepTimer()
	defer func() { e.Log.Debug("ADD timing", steps.attrs()...) }()
	if err := e.waitReadiness(ctx); err != nil {
		return nil, err
	}
	unlock, err := e.Cache.LockPod(lockKey(req), e.LockTimeout)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", req.Pod, err)
	}
	defer unlock()

	steps.mark("lock")
	pod, err := e.Pods.Pod(ctx, req.Pod)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", req.Pod, err)
	}
	steps.mark("pod")
	// fail reports err (which names the network, the interface and the
	// field, not the pod) in a Warning event on the pod, and returns it
	// prefixed with the pod for the runtime.
	fail := func(err error) (types.Result, error) {
		e.Status.Failed(ctx, pod, networkOf(err), err)
		return nil, fmt.Errorf("pod %s: %w", req.Pod, err)
	}
	atts, err := e.attachments(ctx, pod, req)
	if err != nil {
		return fail(err)
	}
	steps.mark("attachments")
	if err := e.assignDevices(ctx, pod, req, atts); err != nil {
		return fail(err)
	}
	steps.mark("devices")
	if err := checkInterfacesFree(req.NetNS, atts); err != nil {
		return fail(err)
	}
	steps.mark("ifnames")
	entry := &podnet.Entry{
		ContainerID: req.ContainerID, NetNS: req.NetNS, CNIVersion: e.Conf.CNIVersion,
		PodNamespace: req.Pod.Namespace, PodName: req.Pod.Name, PodUID: req.Pod.UID,
		Attachments: atts,
	}
	if err := e.Cache.Save(entry); err != nil {
		return fail(fmt.Errorf("writing cache: %v", err))
	}
	steps.mark("cache")
	results, err := e.runDelegates(ctx, entry)
	if err != nil {
		return fail(err)
	}
	steps.mark("delegates")
	if err := verifyRequests(entry); err != nil {
		e.rollback(ctx, entry, len(entry.Attachments))
		return fail(err)
	}
	if err := applyDefaultRoutes(entry); err != nil {
		e.rollback(ctx, entry, len(entry.Attachments))
		return fail(err)
	}
	out, err := results[0].GetAsVersion(e.Conf.CNIVersion)
	if err != nil {
		e.rollback(ctx, entry, len(entry.Attachments))
		return fail(withNetwork(entry.Attachments[0].Network, fmt.Errorf("network %q: converting the primary's result to cniVersion %s: %v", entry.Attachments[0].Network, e.Conf.CNIVersion, err)))
	}
	statuses, err := e.networkStatus(entry, results)
	if err == nil {
		err = e.Status.Attached(ctx, pod, req.ContainerID, statuses)
	}
	if err != nil {
		// The interfaces are up, but the pod would not learn of them: undo.
		e.rollback(ctx, entry, len(entry.Attachments))
		return fail(fmt.Errorf("publishing network-status: %w", err))
	}
	steps.mark("status")
	if len(e.warnings) > 0 {
		for _, w := range e.warnings {
			e.Log.Warn(w)
		}
		e.Status.Warned(ctx, pod, e.warnings)
	}
	e.Log.Info("attached", "interfaces", len(atts))
	return out, nil
}

// runDelegates runs each attachment's ADD in order and records its result in
// the cache. On the first failure it DELs the ones added, in reverse order,
// removes the cache entry and returns the error.
func (e *Engine) runDelegates(ctx context.Context, entry *podnet.Entry) ([]types.Result, error) {
	results := make([]types.Result, len(entry.Attachments))
	for i := range entry.Attachments {
		a := &entry.Attachments[i]
		if err := e.copyDeviceInfo(a); err != nil {
			e.rollback(ctx, entry, i)
			return nil, err
		}
		res, err := e.Runner.Add(ctx, entry, a)
		if err != nil {
			// A plugin that failed may have half-made its interface: DEL it too.
			a.Added = true
			e.rollback(ctx, entry, i+1)
			return nil, withNetwork(a.Network, err)
		}
		results[i] = res
		a.Added = true
		if a.Result, err = json.Marshal(res); err == nil {
			err = e.Cache.Save(entry)
		}
		if err != nil {
			e.rollback(ctx, entry, i+1)
			return nil, fmt.Errorf("network %q: recording result: %v", a.Network, err)
		}
	}
	return results, nil
}

// rollback DELs attachments [0, n) in reverse order and removes the cache
// entry and device-info files. When a DEL fails, the entry stays, marked
// incomplete, so that the runtime's DEL (or a GC) finishes the job.
func (e *Engine) rollback(ctx context.Context, entry *podnet.Entry, n int) {
	var failed []string
	for i := n - 1; i >= 0; i-- {
		a := &entry.Attachments[i]
		if err := e.Runner.Del(ctx, entry, a); err != nil {
			e.Log.Warn("rollback: DEL failed", "network", a.Network, "interface", a.IfName, "err", err)
			failed = append(failed, err.Error())
			continue
		}
		e.removeDeviceInfo(a)
		a.Added = false
	}
	if len(failed) > 0 {
		entry.Incomplete = true
		entry.LastDelError = strings.Join(failed, "; ")
		if err := e.Cache.Save(entry); err != nil {
			e.Log.Warn("rollback: recording what is left", "err", err)
		}
		return
	}
	if err := e.Cache.Remove(entry.ContainerID); err != nil {
		e.Log.Warn("rollback: removing cache entry", "err", err)
	}
}

// Del detaches everything ADD attached. It works from the cache without the
// API; without a cache entry it rebuilds the attachment list as ADD would,
// when it can, and DELs that; when there is nothing left it succeeds.
func (e *Engine) Del(ctx context.Context, req *Request) error {
	unlock, err := e.Cache.LockPod(lockKey(req), e.LockTimeout)
	if err != nil {
		return fmt.Errorf("pod %s: %w", req.Pod, err)
	}
	defer unlock()
	return e.del(ctx, req)
}

// del is Del under the pod's lock.
func (e *Engine) del(ctx context.Context, req *Request) error {
	entry, err := e.Cache.Load(req.ContainerID)
	if err != nil {
		e.Log.Warn("cache entry unreadable; rebuilding from the pod", "err", err)
	}
	cached := entry != nil
	var multusCache string
	if entry == nil {
		entry, multusCache, err = e.multusEntry(req)
		if err != nil {
			e.Log.Warn("Multus's cache entry unreadable; rebuilding from the pod", "err", err)
		}
		if entry != nil {
			e.Log.Info("no plexus cache entry: deleting what Multus attached, from its cache", "file", multusCache)
		}
	}
	if entry == nil {
		entry = e.rebuild(ctx, req)
		if entry == nil {
			return nil
		}
	}
	if req.NetNS != "" {
		entry.NetNS = req.NetNS
	}
	if entry.NetNS != "" {
		if _, err := os.Stat(entry.NetNS); err != nil {
			// The namespace is gone: its interfaces went with it; delegates
			// still release IPAM and host-side state.
			entry.NetNS = ""
		}
	}
	var errs []error
	for i := len(entry.Attachments) - 1; i >= 0; i-- {
		a := &entry.Attachments[i]
		if err := e.Runner.Del(ctx, entry, a); err != nil {
			errs = append(errs, err)
			continue
		}
		e.removeDeviceInfo(a)
	}
	if len(errs) > 0 {
		err := errors.Join(errs...)
		if !cached {
			return fmt.Errorf("pod %s: DEL: %w", req.Pod, err)
		}
		entry.DelAttempts++
		entry.LastDelError = err.Error()
		entry.Incomplete = true
		if entry.DelAttempts < MaxDelAttempts {
			if serr := e.Cache.Save(entry); serr != nil {
				e.Log.Warn("recording the failed DEL", "err", serr)
			}
			return fmt.Errorf("pod %s: DEL (attempt %d of %d): %w", req.Pod, entry.DelAttempts, MaxDelAttempts, err)
		}
		e.giveUp(ctx, entry, err)
	}
	if multusCache != "" {
		if err := os.Remove(multusCache); err != nil && !errors.Is(err, os.ErrNotExist) {
			e.Log.Warn("removing Multus's cache entry", "file", multusCache, "err", err)
		}
	}
	if err := e.Cache.Remove(req.ContainerID); err != nil {
		return fmt.Errorf("pod %s: removing cache entry: %v", req.Pod, err)
	}
	e.Log.Info("detached", "interfaces", len(entry.Attachments))
	return nil
}

// giveUp ends a DEL that failed MaxDelAttempts times: what could not be
// deleted is named in the log, in a Warning event on the pod and in a record
// under cniDir/leaked/, and DEL succeeds so the sandbox can go.
func (e *Engine) giveUp(ctx context.Context, entry *podnet.Entry, err error) {
	msg := fmt.Sprintf("DEL failed %d times; giving up so the sandbox can be removed; possibly leaked: %v", entry.DelAttempts, err)
	e.Log.Error(msg, "leaked", true)
	if b, merr := json.MarshalIndent(entry, "", "  "); merr == nil {
		path := filepath.Join(e.Cache.Dir, "leaked", entry.ContainerID+".json")
		if werr := atomicfile.WriteFile(path, b, 0o600); werr != nil {
			e.Log.Warn("recording the leak", "path", path, "err", werr)
		}
	}
	if entry.PodName != "" {
		e.Status.Warned(ctx, &Pod{Namespace: entry.PodNamespace, Name: entry.PodName, UID: entry.PodUID}, []string{msg})
	}
}

// rebuild reconstructs the attachments of a container that has no cache
// entry, from the pod and its NADs; nil when that is not possible.
func (e *Engine) rebuild(ctx context.Context, req *Request) *podnet.Entry {
	if req.Pod.Name == "" {
		return nil
	}
	pod, err := e.Pods.Pod(ctx, PodRef{Namespace: req.Pod.Namespace, Name: req.Pod.Name})
	if err != nil {
		e.Log.Info("no cache entry and no pod: nothing to delete", "err", err)
		return nil
	}
	atts, err := e.attachments(ctx, pod, req)
	if err != nil {
		e.Log.Info("no cache entry and the pod's networks do not resolve: nothing to delete", "err", err)
		return nil
	}
	return &podnet.Entry{ContainerID: req.ContainerID, NetNS: req.NetNS, CNIVersion: e.Conf.CNIVersion, Attachments: atts}
}

// Check runs every delegate's CHECK with its cached result.
func (e *Engine) Check(ctx context.Context, req *Request) error {
	unlock, err := e.Cache.LockPod(lockKey(req), e.LockTimeout)
	if err != nil {
		return fmt.Errorf("pod %s: %w", req.Pod, err)
	}
	defer unlock()
	entry, err := e.Cache.Load(req.ContainerID)
	if err != nil {
		return fmt.Errorf("pod %s: %v", req.Pod, err)
	}
	if entry == nil {
		return fmt.Errorf("pod %s: CHECK: no ADD recorded for container %s", req.Pod, req.ContainerID)
	}
	var errs []error
	for i := range entry.Attachments {
		if err := e.Runner.Check(ctx, entry, &entry.Attachments[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("pod %s: CHECK: %w", req.Pod, errors.Join(errs...))
	}
	return nil
}

// GC removes the state of every container not in valid, and lets each known
// delegate collect what is not in use any more. It holds the GC lock, so no
// ADD or DEL runs meanwhile. It never frees a live container's state: an
// entry of a valid container is kept even when it cannot be read, and then
// no delegate GC runs at all (plexus could not tell the delegates what that
// container holds). Each delegate's GC gets the NAD's conflist as resolved,
// without any one pod's device ID or cni-args.
func (e *Engine) GC(ctx context.Context, valid []types.GCAttachment) error {
	unlock, err := e.Cache.LockGC(e.LockTimeout)
	if err != nil {
		return fmt.Errorf("GC: %w", err)
	}
	defer unlock()
	keep := map[string]bool{}
	for _, v := range valid {
		keep[v.ContainerID] = true
	}
	ids, err := e.Cache.List()
	if err != nil {
		return err
	}
	lists := newGCLists()
	unknownValid := false
	var errs []error
	for _, id := range ids {
		entry, err := e.Cache.Load(id)
		if err != nil || entry == nil {
			if keep[id] {
				e.Log.Warn("GC: keeping the unreadable cache entry of a valid container; skipping delegate GC", "container", id, "err", err)
				unknownValid = true
				continue
			}
			e.Log.Warn("GC: dropping unreadable cache entry of a container that is gone", "container", id, "err", err)
			_ = e.Cache.Remove(id)
			continue
		}
		lists.add(entry, keep[id])
		if keep[id] {
			continue
		}
		if err := e.gcContainer(ctx, entry); err != nil {
			errs = append(errs, fmt.Errorf("GC of container %s: %w", id, err))
		}
	}
	if unknownValid {
		return errors.Join(errs...)
	}
	for _, name := range lists.order {
		d := lists.byName[name]
		l, err := delegate.List(&podnet.Attachment{Network: name, ConfList: d.conf})
		if err != nil {
			continue
		}
		if err := e.Runner.GC(ctx, l, d.valid); err != nil {
			errs = append(errs, fmt.Errorf("GC of network %q: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// gcContainer DELs a container the runtime no longer lists.
func (e *Engine) gcContainer(ctx context.Context, entry *podnet.Entry) error {
	req := &Request{ContainerID: entry.ContainerID, NetNS: entry.NetNS, Pod: PodRef{Namespace: entry.PodNamespace, Name: entry.PodName}}
	unlock, err := e.Cache.LockPodInGC(lockKey(req), e.LockTimeout)
	if err != nil {
		return err
	}
	defer unlock()
	return e.del(ctx, req)
}

// gcLists collects, per delegate network, one conflist and the attachments
// still valid for it.
type gcLists struct {
	order  []string
	byName map[string]*gcList
}

type gcList struct {
	conf  []byte
	valid []types.GCAttachment
}

func newGCLists() *gcLists { return &gcLists{byName: map[string]*gcList{}} }

func (g *gcLists) add(entry *podnet.Entry, valid bool) {
	for _, a := range entry.Attachments {
		l, err := delegate.List(&a)
		if err != nil {
			continue
		}
		d := g.byName[l.Name]
		if d == nil {
			d = &gcList{conf: a.ConfList}
			g.byName[l.Name] = d
			g.order = append(g.order, l.Name)
		}
		if valid {
			d.valid = append(d.valid, types.GCAttachment{ContainerID: entry.ContainerID, IfName: a.IfName})
		}
	}
}

// StatusCheck reports whether plexus is ready (CNI 1.1 STATUS): the
// readiness indicator file (when configured) exists, and every network that
// every pod needs reports ready: the primary, the other inline delegates
// and the defaultNetworks. It makes no API request: NADs are read only
// from LocalNADs (clusterless mode's directory), and a defaultNetwork that
// is not local is checked through the conf of that name in confDir, or
// skipped when there is none.
func (e *Engine) StatusCheck(ctx context.Context) error {
	if f := e.Conf.ReadinessIndicatorFile; f != "" {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("readiness indicator file %s: %v", f, err)
		}
	}
	local := *e
	local.NADs = e.LocalNADs
	if local.NADs == nil {
		local.NADs = noNADs{}
	}
	l, name, err := local.primary(ctx, nil)
	if err != nil {
		return err
	}
	lists := []*libcni.NetworkConfigList{l}
	names := []string{name}
	for i := 1; i < len(e.Conf.Delegates); i++ {
		l, err := nad.ConfList(e.Conf.Delegates[i], "delegate-"+strconv.Itoa(i), e.Conf.CNIVersion)
		if err != nil {
			return fmt.Errorf("plexus config: key \"delegates\"[%d]: %v", i, err)
		}
		lists, names = append(lists, l), append(names, l.Name)
	}
	for _, dn := range e.Conf.DefaultNetworks {
		els, _, err := selection.ParseWithWarnings(dn, e.Conf.MultusNamespace, true)
		if err != nil {
			return fmt.Errorf("plexus config: key \"defaultNetworks\": %v", err)
		}
		for _, el := range els {
			_, l, err := local.resolveNAD(ctx, el.Namespace, el.Name, true)
			if errors.Is(err, ErrNADNotFound) {
				l, err = nad.ConfByName(e.Conf.ConfDir, el.Name)
				if err != nil {
					e.Log.Debug("STATUS: defaultNetwork not checkable without the API", "network", el.Namespace+"/"+el.Name)
					continue
				}
			}
			if err != nil {
				return fmt.Errorf("network %q: %w", el.Namespace+"/"+el.Name, err)
			}
			lists, names = append(lists, l), append(names, el.Namespace+"/"+el.Name)
		}
	}
	var errs []error
	for i, l := range lists {
		if err := e.Runner.Status(ctx, l); err != nil {
			errs = append(errs, fmt.Errorf("network %q: %w", names[i], err))
		}
	}
	return errors.Join(errs...)
}

// noNADs is the NAD source of STATUS in Kubernetes mode: no API requests.
type noNADs struct{}

func (noNADs) NAD(_ context.Context, namespace, name string) (*nadv1.NetworkAttachmentDefinition, error) {
	return nil, fmt.Errorf("%s/%s: %w", namespace, name, ErrNADNotFound)
}

func (e *Engine) waitReadiness(ctx context.Context) error {
	f := e.Conf.ReadinessIndicatorFile
	if f == "" {
		return nil
	}
	if _, err := os.Stat(f); err == nil {
		return nil
	}
	deadline := time.Now().Add(time.Duration(e.Conf.ReadinessTimeout) * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := os.Stat(f); err == nil {
			return nil
		}
	}
	return fmt.Errorf("readiness indicator file %s did not appear within %ds (key \"readinessindicatorfile\")", f, e.Conf.ReadinessTimeout)
}

func (e *Engine) networkStatus(entry *podnet.Entry, results []types.Result) ([]nadv1.NetworkStatus, error) {
	out := make([]nadv1.NetworkStatus, 0, len(results))
	for i, res := range results {
		a := &entry.Attachments[i]
		st, err := publish.FromResult(a.Network, a.IfName, a.Primary, res, e.loadDeviceInfo(a))
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func lockKey(req *Request) string {
	if req.Pod.Name != "" {
		return req.Pod.Namespace + "/" + req.Pod.Name
	}
	return req.ContainerID
}

// stepTimer records how long each step of an ADD took, for the debug log.
type stepTimer struct {
	last  time.Time
	start time.Time
	steps []any
}

func newStepTimer() *stepTimer { n := time.Now(); return &stepTimer{last: n, start: n} }

func (s *stepTimer) mark(step string) {
	n := time.Now()
	s.steps = append(s.steps, step, n.Sub(s.last).String())
	s.last = n
}

func (s *stepTimer) attrs() []any { return append(s.steps, "total", time.Since(s.start).String()) }

// netError tags an error with the network it is about, for Warning events.
type netError struct {
	network string
	err     error
}

func (n *netError) Error() string { return n.err.Error() }
func (n *netError) Unwrap() error { return n.err }

func withNetwork(network string, err error) error { return &netError{network: network, err: err} }

func networkOf(err error) string {
	var ne *netError
	if errors.As(err, &ne) {
		return ne.network
	}
	return ""
}
