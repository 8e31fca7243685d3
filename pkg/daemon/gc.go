package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// gcLoop collects, every GCInterval, the cache entries whose sandbox is
// gone without a DEL (Multus #1488: such files were never collected): the
// runtime lost the sandbox, or it was removed behind its back. The
// runtime's own CNI GC (CNI 1.1) does the same when the runtime calls it;
// this covers runtimes that do not.
func (d *Daemon) gcLoop(ctx context.Context) {
	t := time.NewTicker(d.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if d.Synced() {
			d.GCOnce(ctx)
		}
	}
}

// GCOnce removes every entry whose sandbox is gone: its network namespace
// no longer exists (or it has none, and its pod is not on this node), and
// its entry is older than GCGrace (an ADD in progress is never touched).
// Each is DELeted through the attach stage, under the pod's lock, so that
// its delegates release IPs and devices. It returns how many it removed.
func (d *Daemon) GCOnce(ctx context.Context) int {
	ids, err := d.att.Cache.List()
	if err != nil {
		d.log.Warn("GC: listing the cache", "err", err)
		return 0
	}
	uids := map[string]bool{}
	for _, obj := range d.pods.GetStore().List() {
		uids[string(obj.(*corev1.Pod).UID)] = true
	}
	removed := 0
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		fi, err := os.Stat(filepath.Join(d.att.Cache.ContainerDir(id)))
		if err != nil || time.Since(fi.ModTime()) < d.opts.GCGrace {
			continue
		}
		entry, err := d.att.Cache.Load(id)
		if err != nil || entry == nil {
			continue // the runtime's GC decides about unreadable entries
		}
		if !sandboxGone(entry, uids) {
			continue
		}
		req := &podnet.Request{ContainerID: id, Pod: podnet.PodRef{Namespace: entry.PodNamespace, Name: entry.PodName, UID: entry.PodUID}}
		log := d.log.With("container", id, "pod", req.Pod.String(), "netns", entry.NetNS)
		if err := d.att.Del(ctx, req, nil); err != nil {
			log.Warn("GC: the sandbox is gone; DEL of its delegates failed (retried next round)", "err", err)
			d.metrics.gcRemoved.WithLabelValues("error").Inc()
			continue
		}
		if err := d.box.RemoveContainer(id); err != nil {
			log.Warn("GC: dropping the container's outbox records", "err", err)
		}
		log.Info("GC: removed the state of a sandbox that is gone")
		d.metrics.gcRemoved.WithLabelValues("success").Inc()
		removed++
	}
	return removed
}

// sandboxGone: the entry's network namespace is gone, as seen from here.
// A path plexusd cannot see (its directory is not mounted into plexusd's
// container, a /proc path of another PID namespace) proves nothing: then
// the pod must also be gone from the node.
func sandboxGone(e *podnet.Entry, podUIDs map[string]bool) bool {
	podGone := e.PodUID != "" && !podUIDs[e.PodUID]
	if e.NetNS == "" {
		return podGone
	}
	if _, err := os.Stat(e.NetNS); !errors.Is(err, os.ErrNotExist) {
		return false
	}
	if strings.HasPrefix(e.NetNS, "/proc/") {
		return podGone
	}
	if _, err := os.Stat(filepath.Dir(e.NetNS)); err != nil {
		return podGone
	}
	return true
}
