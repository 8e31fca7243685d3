package dra

import (
	"context"
	"strings"
	"testing"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

func wantRes(pool string, names ...string) resourceslice.DriverResources {
	var devs []resourceapi.Device
	for _, n := range names {
		devs = append(devs, resourceapi.Device{Name: n})
	}
	return resourceslice.DriverResources{Pools: map[string]resourceslice.Pool{pool: {Slices: []resourceslice.Slice{{Devices: devs}}}}}
}

func slice(name, driver, node, pool string, gen, count int64, names ...string) resourceapi.ResourceSlice {
	s := resourceapi.ResourceSlice{ObjectMeta: metav1.ObjectMeta{Name: name}}
	s.Spec.Driver, s.Spec.NodeName = driver, &node
	s.Spec.Pool = resourceapi.ResourcePool{Name: pool, Generation: gen, ResourceSliceCount: count}
	for _, n := range names {
		s.Spec.Devices = append(s.Spec.Devices, resourceapi.Device{Name: n})
	}
	return s
}

func TestSlicesPublished(t *testing.T) {
	const drv, node = "sriov.plexus.io", "n1"
	want := wantRes(node, "vf-a", "vf-b")
	for _, c := range []struct {
		name   string
		slices []resourceapi.ResourceSlice
		want   string // "" for ready
	}{
		{"none", nil, "pool n1: no ResourceSlice of driver sriov.plexus.io for node n1 published yet"},
		{"another driver's", []resourceapi.ResourceSlice{slice("x", "other.io", node, node, 1, 1, "vf-a", "vf-b")}, "no ResourceSlice"},
		{"another node's", []resourceapi.ResourceSlice{slice("x", drv, "n2", node, 1, 1, "vf-a", "vf-b")}, "no ResourceSlice"},
		{"published", []resourceapi.ResourceSlice{slice("x", drv, node, node, 1, 1, "vf-a", "vf-b")}, ""},
		{"old generation only counts when newest", []resourceapi.ResourceSlice{
			slice("x", drv, node, node, 1, 1, "vf-a", "vf-b"), slice("y", drv, node, node, 2, 1, "vf-a")},
			"the API has 1 devices, the driver publishes 2 (not yet there: vf-b)"},
		{"incomplete generation", []resourceapi.ResourceSlice{slice("x", drv, node, node, 3, 2, "vf-a", "vf-b")}, "1 of 2 ResourceSlices of generation 3"},
		{"split over two slices", []resourceapi.ResourceSlice{
			slice("x", drv, node, node, 3, 2, "vf-a"), slice("y", drv, node, node, 3, 2, "vf-b")}, ""},
		{"a withdrawn device still there", []resourceapi.ResourceSlice{slice("x", drv, node, node, 1, 1, "vf-a", "vf-b", "vf-c")}, "the API has 3 devices, the driver publishes 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := slicesPublished(want, drv, node, c.slices)
			if c.want == "" {
				if err != nil {
					t.Fatalf("want ready: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

// The readiness steps a starting driver goes through, against a fake API:
// not started, not registered, refused, no slices, ready; a new
// publication is checked again.
func TestReadiness(t *testing.T) {
	const drv, node = "sriov.plexus.io", "n1"
	client := fake.NewClientset()
	r := &readiness{driver: drv, node: node, client: client, timeout: time.Second}
	expect := func(want string) {
		t.Helper()
		err := r.NotReady()
		if want == "" {
			if err != nil {
				t.Fatalf("want ready: %v", err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want %q", err, want)
		}
	}
	expect("the kubelet plugin is not started yet")
	var status *registerapi.RegistrationStatus
	r.pluginStarted(func() *registerapi.RegistrationStatus { return status })
	expect("not registered with kubelet yet")
	status = &registerapi.RegistrationStatus{PluginRegistered: false, Error: "version 9 unsupported"}
	expect("kubelet refused the registration: version 9 unsupported")
	status = &registerapi.RegistrationStatus{PluginRegistered: true}
	expect("no ResourceSlices handed to the publisher yet")
	r.published(wantRes(node, "vf-a", "vf-b"))
	expect("pool n1: no ResourceSlice")
	s := slice("n1-sriov-abc", drv, node, node, 1, 1, "vf-a", "vf-b")
	if _, err := client.ResourceV1().ResourceSlices().Create(context.Background(), &s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("")
	// A PF went down: the new publication withdraws vf-b; until the API
	// shows it, not ready.
	r.published(wantRes(node, "vf-a"))
	expect("the API has 2 devices, the driver publishes 1")
	s2 := slice("n1-sriov-abc", drv, node, node, 2, 1, "vf-a")
	if _, err := client.ResourceV1().ResourceSlices().Update(context.Background(), &s2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("")
}
