package policysync

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/plexus-cni/plexus/pkg/netpol"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

// TestPrepareBeforeSync: before its informers have synced, Prepare lets an
// ADD go on only when the API serves no MultiNetworkPolicy (nothing can
// select the pod: a cluster without the CRD keeps attaching pods), and
// fails it, closed, when it does.
func TestPrepareBeforeSync(t *testing.T) {
	atts := []podnet.Attachment{{Network: "default/lan", IfName: "net1"}}
	ref := podnet.PodRef{Namespace: "default", Name: "p", UID: "u"}
	for _, tc := range []struct {
		name    string
		served  []*metav1.APIResourceList
		wantErr string
	}{
		{name: "no MultiNetworkPolicy API", served: []*metav1.APIResourceList{{
			GroupVersion: "k8s.cni.cncf.io/v1",
			APIResources: []metav1.APIResource{{Name: "network-attachment-definitions", Kind: "NetworkAttachmentDefinition"}},
		}}},
		{name: "the group without the resource", served: []*metav1.APIResourceList{{
			GroupVersion: "k8s.cni.cncf.io/v1beta1",
			APIResources: []metav1.APIResource{{Name: "something-else", Kind: "SomethingElse"}},
		}}},
		{name: "served, informers not synced", served: []*metav1.APIResourceList{{
			GroupVersion: "k8s.cni.cncf.io/v1beta1",
			APIResources: []metav1.APIResource{{Name: "multi-networkpolicies", Kind: "MultiNetworkPolicy"}},
		}}, wantErr: "network default/lan: MultiNetworkPolicy enforcement: policies, pods and namespaces not synced yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset()
			cs.Resources = tc.served
			applied := 0
			s := New(Options{Client: cs, Dynamic: dynfake.NewSimpleDynamicClient(runtime.NewScheme()),
				Apply: func(context.Context, string, netpol.Plan) error { applied++; return nil }})
			err := s.Prepare(context.Background(), "ctr", "/run/netns/none", ref, atts)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Prepare: %v, want the ADD to go on", err)
			case tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)):
				t.Fatalf("Prepare: %v, want an error starting %q", err, tc.wantErr)
			}
			if applied != 0 {
				t.Errorf("%d tables written before the informers synced", applied)
			}
		})
	}
}
