package dra

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"
)

// kubeletSide starts the driver behind the kubeletplugin helper (no
// registration socket: the test dials the DRA socket as kubelet would) and
// returns a client of the kubelet's DRA v1 gRPC API.
func kubeletSide(t testing.TB, d *Driver, claims ...*resourceapi.ResourceClaim) drapb.DRAPluginClient {
	t.Helper()
	client := fake.NewClientset()
	for _, c := range claims {
		if _, err := client.ResourceV1().ResourceClaims(c.Namespace).Create(context.Background(), c, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := os.MkdirTemp("", "dra")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithCancel(context.Background())
	h, err := kubeletplugin.Start(ctx, d, kubeletplugin.DriverName(d.Name), kubeletplugin.NodeName("node1"), kubeletplugin.KubeClient(client),
		kubeletplugin.RegistrationService(false), kubeletplugin.HealthService(false), kubeletplugin.PluginDataDirectoryPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, "dra.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); h.Stop(); cancel() })
	return drapb.NewDRAPluginClient(conn)
}

// NodePrepareResources over the real kubelet API: the helper GETs the claim,
// the driver prepares its two VFs; a repeated call gets the same devices.
func TestNodePrepareResourcesOverGRPC(t *testing.T) {
	dir := t.TempDir()
	d := newTestDriver(t, dir, pools(t, 4))
	c := claim("uid-1", "c1", DeviceName("0000:40:00.0"), DeviceName("0000:40:00.1"))
	cl := kubeletSide(t, d, c)
	req := &drapb.NodePrepareResourcesRequest{Claims: []*drapb.Claim{{Namespace: "ns", Name: "c1", Uid: "uid-1"}}}
	var first []string
	for i := 0; i < 2; i++ {
		resp, err := cl.NodePrepareResources(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		r := resp.Claims["uid-1"]
		if r == nil || r.Error != "" || len(r.Devices) != 2 {
			t.Fatalf("call %d: %+v", i, r)
		}
		var got []string
		for _, dv := range r.Devices {
			got = append(got, dv.PoolName+"/"+dv.DeviceName+"/"+dv.RequestNames[0])
		}
		if i == 0 {
			first = got
		} else if got[0] != first[0] || got[1] != first[1] {
			t.Errorf("repeated call: %v, first %v", got, first)
		}
	}
	un, err := cl.NodeUnprepareResources(context.Background(), &drapb.NodeUnprepareResourcesRequest{Claims: req.Claims})
	if err != nil || un.Claims["uid-1"] == nil || un.Claims["uid-1"].Error != "" {
		t.Fatalf("unprepare: %v %+v", err, un)
	}
	if len(d.Prepared()) != 0 {
		t.Errorf("prepared after unprepare: %v", d.Prepared())
	}
}

// BenchmarkNodePrepareResources2VFs: kubelet's NodePrepareResources for a
// claim of 2 VFs over the gRPC socket (claim GET from a fake clientset,
// device-info files, checkpoint), then NodeUnprepareResources; against
// BenchmarkGRPCRoundTrip, an unprepare of nothing over the same socket.
func BenchmarkNodePrepareResources2VFs(b *testing.B) {
	d := benchDriver(b)
	cl := kubeletSide(b, d, claim("uid-1", "c1", DeviceName("0000:40:00.0"), DeviceName("0000:40:00.1")))
	claims := []*drapb.Claim{{Namespace: "ns", Name: "c1", Uid: "uid-1"}}
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if r, err := cl.NodePrepareResources(ctx, &drapb.NodePrepareResourcesRequest{Claims: claims}); err != nil || r.Claims["uid-1"].Error != "" {
			b.Fatal(err, r)
		}
		b.StopTimer()
		if _, err := cl.NodeUnprepareResources(ctx, &drapb.NodeUnprepareResourcesRequest{Claims: claims}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func BenchmarkGRPCRoundTrip(b *testing.B) {
	d := benchDriver(b)
	cl := kubeletSide(b, d)
	claims := []*drapb.Claim{{Namespace: "ns", Name: "none", Uid: "uid-none"}}
	for i := 0; i < b.N; i++ {
		if _, err := cl.NodeUnprepareResources(context.Background(), &drapb.NodeUnprepareResourcesRequest{Claims: claims}); err != nil {
			b.Fatal(err)
		}
	}
}
