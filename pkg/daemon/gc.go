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

// GCOnce removes every entry whose sandbox is gone as seen from plexusd
// (planGC decides) and that is older than GCGrace (an ADD in progress is
// never touched). Each is DELeted through the attach stage, under the
// pod's lock, so that its delegates release IPs and devices. It returns
// how many it removed.
func (d *Daemon) GCOnce(ctx context.Context) int {
	ids, err := d.att.Cache.List()
	if err != nil {
		d.log.Warn("GC: listing the cache", "err", err)
		return 0
	}
	var cands []gcCandidate
	for _, id := range ids {
		fi, err := os.Stat(filepath.Join(d.att.Cache.ContainerDir(id)))
		if err != nil {
			continue
		}
		c := gcCandidate{ID: id, Age: time.Since(fi.ModTime())}
		if c.Age >= d.opts.GCGrace {
			if c.Entry, err = d.att.Cache.Load(id); err == nil && c.Entry != nil {
				c.NetNS = probeNetNS(c.Entry.NetNS)
			}
		}
		cands = append(cands, c)
	}
	var pods []*corev1.Pod
	for _, obj := range d.pods.GetStore().List() {
		pods = append(pods, obj.(*corev1.Pod))
	}
	removed := 0
	for _, c := range planGC(cands, pods, d.opts.GCGrace) {
		if ctx.Err() != nil {
			break
		}
		entry := c.Entry
		req := &podnet.Request{ContainerID: c.ID, Pod: podnet.PodRef{Namespace: entry.PodNamespace, Name: entry.PodName, UID: entry.PodUID}}
		log := d.log.With("container", c.ID, "pod", req.Pod.String(), "netns", entry.NetNS)
		if err := d.att.Del(ctx, req, nil); err != nil {
			log.Warn("GC: the sandbox is gone; DEL of its delegates failed (retried next round)", "err", err)
			d.metrics.gcRemoved.WithLabelValues("error").Inc()
			continue
		}
		if err := d.box.RemoveContainer(c.ID); err != nil {
			log.Warn("GC: dropping the container's outbox records", "err", err)
		}
		log.Info("GC: removed the state of a sandbox that is gone")
		d.metrics.gcRemoved.WithLabelValues("success").Inc()
		removed++
	}
	return removed
}

// netnsState is what plexusd can tell about an entry's network namespace
// path.
type netnsState int

const (
	// netnsUnchecked: no path, or one plexusd cannot see (its directory
	// is not mounted into plexusd's container, a /proc path of another
	// PID namespace, a stat error other than "does not exist"): it proves
	// nothing.
	netnsUnchecked netnsState = iota
	netnsPresent
	netnsGone // the path is missing from a directory plexusd sees
)

// probeNetNS looks at a netns path from plexusd.
func probeNetNS(path string) netnsState {
	if path == "" {
		return netnsUnchecked
	}
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return netnsPresent
	case !errors.Is(err, os.ErrNotExist), strings.HasPrefix(path, "/proc/"):
		return netnsUnchecked
	}
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return netnsUnchecked
	}
	return netnsGone
}

// gcCandidate is one cache entry as GCOnce found it.
type gcCandidate struct {
	ID    string
	Age   time.Duration // since the entry was last written
	Entry *podnet.Entry // nil: unreadable (the runtime's GC decides)
	NetNS netnsState
}

// planGC is the candidates to collect, given the pods of this node: an
// entry older than grace whose netns is gone. An entry whose netns plexusd
// cannot check is never collected, whether its pod is here or not: the
// runtime's own CNI GC decides about it. An entry with no netns path at
// all is collected when its pod is gone from the node (podPresent).
func planGC(cands []gcCandidate, pods []*corev1.Pod, grace time.Duration) []gcCandidate {
	uids, mirrors := map[string]bool{}, map[string]bool{}
	for _, p := range pods {
		uids[string(p.UID)] = true
		if _, ok := p.Annotations[corev1.MirrorPodAnnotationKey]; ok {
			mirrors[p.Namespace+"/"+p.Name] = true
		}
	}
	var out []gcCandidate
	for _, c := range cands {
		if c.Age < grace || c.Entry == nil {
			continue
		}
		switch {
		case c.NetNS == netnsGone:
			out = append(out, c)
		case c.Entry.NetNS == "" && !podPresent(c.Entry, uids, mirrors):
			out = append(out, c)
		}
	}
	return out
}

// podPresent: the entry's pod is on the node, or cannot be told gone (no
// UID). The UID a static pod's sandbox was added with is never the UID of
// its mirror pod in the API: a static pod is matched by namespace/name to a
// pod with the kubernetes.io/config.mirror annotation.
func podPresent(e *podnet.Entry, uids, mirrors map[string]bool) bool {
	return e.PodUID == "" || uids[e.PodUID] || mirrors[e.PodNamespace+"/"+e.PodName]
}
