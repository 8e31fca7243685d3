package attach

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// Hot-plug (plexusd, docs/hotplug.md): interfaces attached to, or detached
// from, a running container, with the steps of ADD and DEL, a phase at a
// time. The caller holds the pod's lock (Lock) and has just read entry
// from the cache under it. The entry lists at every moment at least what
// is attached: additions' intents are saved before their delegates run,
// and a removal leaves the entry only after its DEL succeeded, so a
// runtime DEL, a GC or a restarted plexusd always finds everything there
// is to undo. Each phase writes the entry once or twice, not once per
// interface: a pass over many interfaces costs O(N) bytes written, not
// O(N²).

// ErrPrimary refuses to detach the primary interface.
var ErrPrimary = errors.New("the primary interface cannot be detached from a running pod")

// errNotRun is the outcome of an operation a phase did not start (more
// said stop).
var errNotRun = errors.New("not run: the pass's time budget is spent")

// NotRun reports whether a phase's outcome is that of an operation it did
// not start: nothing was done, it is to be tried in a later pass.
func NotRun(err error) bool { return errors.Is(err, errNotRun) }

// Outcome is what a phase did with one interface: Err nil when done, and
// how long its delegate (and checks) took.
type Outcome struct {
	Err  error
	Took time.Duration
}

// AddSome attaches atts, in order, to the running container of entry. Each
// must be a secondary whose interface is free in the entry and in the
// pod's namespace (else its outcome is that error and nothing runs for
// it). The intents of the others are saved together (one durable write)
// before the first delegate runs; then, for each while more() (nil:
// always), its delegate, the requested IPs/MAC check and its default
// route; then the results are saved together. An attachment that fails is
// DELeted alone and dropped from the entry (what its DEL could not undo
// stays, for a later pass, the runtime's DEL or a GC); the container's
// other interfaces are untouched. Those not started once more() is false
// are dropped from the entry with the outcome NotRun. It returns one
// outcome per element of atts.
func (e *Attacher) AddSome(ctx context.Context, entry *podnet.Entry, atts []podnet.Attachment, more func() bool) []Outcome {
	out := make([]Outcome, len(atts))
	errs := make([]error, len(atts))
	defer func() {
		for k := range out {
			out[k].Err = errs[k]
		}
	}()
	taken := map[string]string{}
	for _, h := range entry.Attachments {
		taken[h.IfName] = h.Network
	}
	first := len(entry.Attachments)
	var pending []int // index into atts of each intent appended, in order
	for k, a := range atts {
		if a.Primary {
			errs[k] = podnet.AttachError(a.Network, a.IfName, fmt.Errorf("hot-plug attaches secondary interfaces only"))
			continue
		}
		if other, ok := taken[a.IfName]; ok {
			errs[k] = podnet.AttachError(a.Network, a.IfName, fmt.Errorf("interface %q is taken by network %q", a.IfName, other))
			continue
		}
		if err := checkInterfacesFree(entry.NetNS, []podnet.Attachment{a}); err != nil {
			errs[k] = err
			continue
		}
		taken[a.IfName] = a.Network
		a.Added, a.Result = false, nil
		entry.Attachments = append(entry.Attachments, a)
		pending = append(pending, k)
	}
	if len(pending) == 0 {
		return out
	}
	if err := e.Cache.Save(entry); err != nil {
		for _, k := range pending {
			errs[k] = podnet.AttachError(atts[k].Network, atts[k].IfName, fmt.Errorf("writing the cache: %v", err))
		}
		entry.Attachments = entry.Attachments[:first]
		return out
	}
	drop := map[int]bool{} // entry indexes to drop at the end
	for j, k := range pending {
		i := first + j
		if more != nil && !more() {
			errs[k] = errNotRun
			drop[i] = true
			continue
		}
		start := time.Now()
		errs[k] = e.attachOne(ctx, entry, i)
		out[k].Took = time.Since(start)
		if errs[k] != nil && !entry.Attachments[i].Added {
			drop[i] = true // undone, or never run
		}
	}
	kept := entry.Attachments[:first]
	for i := first; i < len(entry.Attachments); i++ {
		if !drop[i] {
			kept = append(kept, entry.Attachments[i])
		}
	}
	entry.Attachments = kept
	// Atomic but not fsynced, as ADD's results (cache.SaveResults): the
	// intents are durable, and a DEL needs no result.
	if err := e.Cache.SaveResults(entry); err != nil {
		e.Log.Warn("hot-plug: recording results", "err", err)
		for _, k := range pending {
			if errs[k] == nil {
				errs[k] = podnet.AttachError(atts[k].Network, atts[k].IfName, fmt.Errorf("recording the result: %v", err))
			}
		}
		// The next pass finds intents without results and undoes them.
	}
	return out
}

