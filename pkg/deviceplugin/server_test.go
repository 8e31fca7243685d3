package deviceplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/plexus-cni/plexus/pkg/sriov/discovery"
	"github.com/plexus-cni/plexus/pkg/sriov/dpconfig"
)

func describe(devs []*pluginapi.Device) string {
	var parts []string
	for _, d := range devs {
		numa := "-"
		if d.Topology != nil {
			numa = fmt.Sprint(d.Topology.Nodes[0].ID)
		}
		parts = append(parts, fmt.Sprintf("%s/%s/%s", d.ID, d.Health, numa))
	}
	return strings.Join(parts, " ")
}

func TestRegisterAndListAndWatch(t *testing.T) {
	e := newTestEnv(t, twoPools, nil)
	net := e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 1, 5*time.Second)
	dpdk := e.kubelet.WaitPlugin(t, "plexus.io/sriov_dpdk", 1, 5*time.Second)
	if net.Request.Endpoint != "plexus.io_sriov_net.sock" || !net.Options.GetPreferredAllocationAvailable ||
		!net.Request.Options.GetPreferredAllocationAvailable || net.Request.Version != "v1beta1" {
		t.Fatalf("registration: %+v options %+v", net.Request, net.Options)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "plexus.io_sriov_dpdk.sock")); err != nil {
		t.Fatal(err)
	}
	want := "0000:3c:00.0/Healthy/0 0000:3c:00.1/Healthy/0 0000:3c:00.2/Healthy/0 0000:3c:00.3/Healthy/0 " +
		"0000:3d:00.0/Healthy/0 0000:3d:00.1/Healthy/0 0000:3d:00.2/Healthy/0 0000:3d:00.3/Healthy/0"
	got := describe(net.WaitDevices(t, 5*time.Second, func(d []*pluginapi.Device) bool { return len(d) == 8 }))
	if got != want {
		t.Fatalf("net devices:\n got %s\nwant %s", got, want)
	}
	// excludeTopology: no NUMA in the list.
	got = describe(dpdk.WaitDevices(t, 5*time.Second, func(d []*pluginapi.Device) bool { return len(d) == 2 }))
	if got != "0000:5f:00.0/Healthy/- 0000:5f:00.1/Healthy/-" {
		t.Fatalf("dpdk devices: %s", got)
	}
	// Stop: sockets gone, streams end.
	e.stop()
	for _, s := range []string{"plexus.io_sriov_net.sock", "plexus.io_sriov_dpdk.sock"} {
		if _, err := os.Stat(filepath.Join(e.dir, s)); !os.IsNotExist(err) {
			t.Fatalf("%s left behind: %v", s, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for !net.Ended() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !net.Ended() {
		t.Fatal("ListAndWatch stream still open after stop")
	}
}

func TestAllocate(t *testing.T) {
	e := newTestEnv(t, `{"resourceList":[
	 {"resourceName":"sriov_net","selectors":[{"pfNames":["ens1f0#0-1"],"needVhostNet":true},{"pfNames":["ens1f0#2-3"]}]},
	 {"resourceName":"dpdk","resourcePrefix":"example.com","selectors":[{"drivers":["vfio-pci"]}]}]}`, nil)
	if err := e.tr.AddRDMA("0000:3c:00.2", "irdma2", 2); err != nil {
		t.Fatal(err)
	}
	// The RDMA device was added after start: a reload picks it up.
	if err := e.m.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	net := e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 1, 5*time.Second)
	dpdk := e.kubelet.WaitPlugin(t, "example.com/dpdk", 1, 5*time.Second)
	ctx := context.Background()

	resp, err := net.Allocate(ctx, []string{"0000:3c:00.2", "0000:3c:00.0"}, []string{"0000:3c:00.3"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ContainerResponses) != 2 {
		t.Fatalf("responses: %d", len(resp.ContainerResponses))
	}
	c0 := resp.ContainerResponses[0]
	if got := c0.Envs["PCIDEVICE_PLEXUS_IO_SRIOV_NET"]; got != "0000:3c:00.2,0000:3c:00.0" {
		t.Fatalf("env: %q", got)
	}
	var info map[string]map[string]map[string]string
	if err := json.Unmarshal([]byte(c0.Envs["PCIDEVICE_PLEXUS_IO_SRIOV_NET_INFO"]), &info); err != nil {
		t.Fatal(err)
	}
	if info["0000:3c:00.0"]["generic"]["deviceID"] != "0000:3c:00.0" || info["0000:3c:00.0"]["vhost"]["net-mount"] != "/dev/vhost-net" ||
		info["0000:3c:00.2"]["rdma"]["rdma_dev"] != "irdma2" || info["0000:3c:00.2"]["vhost"] != nil {
		t.Fatalf("info env: %v", info)
	}
	if got := specs(c0.Devices); got != "/dev/infiniband/rdma_cm /dev/infiniband/uverbs2 /dev/net/tun /dev/vhost-net" {
		t.Fatalf("container 0 device specs: %s", got)
	}
	c1 := resp.ContainerResponses[1]
	if c1.Envs["PCIDEVICE_PLEXUS_IO_SRIOV_NET"] != "0000:3c:00.3" || len(c1.Devices) != 0 {
		t.Fatalf("container 1: %v %v", c1.Envs, c1.Devices)
	}
	// Device-info files, readable as the NAD client's DeviceInfo.
	di := readDevInfo(t, filepath.Join(e.devinfo, "plexus.io-sriov_net-0000:3c:00.0-device.json"))
	if di.Type != "pci" || di.Version != nadv1.DeviceInfoVersion || di.Pci.PciAddress != "0000:3c:00.0" ||
		di.Pci.PfPciAddress != "0000:3b:00.0" || di.Pci.Vhostnet != "/dev/vhost-net" {
		t.Fatalf("device-info: %+v %+v", di, di.Pci)
	}
	if di := readDevInfo(t, filepath.Join(e.devinfo, "plexus.io-sriov_net-0000:3c:00.2-device.json")); di.Pci.RdmaDevice != "irdma2" {
		t.Fatalf("rdma device-info: %+v", di.Pci)
	}
	// Allocating a device again replaces its file.
	if _, err := net.Allocate(ctx, []string{"0000:3c:00.0"}); err != nil {
		t.Fatal(err)
	}

	// vfio-pci: /dev/vfio/vfio and the group.
	resp, err = dpdk.Allocate(ctx, []string{"0000:5f:00.0", "0000:5f:00.1"})
	if err != nil {
		t.Fatal(err)
	}
	c := resp.ContainerResponses[0]
	want := fmt.Sprintf("/dev/vfio/%d /dev/vfio/%d /dev/vfio/vfio", e.vfio[0].IOMMUGroup, e.vfio[1].IOMMUGroup)
	if got := specs(c.Devices); got != want || c.Envs["PCIDEVICE_EXAMPLE_COM_DPDK"] != "0000:5f:00.0,0000:5f:00.1" {
		t.Fatalf("vfio: %s (want %s) %v", got, want, c.Envs)
	}
	for _, d := range c.Devices {
		if d.HostPath != d.ContainerPath || d.Permissions != "rw" {
			t.Fatalf("spec %+v", d)
		}
	}
	if !strings.Contains(c.Envs["PCIDEVICE_EXAMPLE_COM_DPDK_INFO"], fmt.Sprintf(`"dev-mount":"/dev/vfio/%d"`, e.vfio[0].IOMMUGroup)) {
		t.Fatalf("vfio info env: %s", c.Envs["PCIDEVICE_EXAMPLE_COM_DPDK_INFO"])
	}

	// A device from another pool or unknown is refused, naming it.
	for _, bad := range [][]string{{"0000:5f:00.0"}, {"0000:99:00.0"}, {}} {
		if _, err := net.Allocate(ctx, bad); err == nil || !strings.Contains(err.Error(), "plexus.io/sriov_net") {
			t.Fatalf("allocate %v: %v", bad, err)
		}
	}

	// A refused request leaves no file behind, even for its valid devices.
	if _, err := net.Allocate(ctx, []string{"0000:3c:00.1", "0000:99:00.0"}); err == nil {
		t.Fatal("partly unknown request accepted")
	}
	if _, err := os.Stat(DevInfoPath(e.devinfo, "plexus.io/sriov_net", "0000:3c:00.1")); !os.IsNotExist(err) {
		t.Fatalf("refused request wrote a device-info file: %v", err)
	}

	// Stopping keeps the device-info files of allocated devices (pods
	// holding them may still run plexus ADD), and only those.
	e.stop()
	left, _ := filepath.Glob(filepath.Join(e.devinfo, "*"))
	var names []string
	for _, p := range left {
		names = append(names, filepath.Base(p))
	}
	want = "example.com-dpdk-0000:5f:00.0-device.json example.com-dpdk-0000:5f:00.1-device.json " +
		"plexus.io-sriov_net-0000:3c:00.0-device.json plexus.io-sriov_net-0000:3c:00.2-device.json plexus.io-sriov_net-0000:3c:00.3-device.json"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("device-info files after stop:\n got %s\nwant %s", got, want)
	}
}

func specs(ds []*pluginapi.DeviceSpec) string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ContainerPath)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func readDevInfo(t *testing.T, path string) *nadv1.DeviceInfo {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var di nadv1.DeviceInfo
	if err := json.Unmarshal(b, &di); err != nil {
		t.Fatal(err)
	}
	return &di
}

