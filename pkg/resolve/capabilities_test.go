package resolve

import (
	"github.com/plexus-cni/plexus/pkg/delegate"
	"github.com/plexus-cni/plexus/pkg/podnet"

	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
)

func TestRequestCapabilities(t *testing.T) {
	bw := &nadv1.BandwidthEntry{IngressRate: 1000, IngressBurst: 10, EgressRate: 2000, EgressBurst: 20}
	pm := []*nadv1.PortMapEntry{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}
	noCaps := conflist("x", `{"type":"macvlan"}`)
	allCaps := conflist("x", `{"type":"macvlan","capabilities":{"ips":true,"infinibandGUID":true}}`,
		`{"type":"portmap","capabilities":{"portMappings":true}}`,
		`{"type":"bandwidth","capabilities":{"bandwidth":true,"ipam-claim-reference":true}}`)
	noCapWarning := func(field, key string) string {
		return fmt.Sprintf(`field %q: delegate "x" declares no capability %q, so no plugin receives it (ignored, as Multus does); add "capabilities": {%q: true} to a plugin that supports it`, field, key, key)
	}
	claimWarning := `field "ipam-claim-reference": delegate "x" declares no capability "ipam-claim-reference", so its IPAM does not receive the claim (ignored, as Multus does)`
	base := [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAME", "p"}}
	args := func(extra ...[2]string) [][2]string { return append(append([][2]string{}, base...), extra...) }

	tests := []struct {
		name     string
		conf     string
		el       nadv1.NetworkSelectionElement
		want     podnet.Attachment // only CNIArgs, CapabilityArgs, WantIPs, WantMAC
		warnings []string
	}{
		{
			name: "nothing requested", conf: noCaps,
			want: podnet.Attachment{CNIArgs: args()},
		},
		{
			// ips and mac: capability args and CNI_ARGS both, verified
			// after ADD, so no warning even without a capability.
			name: "ips and mac without capabilities", conf: noCaps,
			el: nadv1.NetworkSelectionElement{IPRequest: []string{"10.0.0.5/24", "fd00::5/64"}, MacRequest: "02:00:00:00:00:05"},
			want: podnet.Attachment{
				CNIArgs:        args([2]string{"IP", "10.0.0.5/24,fd00::5/64"}, [2]string{"MAC", "02:00:00:00:00:05"}),
				CapabilityArgs: map[string]any{"ips": []string{"10.0.0.5/24", "fd00::5/64"}, "mac": "02:00:00:00:00:05"},
				WantIPs:        []string{"10.0.0.5/24", "fd00::5/64"}, WantMAC: "02:00:00:00:00:05",
			},
		},
		{
			name: "ips with the capability", conf: allCaps,
			el: nadv1.NetworkSelectionElement{IPRequest: []string{"10.0.0.5"}},
			want: podnet.Attachment{
				CNIArgs:        args([2]string{"IP", "10.0.0.5"}),
				CapabilityArgs: map[string]any{"ips": []string{"10.0.0.5"}},
				WantIPs:        []string{"10.0.0.5"},
			},
		},
		{
			name: "unverifiable requests without capabilities warn, naming the field", conf: noCaps,
			el: nadv1.NetworkSelectionElement{
				InfinibandGUIDRequest: "c2:11:22:33:44:55:66:77", PortMappingsRequest: pm,
				BandwidthRequest: bw, IPAMClaimReference: "claim-1",
			},
			want: podnet.Attachment{
				CNIArgs: args(),
				CapabilityArgs: map[string]any{
					"infinibandGUID": "c2:11:22:33:44:55:66:77", "portMappings": pm, "bandwidth": bw,
					"ipam-claim-reference": "claim-1", "IPAMClaimReference": "claim-1",
				},
			},
			warnings: []string{
				noCapWarning("infiniband-guid", "infinibandGUID"),
				noCapWarning("portMappings", "portMappings"),
				noCapWarning("bandwidth", "bandwidth"),
				claimWarning,
			},
		},
		{
			name: "unverifiable requests with capabilities", conf: allCaps,
			el: nadv1.NetworkSelectionElement{
				InfinibandGUIDRequest: "c2:11:22:33:44:55:66:77", PortMappingsRequest: pm,
				BandwidthRequest: bw, IPAMClaimReference: "claim-1",
			},
			want: podnet.Attachment{
				CNIArgs: args(),
				CapabilityArgs: map[string]any{
					"infinibandGUID": "c2:11:22:33:44:55:66:77", "portMappings": pm, "bandwidth": bw,
					"ipam-claim-reference": "claim-1", "IPAMClaimReference": "claim-1",
				},
			},
		},
		{
			name: "IPAMClaimReference capability is enough for the claim",
			conf: conflist("x", `{"type":"ovn-k8s-cni-overlay","capabilities":{"IPAMClaimReference":true}}`),
			el:   nadv1.NetworkSelectionElement{IPAMClaimReference: "claim-2"},
			want: podnet.Attachment{
				CNIArgs:        args(),
				CapabilityArgs: map[string]any{"ipam-claim-reference": "claim-2", "IPAMClaimReference": "claim-2"},
			},
		},
		{
			name: "capability declared false is not declared", conf: conflist("x", `{"type":"portmap","capabilities":{"portMappings":false}}`),
			el: nadv1.NetworkSelectionElement{PortMappingsRequest: pm},
			want: podnet.Attachment{
				CNIArgs:        args(),
				CapabilityArgs: map[string]any{"portMappings": pm},
			},
			warnings: []string{noCapWarning("portMappings", "portMappings")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := delegate.ConfList([]byte(tc.conf), "x", "1.0.0")
			if err != nil {
				t.Fatal(err)
			}
			a := podnet.Attachment{Network: "a/x", IfName: "net1", CNIArgs: args()}
			el := tc.el
			warnings := requestCapabilities(&a, &el, l)
			want := tc.want
			want.Network, want.IfName = "a/x", "net1"
			if !reflect.DeepEqual(a, want) {
				t.Errorf("attachment:\n got %+v\nwant %+v", a, want)
			}
			if !reflect.DeepEqual(warnings, tc.warnings) {
				t.Errorf("warnings:\n got %q\nwant %q", warnings, tc.warnings)
			}
		})
	}
}

func TestUniqueInterfaces(t *testing.T) {
	tests := []struct {
		name    string
		atts    []podnet.Attachment
		wantErr string
		wantNet string
	}{
		{name: "none"},
		{name: "distinct", atts: []podnet.Attachment{{Network: "pri", IfName: "eth0"}, {Network: "a/x", IfName: "net1"}, {Network: "a/x", IfName: "net2"}}},
		{
			name:    "duplicate names the later network and the earlier",
			atts:    []podnet.Attachment{{Network: "pri", IfName: "eth0"}, {Network: "a/x", IfName: "net1"}, {Network: "a/y", IfName: "net2"}, {Network: "b/z", IfName: "net1"}},
			wantErr: `network "b/z": interface "net1" is also assigned to network "a/x"; request distinct names with "interface" or @name`,
			wantNet: "b/z",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := uniqueInterfaces(tc.atts)
			checkErr(t, err, tc.wantErr, tc.wantNet)
		})
	}
}

