package k8s_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plexus-cni/plexus/pkg/k8s"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

// A claim from the real apiserver: its allocation (set as the scheduler
// does, through status), one GET; a pod's resourceClaimStatuses reach
// podnet.Pod; a missing claim is named.
func TestClaimGetAndPodClaims(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t)
	ctx := context.Background()
	claim, err := e.cs.ResourceV1().ResourceClaims(ns).Create(ctx, &resourcev1.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Name: "c1"},
		Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{Name: "vfs",
			Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: "sriov-vf.plexus.io", AllocationMode: resourcev1.DeviceAllocationModeExactCount, Count: 2}}}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	claim.Status.Allocation = &resourcev1.AllocationResult{Devices: resourcev1.DeviceAllocationResult{Results: []resourcev1.DeviceRequestAllocationResult{
		{Request: "vfs", Driver: "sriov.plexus.io", Pool: "n1", Device: "vf-0000-3c-00-1"},
		{Request: "vfs", Driver: "sriov.plexus.io", Pool: "n1", Device: "vf-0000-3c-00-0"}}}}
	if claim, err = e.cs.ResourceV1().ResourceClaims(ns).UpdateStatus(ctx, claim, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := load(t, e.cp.AdminKubeconfig, k8s.Options{})
	got, err := c.NADs().Claim(ctx, ns, "c1")
	if err != nil {
		t.Fatal(err)
	}
	want := &podnet.Claim{Namespace: ns, Name: "c1", UID: string(claim.UID), Results: []podnet.ClaimResult{
		{Request: "vfs", Driver: "sriov.plexus.io", Pool: "n1", Device: "vf-0000-3c-00-1"},
		{Request: "vfs", Driver: "sriov.plexus.io", Pool: "n1", Device: "vf-0000-3c-00-0"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("claim %+v, want %+v", got, want)
	}
	if n := c.Requests(); n != 1 {
		t.Errorf("%d requests for one claim GET, want 1", n)
	}
	if _, err := c.NADs().Claim(ctx, ns, "nope"); err == nil || !strings.HasPrefix(err.Error(), "resourceclaim "+ns+"/nope not found") {
		t.Errorf("missing claim: %v", err)
	}

	name, tmpl, no := "c1", "t", false
	pod, err := e.cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{
		NodeName: "plexus-node", AutomountServiceAccountToken: &no,
		ResourceClaims: []corev1.PodResourceClaim{{Name: "sriov", ResourceClaimName: &name}, {Name: "pending", ResourceClaimTemplateName: &tmpl}},
		Containers:     []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A claim named in the spec has no status entry; one from a template
	// has its generated name there (none yet here).
	pod.Status.ResourceClaimStatuses = []corev1.PodResourceClaimStatus{{Name: "pending"}}
	if _, err := e.cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := c.Pods().Pod(ctx, podnet.PodRef{Namespace: ns, Name: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.ResourceClaims, []podnet.PodClaim{{Name: "sriov", ClaimName: "c1"}, {Name: "pending"}}) {
		t.Errorf("pod claims %+v", p.ResourceClaims)
	}
}

// Another driver's devices by their attributes, from the real apiserver's
// ResourceSlices: unqualified names in the driver's domain, non-strings
// left out, other pools and drivers not mixed in.
func TestPoolAttributes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	node := "plexus-node"
	mk := func(name, driver, pool, device string, attrs map[resourcev1.QualifiedName]resourcev1.DeviceAttribute) {
		if _, err := e.cs.ResourceV1().ResourceSlices().Create(ctx, &resourcev1.ResourceSlice{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: resourcev1.ResourceSliceSpec{Driver: driver, Pool: resourcev1.ResourcePool{Name: pool, ResourceSliceCount: 1}, NodeName: &node,
				Devices: []resourcev1.Device{{Name: device, Attributes: attrs}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	str := func(s string) resourcev1.DeviceAttribute { return resourcev1.DeviceAttribute{StringValue: &s} }
	one := int64(1)
	mk("pa-1", "sriovnetwork.k8snetworkplumbingwg.io", "n1", "0000-5e-00-3", map[resourcev1.QualifiedName]resourcev1.DeviceAttribute{
		"k8s.cni.cncf.io/resourceName": str("sriov_nic_1"), "k8s.cni.cncf.io/deviceID": str("0000:5e:00.3"),
		"PFName": str("eth0"), "numa": {IntValue: &one}})
	mk("pa-2", "sriovnetwork.k8snetworkplumbingwg.io", "n2", "0000-5e-00-3", map[resourcev1.QualifiedName]resourcev1.DeviceAttribute{
		"k8s.cni.cncf.io/deviceID": str("0000:99:00.0")})
	mk("pa-3", "gpu.example.com", "n1", "gpu-0", nil)
	c := load(t, e.cp.AdminKubeconfig, k8s.Options{})
	got, err := c.NADs().PoolAttributes(ctx, "sriovnetwork.k8snetworkplumbingwg.io", "n1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{"0000-5e-00-3": {
		"k8s.cni.cncf.io/resourceName": "sriov_nic_1", "k8s.cni.cncf.io/deviceID": "0000:5e:00.3",
		"sriovnetwork.k8snetworkplumbingwg.io/PFName": "eth0"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("attributes %v, want %v", got, want)
	}
	if n := c.Requests(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}
