package discovery

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/plexus-cni/plexus/pkg/testutil/fakesysfs"
)

func buildTree(t testing.TB) (*fakesysfs.Tree, []fakesysfs.VF, []fakesysfs.VF) {
	t.Helper()
	tr := fakesysfs.New(t)
	vfs0, err := tr.AddPF(fakesysfs.PF{Addr: "0000:3b:00.0", Netdev: "ens1f0", NumVFs: 4, NUMA: 0})
	if err != nil {
		t.Fatal(err)
	}
	vfs1, err := tr.AddPF(fakesysfs.PF{Addr: "0000:5e:00.1", Netdev: "ens2f1", NumVFs: 2, NUMA: 1,
		Vendor: "15b3", Device: "101d", VFDevice: "101e", Driver: "mlx5_core", VFDriver: "vfio-pci", LinkType: "infiniband"})
	if err != nil {
		t.Fatal(err)
	}
	// A NIC without SR-IOV and a non-network device must be ignored.
	if err := tr.AddPlainDevice("0000:01:00.0", "8086", "1533", "020000", "igb", 0); err != nil {
		t.Fatal(err)
	}
	if err := tr.AddPlainDevice("0000:02:00.0", "144d", "a808", "010802", "nvme", 0); err != nil {
		t.Fatal(err)
	}
	return tr, vfs0, vfs1
}

func TestDiscover(t *testing.T) {
	tr, vfs0, vfs1 := buildTree(t)
	if err := tr.AddRDMA(vfs0[1].Addr, "mlx5_3", 3); err != nil {
		t.Fatal(err)
	}
	pfs, err := Discover(Options{Root: tr.Root})
	if err != nil {
		t.Fatal(err)
	}
	if len(pfs) != 2 {
		t.Fatalf("want 2 PFs, got %d: %+v", len(pfs), pfs)
	}
	pf := pfs[0]
	if pf.Addr != "0000:3b:00.0" || pf.Netdev != "ens1f0" || pf.Driver != "ice" || pf.Vendor != "8086" ||
		pf.Device != "1592" || pf.NUMA != 0 || pf.NumVFs != 4 || pf.TotalVFs != 64 || pf.LinkType != "ether" || pf.OperState != "up" {
		t.Fatalf("PF 0: %+v", pf)
	}
	if len(pf.VFs) != 4 {
		t.Fatalf("PF 0 VFs: %d", len(pf.VFs))
	}
	for i, vf := range pf.VFs {
		want := vfs0[i]
		if vf.Addr != want.Addr || vf.Index != i || vf.Netdev != want.Netdev || vf.Driver != "iavf" ||
			vf.PFAddr != pf.Addr || vf.PFNetdev != "ens1f0" || vf.Device != "1889" || vf.NUMA != 0 ||
			vf.IOMMUGroup != strconv.Itoa(want.IOMMUGroup) || vf.LinkType != "ether" || vf.IsUserspace() {
			t.Fatalf("VF %d: %+v (want %+v)", i, vf, want)
		}
	}
	if fmt.Sprint(pf.VFs[1].RDMA) != "[mlx5_3]" || pf.VFs[0].RDMA != nil {
		t.Fatalf("RDMA: %v %v", pf.VFs[1].RDMA, pf.VFs[0].RDMA)
	}
	pf = pfs[1]
	if pf.NUMA != 1 || pf.LinkType != "infiniband" || len(pf.VFs) != 2 {
		t.Fatalf("PF 1: %+v", pf)
	}
	for i, vf := range pf.VFs {
		if vf.Netdev != "" || !vf.IsVFIO() || vf.LinkType != "infiniband" || vf.NUMA != 1 ||
			vf.IOMMUGroup != strconv.Itoa(vfs1[i].IOMMUGroup) || vf.Vendor != "15b3" || vf.Device != "101e" {
			t.Fatalf("vfio VF %d: %+v", i, vf)
		}
	}
}

