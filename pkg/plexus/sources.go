package plexus

import (
	"context"
	"errors"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/nad"
)

// The engine consumes these small interfaces; clusterless mode and Kubernetes
// mode are two implementations of them, not two code paths.

// Pod is what the engine needs to know of a pod.
type Pod struct {
	Namespace   string
	Name        string
	UID         string
	Annotations map[string]string
}

// PodRef names a pod as CNI_ARGS does.
type PodRef struct {
	Namespace string
	Name      string
	UID       string // may be empty
}

func (p PodRef) String() string { return p.Namespace + "/" + p.Name }

// PodSource looks up the pod an ADD is for. On ADD a non-empty ref.UID must
// match the pod's UID (static/mirror pods excepted); a pod that cannot be
// found is an error wrapping ErrPodNotFound.
type PodSource interface {
	Pod(ctx context.Context, ref PodRef) (*Pod, error)
}

// NADSource resolves a NetworkAttachmentDefinition by namespace and name; a
// missing one is an error wrapping ErrNADNotFound.
type NADSource interface {
	NAD(ctx context.Context, namespace, name string) (*nadv1.NetworkAttachmentDefinition, error)
}

// StatusSink receives the outcome of an ADD: the network-status to publish
// and, on failure, the network and reason to report.
type StatusSink interface {
	Attached(ctx context.Context, pod *Pod, containerID string, status []nadv1.NetworkStatus) error
	Failed(ctx context.Context, pod *Pod, network string, err error)
	// Warned reports what plexus accepted but did not do as asked (one
	// Warning event for all the messages). Best effort.
	Warned(ctx context.Context, pod *Pod, messages []string)
}

// DeviceSource tells which devices of an extended resource (e.g. SR-IOV VFs)
// kubelet allocated to the pod's containers, in a stable order.
type DeviceSource interface {
	Devices(ctx context.Context, pod *Pod, resourceName string) ([]string, error)
}

var (
	ErrPodNotFound = errors.New("pod not found")
	ErrNADNotFound = nad.ErrNotFound
)
