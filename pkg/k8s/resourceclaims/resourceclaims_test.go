package resourceclaims

import (
	"encoding/json"
	"reflect"
	"testing"

	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plexus-cni/plexus/pkg/k8s"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

// The typed conversion and the thin path's JSON decoding agree.
func TestFromAPIMatchesJSON(t *testing.T) {
	c := &resourcev1.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p-sriov-x", UID: "u1"},
		Status: resourcev1.ResourceClaimStatus{Allocation: &resourcev1.AllocationResult{Devices: resourcev1.DeviceAllocationResult{Results: []resourcev1.DeviceRequestAllocationResult{
			{Request: "vfs", Driver: "sriov.plexus.io", Pool: "n1", Device: "vf-a"},
			{Request: "vfs/sub", Driver: "gpu.example.com", Pool: "n1", Device: "gpu-0"}}}}}}
	want := &podnet.Claim{Namespace: "ns", Name: "p-sriov-x", UID: "u1", Results: []podnet.ClaimResult{
		{Request: "vfs", Driver: "sriov.plexus.io", Pool: "n1", Device: "vf-a"}, {Request: "vfs/sub", Driver: "gpu.example.com", Pool: "n1", Device: "gpu-0"}}}
	if got := FromAPI(c); !reflect.DeepEqual(got, want) {
		t.Errorf("FromAPI = %+v, want %+v", got, want)
	}
	raw, _ := json.Marshal(c)
	got, err := k8s.ClaimFromJSON(raw)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ClaimFromJSON = %+v %v, want %+v", got, err, want)
	}
	// Not allocated: no devices.
	c.Status.Allocation = nil
	if got := FromAPI(c); len(got.Results) != 0 {
		t.Errorf("unallocated: %+v", got)
	}
}
