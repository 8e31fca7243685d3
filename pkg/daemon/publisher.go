package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/types/create"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/plexus-cni/plexus/pkg/k8s"
	"github.com/plexus-cni/plexus/pkg/outbox"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/publish"
)

// Publication: the outbox is scanned when the shim notifies, when a retry
// is due, and every scanInterval in any case (a lost notification costs at
// most that). A failed publication is retried with exponential backoff
// from minBackoff to maxBackoff, for as long as the record exists.
const (
	scanInterval = 2 * time.Second
	minBackoff   = 200 * time.Millisecond
	maxBackoff   = 30 * time.Second
	publishers   = 16
	opBudget     = 5 * time.Second
	// podGrace is how long a record waits for a pod that is not in the API
	// (yet) before it is dropped.
	podGrace = time.Minute
)

// errDrop marks a record that can never be published (it will not get
// better by retrying).
var errDrop = errors.New("unpublishable")

type retry struct {
	attempts int
	next     time.Time
}

func (d *Daemon) publishLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
		case <-t.C:
		}
		next := d.publishOnce(ctx)
		wait := scanInterval
		if !next.IsZero() {
			wait = min(wait, max(time.Until(next), 10*time.Millisecond))
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
	}
}

// publishOnce counts and removes the fallback records, then starts the
// publication of every due record of the outbox that is not being
// published already (at most publishers at a time; the rest wait for the
// next scan, which a finished publication triggers) and returns when the
// earliest pending retry is due (zero when none). A record is claimed
// (outbox.Box.Claim) before it is published.
func (d *Daemon) publishOnce(ctx context.Context) time.Time {
	recs, bad := d.box.List()
	d.reportBad(bad)
	// Fallback records need no API: all of them are counted in this scan,
	// each read once (after a long outage of plexusd there is one per
	// command the shim ran meanwhile).
	pending := recs[:0]
	for _, r := range recs {
		if r.Kind == outbox.KindFallback {
			d.countFallback(r)
			continue
		}
		pending = append(pending, r)
	}
	recs = pending
	d.metrics.outboxDepth.Set(float64(len(recs)))
	if len(recs) > 0 {
		d.metrics.outboxOldest.Set(time.Since(recs[0].Created).Seconds())
	} else {
		d.metrics.outboxOldest.Set(0)
	}
	if !d.Synced() {
		return time.Time{}
	}
	// Coalesce per pod: of a pod's attached records only the newest is
	// published (an older sandbox's status is superseded), and not while
	// an older one of the pod is being published (the newest is written
	// last).
	newest := map[string]*outbox.Record{}
	for _, r := range recs {
		if r.Kind == outbox.KindAttached {
			newest[r.Pod.String()] = r // recs are oldest first
		}
	}
	var due []*outbox.Record
	var next time.Time
	now := time.Now()
	d.mu.Lock()
	busy := map[string]bool{}
	for _, r := range recs {
		if d.inFlight[r.Path] && r.Kind == outbox.KindAttached {
			busy[r.Pod.String()] = true
		}
	}
	live := map[string]bool{}
	for _, r := range recs {
		live[r.Path] = true
		if d.inFlight[r.Path] {
			continue
		}
		if r.Kind == outbox.KindAttached && newest[r.Pod.String()] != r {
			if !r.Claimed && d.inFlight[d.box.ClaimPath(r)] {
				continue // its claim name is being published: next scan
			}
			d.drop(r, "superseded")
			continue
		}
		if r.Kind == outbox.KindAttached && busy[r.Pod.String()] {
			continue
		}
		if st := d.retryState[r.Path]; st != nil && st.next.After(now) {
			if next.IsZero() || st.next.Before(next) {
				next = st.next
			}
			continue
		}
		due = append(due, r)
	}
	for p := range d.retryState {
		if !live[p] && !d.inFlight[p] {
			delete(d.retryState, p)
		}
	}
	// Attached records first (the pods wait for them), oldest first.
	sort.SliceStable(due, func(i, j int) bool {
		return due[i].Kind == outbox.KindAttached && due[j].Kind != outbox.KindAttached
	})
	for _, r := range due {
		if len(d.inFlight) >= publishers {
			break
		}
		if !r.Claimed {
			if d.inFlight[d.box.ClaimPath(r)] {
				continue // an earlier record of the container and kind is being published
			}
			c, err := d.box.Claim(r)
			if err != nil {
				if !errors.Is(err, os.ErrNotExist) { // else gone: its DEL
					d.log.Warn("claiming an outbox record", "file", r.Path, "err", err)
				}
				continue
			}
			delete(d.retryState, c.Path) // a new record under that name
			r = c
		}
		d.inFlight[r.Path] = true
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.publishRecord(ctx, r)
			d.mu.Lock()
			delete(d.inFlight, r.Path)
			d.mu.Unlock()
			d.wake() // the next due record, at once
		}()
	}
	d.mu.Unlock()
	return next
}

// reportBad logs the records List could not read: unreadable ones (List
// removed them) each time, those of a newer schema (left in place) once.
func (d *Daemon) reportBad(bad []error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := map[string]bool{}
	for _, err := range bad {
		if !errors.Is(err, outbox.ErrNewerVersion) {
			d.log.Warn("dropping an unreadable outbox record", "err", err)
			continue
		}
		seen[err.Error()] = true
		if !d.newer[err.Error()] {
			d.log.Warn("leaving an outbox record of a newer schema for the plexusd that reads it", "err", err)
		}
	}
	d.newer = seen
}

