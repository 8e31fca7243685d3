package kubeletstub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// Node is the rest of the test kubelet a CNI plugin sees: pod admission
// that allocates devices the way kubelet's device manager does
// (GetPreferredAllocation over the free healthy devices, then Allocate per
// container and resource, over the plugins' real v1beta1 API), and the
// pod-resources v1 API (List, Get, GetAllocatableResources) on a unix
// socket, answering from those allocations.
//
// Like kubelet, Get and List report a container's devices in map order:
// one ContainerDevices per device (per NUMA node), in an order that changes
// from call to call. Clients that need a stable order must sort.
type Node struct {
	podresourcesv1.UnimplementedPodResourcesListerServer
	Kubelet *Kubelet
	Socket  string

	// GetDisabled makes Get answer as a kubelet with the
	// KubeletPodResourcesGet feature gate off does.
	GetDisabled atomic.Bool

	admit     sync.Mutex // one admission at a time, as kubelet's pod workers admit
	mu        sync.Mutex
	srv       *grpc.Server
	pods      []*Pod
	allocated map[string]map[string]bool // resource -> device IDs in use
	gets      atomic.Int64
	lists     atomic.Int64
}

// Container is one container of a pod spec with its extended-resource
// limits (resource name -> count).
type Container struct {
	Name      string
	Resources map[string]int
}

// Pod is an admitted pod and what kubelet allocated to it.
type Pod struct {
	Namespace, Name, UID string
	Containers           []Container
	// Devices[container][resource] are the allocated device IDs, in the
	// order they were sent to Allocate.
	Devices map[string]map[string][]string
	// Responses[container][resource] is the plugin's Allocate answer.
	Responses map[string]map[string]*pluginapi.ContainerAllocateResponse

	topology map[string][]int64 // device ID -> NUMA nodes ("" none)
}

// DeviceIDs returns every device of resource the pod holds, containers in
// spec order, each container's devices in allocation order.
func (p *Pod) DeviceIDs(resource string) []string {
	var out []string
	for _, c := range p.Containers {
		out = append(out, p.Devices[c.Name][resource]...)
	}
	return out
}

// StartNode serves the pod-resources API at socket (its directory is made
// if missing) for the pods admitted through the returned Node; it stops at
// the end of the test.
func StartNode(t testing.TB, k *Kubelet, socket string) *Node {
	t.Helper()
	n := &Node{Kubelet: k, Socket: socket, allocated: map[string]map[string]bool{}}
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(socket)
	lis, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatalf("kubeletstub: pod-resources listen: %v", err)
	}
	n.srv = grpc.NewServer()
	podresourcesv1.RegisterPodResourcesListerServer(n.srv, n)
	go func() { _ = n.srv.Serve(lis) }()
	t.Cleanup(func() {
		n.srv.Stop()
		_ = os.Remove(socket)
	})
	return n
}

// Calls returns how many Get and List requests were served.
func (n *Node) Calls() (gets, lists int64) { return n.gets.Load(), n.lists.Load() }

// Admit allocates the devices of every container (in spec order, each
// container's resources in name order) as kubelet does before starting the
// pod, and records the pod for the pod-resources API. On failure nothing
// stays allocated.
func (n *Node) Admit(ctx context.Context, namespace, name string, containers ...Container) (*Pod, error) {
	n.admit.Lock()
	defer n.admit.Unlock()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	p := &Pod{Namespace: namespace, Name: name, UID: hex.EncodeToString(b), Containers: containers,
		Devices: map[string]map[string][]string{}, Responses: map[string]map[string]*pluginapi.ContainerAllocateResponse{},
		topology: map[string][]int64{}}
	n.mu.Lock()
	for _, q := range n.pods {
		if q.Namespace == namespace && q.Name == name {
			n.mu.Unlock()
			return nil, fmt.Errorf("kubeletstub: pod %s/%s already admitted", namespace, name)
		}
	}
	n.mu.Unlock()
	for _, c := range containers {
		p.Devices[c.Name] = map[string][]string{}
		p.Responses[c.Name] = map[string]*pluginapi.ContainerAllocateResponse{}
		res := make([]string, 0, len(c.Resources))
		for r := range c.Resources {
			res = append(res, r)
		}
		sort.Strings(res)
		for _, r := range res {
			if err := n.allocate(ctx, p, c.Name, r, c.Resources[r]); err != nil {
				n.release(p)
				return nil, fmt.Errorf("kubeletstub: pod %s/%s container %s: %w", namespace, name, c.Name, err)
			}
		}
	}
	n.mu.Lock()
	n.pods = append(n.pods, p)
	n.mu.Unlock()
	return p, nil
}

