// Package attach is the second stage of an attach (docs/architecture.md, "Three
// stages"): given an attachment list it runs the delegates — per-pod lock,
// intent in the cache before the first delegate, libcni, rollback, the
// checks of requested IPs and MACs, default routes — and undoes them on DEL,
// CHECK and GC. It needs nothing from Kubernetes: its import graph holds no
// k8s.io, grpc or protobuf package (deps_test.go), so the lean CNI shim of
// the daemon deployment can link it and start like a hello-world binary.
package attach

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/plexus-cni/plexus/pkg/atomicfile"
	"github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/config"
	"github.com/plexus-cni/plexus/pkg/delegate"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

// Attacher runs and undoes the delegates of pods on this node.
type Attacher struct {
	Cache  cache.Store
	Runner *delegate.Runner
	Log    *slog.Logger
	// CNIVersion is plexus's config version, recorded in cache entries.
	CNIVersion string
	// LockTimeout bounds the wait for another operation on the same pod
	// (cache.DefaultLockTimeout when 0).
	LockTimeout time.Duration
	// DeviceInfoDir is the base of device-info files (devinfo.DefaultDir
	// when empty).
	DeviceInfoDir string
	// MultusCacheDir is where Multus kept its per-container cache ("" for
	// none): DEL of a pod Multus attached reads it.
	MultusCacheDir string
	// Warn reports a message about a pod (a Warning event); may be nil.
	Warn func(ctx context.Context, pod *podnet.Pod, msg string)
}

// Rebuild reconstructs the attachments of a container that has no cache
// entry (nil when that is not possible), for DEL.
type Rebuild func(ctx context.Context, req *podnet.Request) *podnet.Entry

// MaxDelAttempts is how many times DEL of a container fails before plexus
// gives up on what it could not delete: it then succeeds, so the runtime
// can remove the sandbox, and names the leaked resources in the log, a
// Warning event and a record under cniDir/leaked/.
const MaxDelAttempts = 3

// Lock takes the pod's lock for an ADD, or a DEL that does more under it
// (DelLocked). Del, Check and GC take their own.
func (e *Attacher) Lock(req *podnet.Request) (func(), error) {
	unlock, err := e.Cache.LockPod(req.LockKey(), e.LockTimeout)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", req.Pod, err)
	}
	return unlock, nil
}

// Add records the intent of entry in the cache and runs each attachment's
// delegate, then checks requested IPs and MACs and applies default routes.
// On failure everything it made is undone (what it could not undo stays in
// the cache, marked) and the error names the network.
func (e *Attacher) Add(ctx context.Context, entry *podnet.Entry) ([]types.Result, error) {
	if err := checkInterfacesFree(entry.NetNS, entry.Attachments); err != nil {
		return nil, err
	}
	if err := e.Cache.Save(entry); err != nil {
		return nil, fmt.Errorf("writing cache: %v", err)
	}
	results, err := e.runDelegates(ctx, entry)
	if err != nil {
		return nil, err
	}
	if err := verifyRequests(entry); err != nil {
		e.Rollback(ctx, entry)
		return nil, err
	}
	if err := applyDefaultRoutes(entry); err != nil {
		e.Rollback(ctx, entry)
		return nil, err
	}
	return results, nil
}

// Rollback undoes every attachment of entry (after a later step failed).
func (e *Attacher) Rollback(ctx context.Context, entry *podnet.Entry) {
	e.rollback(ctx, entry, len(entry.Attachments))
}

// Del detaches everything ADD attached. It works from the cache without the
// API; without a cache entry it reads Multus's, else asks rebuild; when
// there is nothing left it succeeds.
func (e *Attacher) Del(ctx context.Context, req *podnet.Request, rebuild Rebuild) error {
	unlock, err := e.Cache.LockPod(req.LockKey(), e.LockTimeout)
	if err != nil {
		return fmt.Errorf("pod %s: %w", req.Pod, err)
	}
	defer unlock()
	return e.del(ctx, req, rebuild)
}

// DelLocked is Del for a caller that holds the pod's lock (Lock).
func (e *Attacher) DelLocked(ctx context.Context, req *podnet.Request, rebuild Rebuild) error {
	return e.del(ctx, req, rebuild)
}

// runDelegates runs each attachment's ADD in order and records its result in
// the cache. On the first failure it DELs the ones added, in reverse order,
// removes the cache entry and returns the error.
func (e *Attacher) runDelegates(ctx context.Context, entry *podnet.Entry) ([]types.Result, error) {
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
			return nil, podnet.WithNetwork(a.Network, err)
		}
		results[i] = res
		a.Added = true
		if a.Result, err = json.Marshal(res); err != nil {
			e.rollback(ctx, entry, i+1)
			return nil, fmt.Errorf("network %q: recording result: %v", a.Network, err)
		}
	}
	// The results are recorded once, after the last delegate: a crash-safe
	// write costs an fsync of the file and of its directory, and the intent
	// written before the first delegate already names every attachment a
	// DEL must undo (DEL needs no result), so per-delegate writes would buy
	// nothing but N fsyncs on every ADD; for the same reason this one write
	// is atomic but not fsynced (cache.SaveResults).
	if err := e.Cache.SaveResults(entry); err != nil {
		e.rollback(ctx, entry, len(entry.Attachments))
		return nil, fmt.Errorf("recording results: %v", err)
	}
	return results, nil
}

