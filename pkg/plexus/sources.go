package plexus

import (
	"context"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/publish"
)

// The engine consumes these small interfaces; clusterless mode and Kubernetes
// mode are two implementations of them, not two code paths.

// Pod and PodRef are the shared types of package podnet.
type (
	Pod    = podnet.Pod
	PodRef = podnet.PodRef
)

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

// StatusSink is the publish stage's Sink.
type StatusSink = publish.Sink

// DeviceSource tells which devices of an extended resource (e.g. SR-IOV VFs)
// kubelet allocated to the pod's containers, in a stable order.
type DeviceSource interface {
	Devices(ctx context.Context, pod *Pod, resourceName string) ([]string, error)
}

var (
	ErrPodNotFound = podnet.ErrPodNotFound
	ErrNADNotFound = podnet.ErrNADNotFound
)
