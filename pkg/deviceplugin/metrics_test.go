package deviceplugin

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// fakePodResources serves kubelet's pod-resources List with pods.
type fakePodResources struct {
	podresourcesv1.UnimplementedPodResourcesListerServer
	pods []*podresourcesv1.PodResources
}

func (f *fakePodResources) List(context.Context, *podresourcesv1.ListPodResourcesRequest) (*podresourcesv1.ListPodResourcesResponse, error) {
	return &podresourcesv1.ListPodResourcesResponse{PodResources: f.pods}, nil
}

func servePodResources(t *testing.T, pods ...*podresourcesv1.PodResources) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "kubelet.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	podresourcesv1.RegisterPodResourcesListerServer(srv, &fakePodResources{pods: pods})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return sock
}

func podHolding(name string, devs ...*podresourcesv1.ContainerDevices) *podresourcesv1.PodResources {
	return &podresourcesv1.PodResources{Namespace: "default", Name: name,
		Containers: []*podresourcesv1.ContainerResources{{Name: "c", Devices: devs}}}
}

func holding(res string, ids ...string) *podresourcesv1.ContainerDevices {
	return &podresourcesv1.ContainerDevices{ResourceName: res, DeviceIds: ids}
}

// vfs gathers plexus_sriov_vfs as resource -> state -> value.
func vfs(t *testing.T, m *Metrics) map[string]map[string]float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "plexus_sriov_vfs" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range mt.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if out[l["resource"]] == nil {
				out[l["resource"]] = map[string]float64{}
			}
			out[l["resource"]][l["state"]] = mt.GetGauge().GetValue()
		}
	}
	return out
}

func checkVFs(t *testing.T, got map[string]map[string]float64, want map[string]map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("plexus_sriov_vfs pools %v, want %v", got, want)
	}
	for res, states := range want {
		if len(got[res]) != len(states) {
			t.Errorf("plexus_sriov_vfs{resource=%q}: %v, want %v", res, got[res], states)
			continue
		}
		for st, v := range states {
			if g, ok := got[res][st]; !ok || g != v {
				t.Errorf("plexus_sriov_vfs{resource=%q,state=%q} = %v (present %v), want %v", res, st, g, ok, v)
			}
		}
	}
}

// VFs per pool by state: allocatable and unhealthy from what the pool
// advertises; allocated from kubelet's pod-resources, counting only the
// pool's own devices (an unhealthy one held by a pod included) and each
// once; no allocated series without a source or when kubelet does not
// answer (counted as an error), and a forgotten pool's series go.
func TestVFsByState(t *testing.T) {
	m := NewMetrics()
	m.setPool("plexus.io/a", map[string]bool{"a1": true, "a2": true, "a3": false, "a4": true})
	m.setPool("plexus.io/b", map[string]bool{"b1": true, "b2": true})
	checkVFs(t, vfs(t, m), map[string]map[string]float64{
		"plexus.io/a": {StateAllocatable: 3, StateUnhealthy: 1},
		"plexus.io/b": {StateAllocatable: 2, StateUnhealthy: 0},
	})

	sock := servePodResources(t,
		podHolding("web", holding("plexus.io/a", "a1", "a3"), holding("plexus.io/other", "a2")),
		podHolding("db", holding("plexus.io/a", "a1", "a9")), // a1 shared (init and app container), a9 no longer in the pool
		podHolding("plain"))
	m.SetAssigned(PodResourcesAssigned(sock))
	checkVFs(t, vfs(t, m), map[string]map[string]float64{
		"plexus.io/a": {StateAllocatable: 3, StateUnhealthy: 1, StateAllocated: 2},
		"plexus.io/b": {StateAllocatable: 2, StateUnhealthy: 0, StateAllocated: 0},
	})

	// Health changes are seen at the next scrape.
	m.setPool("plexus.io/a", map[string]bool{"a1": true, "a2": true, "a3": true, "a4": false})
	m.forget("plexus.io/b")
	checkVFs(t, vfs(t, m), map[string]map[string]float64{
		"plexus.io/a": {StateAllocatable: 3, StateUnhealthy: 1, StateAllocated: 2},
	})

	m.SetAssigned(PodResourcesAssigned(filepath.Join(t.TempDir(), "none.sock")))
	checkVFs(t, vfs(t, m), map[string]map[string]float64{
		"plexus.io/a": {StateAllocatable: 3, StateUnhealthy: 1},
	})
	if n := counterValue(t, m.assignErrs); n != 1 {
		t.Errorf("plexus_sriov_pod_resources_errors_total = %v, want 1", n)
	}
}

// A pod-resources source that does not answer holds a scrape up for at
// most assignedTimeout.
func TestVFsAssignedTimeout(t *testing.T) {
	m := NewMetrics()
	m.setPool("plexus.io/a", map[string]bool{"a1": true})
	m.SetAssigned(func(ctx context.Context) (map[string]map[string]bool, error) {
		<-ctx.Done()
		return nil, errors.New("kubelet hangs")
	})
	start := time.Now()
	checkVFs(t, vfs(t, m), map[string]map[string]float64{"plexus.io/a": {StateAllocatable: 1, StateUnhealthy: 0}})
	if d := time.Since(start); d > assignedTimeout+2*time.Second {
		t.Errorf("scrape took %s", d)
	}
}

// The pools the plugin serves are the ones plexus_sriov_vfs reports, with
// the devices it advertises to kubelet.
func TestVFsOfServedPools(t *testing.T) {
	e := newTestEnv(t, twoPools, nil)
	e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 1, 5*time.Second)
	e.kubelet.WaitPlugin(t, "plexus.io/sriov_dpdk", 1, 5*time.Second)
	e.metrics.SetAssigned(PodResourcesAssigned(servePodResources(t,
		podHolding("web", holding("plexus.io/sriov_net", "0000:3c:00.0", "0000:3c:00.1")))))
	checkVFs(t, vfs(t, e.metrics), map[string]map[string]float64{
		"plexus.io/sriov_net":  {StateAllocatable: 8, StateUnhealthy: 0, StateAllocated: 2},
		"plexus.io/sriov_dpdk": {StateAllocatable: 2, StateUnhealthy: 0, StateAllocated: 0},
	})
}