// rollback DELs attachments [0, n) in reverse order and removes the cache
// entry and device-info files. When a DEL fails, the entry stays, marked
// incomplete, so that the runtime's DEL (or a GC) finishes the job.
func (e *Attacher) rollback(ctx context.Context, entry *podnet.Entry, n int) {
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

// del is Del under the pod's lock.
func (e *Attacher) del(ctx context.Context, req *podnet.Request, rebuild Rebuild) error {
	entry, err := e.Cache.Load(req.ContainerID)
	if err != nil {
		e.Log.Warn("cache entry unreadable; rebuilding from the pod", "err", err)
	}
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
	if entry == nil && rebuild != nil {
		entry = rebuild(ctx, req)
	}
	if entry == nil {
		return nil
	}
	if entry.PodName == "" {
		entry.PodNamespace, entry.PodName, entry.PodUID = req.Pod.Namespace, req.Pod.Name, req.Pod.UID
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
		// An entry rebuilt from the pod or read from Multus's cache is
		// recorded too, so that its attempts count toward the way out.
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
	if multusCache == "" && e.MultusCacheDir != "" && req.ContainerID != "" {
		// A Multus entry whose first DEL failed was recorded in plexus's
		// cache; its file goes once the DEL succeeds.
		multusCache = filepath.Join(e.MultusCacheDir, filepath.Base(req.ContainerID))
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
func (e *Attacher) giveUp(ctx context.Context, entry *podnet.Entry, err error) {
	msg := fmt.Sprintf("DEL failed %d times; giving up so the sandbox can be removed; possibly leaked: %v", entry.DelAttempts, err)
	e.Log.Error(msg, "leaked", true)
	if b, merr := json.MarshalIndent(entry, "", "  "); merr == nil {
		path := filepath.Join(e.Cache.Dir, "leaked", entry.ContainerID+".json")
		if werr := atomicfile.WriteFile(path, b, 0o600); werr != nil {
			e.Log.Warn("recording the leak", "path", path, "err", werr)
		}
	}
	if e.Warn != nil && entry.PodName != "" {
		e.Warn(ctx, &podnet.Pod{Namespace: entry.PodNamespace, Name: entry.PodName, UID: entry.PodUID}, msg)
	}
}

// Check runs every delegate's CHECK with its cached result.
func (e *Attacher) Check(ctx context.Context, req *podnet.Request) error {
	unlock, err := e.Cache.LockPod(req.LockKey(), e.LockTimeout)
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
func (e *Attacher) GC(ctx context.Context, valid []types.GCAttachment) error {
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
func (e *Attacher) gcContainer(ctx context.Context, entry *podnet.Entry) error {
	req := &podnet.Request{ContainerID: entry.ContainerID, NetNS: entry.NetNS, Pod: podnet.PodRef{Namespace: entry.PodNamespace, Name: entry.PodName}}
	unlock, err := e.Cache.LockPodInGC(req.LockKey(), e.LockTimeout)
	if err != nil {
		return err
	}
	defer unlock()
	return e.del(ctx, req, nil)
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

// ForConfig is the Attacher of plexus's config c: delegates are looked up
// in binDir, then in cniPath (CNI_PATH).
func ForConfig(c *config.Conf, log *slog.Logger, cniPath string) *Attacher {
	path := []string{c.BinDir}
	for _, p := range filepath.SplitList(cniPath) {
		if p != "" && p != c.BinDir {
			path = append(path, p)
		}
	}
	return &Attacher{
		Cache: cache.Store{Dir: c.CNIDir}, Runner: delegate.NewRunner(path, filepath.Join(c.CNIDir, "results")), Log: log,
		CNIVersion: c.CNIVersion, DeviceInfoDir: c.DeviceInfoDir, MultusCacheDir: c.MultusCacheDir,
	}
}

// CNIError is err as the CNI error the runtime shows: the whole message
// (pod, network, interface, delegate) — skel would print only the innermost
// delegate error — with the delegate's error code and details kept once.
func CNIError(err error) error {
	if err == nil {
		return nil
	}
	code, details := types.ErrInternal, ""
	var te *types.Error
	if errors.As(err, &te) {
		code, details = te.Code, te.Details
	}
	return types.NewError(code, strings.TrimSuffix(err.Error(), "; "+details), details)
}
