package dra

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/plexus-cni/plexus/pkg/deviceplugin"
	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/sriov/discovery"
	"github.com/plexus-cni/plexus/pkg/sriov/dpconfig"
	"github.com/plexus-cni/plexus/pkg/testutil/fakesysfs"
)

const testConfig = `{"resourceList":[{"resourceName":"sriov_a","resourcePrefix":"plexus.io","selectors":[{"pfNames":["pfa"]}]},
 {"resourceName":"sriov_b","resourcePrefix":"plexus.io","selectors":[{"pfNames":["pfb#0-1"]}]}]}`

// pools builds a fake sysfs tree: PF pfa (n VFs, NUMA 0), PF pfb (3 VFs,
// NUMA 1, of which VFs 0-1 are in sriov_b).
func pools(t testing.TB, n int) []*dpconfig.Pool {
	t.Helper()
	tree := fakesysfs.New(t)
	if _, err := tree.AddPF(fakesysfs.PF{Addr: "0000:3b:00.0", Netdev: "pfa", NumVFs: n, TotalVFs: n, NUMA: 0, VFAddr: func(i int) string {
		return "0000:" + hex2(0x40+i/256) + ":" + hex2((i%256)/8) + "." + string(rune('0'+i%8))
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := tree.AddPF(fakesysfs.PF{Addr: "0000:5e:00.0", Netdev: "pfb", NumVFs: 3, NUMA: 1}); err != nil {
		t.Fatal(err)
	}
	pfs, err := discovery.Discover(discovery.Options{Root: tree.Root})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := dpconfig.Parse([]byte(testConfig), dpconfig.DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	return dpconfig.Pools(cfg, pfs)
}

func hex2(i int) string { const h = "0123456789abcdef"; return string([]byte{h[i/16%16], h[i%16]}) }

func TestResourcesOneDevicePerVFWithAttributes(t *testing.T) {
	inv := newInventory(pools(t, 300))
	res := Resources("node1", inv, nil)
	p, ok := res.Pools["node1"]
	if !ok || len(res.Pools) != 1 {
		t.Fatalf("pools %v, want node1 only", res.Pools)
	}
	total := 0
	for _, s := range p.Slices {
		if len(s.Devices) > resourceapi.ResourceSliceMaxDevices {
			t.Errorf("slice with %d devices, the API allows %d", len(s.Devices), resourceapi.ResourceSliceMaxDevices)
		}
		total += len(s.Devices)
	}
	if total != 302 { // pfb's VF 2 is in no pool
		t.Fatalf("%d devices, want 302 (300 of pfa, 2 of pfb)", total)
	}
	var dev *resourceapi.Device
	for _, s := range p.Slices {
		for i := range s.Devices {
			if s.Devices[i].Name == DeviceName("0000:5f:00.1") {
				dev = &s.Devices[i]
			}
		}
	}
	if dev == nil {
		t.Fatalf("no device %s", DeviceName("0000:5f:00.1"))
	}
	want := map[resourceapi.QualifiedName]string{
		"pfName": "pfb", "pciAddress": "0000:5f:00.1", "pfPciAddress": "0000:5e:00.0", "vendor": "8086", "deviceID": "1889",
		"driver": "iavf", "linkType": "ether", "resourceName": "plexus.io/sriov_b",
		AttrMultusResourceName: "plexus.io/sriov_b", AttrMultusDeviceID: "0000:5f:00.1", AttrPCIBusID: "0000:5f:00.1",
	}
	for k, v := range want {
		if a, ok := dev.Attributes[k]; !ok || a.StringValue == nil || *a.StringValue != v {
			t.Errorf("attribute %s = %+v, want %q", k, a, v)
		}
	}
	if a := dev.Attributes["numaNode"]; a.IntValue == nil || *a.IntValue != 1 {
		t.Errorf("numaNode %+v, want 1", a)
	}
	if a := dev.Attributes["vfIndex"]; a.IntValue == nil || *a.IntValue != 1 {
		t.Errorf("vfIndex %+v, want 1", a)
	}
	// A PF whose link is down takes its VFs out.
	res = Resources("node1", inv, map[string]bool{"0000:5e:00.0": true})
	total = 0
	for _, s := range res.Pools["node1"].Slices {
		total += len(s.Devices)
	}
	if total != 300 {
		t.Errorf("with pfb down: %d devices, want 300", total)
	}
}

func TestDeviceName(t *testing.T) {
	if got := DeviceName("0000:3B:02.1"); got != "vf-0000-3b-02-1" {
		t.Errorf("DeviceName = %q", got)
	}
}

func claim(uid, name string, devices ...string) *resourceapi.ResourceClaim {
	c := &resourceapi.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(uid)},
		Status: resourceapi.ResourceClaimStatus{Allocation: &resourceapi.AllocationResult{}}}
	for _, d := range devices {
		c.Status.Allocation.Devices.Results = append(c.Status.Allocation.Devices.Results, resourceapi.DeviceRequestAllocationResult{
			Request: "vfs", Driver: DefaultDriverName, Pool: "node1", Device: d})
	}
	return c
}

func newTestDriver(t testing.TB, dir string, ps []*dpconfig.Pool) *Driver {
	t.Helper()
	return newTestDriverAt(t, filepath.Join(dir, "devinfo"), filepath.Join(dir, "state", "checkpoint.json"), ps)
}

func newTestDriverAt(t testing.TB, devinfoDir, state string, ps []*dpconfig.Pool) *Driver {
	t.Helper()
	d, err := NewDriver(DefaultDriverName, "node1", devinfoDir, state, ps, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPrepareUnprepareIdempotentAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ps := pools(t, 4)
	ctx := context.Background()
	a, b := DeviceName("0000:40:00.0"), DeviceName("0000:40:00.1")
	c := claim("uid-1", "c1", a, b)

	d := newTestDriver(t, dir, ps)
	res, err := d.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{c})
	if err != nil || res["uid-1"].Err != nil {
		t.Fatalf("prepare: %v %v", err, res["uid-1"].Err)
	}
	first := res["uid-1"]
	if len(first.Devices) != 2 || first.Devices[0].DeviceName != a || first.Devices[1].DeviceName != b || first.Devices[0].Requests[0] != "vfs" {
		t.Fatalf("devices %+v", first.Devices)
	}
	dp := devinfo.DPPath(filepath.Join(dir, "devinfo"), "plexus.io/sriov_a", "0000:40:00.0")
	var di struct {
		Pci struct {
			PciAddress string `json:"pci-address"`
		} `json:"pci"`
	}
	if b, err := os.ReadFile(dp); err != nil || json.Unmarshal(b, &di) != nil || di.Pci.PciAddress != "0000:40:00.0" {
		t.Fatalf("device-info %s: %s %v", dp, b, err)
	}
	var rec devinfo.DRADevice
	if b, err := os.ReadFile(devinfo.DRAPath(filepath.Join(dir, "devinfo"), DefaultDriverName, "node1", b)); err != nil || json.Unmarshal(b, &rec) != nil {
		t.Fatalf("dra record: %v", err)
	}
	if rec.PCIAddress != "0000:40:00.1" || rec.ClaimUID != "uid-1" || rec.Request != "vfs" || rec.ResourceName != "plexus.io/sriov_a" {
		t.Errorf("dra record %+v", rec)
	}

	// A restarted driver (same checkpoint) answers the repeated call the
	// same way and still refuses the VFs to another claim.
	d2 := newTestDriver(t, dir, ps)
	res, err = d2.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{c, claim("uid-2", "c2", b)})
	if err != nil {
		t.Fatal(err)
	}
	if res["uid-1"].Err != nil || len(res["uid-1"].Devices) != 2 || res["uid-1"].Devices[1].DeviceName != b {
		t.Errorf("repeated prepare: %+v", res["uid-1"])
	}
	if e := res["uid-2"].Err; e == nil || !strings.HasPrefix(e.Error(), "claim ns/c2: request \"vfs\": device "+b+" is prepared for claim ns/c1") {
		t.Errorf("second claim on a prepared VF: %v", e)
	}
	// Unknown devices and foreign pools are refused, naming the claim first.
	res, _ = d2.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{claim("uid-3", "c3", "vf-nope")})
	if e := res["uid-3"].Err; e == nil || !strings.HasPrefix(e.Error(), "claim ns/c3: request \"vfs\": device vf-nope is not a VF this node offers") {
		t.Errorf("unknown device: %v", e)
	}

	un, err := d2.UnprepareResourceClaims(ctx, []kubeletplugin.NamespacedObject{{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "c1"}, UID: "uid-1"}})
	if err != nil || un["uid-1"] != nil {
		t.Fatalf("unprepare: %v %v", err, un["uid-1"])
	}
	if _, err := os.Stat(dp); !os.IsNotExist(err) {
		t.Errorf("device-info %s after unprepare: %v", dp, err)
	}
	// Again, and after a restart: nothing left, no error; the VF is free.
	d3 := newTestDriver(t, dir, ps)
	un, err = d3.UnprepareResourceClaims(ctx, []kubeletplugin.NamespacedObject{{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "c1"}, UID: "uid-1"}})
	if err != nil || un["uid-1"] != nil {
		t.Fatalf("repeated unprepare: %v %v", err, un["uid-1"])
	}
	res, _ = d3.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{claim("uid-2", "c2", b)})
	if res["uid-2"].Err != nil {
		t.Errorf("VF freed by unprepare: %v", res["uid-2"].Err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "devinfo", "*", "*"))
	if len(left) != 2 { // uid-2's dp/ and dra/ files
		t.Errorf("files %v, want uid-2's two", left)
	}
}