// Without a pci.ids database devices keep their raw IDs; with one, names.
func TestDiscoverPCIDB(t *testing.T) {
	tr, _, _ := buildTree(t)
	if _, err := Discover(Options{Root: tr.Root, PCIDBPath: ""}); err != nil {
		t.Fatal(err)
	}
	// This machine may or may not have a pci.ids in "/"; force the empty one.
	empty, err := emptyPCIDB()
	if err != nil {
		t.Fatal(err)
	}
	pfs, err := Discover(Options{Root: tr.Root, PCIDBPath: empty})
	if err != nil {
		t.Fatal(err)
	}
	if pfs[0].Vendor != "8086" || pfs[0].VendorName != "unknown" || pfs[0].DeviceName != "unknown" {
		t.Fatalf("empty pcidb: %+v", pfs[0])
	}
	if _, err := tr.WritePCIDB("8086  Intel Corporation\n\t1592  Ethernet Controller E810-C\n"); err != nil {
		t.Fatal(err)
	}
	pfs, err = Discover(Options{Root: tr.Root})
	if err != nil {
		t.Fatal(err)
	}
	if pfs[0].VendorName != "Intel Corporation" || pfs[0].DeviceName != "Ethernet Controller E810-C" {
		t.Fatalf("root pcidb: %+v", pfs[0])
	}
	if _, err := Discover(Options{Root: tr.Root, PCIDBPath: "/nonexistent/pci.ids"}); err == nil {
		t.Fatal("missing explicit pci.ids accepted")
	}
}

func TestDiscoverNoSysfs(t *testing.T) {
	_, err := Discover(Options{Root: t.TempDir()})
	if !errors.Is(err, ErrNoSysfs) {
		t.Fatalf("want ErrNoSysfs, got %v", err)
	}
}

func TestDiscoverRenamedAndRebound(t *testing.T) {
	tr, vfs0, _ := buildTree(t)
	if err := tr.RenameNetdev(vfs0[2].Addr, vfs0[2].Netdev, ""); err != nil {
		t.Fatal(err)
	}
	if err := tr.BindDriver(vfs0[3].Addr, "vfio-pci"); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetOperState("0000:3b:00.0", "ens1f0", "down"); err != nil {
		t.Fatal(err)
	}
	pfs, err := Discover(Options{Root: tr.Root})
	if err != nil {
		t.Fatal(err)
	}
	v := pfs[0].VFs
	if v[2].Netdev != "" || v[2].LinkType != "ether" || v[3].Driver != "vfio-pci" || v[3].Netdev != "" || pfs[0].OperState != "down" {
		t.Fatalf("after rename/rebind: %+v %+v %q", v[2], v[3], pfs[0].OperState)
	}
}

// BenchmarkDiscover8x64 discovers 8 PFs with 64 VFs each (target < 100 ms/op).
// The tree is on tmpfs when /dev/shm is one: /sys is an in-memory file
// system too, and a disk file system's path walks would be measured instead.
func BenchmarkDiscover8x64(b *testing.B) {
	tr := fakesysfs.New(b)
	if d, err := os.MkdirTemp("/dev/shm", "plexus-sysfs"); err == nil {
		b.Cleanup(func() { os.RemoveAll(d) })
		if tr, err = fakesysfs.NewAt(d); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 8; i++ {
		_, err := tr.AddPF(fakesysfs.PF{
			Addr: fmt.Sprintf("0000:%02x:00.0", 0x10+i*2), Netdev: fmt.Sprintf("ens%df0", i), NumVFs: 64, NUMA: i % 2,
			VFAddr: func(j int) string { return fmt.Sprintf("0000:%02x:%02x.%d", 0x11+i*2, j/8, j%8) },
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	empty, err := emptyPCIDB()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pfs, err := Discover(Options{Root: tr.Root, PCIDBPath: empty})
		if err != nil || len(pfs) != 8 || len(pfs[7].VFs) != 64 {
			b.Fatalf("discover: %v %d", err, len(pfs))
		}
	}
}