func checkErr(t *testing.T, err error, want, wantNet string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n got %v\nwant %s", err, want)
	}
	if got := podnet.NetworkOf(err); got != wantNet {
		t.Errorf("podnet.NetworkOf(err) = %q, want %q", got, wantNet)
	}
}

func TestOneGatewayPerFamily(t *testing.T) {
	const v4Taken = `network %q: field "default-route": network %q already takes the default route for this IP family; at most one gateway per family`
	tests := []struct {
		name    string
		atts    []podnet.Attachment
		wantErr string
		wantNet string
	}{
		{name: "none", atts: []podnet.Attachment{{Network: "pri"}, {Network: "a/x"}}},
		{
			name: "one per family on different networks",
			atts: []podnet.Attachment{{Network: "pri"}, {Network: "a/x", Gateways: []string{"10.0.0.1"}}, {Network: "a/y", Gateways: []string{"fd00::1"}}},
		},
		{
			name: "both families on one network",
			atts: []podnet.Attachment{{Network: "a/x", Gateways: []string{"10.0.0.1", "fd00::1"}}},
		},
		{
			name:    "two IPv4 gateways on two networks",
			atts:    []podnet.Attachment{{Network: "a/x", Gateways: []string{"10.0.0.1"}}, {Network: "a/y", Gateways: []string{"fd00::1"}}, {Network: "a/z", Gateways: []string{"192.168.1.1"}}},
			wantErr: fmt.Sprintf(v4Taken, "a/z", "a/x"),
			wantNet: "a/z",
		},
		{
			name:    "two IPv6 gateways on two networks",
			atts:    []podnet.Attachment{{Network: "a/x", Gateways: []string{"fd00::1"}}, {Network: "a/y", Gateways: []string{"10.0.0.1", "fd01::1"}}},
			wantErr: fmt.Sprintf(v4Taken, "a/y", "a/x"),
			wantNet: "a/y",
		},
		{
			name:    "two IPv4 gateways on one network",
			atts:    []podnet.Attachment{{Network: "a/x", Gateways: []string{"10.0.0.1", "10.0.0.2"}}},
			wantErr: fmt.Sprintf(v4Taken, "a/x", "a/x"),
			wantNet: "a/x",
		},
		{
			// An IPv4-mapped IPv6 address is IPv4.
			name:    "IPv4-mapped address counts as IPv4",
			atts:    []podnet.Attachment{{Network: "a/x", Gateways: []string{"10.0.0.1"}}, {Network: "a/y", Gateways: []string{"::ffff:10.0.0.2"}}},
			wantErr: fmt.Sprintf(v4Taken, "a/y", "a/x"),
			wantNet: "a/y",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, oneGatewayPerFamily(tc.atts), tc.wantErr, tc.wantNet)
		})
	}
}

