package daemon

import (
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plexus-cni/plexus/pkg/resolve"
)

// The NAD informer's transform keeps every annotation resolution reads
// (resolve.NADAnnotations) and drops the rest: a NAD that names a DRA
// claim resolves through plexusd as through the thin path.
func TestTrimNADKeepsWhatResolutionReads(t *testing.T) {
	if len(resolve.NADAnnotations) < 2 {
		t.Fatalf("resolve.NADAnnotations = %v: resourceName and resourceClaim at least", resolve.NADAnnotations)
	}
	ann := map[string]string{"example.com/other": "drop me", "kubectl.kubernetes.io/last-applied-configuration": "{}"}
	for i, k := range resolve.NADAnnotations {
		ann[k] = "value-" + string(rune('a'+i))
	}
	in := &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "n", UID: "u", ResourceVersion: "7", Annotations: ann, Labels: map[string]string{"x": "y"}},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: `{"cniVersion":"1.0.0","name":"n","type":"sriov"}`},
	}
	obj, err := trimNAD(in)
	if err != nil {
		t.Fatal(err)
	}
	out := obj.(*nadv1.NetworkAttachmentDefinition)
	for _, k := range resolve.NADAnnotations {
		if out.Annotations[k] != ann[k] {
			t.Errorf("annotation %s: %q after the transform, want %q (resolution reads it)", k, out.Annotations[k], ann[k])
		}
	}
	if len(out.Annotations) != len(resolve.NADAnnotations) {
		t.Errorf("annotations after the transform: %v, want only %v", out.Annotations, resolve.NADAnnotations)
	}
	if out.Namespace != "ns" || out.Name != "n" || out.Spec.Config != in.Spec.Config || len(out.Labels) != 0 {
		t.Errorf("transformed NAD %+v", out)
	}
	// A NAD without any of them keeps none.
	obj, _ = trimNAD(&nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: "m", Annotations: map[string]string{"a": "b"}}})
	if a := obj.(*nadv1.NetworkAttachmentDefinition).Annotations; len(a) != 0 {
		t.Errorf("annotations %v, want none", a)
	}
}