// countFallback counts a fallback record and removes it.
func (d *Daemon) countFallback(r *outbox.Record) {
	cmd := commandLabel(r.Command)
	d.metrics.fallbacks.WithLabelValues(cmd).Inc()
	d.log.Info("the shim ran the thin path", "pod", r.Pod.String(), "container", r.ContainerID, "command", r.Command, "reason", r.Reason, "at", r.Created)
	d.done(r, "counted")
}

// publishRecord publishes one claimed record; on a transient failure it
// schedules a retry, on a final one (the pod is gone) it drops the record.
func (d *Daemon) publishRecord(ctx context.Context, r *outbox.Record) {
	ctx, cancel := context.WithTimeout(ctx, opBudget)
	defer cancel()
	// The pod as the API has it (from the informer: no request), for its
	// UID: a static pod's mirror has another UID than the runtime's. The
	// write carries it as a precondition, so a pod re-created meanwhile is
	// refused by the API.
	pod, err := d.podSrc.Pod(ctx, r.Pod)
	if err != nil {
		switch {
		case errors.Is(err, errUnavailable):
			d.later(r, err)
		case errors.Is(err, podnet.ErrPodNotFound) && time.Since(r.Created) < podGrace:
			// Not there yet (a static pod's mirror is created by kubelet
			// after its sandbox): ask again.
			d.later(r, err)
		default:
			// Deleted, or re-created under the same name: nothing to
			// publish to.
			d.log.Info("dropping an outbox record: its pod is gone", "kind", r.Kind, "pod", r.Pod.String(), "err", err)
			d.drop(r, "dropped")
		}
		return
	}
	sess := d.client.Session(k8sOpts)
	switch r.Kind {
	case outbox.KindAttached:
		err = d.publishAttached(ctx, sess, pod, r)
		if err == nil {
			d.metrics.publishDelay.Observe(time.Since(r.Created).Seconds())
		}
	case outbox.KindFailed:
		err = sess.Warning(ctx, pod, k8s.ReasonFailed, k8s.FailedMessage(r.Network, errors.New(r.Error)))
	case outbox.KindWarned:
		err = sess.Warning(ctx, pod, k8s.ReasonWarning, joinWarnings(r.Warnings))
	default:
		d.log.Warn("dropping an outbox record of unknown kind", "kind", r.Kind, "file", r.Path)
		d.drop(r, "dropped")
		return
	}
	if err != nil {
		if errors.Is(err, errDrop) || apierrors.IsNotFound(err) || apierrors.IsConflict(err) || apierrors.IsInvalid(err) {
			d.log.Info("dropping an outbox record the API refuses", "kind", r.Kind, "pod", r.Pod.String(), "err", err)
			d.drop(r, "dropped")
			return
		}
		d.later(r, err)
		return
	}
	d.done(r, "published")
}

var k8sOpts = k8s.Options{Budget: opBudget, Total: opBudget, Attempts: 2}

func (d *Daemon) publishAttached(ctx context.Context, sess *k8s.Client, pod *podnet.Pod, r *outbox.Record) error {
	if r.Entry == nil {
		return fmt.Errorf("an attached record without an entry")
	}
	results := make([]types.Result, len(r.Entry.Attachments))
	for i, a := range r.Entry.Attachments {
		res, err := create.CreateFromBytes(a.Result)
		if err != nil {
			return fmt.Errorf("%w: network %q: result: %v", errDrop, a.Network, err)
		}
		results[i] = res
	}
	statuses, err := publish.NetworkStatus(r.Entry, results)
	if err != nil {
		return fmt.Errorf("%w: %v", errDrop, err)
	}
	return sess.Publish(ctx, pod, statuses, r.Warnings)
}

func joinWarnings(ws []string) string {
	out := ""
	for i, w := range ws {
		if i > 0 {
			out += "; "
		}
		out += w
	}
	return out
}

func (d *Daemon) later(r *outbox.Record, err error) {
	d.mu.Lock()
	st := d.retryState[r.Path]
	if st == nil {
		st = &retry{}
		d.retryState[r.Path] = st
	}
	st.attempts++
	b := minBackoff << min(st.attempts-1, 10)
	st.next = time.Now().Add(min(b, maxBackoff))
	d.mu.Unlock()
	d.metrics.published.WithLabelValues(kindLabel(r.Kind), "failed").Inc()
	d.log.Warn("publishing failed; retrying", "kind", r.Kind, "pod", r.Pod.String(), "attempt", st.attempts, "err", err)
}

func (d *Daemon) done(r *outbox.Record, outcome string) {
	if err := d.box.Remove(r); err != nil {
		d.log.Warn("removing a published outbox record", "file", r.Path, "err", err)
	}
	d.mu.Lock()
	delete(d.retryState, r.Path)
	d.mu.Unlock()
	d.metrics.published.WithLabelValues(kindLabel(r.Kind), outcome).Inc()
}

// drop removes a record that will never be published (its retry state
// goes with the next scan).
func (d *Daemon) drop(r *outbox.Record, outcome string) {
	if err := d.box.Remove(r); err != nil {
		d.log.Warn("removing an outbox record", "file", r.Path, "err", err)
	}
	d.metrics.published.WithLabelValues(kindLabel(r.Kind), outcome).Inc()
}

// kindLabel is a record kind, or "other" (the kind is read from a file).
func kindLabel(k string) string {
	switch k {
	case outbox.KindAttached, outbox.KindFailed, outbox.KindWarned, outbox.KindFallback:
		return k
	}
	return otherLabel
}
