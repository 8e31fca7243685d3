package kubeletstub_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/plexus-cni/plexus/pkg/testutil/kubeletstub"
)

// fakePlugin is a minimal device plugin: a fixed device list, a fixed
// preference, and a record of Allocate requests.
type fakePlugin struct {
	pluginapi.UnimplementedDevicePluginServer
	devs   []*pluginapi.Device
	prefer []string

	mu        sync.Mutex
	allocated [][]string
}

func (f *fakePlugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: f.prefer != nil}, nil
}

func (f *fakePlugin) ListAndWatch(_ *pluginapi.Empty, s grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	if err := s.Send(&pluginapi.ListAndWatchResponse{Devices: f.devs}); err != nil {
		return err
	}
	<-s.Context().Done()
	return nil
}

func (f *fakePlugin) GetPreferredAllocation(_ context.Context, r *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	cr := r.ContainerRequests[0]
	var out []string
	for _, id := range f.prefer {
		if slices.Contains(cr.AvailableDeviceIDs, id) && len(out) < int(cr.AllocationSize) {
			out = append(out, id)
		}
	}
	return &pluginapi.PreferredAllocationResponse{ContainerResponses: []*pluginapi.ContainerPreferredAllocationResponse{{DeviceIDs: out}}}, nil
}

func (f *fakePlugin) Allocate(_ context.Context, r *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &pluginapi.AllocateResponse{}
	for _, cr := range r.ContainerRequests {
		f.allocated = append(f.allocated, cr.DevicesIds)
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{Envs: map[string]string{"IDS": strings.Join(cr.DevicesIds, ",")}})
	}
	return resp, nil
}

func dev(id string, healthy bool, numa int64) *pluginapi.Device {
	h := pluginapi.Healthy
	if !healthy {
		h = pluginapi.Unhealthy
	}
	return &pluginapi.Device{ID: id, Health: h, Topology: &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: numa}}}}
}

// startFake serves f in dir and registers it as resource with the stub.
func startFake(t *testing.T, k *kubeletstub.Kubelet, resource string, f *fakePlugin) {
	t.Helper()
	ep := strings.ReplaceAll(resource, "/", "_") + ".sock"
	lis, err := net.Listen("unix", filepath.Join(k.Dir, ep))
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(g, f)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient("unix://"+k.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{Version: pluginapi.Version, Endpoint: ep, ResourceName: resource}); err != nil {
		t.Fatal(err)
	}
	k.WaitPlugin(t, resource, 1, 5*time.Second).WaitDevices(t, 5*time.Second, func(d []*pluginapi.Device) bool { return len(d) == len(f.devs) })
}

