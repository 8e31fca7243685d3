package podresources

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// kubelet serves the real podresources/v1 API in-process, answering like
// kubelet does for the pods it holds. getMode selects how Get behaves.
type kubelet struct {
	podresourcesv1.UnimplementedPodResourcesListerServer
	pods    []*podresourcesv1.PodResources
	getMode string // "on", "disabled" (feature gate off), "unimplemented"
	gets    atomic.Int32
	lists   atomic.Int32
}

func (k *kubelet) List(context.Context, *podresourcesv1.ListPodResourcesRequest) (*podresourcesv1.ListPodResourcesResponse, error) {
	k.lists.Add(1)
	return &podresourcesv1.ListPodResourcesResponse{PodResources: k.pods}, nil
}

func (k *kubelet) Get(ctx context.Context, req *podresourcesv1.GetPodResourcesRequest) (*podresourcesv1.GetPodResourcesResponse, error) {
	k.gets.Add(1)
	switch k.getMode {
	case "disabled":
		return nil, fmt.Errorf("PodResources API Get method disabled")
	case "unimplemented":
		return k.UnimplementedPodResourcesListerServer.Get(ctx, req)
	}
	for _, p := range k.pods {
		if p.Namespace == req.PodNamespace && p.Name == req.PodName {
			return &podresourcesv1.GetPodResourcesResponse{PodResources: p}, nil
		}
	}
	return nil, fmt.Errorf("pod %s in namespace %s not found", req.PodName, req.PodNamespace)
}

// serve starts k on a unix socket in a temp dir and returns the socket path.
func serve(t *testing.T, k *kubelet) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "kubelet.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	podresourcesv1.RegisterPodResourcesListerServer(srv, k)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return sock
}

func devs(resource string, ids ...string) *podresourcesv1.ContainerDevices {
	return &podresourcesv1.ContainerDevices{ResourceName: resource, DeviceIds: ids}
}

// testPods: pod "web" holds VFs in two containers, one of them listed twice
// (shared by both containers), plus another resource.
func testPods() []*podresourcesv1.PodResources {
	return []*podresourcesv1.PodResources{
		{Namespace: "other", Name: "web", Containers: []*podresourcesv1.ContainerResources{
			{Name: "c", Devices: []*podresourcesv1.ContainerDevices{devs("intel.com/sriov", "0000:99:00.1")}},
		}},
		{Namespace: "default", Name: "web", Containers: []*podresourcesv1.ContainerResources{
			{Name: "app", Devices: []*podresourcesv1.ContainerDevices{
				devs("intel.com/sriov", "0000:01:00.5", "0000:01:00.2"),
				devs("nvidia.com/gpu", "GPU-1"),
			}},
			{Name: "sidecar", Devices: []*podresourcesv1.ContainerDevices{
				devs("intel.com/sriov", "0000:01:00.2", "0000:01:00.3"),
			}},
			{Name: "none"},
		}},
	}
}

func TestDevices(t *testing.T) {
	web := &podnet.Pod{Namespace: "default", Name: "web"}
	cases := []struct {
		getMode           string
		resource          string
		want              []string
		wantGets, wantLst int32 // per call, first call
	}{
		{"on", "intel.com/sriov", []string{"0000:01:00.2", "0000:01:00.5", "0000:01:00.3"}, 1, 0},
		{"on", "nvidia.com/gpu", []string{"GPU-1"}, 1, 0},
		{"on", "example.com/absent", nil, 1, 0},
		{"disabled", "intel.com/sriov", []string{"0000:01:00.2", "0000:01:00.5", "0000:01:00.3"}, 1, 1},
		{"unimplemented", "intel.com/sriov", []string{"0000:01:00.2", "0000:01:00.5", "0000:01:00.3"}, 1, 1},
		{"unimplemented", "nvidia.com/gpu", []string{"GPU-1"}, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.getMode+"/"+tc.resource, func(t *testing.T) {
			k := &kubelet{pods: testPods(), getMode: tc.getMode}
			c := NewClient(serve(t, k))
			defer c.Close()
			got, err := c.Devices(context.Background(), web, tc.resource)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Devices = %q, want %q", got, tc.want)
			}
			if k.gets.Load() != tc.wantGets || k.lists.Load() != tc.wantLst {
				t.Fatalf("RPCs: %d Get, %d List; want %d, %d", k.gets.Load(), k.lists.Load(), tc.wantGets, tc.wantLst)
			}
			// Same answer again; a kubelet without Get is not asked for it twice.
			again, err := c.Devices(context.Background(), web, tc.resource)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again, got) {
				t.Fatalf("second Devices = %q, first %q", again, got)
			}
			if tc.getMode != "on" && k.gets.Load() != 1 {
				t.Fatalf("Get asked %d times after kubelet refused it", k.gets.Load())
			}
		})
	}
}

func TestDevicesDeterministic(t *testing.T) {
	c := NewClient(serve(t, &kubelet{pods: testPods(), getMode: "on"}))
	defer c.Close()
	pod := &podnet.Pod{Namespace: "default", Name: "web"}
	first, err := c.Devices(context.Background(), pod, "intel.com/sriov")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		got, err := c.Devices(context.Background(), pod, "intel.com/sriov")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, first) {
			t.Fatalf("call %d: %q, first call %q", i, got, first)
		}
	}
}

func TestDevicesErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.sock")
	cases := []struct {
		name     string
		socket   string
		pod      *podnet.Pod
		resource string
		wantErr  []string
	}{
		{"pod unknown to kubelet (Get)", serve(t, &kubelet{pods: testPods(), getMode: "on"}),
			&podnet.Pod{Namespace: "default", Name: "ghost"}, "intel.com/sriov", []string{"default/ghost", "intel.com/sriov", "not found"}},
		{"pod unknown to kubelet (List)", serve(t, &kubelet{pods: testPods(), getMode: "unimplemented"}),
			&podnet.Pod{Namespace: "default", Name: "ghost"}, "intel.com/sriov", []string{"default/ghost", "not among kubelet's 2 pods"}},
		{"no kubelet socket", missing,
			&podnet.Pod{Namespace: "default", Name: "web"}, "intel.com/sriov", []string{"default/web", missing}},
		{"empty resource", missing, &podnet.Pod{Namespace: "default", Name: "web"}, "", []string{"default/web", "resource name is empty"}},
		{"no pod name", missing, &podnet.Pod{Namespace: "default"}, "intel.com/sriov", []string{"namespace and name must be set"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClient(tc.socket)
			defer c.Close()
			_, err := c.Devices(context.Background(), tc.pod, tc.resource)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestNewIsLazy: constructing a source for a socket that does not exist
// succeeds and connects nothing; only Devices does.
func TestNewIsLazy(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "later.sock"))
	if c.conn != nil {
		t.Fatal("New connected")
	}
	if NewClient("").socket != DefaultSocket {
		t.Fatal("empty socket path does not default to", DefaultSocket)
	}
}
