package attach

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// Hot-plug (plexusd, docs/hotplug.md): one interface attached to, or
// detached from, a running container, with the steps of ADD and DEL. The
// caller holds the pod's lock (Lock) and has just read entry from the
// cache under it. The entry lists exactly what is attached at every
// moment: an addition's intent is saved before its delegate runs, a
// removal leaves the entry only once its DEL succeeded, so a runtime DEL,
// a GC or a restarted plexusd always finds everything there is to undo.

// ErrPrimary refuses to detach the primary interface.
var ErrPrimary = errors.New("the primary interface cannot be detached from a running pod")

// AddOne attaches a to the running container of entry: the interface
// must be free in the pod's namespace, the intent (entry with a appended)
// is saved before the delegate runs, then the delegate, the requested
// IPs/MAC check and a's default route, then the result is saved. On
// failure a alone is DELeted and dropped from the entry; the container's
// other interfaces are untouched. What its DEL could not undo stays in the
// entry (a later DelOne, the runtime's DEL or a GC finishes it).
func (e *Attacher) AddOne(ctx context.Context, entry *podnet.Entry, a podnet.Attachment) (types.Result, error) {
	if a.Primary {
		return nil, podnet.AttachError(a.Network, a.IfName, fmt.Errorf("hot-plug attaches secondary interfaces only"))
	}
	for _, h := range entry.Attachments {
		if h.IfName == a.IfName {
			return nil, podnet.AttachError(a.Network, a.IfName, fmt.Errorf("interface %q is taken by network %q", a.IfName, h.Network))
		}
	}
	if err := checkInterfacesFree(entry.NetNS, []podnet.Attachment{a}); err != nil {
		return nil, err
	}
	a.Added, a.Result = false, nil
	entry.Attachments = append(entry.Attachments, a)
	i := len(entry.Attachments) - 1
	if err := e.Cache.Save(entry); err != nil {
		entry.Attachments = entry.Attachments[:i]
		return nil, podnet.AttachError(a.Network, a.IfName, fmt.Errorf("writing the cache: %v", err))
	}
	p := &entry.Attachments[i]
	fail := func(err error) (types.Result, error) {
		if derr := e.DelOne(ctx, entry, i); derr != nil {
			return nil, fmt.Errorf("%w; undoing it: %v", err, derr)
		}
		return nil, err
	}
	if err := e.copyDeviceInfo(p); err != nil {
		return fail(err)
	}
	res, err := e.Runner.Add(ctx, entry, p)
	// A plugin that failed may have half-made its interface: DEL it too.
	p.Added = true
	if err != nil {
		return fail(podnet.WithNetwork(p.Network, err))
	}
	if p.Result, err = json.Marshal(res); err != nil {
		return fail(podnet.AttachError(p.Network, p.IfName, fmt.Errorf("recording the result: %v", err)))
	}
	one := &podnet.Entry{NetNS: entry.NetNS, Attachments: []podnet.Attachment{*p}}
	if err := verifyRequests(one); err != nil {
		return fail(err)
	}
	if err := applyDefaultRoutes(one); err != nil {
		return fail(err)
	}
	if err := e.Cache.Save(entry); err != nil {
		return fail(podnet.AttachError(p.Network, p.IfName, fmt.Errorf("recording the result: %v", err)))
	}
	return res, nil
}

// DelOne detaches entry.Attachments[i] from the running container of
// entry, with DEL's steps (its delegate's DEL, its device-info copy), and
// then drops it from the entry, saved. When the DEL fails the attachment
// stays in the entry, marked added, and the error names it.
func (e *Attacher) DelOne(ctx context.Context, entry *podnet.Entry, i int) error {
	if i < 0 || i >= len(entry.Attachments) {
		return fmt.Errorf("container %s: no attachment %d", entry.ContainerID, i)
	}
	a := &entry.Attachments[i]
	if a.Primary {
		return podnet.AttachError(a.Network, a.IfName, ErrPrimary)
	}
	run := entry
	if entry.NetNS != "" {
		if _, err := os.Stat(entry.NetNS); err != nil {
			// The namespace is gone: its interfaces went with it; the
			// delegate still releases IPAM and host-side state.
			c := *entry
			c.NetNS = ""
			run = &c
		}
	}
	if err := e.Runner.Del(ctx, run, a); err != nil {
		a.Added = true
		if serr := e.Cache.Save(entry); serr != nil {
			e.Log.Warn("hot-plug: recording a failed DEL", "err", serr)
		}
		return podnet.WithNetwork(a.Network, err)
	}
	e.removeDeviceInfo(a)
	entry.Attachments = append(entry.Attachments[:i:i], entry.Attachments[i+1:]...)
	if err := e.Cache.Save(entry); err != nil {
		return podnet.AttachError(a.Network, a.IfName, fmt.Errorf("detached, but writing the cache: %v", err))
	}
	return nil
}
