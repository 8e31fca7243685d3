package thin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/plexus-cni/plexus/pkg/attach"
	"github.com/plexus-cni/plexus/pkg/config"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/publish"
	"github.com/plexus-cni/plexus/pkg/resolve"
)

// PodSource looks up the pod an operation is for. On ADD a non-empty
// ref.UID must match the pod's UID (static/mirror pods excepted); a pod
// that cannot be found is an error wrapping podnet.ErrPodNotFound.
type PodSource interface {
	Pod(ctx context.Context, ref podnet.PodRef) (*podnet.Pod, error)
}

// Engine runs one CNI command of the thin deployment, where the plexus
// process does all three stages: resolve (Resolver), attach (Attacher),
// publish (Sink).
type Engine struct {
	Conf     *config.Conf
	Pods     PodSource
	Resolver *resolve.Resolver
	Attacher *attach.Attacher
	Sink     publish.Sink
	Log      *slog.Logger
	// Local resolves without the API (clusterless mode's NAD directory,
	// else no NADs), for STATUS.
	Local *resolve.Resolver
}

// Add attaches every network of the pod and returns the primary's result.
// It reads top to bottom like docs/architecture.md's "One ADD".
func (e *Engine) Add(ctx context.Context, req *podnet.Request) (types.Result, error) {
	steps := newStepTimer()
	defer func() { e.Log.Debug("ADD timing", steps.attrs()...) }()
	if err := e.waitReadiness(ctx); err != nil {
		return nil, err
	}
	unlock, err := e.Attacher.Lock(req)
	if err != nil {
		return nil, err
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
		e.Sink.Failed(ctx, pod, podnet.NetworkOf(err), err)
		return nil, fmt.Errorf("pod %s: %w", req.Pod, err)
	}

	// 1. resolve
	atts, err := e.Resolver.Attachments(ctx, pod, req)
	if err != nil {
		return fail(err)
	}
	if err := e.Resolver.AssignDevices(ctx, pod, req, atts); err != nil {
		return fail(err)
	}
	steps.mark("resolve")

	// 2. attach
	entry := &podnet.Entry{
		ContainerID: req.ContainerID, NetNS: req.NetNS, CNIVersion: e.Conf.CNIVersion,
		PodNamespace: req.Pod.Namespace, PodName: req.Pod.Name, PodUID: req.Pod.UID,
		Attachments: atts,
	}
	results, err := e.Attacher.Add(ctx, entry)
	if err != nil {
		return fail(err)
	}
	out, err := results[0].GetAsVersion(e.Conf.CNIVersion)
	if err != nil {
		e.Attacher.Rollback(ctx, entry)
		p := entry.Attachments[0].Network
		return fail(podnet.WithNetwork(p, fmt.Errorf("network %q: converting the primary's result to cniVersion %s: %v", p, e.Conf.CNIVersion, err)))
	}
	steps.mark("attach")

	// 3. publish
	statuses, err := publish.NetworkStatus(entry, results)
	if err == nil {
		err = e.Sink.Attached(ctx, pod, req.ContainerID, statuses)
	}
	if err != nil {
		// The interfaces are up, but the pod would not learn of them: undo.
		e.Attacher.Rollback(ctx, entry)
		return fail(fmt.Errorf("publishing network-status: %w", err))
	}
	if w := e.Resolver.Warnings(); len(w) > 0 {
		for _, m := range w {
			e.Log.Warn(m)
		}
		e.Sink.Warned(ctx, pod, w)
	}
	steps.mark("publish")
	e.Log.Info("attached", "interfaces", len(atts))
	return out, nil
}

// Del detaches everything ADD attached: from the cache (no API request),
// else from Multus's cache, else from the pod's networks resolved again.
func (e *Engine) Del(ctx context.Context, req *podnet.Request) error {
	return e.Attacher.Del(ctx, req, e.rebuild)
}

// rebuild reconstructs the attachments of a container that has no cache
// entry, from the pod and its NADs; nil when that is not possible.
func (e *Engine) rebuild(ctx context.Context, req *podnet.Request) *podnet.Entry {
	if req.Pod.Name == "" {
		return nil
	}
	pod, err := e.Pods.Pod(ctx, podnet.PodRef{Namespace: req.Pod.Namespace, Name: req.Pod.Name})
	if err != nil {
		e.Log.Info("no cache entry and no pod: nothing to delete", "err", err)
		return nil
	}
	atts, err := e.Resolver.Attachments(ctx, pod, req)
	if err != nil {
		e.Log.Info("no cache entry and the pod's networks do not resolve: nothing to delete", "err", err)
		return nil
	}
	return &podnet.Entry{ContainerID: req.ContainerID, NetNS: req.NetNS, CNIVersion: e.Conf.CNIVersion, Attachments: atts}
}

// Check runs every delegate's CHECK with its cached result.
func (e *Engine) Check(ctx context.Context, req *podnet.Request) error {
	return e.Attacher.Check(ctx, req)
}

// GC removes the state of every container not in valid.
func (e *Engine) GC(ctx context.Context, valid []types.GCAttachment) error {
	return e.Attacher.GC(ctx, valid)
}

// StatusCheck reports whether plexus is ready (CNI 1.1 STATUS): the
// readiness indicator file (when configured) exists, and every network that
// every pod needs reports ready. It makes no API request.
func (e *Engine) StatusCheck(ctx context.Context) error {
	if f := e.Conf.ReadinessIndicatorFile; f != "" {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("readiness indicator file %s: %v", f, err)
		}
	}
	lists, names, skipped, err := e.Local.StatusNetworks(ctx)
	if err != nil {
		return err
	}
	for _, s := range skipped {
		e.Log.Debug("STATUS: defaultNetwork not checkable without the API", "network", s)
	}
	var errs []error
	for i, l := range lists {
		if err := e.Attacher.Runner.Status(ctx, l); err != nil {
			errs = append(errs, fmt.Errorf("network %q: %w", names[i], err))
		}
	}
	return errors.Join(errs...)
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