// benchDriver is a driver laid out as on a node: device-info files on
// tmpfs (/var/run; here /dev/shm when there is one), the checkpoint on disk
// (/var/lib/kubelet/plugins; here the test's temp dir).
func benchDriver(b *testing.B) *Driver {
	devinfoDir := filepath.Join(b.TempDir(), "devinfo")
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "plexus-dra-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		devinfoDir = d
	}
	return newTestDriverAt(b, devinfoDir, filepath.Join(b.TempDir(), "checkpoint.json"), pools(b, 4))
}

// BenchmarkPrepare2VFs: NodePrepareResources' work for a claim of 2 VFs
// (device-info files, checkpoint), on a fresh claim each time.
func BenchmarkPrepare2VFs(b *testing.B) {
	d := benchDriver(b)
	ctx := context.Background()
	x, y := DeviceName("0000:40:00.0"), DeviceName("0000:40:00.1")
	for i := 0; i < b.N; i++ {
		uid := types.UID("uid-" + string(rune('a'+i%26)))
		c := claim(string(uid), "c", x, y)
		if res, err := d.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{c}); err != nil || res[uid].Err != nil {
			b.Fatal(err, res[uid].Err)
		}
		if _, err := d.UnprepareResourceClaims(ctx, []kubeletplugin.NamespacedObject{{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "c"}, UID: uid}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResources512: building the node's slices for 512 VFs.
func BenchmarkResources512(b *testing.B) {
	inv := newInventory(pools(b, 510))
	for i := 0; i < b.N; i++ {
		Resources("node1", inv, nil)
	}
}

// fakeLinks replays link events.
type fakeLinks struct{ events []deviceplugin.LinkEvent }

func (f fakeLinks) Watch(ctx context.Context, out chan<- deviceplugin.LinkEvent) error {
	for _, e := range f.events {
		select {
		case out <- e:
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

// A PF whose link goes down has its VFs withdrawn (publish is called with
// it down), and back when it comes up; other links and repeated states
// publish nothing (else the second publish would not be the "up" one).
func TestWatchLinksRepublishesOnPFLinkChange(t *testing.T) {
	pfs := []*discovery.PF{{Addr: "0000:3b:00.0", Netdev: "pfa"}, {Addr: "0000:5e:00.0", Netdev: "pfb"}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan map[string]bool, 10)
	o := Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Links: fakeLinks{events: []deviceplugin.LinkEvent{
		{Name: "pfa", Up: true}, {Name: "eth9", Up: false}, {Name: "pfb", Up: false}, {Name: "pfb", Up: false}, {Name: "pfb", Up: true},
	}}}
	go watchLinks(ctx, o, pfs, func(down map[string]bool) { got <- down })
	first := <-got
	if len(first) != 1 || !first["0000:5e:00.0"] {
		t.Fatalf("after pfb down: %v", first)
	}
	if second := <-got; len(second) != 0 {
		t.Fatalf("after pfb up: %v", second)
	}
}