// Remove forgets a pod and frees its devices, as kubelet does once the pod
// is gone.
func (n *Node) Remove(namespace, name string) {
	n.mu.Lock()
	var gone *Pod
	for i, p := range n.pods {
		if p.Namespace == namespace && p.Name == name {
			gone = p
			n.pods = append(n.pods[:i], n.pods[i+1:]...)
			break
		}
	}
	n.mu.Unlock()
	if gone != nil {
		n.release(gone)
	}
}

func (n *Node) release(p *Pod) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, byRes := range p.Devices {
		for r, ids := range byRes {
			for _, id := range ids {
				delete(n.allocated[r], id)
			}
		}
	}
}

// allocate is kubelet's devicesToAllocate + Allocate for one container and
// resource, without a topology manager: the plugin's preferred devices
// first, then any free healthy ones.
func (n *Node) allocate(ctx context.Context, p *Pod, container, resource string, count int) error {
	if count <= 0 {
		return nil
	}
	n.Kubelet.mu.Lock()
	plugin := n.Kubelet.plugins[resource]
	n.Kubelet.mu.Unlock()
	if plugin == nil {
		return fmt.Errorf("resource %s: cannot allocate unregistered device", resource)
	}
	devs, _ := plugin.Devices()
	n.mu.Lock()
	if n.allocated[resource] == nil {
		n.allocated[resource] = map[string]bool{}
	}
	inUse := n.allocated[resource]
	var available []string
	topo := map[string][]int64{}
	for _, d := range devs {
		if d.Health != pluginapi.Healthy || inUse[d.ID] {
			continue
		}
		available = append(available, d.ID)
		for _, nd := range d.GetTopology().GetNodes() {
			topo[d.ID] = append(topo[d.ID], nd.GetID())
		}
	}
	if len(available) < count {
		n.mu.Unlock()
		return fmt.Errorf("resource %s: requested number of devices unavailable: requested %d, available %d", resource, count, len(available))
	}
	// kubelet hands the plugin an unsorted set.
	mrand.Shuffle(len(available), func(i, j int) { available[i], available[j] = available[j], available[i] })
	n.mu.Unlock()

	picked := map[string]bool{}
	var ids []string
	take := func(id string) {
		if !picked[id] && len(ids) < count {
			picked[id] = true
			ids = append(ids, id)
		}
	}
	if plugin.Options.GetGetPreferredAllocationAvailable() {
		pref, err := plugin.Prefer(ctx, available, nil, count)
		if err != nil {
			return fmt.Errorf("resource %s: GetPreferredAllocation: %w", resource, err)
		}
		avail := map[string]bool{}
		for _, id := range available {
			avail[id] = true
		}
		for _, id := range pref {
			if avail[id] {
				take(id)
			}
		}
	}
	for _, id := range available {
		take(id)
	}
	n.mu.Lock()
	for _, id := range ids {
		inUse[id] = true
	}
	n.mu.Unlock()
	// Recorded before Allocate so that a failed Allocate is released too.
	p.Devices[container][resource] = ids
	resp, err := plugin.Allocate(ctx, ids)
	if err != nil {
		return fmt.Errorf("resource %s: Allocate %v: %w", resource, ids, err)
	}
	if len(resp.GetContainerResponses()) != 1 {
		return fmt.Errorf("resource %s: Allocate %v: %d container responses, want 1", resource, ids, len(resp.GetContainerResponses()))
	}
	p.Responses[container][resource] = resp.ContainerResponses[0]
	for _, id := range ids {
		p.topology[id] = topo[id]
	}
	return nil
}

