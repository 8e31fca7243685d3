package thin

import (
	"context"
	"fmt"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/nad"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

// Clusterless mode: the pod is what CNI_ARGS says, NADs come from a
// directory of YAML files, and network-status goes to a file in the
// container's cache directory.

// ArgsPods is the PodSource of clusterless mode: the pod's networks are the
// short-form list K8S_POD_NETWORKS from CNI_ARGS.
type ArgsPods struct{ Networks string }

func (a ArgsPods) Pod(_ context.Context, ref podnet.PodRef) (*podnet.Pod, error) {
	p := &podnet.Pod{Namespace: ref.Namespace, Name: ref.Name, UID: ref.UID, Annotations: map[string]string{}}
	if p.Namespace == "" {
		p.Namespace = "default"
	}
	if a.Networks != "" {
		p.Annotations[nadv1.NetworkAttachmentAnnot] = a.Networks
	}
	return p, nil
}

// DirNADs is the NADSource of clusterless mode.
type DirNADs struct{ Dir *nad.DirSource }

func (d DirNADs) NAD(_ context.Context, namespace, name string) (*nadv1.NetworkAttachmentDefinition, error) {
	if d.Dir == nil || d.Dir.Dir == "" {
		return nil, &notFound{namespace + "/" + name}
	}
	return d.Dir.Lookup(namespace, name)
}

type notFound struct{ key string }

func (n *notFound) Error() string {
	return "network-attachment-definition not found (no \"networksDir\" configured)"
}
func (n *notFound) Unwrap() error { return podnet.ErrNADNotFound }

// noNADs is the NAD source of STATUS in Kubernetes mode: no API requests.
type noNADs struct{}

func (noNADs) NAD(_ context.Context, namespace, name string) (*nadv1.NetworkAttachmentDefinition, error) {
	return nil, fmt.Errorf("%s/%s: %w", namespace, name, podnet.ErrNADNotFound)
}
