package resolve

import (
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/nad"
)

// NADAnnotations are the annotations of a NetworkAttachmentDefinition that
// resolution reads, and the only ones: resolution reads a NAD's
// annotations through nadAnnotation, which accepts no other key. A NAD
// cache that keeps less than the whole object (plexusd's informer
// transform) keeps these.
var NADAnnotations = []string{nad.ResourceNameAnnot, ResourceClaimAnnot}

// nadAnnotation is the NAD's annotation key, which must be one of
// NADAnnotations: a key resolution reads but that list lacks would be
// dropped by plexusd's NAD informer, and that NAD would resolve one way
// through plexusd and another through the thin path. Any test that reaches
// such a read panics here.
func nadAnnotation(n *nadv1.NetworkAttachmentDefinition, key string) string {
	for _, k := range NADAnnotations {
		if k == key {
			return n.Annotations[key]
		}
	}
	panic("resolve: NAD annotation " + key + " is read but not listed in NADAnnotations")
}
