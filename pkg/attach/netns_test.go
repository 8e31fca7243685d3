package attach

import (
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/testutil"
)

func attachments(n int) []podnet.Attachment {
	atts := []podnet.Attachment{{Network: "default/primary", IfName: "eth0"}}
	for i := 1; i <= n; i++ {
		atts = append(atts, podnet.Attachment{Network: fmt.Sprintf("default/n%d", i), IfName: fmt.Sprintf("net%d", i)})
	}
	return atts
}

// TestCheckInterfacesFree: an ADD whose interface name is taken in the pod's
// namespace fails naming that attachment's network; free names pass.
func TestCheckInterfacesFree(t *testing.T) {
	pod := testutil.NewNS(t)
	if err := checkInterfacesFree(pod.Path(), attachments(3)); err != nil {
		t.Fatalf("free names: %v", err)
	}
	if err := pod.Do(func(ns.NetNS) error {
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "net2"}, PeerName: "peer2"})
	}); err != nil {
		t.Fatal(err)
	}
	err := checkInterfacesFree(pod.Path(), attachments(3))
	if err == nil || !strings.Contains(err.Error(), `network "default/n2": interface "net2" already exists`) || podnet.NetworkOf(err) != "default/n2" {
		t.Fatalf("taken net2: %v (network %q)", err, podnet.NetworkOf(err))
	}
	if err := checkInterfacesFree("", attachments(1)); err == nil {
		t.Fatal("empty CNI_NETNS accepted")
	}
}
