package dra

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/sriov/discovery"
	"github.com/plexus-cni/plexus/pkg/sriov/dpconfig"
	"github.com/plexus-cni/plexus/pkg/testutil/fakesysfs"
)

// breakDir makes every write below dir fail, even for root: what is there
// is moved aside and a regular file takes its place (ENOTDIR); the
// returned func puts it back. It is the test's stand-in for a full or
// failing disk (ENOSPC, EIO) under the checkpoint.
func breakDir(t *testing.T, dir string) (restore func()) {
	t.Helper()
	aside := dir + ".aside"
	moved := false
	if _, err := os.Stat(dir); err == nil {
		if err := os.Rename(dir, aside); err != nil {
			t.Fatal(err)
		}
		moved = true
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
		if moved {
			if err := os.Rename(aside, dir); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func unprepareReq(uid, name string) []kubeletplugin.NamespacedObject {
	return []kubeletplugin.NamespacedObject{{NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}, UID: types.UID(uid)}}
}

// files lists the regular files below dir, relative to it, sorted.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// A prepare whose checkpoint save fails answers an error and leaves no
// device-info behind; kubelet's retry, once the disk is back, prepares and
// saves, so a restarted driver still knows the claim holds its VFs.
func TestPrepareSaveFailureRetrySaves(t *testing.T) {
	dir := t.TempDir()
	ps := pools(t, 4)
	ctx := context.Background()
	a, b := DeviceName("0000:40:00.0"), DeviceName("0000:40:00.1")
	c := claim("uid-1", "c1", a, b)
	d := newTestDriver(t, dir, ps)

	restore := breakDir(t, filepath.Join(dir, "state"))
	if _, err := d.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{c}); err == nil || !strings.Contains(err.Error(), "checkpoint") {
		t.Fatalf("prepare with the checkpoint unwritable: %v, want a checkpoint error", err)
	}
	if left := files(t, filepath.Join(dir, "devinfo")); len(left) != 0 {
		t.Errorf("device-info files of a failed prepare: %v", left)
	}
	if p := d.Prepared(); len(p) != 0 {
		t.Errorf("prepared in memory after a failed save: %v", p)
	}
	restore()

	res, err := d.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{c})
	if err != nil || res["uid-1"].Err != nil || len(res["uid-1"].Devices) != 2 {
		t.Fatalf("retried prepare: %v %+v", err, res["uid-1"])
	}
	if left := files(t, filepath.Join(dir, "devinfo")); len(left) != 4 {
		t.Errorf("device-info files %v, want 2 dp/ and 2 dra/", left)
	}
	// The retry saved: a restarted driver refuses the VF to another claim.
	d2 := newTestDriver(t, dir, ps)
	if _, ok := d2.Prepared()["uid-1"]; !ok {
		t.Fatalf("restarted driver: uid-1 not in the checkpoint (%v)", d2.Prepared())
	}
	res, _ = d2.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{claim("uid-2", "c2", b)})
	if e := res["uid-2"].Err; e == nil || !strings.Contains(e.Error(), "is prepared for claim ns/c1") {
		t.Errorf("second claim on a prepared VF after restart: %v", e)
	}
}

// An unprepare whose checkpoint save fails answers an error; the retry
// saves, so a restarted driver does not bring the claim back to hold its
// VF forever.
func TestUnprepareSaveFailureRetrySaves(t *testing.T) {
	dir := t.TempDir()
	ps := pools(t, 4)
	ctx := context.Background()
	b := DeviceName("0000:40:00.1")
	d := newTestDriver(t, dir, ps)
	if res, err := d.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{claim("uid-1", "c1", b)}); err != nil || res["uid-1"].Err != nil {
		t.Fatalf("prepare: %v %v", err, res["uid-1"].Err)
	}

	restore := breakDir(t, filepath.Join(dir, "state"))
	if _, err := d.UnprepareResourceClaims(ctx, unprepareReq("uid-1", "c1")); err == nil || !strings.Contains(err.Error(), "checkpoint") {
		t.Fatalf("unprepare with the checkpoint unwritable: %v, want a checkpoint error", err)
	}
	if _, ok := d.Prepared()["uid-1"]; !ok {
		t.Errorf("claim forgotten in memory although the checkpoint still holds it")
	}
	restore()

	un, err := d.UnprepareResourceClaims(ctx, unprepareReq("uid-1", "c1"))
	if err != nil || un["uid-1"] != nil {
		t.Fatalf("retried unprepare: %v %v", err, un["uid-1"])
	}
	d2 := newTestDriver(t, dir, ps)
	if p := d2.Prepared(); len(p) != 0 {
		t.Fatalf("restarted driver: claims %v back from the checkpoint", p)
	}
	res, _ := d2.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{claim("uid-2", "c2", b)})
	if res["uid-2"].Err != nil {
		t.Errorf("VF freed by the retried unprepare: %v", res["uid-2"].Err)
	}
}