// List is the pod-resources List RPC: every admitted pod.
func (n *Node) List(context.Context, *podresourcesv1.ListPodResourcesRequest) (*podresourcesv1.ListPodResourcesResponse, error) {
	n.lists.Add(1)
	n.mu.Lock()
	defer n.mu.Unlock()
	resp := &podresourcesv1.ListPodResourcesResponse{}
	for _, p := range n.pods {
		resp.PodResources = append(resp.PodResources, p.resources())
	}
	return resp, nil
}

// Get is the pod-resources Get RPC, with kubelet's errors.
func (n *Node) Get(_ context.Context, req *podresourcesv1.GetPodResourcesRequest) (*podresourcesv1.GetPodResourcesResponse, error) {
	n.gets.Add(1)
	if n.GetDisabled.Load() {
		return nil, fmt.Errorf("PodResources API Get method disabled")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.pods {
		if p.Namespace == req.PodNamespace && p.Name == req.PodName {
			return &podresourcesv1.GetPodResourcesResponse{PodResources: p.resources()}, nil
		}
	}
	return nil, fmt.Errorf("pod %s in namespace %s not found", req.PodName, req.PodNamespace)
}

// GetAllocatableResources lists every healthy device of every registered
// plugin, one entry per device and NUMA node.
func (n *Node) GetAllocatableResources(context.Context, *podresourcesv1.AllocatableResourcesRequest) (*podresourcesv1.AllocatableResourcesResponse, error) {
	n.Kubelet.mu.Lock()
	plugins := make(map[string]*Plugin, len(n.Kubelet.plugins))
	for r, p := range n.Kubelet.plugins {
		plugins[r] = p
	}
	n.Kubelet.mu.Unlock()
	resp := &podresourcesv1.AllocatableResourcesResponse{}
	for r, p := range plugins {
		devs, _ := p.Devices()
		for _, d := range devs {
			if d.Health != pluginapi.Healthy {
				continue
			}
			var nodes []int64
			for _, nd := range d.GetTopology().GetNodes() {
				nodes = append(nodes, nd.GetID())
			}
			resp.Devices = append(resp.Devices, containerDevices(r, d.ID, nodes)...)
		}
	}
	return resp, nil
}

// resources renders the pod as kubelet does: containers in spec order, and
// within a container resources and devices in map (random) order.
func (p *Pod) resources() *podresourcesv1.PodResources {
	pr := &podresourcesv1.PodResources{Name: p.Name, Namespace: p.Namespace}
	for _, c := range p.Containers {
		cr := &podresourcesv1.ContainerResources{Name: c.Name}
		for r, ids := range p.Devices[c.Name] {
			set := map[string]bool{}
			for _, id := range ids {
				set[id] = true
			}
			for id := range set {
				cr.Devices = append(cr.Devices, containerDevices(r, id, p.topology[id])...)
			}
		}
		mrand.Shuffle(len(cr.Devices), func(i, j int) { cr.Devices[i], cr.Devices[j] = cr.Devices[j], cr.Devices[i] })
		pr.Containers = append(pr.Containers, cr)
	}
	return pr
}

func containerDevices(resource, id string, nodes []int64) []*podresourcesv1.ContainerDevices {
	if len(nodes) == 0 {
		return []*podresourcesv1.ContainerDevices{{ResourceName: resource, DeviceIds: []string{id}}}
	}
	var out []*podresourcesv1.ContainerDevices
	for _, nd := range nodes {
		out = append(out, &podresourcesv1.ContainerDevices{ResourceName: resource, DeviceIds: []string{id},
			Topology: &podresourcesv1.TopologyInfo{Nodes: []*podresourcesv1.NUMANode{{ID: nd}}}})
	}
	return out
}