// attachOne runs the delegate of entry.Attachments[i], an intent already
// saved, and its checks. On failure it DELetes it: Added is false when
// that DEL succeeded (nothing left); when something may be left Added is
// true without a result, which the next pass undoes.
func (e *Attacher) attachOne(ctx context.Context, entry *podnet.Entry, i int) error {
	p := &entry.Attachments[i]
	fail := func(err error) error {
		if derr := e.Runner.Del(ctx, entry, p); derr != nil {
			p.Added, p.Result = true, nil
			return fmt.Errorf("%w; undoing it: %v", err, derr)
		}
		e.removeDeviceInfo(p)
		p.Added, p.Result = false, nil
		return err
	}
	if err := e.copyDeviceInfo(p); err != nil {
		return fail(err)
	}
	res, err := e.Runner.Add(ctx, entry, p)
	if err != nil {
		// A plugin that failed may have half-made its interface: DEL it.
		return fail(podnet.WithNetwork(p.Network, err))
	}
	if p.Result, err = json.Marshal(res); err != nil {
		return fail(podnet.AttachError(p.Network, p.IfName, fmt.Errorf("recording the result: %v", err)))
	}
	p.Added = true
	one := &podnet.Entry{NetNS: entry.NetNS, Attachments: []podnet.Attachment{*p}}
	if err := verifyRequests(one); err != nil {
		return fail(err)
	}
	if err := applyDefaultRoutes(one); err != nil {
		return fail(err)
	}
	return nil
}

// DelSome detaches entry.Attachments[i] for each i of idx, in that order,
// while more() (nil: always), from the running container of entry, with
// DEL's steps (its delegate's DEL, its device-info copy); then those
// detached leave the entry, saved once. An attachment whose DEL fails
// stays in the entry, marked added, and its outcome names it; one not
// started has the outcome NotRun. It returns one outcome per element of
// idx.
func (e *Attacher) DelSome(ctx context.Context, entry *podnet.Entry, idx []int, more func() bool) []Outcome {
	out := make([]Outcome, len(idx))
	errs := make([]error, len(idx))
	defer func() {
		for k := range out {
			out[k].Err = errs[k]
		}
	}()
	gone := map[int]bool{}
	run := entry
	if entry.NetNS != "" {
		if _, err := os.Stat(entry.NetNS); err != nil {
			// The namespace is gone: its interfaces went with it; the
			// delegates still release IPAM and host-side state.
			c := *entry
			c.NetNS = ""
			run = &c
		}
	}
	changed := false
	for k, i := range idx {
		if i < 0 || i >= len(entry.Attachments) || gone[i] {
			errs[k] = fmt.Errorf("container %s: no attachment %d", entry.ContainerID, i)
			continue
		}
		a := &entry.Attachments[i]
		if a.Primary {
			errs[k] = podnet.AttachError(a.Network, a.IfName, ErrPrimary)
			continue
		}
		if more != nil && !more() {
			errs[k] = errNotRun
			continue
		}
		changed = true
		start := time.Now()
		err := e.Runner.Del(ctx, run, a)
		out[k].Took = time.Since(start)
		if err != nil {
			a.Added = true
			errs[k] = podnet.WithNetwork(a.Network, err)
			continue
		}
		e.removeDeviceInfo(a)
		gone[i] = true
	}
	if !changed {
		return out
	}
	kept := entry.Attachments[:0:0]
	for i, a := range entry.Attachments {
		if !gone[i] {
			kept = append(kept, a)
		}
	}
	entry.Attachments = kept
	if err := e.Cache.Save(entry); err != nil {
		for k, i := range idx {
			if errs[k] == nil && gone[i] {
				errs[k] = fmt.Errorf("detached, but writing the cache: %v", err)
			}
		}
	}
	return out
}
