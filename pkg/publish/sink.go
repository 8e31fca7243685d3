package publish

import (
	"context"
	"log/slog"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// Sink receives the outcome of an operation on a pod: the network-status to
// publish, a failure to report, and warnings about what plexus accepted but
// did not do as asked.
type Sink interface {
	// Attached publishes the pod's network-status; an error means the pod
	// would not learn of its interfaces (the ADD is then undone).
	Attached(ctx context.Context, pod *podnet.Pod, containerID string, status []nadv1.NetworkStatus) error
	// Failed reports a failed ADD (network may be empty). Best effort.
	Failed(ctx context.Context, pod *podnet.Pod, network string, err error)
	// Warned reports messages in one Warning. Best effort.
	Warned(ctx context.Context, pod *podnet.Pod, messages []string)
}

// FileSink is the Sink of clusterless mode: network-status goes to
// network-status.json in the container's directory (Dir gives it), failures
// and warnings to the log.
type FileSink struct {
	Dir func(containerID string) string
	Log *slog.Logger
}

func (f FileSink) Attached(_ context.Context, _ *podnet.Pod, containerID string, st []nadv1.NetworkStatus) error {
	return WriteFile(f.Dir(containerID), st)
}

func (f FileSink) Failed(_ context.Context, _ *podnet.Pod, network string, err error) {
	f.Log.Warn("ADD failed", "network", network, "err", err)
}

func (f FileSink) Warned(_ context.Context, _ *podnet.Pod, messages []string) {
	for _, m := range messages {
		f.Log.Warn(m)
	}
}
