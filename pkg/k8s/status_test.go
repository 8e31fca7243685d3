package k8s

import (
	"errors"
	"strings"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

func TestAttachedMessage(t *testing.T) {
	cases := []struct {
		status []nadv1.NetworkStatus
		want   string
	}{
		{[]nadv1.NetworkStatus{{Name: "cbr0", Interface: "eth0", IPs: []string{"10.1.0.5", "fd00::5"}}},
			"Add eth0 [10.1.0.5 fd00::5] from cbr0"},
		{[]nadv1.NetworkStatus{{Name: "cbr0", Interface: "eth0", IPs: []string{"10.1.0.5"}}, {Name: "ns/sriov", Interface: "net1"}},
			"Add eth0 [10.1.0.5] from cbr0; net1 [] from ns/sriov"},
	}
	for _, tc := range cases {
		if got := attachedMessage(tc.status); got != tc.want {
			t.Errorf("attachedMessage = %q, want %q", got, tc.want)
		}
	}
}

func TestNewEvent(t *testing.T) {
	c := &Client{opts: Options{Host: "node-a"}.withDefaults(), nodes: map[string]string{}}
	pod := &podnet.Pod{Namespace: "ns", Name: "web", UID: "uid-1"}
	ev := c.newEvent(pod, "Warning", ReasonFailed, strings.Repeat("x", 5000))
	if len(ev.Message) != maxEventMessage || !strings.HasSuffix(ev.Message, "...") {
		t.Errorf("message of %d bytes not cut to %d", len(ev.Message), maxEventMessage)
	}
	if ev.Namespace != "ns" || !strings.HasPrefix(ev.Name, "web.") || ev.InvolvedObject.UID != "uid-1" ||
		ev.InvolvedObject.Kind != "Pod" || ev.Source.Component != "plexus" || ev.Source.Host != "node-a" || ev.Count != 1 {
		t.Errorf("event %+v", ev)
	}
	// Without Options.Host, the pod's node (learnt from the pod GET) is the host.
	c = &Client{opts: Options{}.withDefaults(), nodes: map[string]string{"ns/web": "node-b"}}
	if h := c.newEvent(pod, "Normal", ReasonAttached, "m").Source.Host; h != "node-b" {
		t.Errorf("source host %q, want the pod's node", h)
	}
}

func TestAttachedNeedsPod(t *testing.T) {
	c := &Client{opts: Options{}.withDefaults()}
	for _, pod := range []*podnet.Pod{nil, {Namespace: "ns"}} {
		if err := c.Status().Attached(t.Context(), pod, "ctr", nil); err == nil {
			t.Errorf("Attached(%v) succeeded", pod)
		}
	}
	c.Status().Failed(t.Context(), nil, "net1", errors.New("boom")) // no panic, nothing to do
}