// vfioPools: PF pfv with 2 VFs bound to vfio-pci (CDI devices) and PF pfn
// with 2 netdev VFs, all in plexus.io/vfio.
func vfioPools(t *testing.T) (ps []*dpconfig.Pool, vfio []string, netdev []string) {
	t.Helper()
	tree := fakesysfs.New(t)
	vv, err := tree.AddPF(fakesysfs.PF{Addr: "0000:3b:00.0", Netdev: "pfv", NumVFs: 2, NUMA: 0, VFDriver: "vfio-pci"})
	if err != nil {
		t.Fatal(err)
	}
	nv, err := tree.AddPF(fakesysfs.PF{Addr: "0000:5e:00.0", Netdev: "pfn", NumVFs: 2, NUMA: 0})
	if err != nil {
		t.Fatal(err)
	}
	pfs, err := discovery.Discover(discovery.Options{Root: tree.Root})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := dpconfig.Parse([]byte(`{"resourceList":[{"resourceName":"vfio","selectors":[{"pfNames":["pfv","pfn"]}]}]}`), dpconfig.DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vv {
		vfio = append(vfio, DeviceName(v.Addr))
	}
	for _, v := range nv {
		netdev = append(netdev, DeviceName(v.Addr))
	}
	return dpconfig.Pools(cfg, pfs), vfio, netdev
}

// A prepare that fails half-way (its CDI spec cannot be written) removes
// the device-info files it wrote, records nothing, and leaves the VFs free;
// a claim prepared before keeps its files when its repeat fails.
func TestFailedPrepareRemovesItsFiles(t *testing.T) {
	dir := t.TempDir()
	ps, vfio, netdev := vfioPools(t)
	ctx := context.Background()
	d := newTestDriver(t, dir, ps)
	d.CDIDir = filepath.Join(dir, "cdi")
	if res, err := d.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{claim("uid-0", "c0", vfio[0])}); err != nil || res["uid-0"].Err != nil {
		t.Fatalf("prepare uid-0: %v %v", err, res["uid-0"].Err)
	}
	before := files(t, filepath.Join(dir, "devinfo"))

	restore := breakDir(t, d.CDIDir)
	res, err := d.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{claim("uid-1", "c1", netdev[0], vfio[1]), claim("uid-0", "c0", vfio[0])})
	if err != nil {
		t.Fatal(err)
	}
	if e := res["uid-1"].Err; e == nil || !strings.HasPrefix(e.Error(), "claim ns/c1: CDI spec") {
		t.Fatalf("prepare with the CDI dir unwritable: %v", e)
	}
	if res["uid-0"].Err == nil {
		t.Errorf("repeated prepare of uid-0 with the CDI dir unwritable: no error")
	}
	if after := files(t, filepath.Join(dir, "devinfo")); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("device-info files after the failed prepare %v, want uid-0's only %v", after, before)
	}
	if _, ok := d.Prepared()["uid-1"]; ok {
		t.Errorf("a failed prepare is in the checkpoint")
	}
	if _, ok := d.Prepared()["uid-0"]; !ok {
		t.Errorf("uid-0 dropped by its failed repeat")
	}
	restore()
	res, _ = d.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{claim("uid-2", "c2", netdev[0], vfio[1])})
	if res["uid-2"].Err != nil {
		t.Errorf("the VFs of the failed prepare: %v", res["uid-2"].Err)
	}
}

