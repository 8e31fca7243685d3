package dra

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/plexus-cni/plexus/pkg/sriov/discovery"
	"github.com/plexus-cni/plexus/pkg/sriov/dpconfig"
	"github.com/plexus-cni/plexus/pkg/testutil/fakesysfs"
)

// A VF bound to vfio-pci gets a CDI device (the VFIO container device and
// its IOMMU group); a netdev VF none; unprepare removes the spec.
func TestPrepareVFIOWritesCDISpec(t *testing.T) {
	tree := fakesysfs.New(t)
	vfs, err := tree.AddPF(fakesysfs.PF{Addr: "0000:3b:00.0", Netdev: "pfv", NumVFs: 2, NUMA: 0, VFDriver: "vfio-pci"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.AddPF(fakesysfs.PF{Addr: "0000:5e:00.0", Netdev: "pfn", NumVFs: 1, NUMA: 0}); err != nil {
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
	dir := t.TempDir()
	d := newTestDriver(t, dir, dpconfig.Pools(cfg, pfs))
	d.CDIDir = filepath.Join(dir, "cdi")
	vfio, netdev := DeviceName(vfs[1].Addr), DeviceName("0000:5f:00.0")
	res, err := d.PrepareResourceClaims(context.Background(), []*resourceapi.ResourceClaim{claim("uid-9", "c9", vfio, netdev)})
	if err != nil || res["uid-9"].Err != nil {
		t.Fatalf("prepare: %v %v", err, res["uid-9"].Err)
	}
	devs := res["uid-9"].Devices
	if len(devs[0].CDIDeviceIDs) != 1 || devs[0].CDIDeviceIDs[0] != "sriov.plexus.io/vf=uid-9-"+vfio || len(devs[1].CDIDeviceIDs) != 0 {
		t.Fatalf("CDI IDs %v / %v", devs[0].CDIDeviceIDs, devs[1].CDIDeviceIDs)
	}
	var spec cdispec.Spec
	b, err := os.ReadFile(filepath.Join(dir, "cdi", "sriov.plexus.io-uid-9.json"))
	if err != nil || json.Unmarshal(b, &spec) != nil {
		t.Fatalf("spec: %v %s", err, b)
	}
	group, _ := tree.IOMMUGroup(vfs[1].Addr)
	if spec.Kind != "sriov.plexus.io/vf" || len(spec.Devices) != 1 || spec.Devices[0].Name != "uid-9-"+vfio {
		t.Fatalf("spec %+v", spec)
	}
	nodes := spec.Devices[0].ContainerEdits.DeviceNodes
	if len(nodes) != 2 || nodes[0].Path != "/dev/vfio/vfio" || nodes[1].Path != "/dev/vfio/"+strconv.Itoa(group) {
		t.Errorf("device nodes %+v, want /dev/vfio/vfio and /dev/vfio/%d", nodes, group)
	}
	if _, err := d.UnprepareResourceClaims(context.Background(), []kubeletplugin.NamespacedObject{{UID: types.UID("uid-9")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cdi", "sriov.plexus.io-uid-9.json")); !os.IsNotExist(err) {
		t.Errorf("CDI spec after unprepare: %v", err)
	}
}
