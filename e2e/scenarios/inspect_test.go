package scenarios

import (
	"strings"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
)

// Output of busybox's ip in a pod with a macvlan net1 and a veth br1.
const busyboxAddr = `1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever preferred_lft forever
3: eth0    inet 10.244.0.7/24 brd 10.244.0.255 scope global eth0\       valid_lft forever preferred_lft forever
3: eth0    inet6 fe80::4c1:2ff:fe03:405/64 scope link \       valid_lft forever preferred_lft forever
4: net1    inet 10.131.0.10/24 brd 10.131.0.255 scope global net1\       valid_lft forever preferred_lft forever
5: br1    inet 10.132.0.10/24 brd 10.132.0.255 scope global br1\       valid_lft forever preferred_lft forever
5: br1    inet6 fd00:132::a/64 scope global \       valid_lft forever preferred_lft forever
`

const busyboxLink = `1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue qlen 1000\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
3: eth0@if9: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1500 qdisc noqueue \    link/ether 06:c1:02:03:04:05 brd ff:ff:ff:ff:ff:ff
4: net1@if2: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1500 qdisc noqueue \    link/ether 02:00:00:13:30:05 brd ff:ff:ff:ff:ff:ff
5: br1@if11: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1500 qdisc noqueue \    link/ether 7A:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff
`

func TestParseIP(t *testing.T) {
	ifs := ParseIPAddr(busyboxAddr)
	if got := names(ifs); got != "br1,eth0,lo,net1" {
		t.Fatalf("interfaces %s", got)
	}
	if got := strings.Join(ifs["br1"].Addrs, " "); got != "10.132.0.10/24 fd00:132::a/64" {
		t.Errorf("br1 addrs %q (link-local must be left out)", got)
	}
	if got := strings.Join(ifs["eth0"].Addrs, " "); got != "10.244.0.7/24" {
		t.Errorf("eth0 addrs %q", got)
	}
	macs := ParseIPLink(busyboxLink)
	if macs["net1"] != "02:00:00:13:30:05" || macs["br1"] != "7a:00:00:00:00:01" || macs["eth0"] != "06:c1:02:03:04:05" {
		t.Errorf("macs %v", macs)
	}
}

