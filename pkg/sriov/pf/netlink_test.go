package pf

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

// A veth has no VFs: every Netlink call must fail with an error naming the
// PF, the VF and the setting, and a missing PF must be named too.
func TestNetlinkOnDeviceWithoutVFs(t *testing.T) {
	testutil.RequireRoot(t)
	name := fmt.Sprintf("pfn%d", os.Getpid()%100000)
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := netlinksafe.LinkByName(name); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	var n Netlink
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	tests := []struct {
		what string
		err  error
	}{
		{"mac", n.LinkSetVfHardwareAddr(name, 2, mac)},
		{"vlan", n.LinkSetVfVlanQosProto(name, 2, 10, 0, VlanProto8021Q)},
		{"spoofchk", n.LinkSetVfSpoofchk(name, 2, true)},
		{"trust", n.LinkSetVfTrust(name, 2, true)},
		{"link state", n.LinkSetVfState(name, 2, LinkStateEnable)},
		{"rate", n.LinkSetVfRate(name, 2, 0, 100)},
	}
	for _, tc := range tests {
		if tc.err == nil || !strings.Contains(tc.err.Error(), fmt.Sprintf("PF %s VF 2: set %s", name, tc.what)) {
			t.Errorf("%s: err %v", tc.what, tc.err)
		}
	}
	if _, err := n.VF(name, 2); err == nil || !strings.Contains(err.Error(), "VF 2 not reported") {
		t.Errorf("VF: err %v", err)
	}
	if _, err := n.VF("nosuchpf0", 0); err == nil || !strings.Contains(err.Error(), "PF nosuchpf0") {
		t.Errorf("missing PF: err %v", err)
	}
}
