package resolve

import (
	"strings"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plexus-cni/plexus/pkg/nad"
)

// Resolution reads a NAD annotation only when NADAnnotations lists it.
func TestNADAnnotation(t *testing.T) {
	n := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
		nad.ResourceNameAnnot: "r", ResourceClaimAnnot: "c/q", "example.com/new": "x"}}}
	if got := nadAnnotation(n, nad.ResourceNameAnnot); got != "r" {
		t.Errorf("resourceName %q", got)
	}
	if got := nadAnnotation(n, ResourceClaimAnnot); got != "c/q" {
		t.Errorf("resourceClaim %q", got)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "example.com/new") {
			t.Errorf("reading an unlisted annotation: recovered %v, want a panic naming it", r)
		}
	}()
	nadAnnotation(n, "example.com/new")
}