func TestCheckAttachments(t *testing.T) {
	good := []nadv1.NetworkStatus{
		{Name: "kindnet", Interface: "eth0", IPs: []string{"10.244.0.7"}, Default: true},
		{Name: "ns/macvlan-e2e", Interface: "net1", IPs: []string{"10.131.0.10"}, Mac: "02:00:00:13:30:05"},
		{Name: "ns/bridge-e2e", Interface: "br1", IPs: []string{"10.132.0.10"}},
	}
	wants := []Want{
		{Network: "ns/macvlan-e2e", Interface: "net1", IPs: []string{"10.131.0.10/24"}, MAC: "02:00:00:13:30:05"},
		{Network: "ns/bridge-e2e", Interface: "br1", IPs: []string{"10.132.0.10/24"}},
	}
	ifs, macs := ParseIPAddr(busyboxAddr), ParseIPLink(busyboxLink)
	if err := CheckAttachments(good, ifs, macs, wants); err != nil {
		t.Fatalf("good pod: %v", err)
	}
	mutate := func(f func(st []nadv1.NetworkStatus) []nadv1.NetworkStatus) []nadv1.NetworkStatus {
		cp := append([]nadv1.NetworkStatus(nil), good...)
		return f(cp)
	}
	for _, tc := range []struct {
		name  string
		st    []nadv1.NetworkStatus
		wants []Want
		want  string
	}{
		{"no default", mutate(func(s []nadv1.NetworkStatus) []nadv1.NetworkStatus { s[0].Default = false; return s }), wants, "0 default entries"},
		{"default not eth0", mutate(func(s []nadv1.NetworkStatus) []nadv1.NetworkStatus { s[0].Interface = "net0"; return s }), wants, `want eth0`},
		{"entry missing", mutate(func(s []nadv1.NetworkStatus) []nadv1.NetworkStatus { return s[:2] }), wants, "2 entries, want 3"},
		{"extra entry", append(mutate(func(s []nadv1.NetworkStatus) []nadv1.NetworkStatus { return s }), nadv1.NetworkStatus{Name: "x"}), wants, "4 entries"},
		{"wrong interface", mutate(func(s []nadv1.NetworkStatus) []nadv1.NetworkStatus { s[2].Interface = "net2"; return s }), wants, "no entry for ns/bridge-e2e on br1"},
		{"status IP wrong", mutate(func(s []nadv1.NetworkStatus) []nadv1.NetworkStatus { s[1].IPs = []string{"10.131.0.11"}; return s }), wants, "lack 10.131.0.10"},
		{"status MAC differs", mutate(func(s []nadv1.NetworkStatus) []nadv1.NetworkStatus { s[2].Mac = "02:00:00:00:00:99"; return s }), wants, "network-status MAC 02:00:00:00:00:99"},
		{"address not in pod", mutate(func(s []nadv1.NetworkStatus) []nadv1.NetworkStatus { s[2].IPs = []string{"10.132.0.11"}; return s }),
			[]Want{wants[0], {Network: "ns/bridge-e2e", Interface: "br1", IPs: []string{"10.132.0.11/24"}}}, "has [10.132.0.10/24 fd00:132::a/64], want 10.132.0.11/24"},
		{"interface not in pod", mutate(func(s []nadv1.NetworkStatus) []nadv1.NetworkStatus { s[2].Interface = "br9"; return s }),
			[]Want{wants[0], {Network: "ns/bridge-e2e", Interface: "br9"}}, "interface br9 not in the pod"},
		{"MAC wanted differs", good, []Want{{Network: "ns/macvlan-e2e", Interface: "net1", MAC: "02:00:00:00:00:01"}, wants[1]}, "has MAC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckAttachments(tc.st, ifs, macs, tc.wants)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	// A pod without eth0.
	noEth0 := ParseIPAddr(strings.ReplaceAll(busyboxAddr, "eth0", "eth9"))
	if err := CheckAttachments(good, noEth0, macs, wants); err == nil || !strings.Contains(err.Error(), "no eth0") {
		t.Errorf("pod without eth0: %v", err)
	}
}

func TestParseNetworkStatus(t *testing.T) {
	if _, err := ParseNetworkStatus(nil); err == nil {
		t.Error("missing annotation accepted")
	}
	if _, err := ParseNetworkStatus(map[string]string{NetworkStatusAnnotation: "{"}); err == nil {
		t.Error("bad JSON accepted")
	}
	st, err := ParseNetworkStatus(map[string]string{NetworkStatusAnnotation: `[{"name":"a","interface":"eth0","default":true}]`})
	if err != nil || len(st) != 1 || !st[0].Default {
		t.Errorf("%v %v", st, err)
	}
}

func TestBridgeName(t *testing.T) {
	a, b := bridgeName("plexus-e2e-1"), bridgeName("plexus-e2e-2")
	if len(a) > 15 || a == b {
		t.Errorf("bridge names %q %q", a, b)
	}
}

func TestParseIPRoute(t *testing.T) {
	out := `default via 10.1.1.254 dev net1
10.1.1.0/24 dev net1 scope link  src 10.1.1.21
10.234.0.0/24 dev eth0 scope link  src 10.234.0.7
`
	routes := ParseIPRoute(out)
	if len(routes) != 3 || routes[1] != (Route{Dst: "10.1.1.0/24", Dev: "net1"}) {
		t.Fatalf("routes %+v", routes)
	}
	d := DefaultRoutes(routes)
	if len(d) != 1 || d[0] != (Route{Dst: "default", Via: "10.1.1.254", Dev: "net1"}) {
		t.Errorf("default routes %+v", d)
	}
	if d := DefaultRoutes(ParseIPRoute("10.0.0.0/8 via 10.1.1.1 dev net1\n")); len(d) != 0 {
		t.Errorf("default routes %+v in a table without one", d)
	}
}

func TestCheckAttachmentsSubnet(t *testing.T) {
	st := []nadv1.NetworkStatus{
		{Name: "primary", Interface: "eth0", IPs: []string{"10.244.0.7"}, Default: true},
		{Name: "ns/bridge-e2e", Interface: "br1", IPs: []string{"10.132.0.10"}},
	}
	ifs, macs := ParseIPAddr(busyboxAddr), ParseIPLink(busyboxLink)
	for _, tc := range []struct{ subnet, want string }{
		{"10.132.0.0/16", ""},
		{"10.133.0.0/16", "want an address in 10.133.0.0/16"},
	} {
		err := CheckAttachments(st, ifs, macs, []Want{{Network: "ns/bridge-e2e", Interface: "br1", Subnet: tc.subnet}})
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("subnet %s: error %v, want %q", tc.subnet, err, tc.want)
		}
	}
	st[1].IPs = []string{"10.132.0.11"}
	if err := CheckAttachments(st, ifs, macs, []Want{{Network: "ns/bridge-e2e", Interface: "br1", Subnet: "10.132.0.0/16"}}); err == nil || !strings.Contains(err.Error(), "lack 10.132.0.10") {
		t.Errorf("network-status without the interface's address: %v", err)
	}
}
