package publish

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types020 "github.com/containernetworking/cni/pkg/types/020"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	current "github.com/containernetworking/cni/pkg/types/100"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
)

func cidr(t *testing.T, s string) net.IPNet {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip
	return *n
}

func dst(t *testing.T, s string) net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return *n
}

func idx(i int) *int { return &i }

func TestFromResult(t *testing.T) {
	dns := types.DNS{
		Nameservers: []string{"10.96.0.10", "fd00::a"},
		Domain:      "cluster.local",
		Search:      []string{"a.svc.cluster.local", "svc.cluster.local"},
		Options:     []string{"ndots:5"},
	}
	wantDNS := nadv1.DNS{Nameservers: dns.Nameservers, Domain: dns.Domain, Search: dns.Search, Options: dns.Options}
	devInfo := &nadv1.DeviceInfo{Type: "pci", Version: "1.1.0", Pci: &nadv1.PciDevice{PciAddress: "0000:03:00.2"}}

	// A 1.x result as bridge/macvlan plugins make it: a host-side
	// interface without sandbox, the pod's interface, IPs of both, a
	// default route per family, one non-default route and a default
	// route without a gateway.
	v100 := func(version string) types.Result {
		return &current.Result{
			CNIVersion: version,
			Interfaces: []*current.Interface{
				{Name: "vethabc", Mac: "aa:aa:aa:aa:aa:aa", Mtu: 1500},
				{Name: "net1", Mac: "02:00:00:00:00:01", Mtu: 1400, Sandbox: "/var/run/netns/p"},
			},
			IPs: []*current.IPConfig{
				{Address: cidr(t, "10.1.1.5/24"), Interface: idx(1)},
				{Address: cidr(t, "192.168.0.1/24"), Interface: idx(0)},
				{Address: cidr(t, "fd00::5/64"), Interface: idx(1)},
				{Address: cidr(t, "10.9.9.9/32")}, // no interface index: kept
			},
			Routes: []*types.Route{
				{Dst: dst(t, "0.0.0.0/0"), GW: net.ParseIP("10.1.1.1")},
				{Dst: dst(t, "10.2.0.0/16"), GW: net.ParseIP("10.1.1.254")},
				{Dst: dst(t, "::/0"), GW: net.ParseIP("fd00::1")},
				{Dst: dst(t, "0.0.0.0/0")},
			},
			DNS: dns,
		}
	}
	v040 := func(version string) types.Result {
		return &types040.Result{
			CNIVersion: version,
			Interfaces: []*types040.Interface{
				{Name: "vethabc", Mac: "aa:aa:aa:aa:aa:aa"},
				{Name: "net1", Mac: "02:00:00:00:00:01", Sandbox: "/var/run/netns/p"},
			},
			IPs: []*types040.IPConfig{
				{Address: cidr(t, "10.1.1.5/24"), Interface: idx(1)},
				{Address: cidr(t, "192.168.0.1/24"), Interface: idx(0)},
				{Address: cidr(t, "fd00::5/64"), Interface: idx(1)},
			},
			Routes: []*types.Route{
				{Dst: dst(t, "0.0.0.0/0"), GW: net.ParseIP("10.1.1.1")},
				{Dst: dst(t, "10.2.0.0/16"), GW: net.ParseIP("10.1.1.254")},
			},
			DNS: dns,
		}
	}
	fullV100 := nadv1.NetworkStatus{
		Name: "a/net", Interface: "net1", Mac: "02:00:00:00:00:01", Mtu: 1400,
		IPs:     []string{"10.1.1.5", "fd00::5", "10.9.9.9"},
		Gateway: []string{"10.1.1.1", "fd00::1"},
		DNS:     wantDNS,
	}
	fullV040 := nadv1.NetworkStatus{
		Name: "a/net", Interface: "net1", Mac: "02:00:00:00:00:01",
		IPs:     []string{"10.1.1.5", "fd00::5"},
		Gateway: []string{"10.1.1.1"},
		DNS:     wantDNS,
	}

	tests := []struct {
		name    string
		ifName  string
		primary bool
		res     types.Result
		dev     *nadv1.DeviceInfo
		want    nadv1.NetworkStatus
	}{
		{
			name: "nil result", ifName: "net1", primary: true, dev: devInfo,
			want: nadv1.NetworkStatus{Name: "a/net", Interface: "net1", Default: true, DeviceInfo: devInfo},
		},
		{name: "1.1.0", ifName: "net1", res: v100("1.1.0"), want: fullV100},
		{name: "1.0.0", ifName: "net1", res: v100("1.0.0"), want: fullV100},
		{name: "0.4.0", ifName: "net1", res: v040("0.4.0"), want: fullV040},
		{name: "0.3.1", ifName: "net1", res: v040("0.3.1"), want: fullV040},
		{
			name: "0.2.0 (no interfaces: every IP)", ifName: "eth0", primary: true,
			res: &types020.Result{
				CNIVersion: "0.2.0",
				IP4: &types020.IPConfig{
					IP:      cidr(t, "10.244.1.7/24"),
					Gateway: net.ParseIP("10.244.1.1"),
					Routes:  []types.Route{{Dst: dst(t, "0.0.0.0/0"), GW: net.ParseIP("10.244.1.1")}},
				},
				IP6: &types020.IPConfig{IP: cidr(t, "fd10::7/64")},
				DNS: types.DNS{Nameservers: []string{"10.96.0.10"}},
			},
			want: nadv1.NetworkStatus{
				Name: "a/net", Interface: "eth0", Default: true,
				IPs:     []string{"10.244.1.7", "fd10::7"},
				Gateway: []string{"10.244.1.1"},
				DNS:     nadv1.DNS{Nameservers: []string{"10.96.0.10"}},
			},
		},
		{
			// The interface of that name on the host side (no sandbox) is
			// not the pod's: no MAC, and with no pod interface found every
			// IP is reported.
			name: "name matches only a host-side interface", ifName: "vethabc",
			res: v040("0.4.0"),
			want: nadv1.NetworkStatus{
				Name: "a/net", Interface: "vethabc",
				IPs:     []string{"10.1.1.5", "192.168.0.1", "fd00::5"},
				Gateway: []string{"10.1.1.1"},
				DNS:     wantDNS,
			},
		},
		{
			name: "device info and primary kept with a result", ifName: "net1", primary: true, dev: devInfo,
			res: &current.Result{
				CNIVersion: "1.0.0",
				Interfaces: []*current.Interface{{Name: "net1", Mac: "02:00:00:00:00:09", Sandbox: "/var/run/netns/p", PciID: "0000:03:00.2"}},
				IPs:        []*current.IPConfig{{Address: cidr(t, "10.5.0.2/24"), Interface: idx(0)}},
			},
			want: nadv1.NetworkStatus{
				Name: "a/net", Interface: "net1", Default: true, DeviceInfo: devInfo,
				Mac: "02:00:00:00:00:09", IPs: []string{"10.5.0.2"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromResult("a/net", tc.ifName, tc.primary, tc.res, tc.dev)
			if err != nil {
				t.Fatalf("FromResult: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("FromResult:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestFromResultUnconvertible(t *testing.T) {
	res := &current.Result{CNIVersion: "9.9.9"}
	st, err := FromResult("a/net", "net1", false, res, nil)
	if err == nil {
		t.Fatalf("FromResult of a 9.9.9 result: no error, got %+v", st)
	}
	if want := `network "a/net": converting result: `; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want prefix %q", err, want)
	}
	if want := (nadv1.NetworkStatus{Name: "a/net", Interface: "net1"}); !reflect.DeepEqual(st, want) {
		t.Errorf("status on error %+v, want %+v", st, want)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	in := []nadv1.NetworkStatus{
		{Name: "pri", Interface: "eth0", Default: true, IPs: []string{"10.0.0.2"}},
		{Name: "a/x", Interface: "net1", Mac: "02:00:00:00:00:01"},
	}
	if err := WriteFile(dir, in); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "network-status.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got []nadv1.NetworkStatus
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("network-status.json does not parse: %v\n%s", err, b)
	}
	if !reflect.DeepEqual(got, in) {
		t.Errorf("network-status.json holds %+v, want %+v", got, in)
	}
}