// At start the driver makes the files match its checkpoint: a prepared
// claim's device-info records and CDI spec that are missing (a tmpfs
// cleared, a crash between unprepare's removal and its save) are written
// again; those of a claim the checkpoint does not hold (a crash between
// prepare's writes and its save) are removed. Other drivers' records, the
// device plugin's dp/ files and other vendors' CDI specs are left alone.
func TestRestartReconcilesFilesWithCheckpoint(t *testing.T) {
	dir := t.TempDir()
	ps, vfio, netdev := vfioPools(t)
	ctx := context.Background()
	di := filepath.Join(dir, "devinfo")
	cdiDir := filepath.Join(dir, "cdi")
	state := filepath.Join(dir, "state", "checkpoint.json")
	d := newTestDriver(t, dir, ps)
	d.CDIDir = cdiDir
	if res, err := d.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{claim("uid-1", "c1", vfio[0], netdev[0])}); err != nil || res["uid-1"].Err != nil {
		t.Fatalf("prepare uid-1: %v %v", err, res["uid-1"].Err)
	}
	want := map[string][]byte{}
	for _, f := range files(t, di) {
		b, _ := os.ReadFile(filepath.Join(di, f))
		want[filepath.Join(di, f)] = b
	}
	spec1 := filepath.Join(cdiDir, "sriov.plexus.io-uid-1.json")
	b, err := os.ReadFile(spec1)
	if err != nil {
		t.Fatal(err)
	}
	want[spec1] = b
	if len(want) != 5 {
		t.Fatalf("uid-1's files %v, want 2 dp/, 2 dra/, 1 CDI spec", want)
	}

	// A prepare of uid-3 whose process died before the save: its files are
	// written, the checkpoint is the one before.
	saved, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := d.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{claim("uid-3", "c3", vfio[1], netdev[1])}); err != nil || res["uid-3"].Err != nil {
		t.Fatalf("prepare uid-3: %v %v", err, res["uid-3"].Err)
	}
	if err := os.WriteFile(state, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	orphans := []string{filepath.Join(cdiDir, "sriov.plexus.io-uid-3.json")}
	for _, f := range files(t, di) {
		if _, ok := want[filepath.Join(di, f)]; !ok {
			orphans = append(orphans, filepath.Join(di, f))
		}
	}
	if len(orphans) != 5 {
		t.Fatalf("uid-3's files %v, want 5", orphans)
	}
	// uid-1's files gone (one of each kind).
	var lost []string
	for f := range want {
		if strings.Contains(f, "/dp/") || strings.Contains(f, "cdi/") || strings.Contains(f, vfio[0]) {
			lost = append(lost, f)
		}
	}
	for _, f := range lost {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	// Not the driver's: kept whatever the checkpoint says.
	foreign := map[string]string{
		devinfo.DRAPath(di, "other.example.com", "node1", "vf-0000-99-00-0"): `{"driver":"other.example.com"}`,
		devinfo.DPPath(di, "plexus.io/sriov_dp", "0000:99:00.1"):             `{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:99:00.1"}}`,
		filepath.Join(cdiDir, "other.example.com-uid-3.json"):                `{"cdiVersion":"0.5.0","kind":"other.example.com/vf","devices":[]}`,
		filepath.Join(cdiDir, "sriov.plexus.io-x-uid-9.json"):                `{"cdiVersion":"0.5.0","kind":"sriov.plexus.io-x/vf","devices":[]}`,
	}
	for f, s := range foreign {
		if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	d2 := newTestDriver(t, dir, ps)
	d2.CDIDir = cdiDir
	if err := d2.Reconcile(); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	for f, b := range want {
		got, err := os.ReadFile(f)
		if err != nil || string(got) != string(b) {
			t.Errorf("%s after restart: %v %s, want %s", f, err, got, b)
		}
	}
	for _, f := range orphans {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("orphan %s after restart: %v", f, err)
		}
	}
	for f, s := range foreign {
		if got, err := os.ReadFile(f); err != nil || string(got) != s {
			t.Errorf("foreign %s after restart: %v %s", f, err, got)
		}
	}
	// uid-3's VFs are free again; uid-1's are not.
	res, _ := d2.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{claim("uid-4", "c4", vfio[1], netdev[1]), claim("uid-5", "c5", netdev[0])})
	if res["uid-4"].Err != nil {
		t.Errorf("uid-3's VFs after restart: %v", res["uid-4"].Err)
	}
	if res["uid-5"].Err == nil {
		t.Errorf("uid-1's VF given to another claim after restart")
	}
}

