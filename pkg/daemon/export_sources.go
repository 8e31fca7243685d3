package daemon

import (
	"k8s.io/client-go/tools/cache"

	"github.com/plexus-cni/plexus/pkg/k8s"
)

// NewPodInformer is the informer plexusd watches its node's pods with
// (field selector on spec.nodeName, trimmed by its transform), not yet
// running: for tests and tools that build a PodSource as plexusd does.
func NewPodInformer(cl *k8s.Client, node string) cache.SharedIndexInformer {
	return newPodInformer(cl, node)
}

// NewNADInformer is plexusd's NetworkAttachmentDefinition informer (every
// namespace, trimmed by its transform), not yet running.
func NewNADInformer(cl *k8s.Client) cache.SharedIndexInformer { return newNADInformer(cl) }
