package thin

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plexus-cni/plexus/pkg/config"
	"github.com/plexus-cni/plexus/pkg/nad"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/resolve"
)

type pods map[string]*podnet.Pod

func (p pods) Pod(_ context.Context, ref podnet.PodRef) (*podnet.Pod, error) {
	if pod, ok := p[ref.String()]; ok {
		return pod, nil
	}
	return nil, fmt.Errorf("%s: %w", ref, podnet.ErrPodNotFound)
}

type nads map[string]string // "ns/name" -> spec.config

func (n nads) NAD(_ context.Context, namespace, name string) (*nadv1.NetworkAttachmentDefinition, error) {
	c, ok := n[namespace+"/"+name]
	if !ok {
		return nil, podnet.ErrNADNotFound
	}
	return &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: c}}, nil
}

// DEL without a cache entry rebuilds the attachments from the pod; without
// the pod, or without a pod name, there is nothing to rebuild.
func TestRebuild(t *testing.T) {
	c, err := config.Load([]byte(`{"cniVersion":"1.0.0","name":"p","type":"plexus","clusterNetwork":"pri","confDir":"` + t.TempDir() + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	src := nads{"kube-system/pri": `{"cniVersion":"1.0.0","name":"pri","type":"bridge"}`, "a/x": `{"cniVersion":"1.0.0","name":"x","type":"macvlan"}`}
	e := &Engine{
		Conf: c, Log: slog.New(slog.DiscardHandler),
		Pods:     pods{"a/p": {Namespace: "a", Name: "p", Annotations: map[string]string{nadv1.NetworkAttachmentAnnot: "x"}}},
		Resolver: &resolve.Resolver{Conf: c, NADs: src, Confs: nad.LocalConfs{Conf: c}},
	}
	req := &podnet.Request{ContainerID: "c1", NetNS: "/var/run/netns/c1", IfName: "eth0", Pod: podnet.PodRef{Namespace: "a", Name: "p"}}
	entry := e.rebuild(context.Background(), req)
	if entry == nil {
		t.Fatal("rebuild of a pod that exists: nil")
	}
	var got []string
	for _, a := range entry.Attachments {
		got = append(got, a.Network+"@"+a.IfName)
	}
	if want := []string{"kube-system/pri@eth0", "a/x@net1"}; !reflect.DeepEqual(got, want) || entry.ContainerID != "c1" || entry.NetNS != "/var/run/netns/c1" {
		t.Errorf("rebuilt %+v (%v), want %v", entry, got, want)
	}
	for _, ref := range []podnet.PodRef{{Namespace: "a", Name: "gone"}, {}} {
		r := *req
		r.Pod = ref
		if entry := e.rebuild(context.Background(), &r); entry != nil {
			t.Errorf("rebuild for pod %q: %+v, want nil", ref, entry)
		}
	}
}