func TestNodeAdmitAndPodResources(t *testing.T) {
	short, err := os.MkdirTemp("", "kps")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	k := kubeletstub.Start(t, filepath.Join(short, "dp"))
	net1 := &fakePlugin{devs: []*pluginapi.Device{dev("a0", true, 0), dev("a1", true, 0), dev("a2", true, 1), dev("a3", true, 1), dev("a4", false, 0)}, prefer: []string{"a3", "a2", "a1"}}
	net2 := &fakePlugin{devs: []*pluginapi.Device{dev("b0", true, 0), dev("b1", true, 0)}}
	startFake(t, k, "example.com/net1", net1)
	startFake(t, k, "example.com/net2", net2)
	n := kubeletstub.StartNode(t, k, filepath.Join(short, "pr", "kubelet.sock"))
	ctx := context.Background()

	p, err := n.Admit(ctx, "ns", "pod", kubeletstub.Container{Name: "app", Resources: map[string]int{"example.com/net1": 2, "example.com/net2": 1}},
		kubeletstub.Container{Name: "side", Resources: map[string]int{"example.com/net1": 1}})
	if err != nil {
		t.Fatal(err)
	}
	// The plugin's preference wins for the first container, and the second
	// gets the next preferred free device.
	if got := p.Devices["app"]["example.com/net1"]; !slices.Equal(got, []string{"a3", "a2"}) {
		t.Errorf("app net1 devices %v, want the preferred [a3 a2]", got)
	}
	if got := p.Devices["side"]["example.com/net1"]; !slices.Equal(got, []string{"a1"}) {
		t.Errorf("side net1 devices %v, want [a1]", got)
	}
	if got := p.DeviceIDs("example.com/net1"); !slices.Equal(got, []string{"a3", "a2", "a1"}) {
		t.Errorf("DeviceIDs %v", got)
	}
	if got := p.Responses["app"]["example.com/net2"].Envs["IDS"]; got != p.Devices["app"]["example.com/net2"][0] {
		t.Errorf("net2 Allocate response %q does not match the allocation %v", got, p.Devices["app"])
	}

	conn, err := grpc.NewClient("unix://"+n.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := podresourcesv1.NewPodResourcesListerClient(conn)
	got, err := c.Get(ctx, &podresourcesv1.GetPodResourcesRequest{PodNamespace: "ns", PodName: "pod"})
	if err != nil {
		t.Fatal(err)
	}
	if ids := reported(got.PodResources, "app", "example.com/net1"); !slices.Equal(ids, []string{"a2/1", "a3/1"}) {
		t.Errorf("Get: app net1 %v", ids)
	}
	if ids := reported(got.PodResources, "side", "example.com/net1"); !slices.Equal(ids, []string{"a1/0"}) {
		t.Errorf("Get: side net1 %v", ids)
	}
	if _, err := c.Get(ctx, &podresourcesv1.GetPodResourcesRequest{PodNamespace: "ns", PodName: "nope"}); err == nil || !strings.Contains(err.Error(), "pod nope in namespace ns not found") {
		t.Errorf("Get of an unknown pod: %v", err)
	}
	n.GetDisabled.Store(true)
	if _, err := c.Get(ctx, &podresourcesv1.GetPodResourcesRequest{PodNamespace: "ns", PodName: "pod"}); err == nil || !strings.Contains(err.Error(), "Get method disabled") {
		t.Errorf("Get with the gate off: %v", err)
	}
	l, err := c.List(ctx, &podresourcesv1.ListPodResourcesRequest{})
	if err != nil || len(l.PodResources) != 1 || l.PodResources[0].Name != "pod" {
		t.Fatalf("List: %v %v", l, err)
	}
	if gets, lists := n.Calls(); gets != 3 || lists != 1 {
		t.Errorf("calls: %d gets, %d lists", gets, lists)
	}
	alloc, err := c.GetAllocatableResources(ctx, &podresourcesv1.AllocatableResourcesRequest{})
	if err != nil || len(alloc.Devices) != 6 { // a4 is unhealthy
		t.Errorf("allocatable: %v %v", alloc, err)
	}

	// One healthy net1 device is left (a0): a pod asking two fails and holds nothing.
	if _, err := n.Admit(ctx, "ns", "big", kubeletstub.Container{Name: "c", Resources: map[string]int{"example.com/net2": 1, "example.com/net1": 2}}); err == nil || !strings.Contains(err.Error(), "requested 2, available 1") {
		t.Fatalf("over-allocation: %v", err)
	}
	if _, err := n.Admit(ctx, "ns", "pod", kubeletstub.Container{Name: "c"}); err == nil {
		t.Error("the same pod admitted twice")
	}
	q, err := n.Admit(ctx, "ns", "small", kubeletstub.Container{Name: "c", Resources: map[string]int{"example.com/net1": 1, "example.com/net2": 1}})
	if err != nil {
		t.Fatalf("the failed admission kept devices: %v", err)
	}
	if got := q.DeviceIDs("example.com/net1"); !slices.Equal(got, []string{"a0"}) {
		t.Errorf("small: %v", got)
	}
	// Removing a pod frees its devices.
	n.Remove("ns", "pod")
	if _, err := n.Admit(ctx, "ns", "again", kubeletstub.Container{Name: "c", Resources: map[string]int{"example.com/net1": 3}}); err != nil {
		t.Errorf("after Remove: %v", err)
	}
	if len(net1.allocated) != 4 {
		t.Errorf("net1 Allocate calls %v", net1.allocated)
	}
}

// reported lists "id/numa" of a container's devices of a resource, sorted.
func reported(pr *podresourcesv1.PodResources, container, resource string) []string {
	var out []string
	for _, c := range pr.Containers {
		if c.Name != container {
			continue
		}
		for _, d := range c.Devices {
			if d.ResourceName != resource {
				continue
			}
			for _, id := range d.DeviceIds {
				s := id
				for _, nd := range d.Topology.GetNodes() {
					s += "/" + string(rune('0'+nd.ID))
				}
				out = append(out, s)
			}
		}
	}
	sort.Strings(out)
	return out
}