func TestPlanReconcile(t *testing.T) {
	d := &Driver{Name: "sriov.plexus.io", Pool: "node1", DevInfoDir: "/di", CDIDir: "/cdi"}
	vf := func(dev, pci, group string) preparedDevice {
		return preparedDevice{Request: "vfs", Pool: "node1", Device: dev, PCI: pci, Resource: "plexus.io/a", IOMMUGroup: group}
	}
	rec := func(dev, pci string) *devinfo.DRADevice {
		return &devinfo.DRADevice{Driver: "sriov.plexus.io", Pool: "node1", Device: dev, PCIAddress: pci, ResourceName: "plexus.io/a"}
	}
	held := map[types.UID]*preparedClaim{"u1": {Namespace: "ns", Name: "c1", Devices: []preparedDevice{vf("vf-a", "0000:01:00.1", "7"), vf("vf-b", "0000:01:00.2", "")}}}
	recA, recB, recC := "/di/dra/sriov.plexus.io_node1_vf-a.json", "/di/dra/sriov.plexus.io_node1_vf-b.json", "/di/dra/sriov.plexus.io_node1_vf-c.json"
	dpC := "/di/dp/plexus.io-a-0000:01:00.3-device.json"
	for _, tc := range []struct {
		name   string
		claims map[types.UID]*preparedClaim
		on     driverFiles
		want   []string
	}{
		{"nothing on disk", held, driverFiles{}, nil},
		{"all expected", held, driverFiles{Records: map[string]*devinfo.DRADevice{recA: rec("vf-a", "0000:01:00.1"), recB: rec("vf-b", "0000:01:00.2")},
			Specs: map[string]string{"/cdi/sriov.plexus.io-u1.json": "sriov.plexus.io/vf"}}, nil},
		{"orphan record: its dp/ file first", held, driverFiles{Records: map[string]*devinfo.DRADevice{recA: rec("vf-a", "0000:01:00.1"), recC: rec("vf-c", "0000:01:00.3")}},
			[]string{dpC, recC}},
		{"orphan record naming an expected dp/ file: the record only", held, driverFiles{Records: map[string]*devinfo.DRADevice{recC: rec("vf-c", "0000:01:00.2")}},
			[]string{recC}},
		{"unreadable orphan record", held, driverFiles{Records: map[string]*devinfo.DRADevice{recC: nil}}, []string{recC}},
		{"unreadable expected record: rewritten, not removed", held, driverFiles{Records: map[string]*devinfo.DRADevice{recA: nil}}, nil},
		{"record of another driver in the file: not its dp/ file", held, driverFiles{Records: map[string]*devinfo.DRADevice{recC: {Driver: "x.example.com", ResourceName: "plexus.io/a", PCIAddress: "0000:01:00.3"}}},
			[]string{recC}},
		{"CDI specs: the driver's orphan only", held, driverFiles{Specs: map[string]string{
			"/cdi/sriov.plexus.io-u1.json": "sriov.plexus.io/vf", "/cdi/sriov.plexus.io-u2.json": "sriov.plexus.io/vf",
			"/cdi/sriov.plexus.io-x-u3.json": "sriov.plexus.io-x/vf", "/cdi/sriov.plexus.io-u4.json": ""}},
			[]string{"/cdi/sriov.plexus.io-u2.json"}},
		{"empty checkpoint", nil, driverFiles{Records: map[string]*devinfo.DRADevice{recA: rec("vf-a", "0000:01:00.1")}, Specs: map[string]string{"/cdi/sriov.plexus.io-u1.json": "sriov.plexus.io/vf"}},
			[]string{"/di/dp/plexus.io-a-0000:01:00.1-device.json", recA, "/cdi/sriov.plexus.io-u1.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := planReconcile(d, tc.claims, tc.on)
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("remove %v, want %v", got, tc.want)
			}
		})
	}
}
