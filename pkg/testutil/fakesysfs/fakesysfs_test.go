package fakesysfs

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestAddPFLayout(t *testing.T) {
	tr := New(t)
	vfs, err := tr.AddPF(PF{Addr: "0000:3b:00.0", Netdev: "ens1f0", NumVFs: 3, NUMA: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(vfs) != 3 || vfs[2].Addr != "0000:3c:00.2" || vfs[2].Netdev != "ens1f0v2" {
		t.Fatalf("unexpected VFs: %+v", vfs)
	}
	// physfn resolves to the PF through the bus symlink, as on a real host.
	dest, err := filepath.EvalSymlinks(filepath.Join(tr.Root, "sys/bus/pci/devices", vfs[1].Addr, "physfn"))
	if err != nil || filepath.Base(dest) != "0000:3b:00.0" {
		t.Fatalf("physfn: %q %v", dest, err)
	}
	if _, err := os.Stat(filepath.Join(tr.Root, "sys/class/net/ens1f0v1/operstate")); err != nil {
		t.Fatal(err)
	}
	drv, _ := os.Readlink(filepath.Join(tr.DevDir(vfs[0].Addr), "driver"))
	if filepath.Base(drv) != "iavf" {
		t.Fatalf("driver %q", drv)
	}
	if err := tr.BindDriver(vfs[0].Addr, "vfio-pci"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tr.Root, "sys/class/net/ens1f0v0")); !os.IsNotExist(err) {
		t.Fatalf("netdev should be gone after vfio bind: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tr.Root, "dev/vfio", strconv.Itoa(vfs[0].IOMMUGroup))); err != nil {
		t.Fatal(err)
	}
}