func TestWarnDeduplicatesAndNames(t *testing.T) {
	e := &Resolver{}
	e.warn("", "", "plain")
	e.warn("a/x", "", "about a network")
	e.warn("a/x", "net1", "about an interface")
	e.warn("a/x", "net1", "about an interface")
	e.warn("", "net1", "interface without network")
	want := []string{
		"plain",
		`network "a/x": about a network`,
		`network "a/x" (interface net1): about an interface`,
		"interface without network",
	}
	if !reflect.DeepEqual(e.warnings, want) {
		t.Errorf("warnings:\n got %q\nwant %q", e.warnings, want)
	}
}

func TestDelegateArgs(t *testing.T) {
	tests := []struct {
		in, want [][2]string
	}{
		{nil, [][2]string{{"IgnoreUnknown", "1"}}},
		{
			[][2]string{{"K8S_POD_NAMESPACE", "a"}, {"IgnoreUnknown", "0"}, {"K8S_POD_NAME", "p"}},
			[][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "a"}, {"K8S_POD_NAME", "p"}},
		},
	}
	for _, tc := range tests {
		if got := delegate.Args(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("delegate.Args(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestRuntimeCapabilityArgs(t *testing.T) {
	e, _ := newEngine(t, `"clusterNetwork":"pri","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":8080,"protocol":"tcp"}],"bandwidth":{"ingressRate":1000}}`, nads())
	want := map[string]any{
		"portMappings": []any{map[string]any{"hostPort": 80.0, "containerPort": 8080.0, "protocol": "tcp"}},
		"bandwidth":    map[string]any{"ingressRate": 1000.0},
	}
	if got := e.runtimeCapabilityArgs(); !reflect.DeepEqual(got, want) {
		t.Errorf("runtimeCapabilityArgs = %v, want %v", got, want)
	}
	none, _ := newEngine(t, `"clusterNetwork":"pri"`, nads())
	if got := none.runtimeCapabilityArgs(); got != nil {
		t.Errorf("runtimeCapabilityArgs without runtimeConfig = %v, want nil", got)
	}
}

func TestAttachErrAndNetworkOf(t *testing.T) {
	inner := errors.New("boom")
	err := fmt.Errorf("pod a/p: %w", podnet.AttachError("a/x", "net1", inner))
	if want := `pod a/p: network "a/x" (interface net1): boom`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if got := podnet.NetworkOf(err); got != "a/x" {
		t.Errorf("networkOf = %q, want a/x", got)
	}
	if !errors.Is(err, inner) {
		t.Error("attachErr does not wrap the cause")
	}
	if got := podnet.NetworkOf(inner); got != "" {
		t.Errorf("podnet.NetworkOf(plain error) = %q, want empty", got)
	}
}

// fakeDevices is an in-memory DeviceSource.
type fakeDevices map[string][]string

func (f fakeDevices) Devices(_ context.Context, _ *podnet.Pod, resourceName string) ([]string, error) {
	if ids, ok := f[resourceName]; ok {
		return ids, nil
	}
	return nil, fmt.Errorf("resource %q: not allocated to the pod", resourceName)
}

func TestAssignDevices(t *testing.T) {
	e, _ := newEngine(t, `"clusterNetwork":"pri"`, nads())
	e.Devices = fakeDevices{"intel.com/a": {"0000:03:00.2", "0000:03:00.3"}, "intel.com/b": {"0000:04:00.1"}}
	atts := []podnet.Attachment{
		{Network: "pri", IfName: "eth0"},
		{Network: "ns/a1", IfName: "net1", ResourceName: "intel.com/a"},
		{Network: "ns/b1", IfName: "net2", ResourceName: "intel.com/b", CapabilityArgs: map[string]any{"mac": "02:00:00:00:00:01"}},
		{Network: "ns/a2", IfName: "net3", ResourceName: "intel.com/a"},
	}
	req := &podnet.Request{ContainerID: "c1"}
	if err := e.AssignDevices(context.Background(), podIn("ns", nil), req, atts); err != nil {
		t.Fatal(err)
	}
	dif := func(net, ifName string) string {
		return filepath.Join(e.DeviceInfoDir, "cni", net+"-c1-"+ifName+"-device.json")
	}
	want := []podnet.Attachment{
		{Network: "pri", IfName: "eth0"},
		{Network: "ns/a1", IfName: "net1", ResourceName: "intel.com/a", DeviceID: "0000:03:00.2", DeviceInfoFile: dif("ns-a1", "net1"),
			CapabilityArgs: map[string]any{"deviceID": "0000:03:00.2", "CNIDeviceInfoFile": dif("ns-a1", "net1")}},
		{Network: "ns/b1", IfName: "net2", ResourceName: "intel.com/b", DeviceID: "0000:04:00.1", DeviceInfoFile: dif("ns-b1", "net2"),
			CapabilityArgs: map[string]any{"mac": "02:00:00:00:00:01", "deviceID": "0000:04:00.1", "CNIDeviceInfoFile": dif("ns-b1", "net2")}},
		{Network: "ns/a2", IfName: "net3", ResourceName: "intel.com/a", DeviceID: "0000:03:00.3", DeviceInfoFile: dif("ns-a2", "net3"),
			CapabilityArgs: map[string]any{"deviceID": "0000:03:00.3", "CNIDeviceInfoFile": dif("ns-a2", "net3")}},
	}
	for i := range want {
		if !reflect.DeepEqual(atts[i], want[i]) {
			t.Errorf("attachment %d:\n got %+v\nwant %+v", i, atts[i], want[i])
		}
	}

	// Too few devices: the first attachment without one is named.
	e.Devices = fakeDevices{"intel.com/a": {"0000:03:00.2"}}
	atts = []podnet.Attachment{{Network: "ns/a1", IfName: "net1", ResourceName: "intel.com/a"}, {Network: "ns/a2", IfName: "net2", ResourceName: "intel.com/a"}}
	err := e.AssignDevices(context.Background(), podIn("ns", nil), req, atts)
	checkErr(t, err, `resource "intel.com/a": the pod holds 1 device(s) of it but 2 attachment(s) need one each (ns/a1, ns/a2); request 2 in the pod's resources`, "ns/a2")

	// No device source in this mode.
	e.Devices = nil
	err = e.AssignDevices(context.Background(), podIn("ns", nil), req, atts)
	checkErr(t, err, `network "ns/a1": resource "intel.com/a": no device source (kubelet pod-resources) available in this mode`, "ns/a1")
}
