package inspect

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/plexus-cni/plexus/pkg/attach"
	"github.com/plexus-cni/plexus/pkg/delegate"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

// Outcomes of GC for one container.
const (
	OutcomeWouldDelete = "would-delete" // dry run
	OutcomeDeleted     = "deleted"      // every delegate's DEL ran, entry removed
	OutcomeGaveUp      = "gave-up"      // DEL failed attach.MaxDelAttempts times: entry removed, leak recorded
	OutcomeFailed      = "failed"       // DEL failed; the entry stays, marked incomplete, for the next try
)

// GCResult is what GC did (or would do) for one container.
type GCResult struct {
	ContainerID string   `json:"containerID"`
	Pod         Pod      `json:"pod"`
	NetNS       string   `json:"netns"`
	Interfaces  []string `json:"interfaces"`
	DryRun      bool     `json:"dryRun"`
	// Outcome is "would-delete", "deleted", "gave-up" or "failed".
	Outcome string `json:"outcome"`
	Error   string `json:"error"`
	// LeakRecord is the record written when DEL gave up.
	LeakRecord string `json:"leakRecord"`
}

// GC frees the state of every cache entry Stale marks "del" (its netns is
// gone): it runs the delegates' DEL exactly as the runtime's DEL of the
// container would — pkg/attach's Del, under the pod's lock and a shared
// hold of the GC lock, with the recorded configs and results — which
// releases IPAM leases, host-side state and VFs, and removes the entry. A
// DEL that fails counts as one of the container's attempts, like the
// runtime's. With dryRun nothing is run or written. done, when not nil, is
// called after each container.
func (n *Node) GC(ctx context.Context, dryRun bool, done func(GCResult)) ([]GCResult, error) {
	stale, err := n.Stale()
	if err != nil {
		return nil, err
	}
	var at *attach.Attacher
	if !dryRun {
		at = n.attacher()
	}
	out := []GCResult{}
	var errs []error
	for _, s := range stale {
		if s.Action != ActionDel {
			continue
		}
		r := GCResult{ContainerID: s.ContainerID, Pod: s.Pod, NetNS: s.NetNS, Interfaces: s.Interfaces, DryRun: dryRun}
		if dryRun {
			r.Outcome = OutcomeWouldDelete
		} else if err := n.del(ctx, at, &s, &r); err != nil {
			errs = append(errs, err)
		}
		out = append(out, r)
		if done != nil {
			done(r)
		}
	}
	return out, errors.Join(errs...)
}

// attacher is what the plexus binary builds for a DEL (pkg/thin's setup),
// from the node's paths. It reads no Multus cache: GC frees only what
// plexus's cache records.
func (n *Node) attacher() *attach.Attacher {
	return &attach.Attacher{
		Cache:         n.store(),
		Runner:        delegate.NewRunner([]string{n.BinDir}, filepath.Join(n.CNIDir, "results")),
		Log:           slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		DeviceInfoDir: n.DeviceInfoDir,
	}
}

// del DELs one container, as the runtime would: same pod lock key (from
// its CNI_ARGS, recorded in the entry), netns as recorded.
func (n *Node) del(ctx context.Context, at *attach.Attacher, s *Stale, r *GCResult) error {
	leak := filepath.Join(n.CNIDir, "leaked", s.ContainerID+".json")
	_, statErr := os.Stat(leak)
	leakedBefore := statErr == nil
	req := &podnet.Request{ContainerID: s.ContainerID,
		Pod: podnet.PodRef{Namespace: s.Pod.Namespace, Name: s.Pod.Name, UID: s.Pod.UID}}
	if err := at.Del(ctx, req, nil); err != nil {
		r.Outcome, r.Error = OutcomeFailed, err.Error()
		return err
	}
	r.Outcome = OutcomeDeleted
	if _, err := os.Stat(leak); err == nil && !leakedBefore {
		r.Outcome, r.LeakRecord = OutcomeGaveUp, leak
	}
	return nil
}
