package resolve

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

type fakeClaims map[string]*podnet.Claim

func (f fakeClaims) Claim(_ context.Context, ns, name string) (*podnet.Claim, error) {
	if c := f[ns+"/"+name]; c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("resourceclaim %s/%s not found", ns, name)
}

type fakeRecords map[string]*devinfo.DRADevice

func (f fakeRecords) Record(driver, pool, device string) (*devinfo.DRADevice, error) {
	return f[driver+"/"+pool+"/"+device], nil
}

func claimWorld() (*Resolver, *podnet.Pod) {
	recs := fakeRecords{}
	add := func(dev, pci, res, uid string) {
		recs["sriov.plexus.io/n1/"+dev] = &devinfo.DRADevice{Driver: "sriov.plexus.io", Pool: "n1", Device: dev, PCIAddress: pci, ResourceName: res, ClaimUID: uid}
	}
	add("vf-a", "0000:3c:00.0", "plexus.io/vf", "u1")
	add("vf-b", "0000:3c:00.1", "plexus.io/vf", "u1")
	add("vf-c", "0000:3c:00.2", "plexus.io/other", "u2")
	claims := fakeClaims{
		"ns/p-sriov-x": {Namespace: "ns", Name: "p-sriov-x", UID: "u1", Results: []podnet.ClaimResult{
			{Request: "vfs", Driver: "sriov.plexus.io", Pool: "n1", Device: "vf-a"},
			{Request: "gpu", Driver: "gpu.example.com", Pool: "n1", Device: "gpu-0"},
			{Request: "vfs", Driver: "sriov.plexus.io", Pool: "n1", Device: "vf-b"}}},
		"ns/p-more-y": {Namespace: "ns", Name: "p-more-y", UID: "u2", Results: []podnet.ClaimResult{
			{Request: "one", Driver: "sriov.plexus.io", Pool: "n1", Device: "vf-c"}}},
	}
	e := &Resolver{Claims: claims, DRADevices: recs, DeviceInfoDir: "/di"}
	pod := &podnet.Pod{Namespace: "ns", Name: "p", ResourceClaims: []podnet.PodClaim{{Name: "sriov", ClaimName: "p-sriov-x"}, {Name: "more", ClaimName: "p-more-y"}}}
	return e, pod
}

func TestAssignClaimDevices(t *testing.T) {
	e, pod := claimWorld()
	req := &podnet.Request{ContainerID: "cid"}
	atts := []podnet.Attachment{
		{Network: "pod-net", IfName: "eth0", Primary: true},
		{Network: "ns/a", IfName: "net1", ResourceName: "plexus.io/vf"},
		{Network: "ns/b", IfName: "net2", ResourceClaim: "more/one"},
		{Network: "ns/a", IfName: "net3", ResourceName: "plexus.io/vf"},
	}
	if err := e.AssignDevices(context.Background(), pod, req, atts); err != nil {
		t.Fatal(err)
	}
	want := []string{"", "0000:3c:00.0", "0000:3c:00.2", "0000:3c:00.1"}
	// A NAD naming the claim takes the VF's pool as its resource (whose
	// device-info file attach copies).
	if atts[2].ResourceName != "plexus.io/other" {
		t.Errorf("net2: resourceName %q, want the VF's plexus.io/other", atts[2].ResourceName)
	}
	for i, a := range atts {
		if a.DeviceID != want[i] {
			t.Errorf("%s: deviceID %q, want %q", a.IfName, a.DeviceID, want[i])
		}
		if want[i] != "" && (a.CapabilityArgs["deviceID"] != want[i] || a.DeviceInfoFile != devinfo.CNIPath("/di", a.Network, "cid", a.IfName)) {
			t.Errorf("%s: capability args %v, device-info %q", a.IfName, a.CapabilityArgs, a.DeviceInfoFile)
		}
	}
}

func TestAssignClaimDevicesErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		atts []podnet.Attachment
		want string
	}{
		{"more attachments than VFs", []podnet.Attachment{{Network: "ns/a", IfName: "net1", ResourceClaim: "sriov/vfs"}, {Network: "ns/a", IfName: "net2", ResourceClaim: "sriov"}, {Network: "ns/a", IfName: "net3", ResourceClaim: "sriov"}},
			`network "ns/a" (interface net3): annotation plexus.io/resourceClaim: "sriov": the pod's claims hold 2 VF(s)`},
		{"unknown claim", []podnet.Attachment{{Network: "ns/a", IfName: "net1", ResourceClaim: "nope"}},
			`network "ns/a" (interface net1): annotation plexus.io/resourceClaim: the pod has no resourceClaim "nope"`},
		{"resourceName exhausted", []podnet.Attachment{{Network: "ns/o", IfName: "net1", ResourceName: "plexus.io/other"}, {Network: "ns/o", IfName: "net2", ResourceName: "plexus.io/other"}},
			`network "ns/o" (interface net2): resource "plexus.io/other": the pod's claims hold 1 VF(s)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, pod := claimWorld()
			err := e.AssignDevices(context.Background(), pod, &podnet.Request{ContainerID: "c"}, tc.atts)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want prefix %q", err, tc.want)
			}
		})
	}
	// A pod without claims naming one.
	e, _ := claimWorld()
	err := e.AssignDevices(context.Background(), &podnet.Pod{Namespace: "ns", Name: "q"}, &podnet.Request{}, []podnet.Attachment{{Network: "ns/a", IfName: "net1", ResourceClaim: "sriov"}})
	if err == nil || !strings.HasPrefix(err.Error(), `network "ns/a" (interface net1): annotation plexus.io/resourceClaim: "sriov", but the pod has no resourceClaims`) {
		t.Errorf("no claims: %v", err)
	}
}

// A resourceName no claimed VF carries stays the device plugin's.
func TestAssignClaimDevicesLeavesDevicePluginResources(t *testing.T) {
	e, pod := claimWorld()
	atts := []podnet.Attachment{{Network: "ns/d", IfName: "net1", ResourceName: "plexus.io/dp_only"}}
	err := e.AssignDevices(context.Background(), pod, &podnet.Request{}, atts)
	if err == nil || !strings.Contains(err.Error(), "no device source (kubelet pod-resources)") {
		t.Fatalf("error %v, want the device plugin path's (no device source here)", err)
	}
}

// Where claims cannot be read (no claim source, no RBAC), a pod whose NADs
// only name resources keeps the device plugin path, with a warning; a NAD
// naming a claim fails.
func TestClaimsUnreadable(t *testing.T) {
	e, pod := claimWorld()
	e.Claims = fakeClaims{} // every GET fails
	atts := []podnet.Attachment{{Network: "ns/d", IfName: "net1", ResourceName: "plexus.io/vf"}}
	err := e.AssignDevices(context.Background(), pod, &podnet.Request{}, atts)
	if err == nil || !strings.Contains(err.Error(), "no device source (kubelet pod-resources)") {
		t.Fatalf("error %v, want the device plugin path's", err)
	}
	if w := e.Warnings(); len(w) != 1 || !strings.HasPrefix(w[0], "VFs from the pod's resourceClaims not considered: ") {
		t.Errorf("warnings %q", w)
	}
	e, pod = claimWorld()
	e.Claims = fakeClaims{}
	err = e.AssignDevices(context.Background(), pod, &podnet.Request{}, []podnet.Attachment{{Network: "ns/d", IfName: "net1", ResourceClaim: "sriov"}})
	if err == nil || !strings.HasPrefix(err.Error(), `network "ns/d" (interface net1): resourceClaim "sriov": resourceclaim ns/p-sriov-x not found`) {
		t.Errorf("explicit claim, unreadable: %v", err)
	}
}

type fakeAttrs map[string]map[string]string

func (f fakeAttrs) PoolAttributes(_ context.Context, driver, pool string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for k, v := range f {
		if d, ok := strings.CutPrefix(k, driver+"/"+pool+"/"); ok {
			out[d] = v
		}
	}
	return out, nil
}

// Another driver's VFs (dra-driver-sriov's, in Multus mode) by their
// k8s.cni.cncf.io attributes; a device without a deviceID (a GPU) is none.
func TestAssignClaimDevicesOtherDriver(t *testing.T) {
	e, pod := claimWorld()
	e.Claims.(fakeClaims)["ns/p-more-y"].Results = []podnet.ClaimResult{
		{Request: "gpu", Driver: "gpu.example.com", Pool: "n1", Device: "gpu-0"},
		{Request: "vf", Driver: "sriovnetwork.k8snetworkplumbingwg.io", Pool: "n1", Device: "0000-5e-00-3"}}
	e.Attributes = fakeAttrs{
		"gpu.example.com/n1/gpu-0":                             {"gpu.example.com/model": "x"},
		"sriovnetwork.k8snetworkplumbingwg.io/n1/0000-5e-00-3": {AttrResourceName: "sriov_nic_1", AttrDeviceID: "0000:5e:00.3"},
	}
	atts := []podnet.Attachment{{Network: "ns/nic1", IfName: "net1", ResourceName: "sriov_nic_1"}}
	if err := e.AssignDevices(context.Background(), pod, &podnet.Request{ContainerID: "c"}, atts); err != nil {
		t.Fatal(err)
	}
	if atts[0].DeviceID != "0000:5e:00.3" {
		t.Errorf("deviceID %q, want the other driver's 0000:5e:00.3", atts[0].DeviceID)
	}
}