func TestGetPreferredAllocationGRPC(t *testing.T) {
	e := newTestEnv(t, twoPools, nil)
	net := e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 1, 5*time.Second)
	ids, err := net.Prefer(context.Background(),
		[]string{"0000:3c:00.0", "0000:3d:00.0", "0000:3d:00.1", "0000:3d:00.2", "0000:3c:00.3"}, nil, 3)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, ",") != "0000:3d:00.0,0000:3d:00.1,0000:3d:00.2" {
		t.Fatalf("preferred: %v", ids)
	}
	if _, err := net.Prefer(context.Background(), []string{"0000:3c:00.0"}, nil, 2); err == nil {
		t.Fatal("size above available accepted")
	}
}

func TestKubeletRestart(t *testing.T) {
	e := newTestEnv(t, twoPools, nil)
	e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 1, 5*time.Second)
	start := time.Now()
	e.kubelet.Restart(t)
	p := e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 2, 5*time.Second)
	e.kubelet.WaitPlugin(t, "plexus.io/sriov_dpdk", 2, 5*time.Second)
	t.Logf("re-registered %v after kubelet restart", time.Since(start))
	p.WaitDevices(t, 5*time.Second, func(d []*pluginapi.Device) bool { return len(d) == 8 })
	if _, err := p.Allocate(context.Background(), []string{"0000:3c:00.1"}); err != nil {
		t.Fatalf("allocate after restart: %v", err)
	}
	// Kubelet gone for a while, then back: registration follows.
	e.kubelet.Stop()
	time.Sleep(100 * time.Millisecond)
	e.kubelet.Restart(t)
	e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 3, 5*time.Second)
}

// The plugin started before kubelet registers when kubelet.sock appears.
func TestKubeletLate(t *testing.T) {
	e := newTestEnv(t, twoPools, nil)
	e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 1, 5*time.Second)
	e.kubelet.Stop()
	if err := e.m.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.kubelet.Restart(t)
	e.kubelet.WaitPlugin(t, "plexus.io/sriov_dpdk", 2, 5*time.Second)
}

// NUMA -1 (no NUMA information) gives no TopologyInfo; excludeTopology
// drops it for all; Update and SetHealth reach the list.
func TestDeviceList(t *testing.T) {
	mk := func(addr, pf string, numa int) *dpconfig.Device {
		return &dpconfig.Device{VF: &discovery.VF{Addr: addr, PFAddr: pf, PFNetdev: pf, NUMA: numa}}
	}
	res := &dpconfig.Resource{Name: "r", Prefix: "plexus.io", AllocationPolicy: dpconfig.PolicyPacked}
	pool := &dpconfig.Pool{Resource: res, Devices: []*dpconfig.Device{mk("0000:01:00.0", "p0", -1), mk("0000:02:00.0", "p1", 1)}}
	s := NewServer(pool, map[string]bool{"0000:02:00.0": false}, t.TempDir(), "", nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got := describe(s.Devices()); got != "0000:01:00.0/Healthy/- 0000:02:00.0/Unhealthy/1" {
		t.Fatalf("list: %s", got)
	}
	changed := s.changed
	s.SetHealth(s.healthFor("p1", true))
	select {
	case <-changed:
	default:
		t.Fatal("health change not signalled")
	}
	changed = s.changed
	s.Update(pool, nil) // same devices, all healthy: nothing to send
	select {
	case <-changed:
		t.Fatal("unchanged list signalled")
	default:
	}
	ex := *res
	ex.ExcludeTopology = true
	s.Update(&dpconfig.Pool{Resource: &ex, Devices: pool.Devices[1:]}, nil)
	if got := describe(s.Devices()); got != "0000:02:00.0/Healthy/-" {
		t.Fatalf("after update: %s", got)
	}
}
