// Package fakesysfs builds a sysfs tree of SR-IOV physical and virtual
// functions under a chosen root directory. It is the lowest-level fake the
// project allows: code under test reads it exactly as it reads /sys (with a
// configurable root), so everything above sysfs runs for real.
//
// Layout (relative symlinks, so the tree resolves inside the root):
//
//	sys/devices/pci0000:00/<addr>/{vendor,device,class,modalias,numa_node,revision}
//	sys/devices/pci0000:00/<pf>/{sriov_totalvfs,sriov_numvfs,virtfnN -> ../<vf>}
//	sys/devices/pci0000:00/<vf>/physfn -> ../<pf>
//	sys/devices/pci0000:00/<addr>/driver -> ../../../bus/pci/drivers/<drv>
//	sys/devices/pci0000:00/<addr>/iommu_group -> ../../../kernel/iommu_groups/<n>
//	sys/devices/pci0000:00/<addr>/net/<ifname>/{operstate,address,type}
//	sys/bus/pci/devices/<addr> -> ../../../devices/pci0000:00/<addr>
//	sys/class/net/<ifname> -> ../../devices/pci0000:00/<addr>/net/<ifname>
package fakesysfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const pciRoot = "sys/devices/pci0000:00"

// Tree is a fake sysfs rooted at Root (Root plays the part of "/").
type Tree struct {
	Root string

	mu        sync.Mutex
	nextGroup int
}

// New makes an empty tree in a temporary directory removed after the test.
func New(t testing.TB) *Tree {
	t.Helper()
	tr, err := NewAt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// NewAt makes an empty tree under root (which need not exist yet).
func NewAt(root string) (*Tree, error) {
	for _, d := range []string{pciRoot, "sys/bus/pci/devices", "sys/bus/pci/drivers", "sys/class/net", "sys/kernel/iommu_groups", "dev/vfio"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}
	return &Tree{Root: root, nextGroup: 100}, nil
}

// PF describes a physical function and the VFs it carries.
type PF struct {
	Addr     string // PCI address, e.g. "0000:3b:00.0"
	Netdev   string // PF netdev name, e.g. "ens1f0"; empty for none
	Vendor   string // hex without 0x; default "8086"
	Device   string // PF device ID; default "1592"
	VFDevice string // VF device ID; default "1889"
	Driver   string // PF driver; default "ice"
	VFDriver string // VF driver; default "iavf"; "vfio-pci" gives VFs no netdev
	NUMA     int    // NUMA node; -1 for none
	NumVFs   int
	TotalVFs int    // default 64, at least NumVFs
	LinkType string // "ether" (default) or "infiniband"
	// VFNetdev names VF i's netdev; default "<Netdev>v<i>" (or none when the
	// VF driver is a userspace one).
	VFNetdev func(i int) string
	// VFAddr gives VF i's PCI address; default: bus PFbus+1+PFfunction,
	// device i/8, function i%8.
	VFAddr func(i int) string
}

// VF is what AddPF made for one virtual function.
type VF struct {
	Addr       string
	Index      int
	Netdev     string
	Driver     string
	IOMMUGroup int
}

// AddPF writes a PF and its VFs into the tree and returns the VFs made.
func (t *Tree) AddPF(pf PF) ([]VF, error) {
	if pf.Vendor == "" {
		pf.Vendor = "8086"
	}
	if pf.Device == "" {
		pf.Device = "1592"
	}
	if pf.VFDevice == "" {
		pf.VFDevice = "1889"
	}
	if pf.Driver == "" {
		pf.Driver = "ice"
	}
	if pf.VFDriver == "" {
		pf.VFDriver = "iavf"
	}
	if pf.TotalVFs == 0 {
		pf.TotalVFs = 64
	}
	if pf.TotalVFs < pf.NumVFs {
		pf.TotalVFs = pf.NumVFs
	}
	if pf.LinkType == "" {
		pf.LinkType = "ether"
	}
	if pf.VFAddr == nil {
		dom, bus, _, fn, err := splitAddr(pf.Addr)
		if err != nil {
			return nil, err
		}
		pf.VFAddr = func(i int) string {
			return fmt.Sprintf("%s:%02x:%02x.%d", dom, (bus+1+fn)%256, i/8, i%8)
		}
	}
	if err := t.addDevice(pf.Addr, pf.Vendor, pf.Device, pf.Driver, pf.NUMA); err != nil {
		return nil, err
	}
	pfDir := t.devDir(pf.Addr)
	if err := writeFiles(pfDir, map[string]string{
		"sriov_totalvfs": strconv.Itoa(pf.TotalVFs),
		"sriov_numvfs":   strconv.Itoa(pf.NumVFs),
	}); err != nil {
		return nil, err
	}
	if pf.Netdev != "" {
		if err := t.AddNetdev(pf.Addr, pf.Netdev, pf.LinkType); err != nil {
			return nil, err
		}
	}
	vfs := make([]VF, 0, pf.NumVFs)
	for i := 0; i < pf.NumVFs; i++ {
		vf := VF{Addr: pf.VFAddr(i), Index: i, Driver: pf.VFDriver}
		if err := t.addDevice(vf.Addr, pf.Vendor, pf.VFDevice, pf.VFDriver, pf.NUMA); err != nil {
			return nil, err
		}
		if err := os.Symlink("../"+pf.Addr, filepath.Join(t.devDir(vf.Addr), "physfn")); err != nil {
			return nil, err
		}
		if err := os.Symlink("../"+vf.Addr, filepath.Join(pfDir, "virtfn"+strconv.Itoa(i))); err != nil {
			return nil, err
		}
		vf.IOMMUGroup, _ = t.IOMMUGroup(vf.Addr)
		if !IsUserspaceDriver(pf.VFDriver) {
			name := fmt.Sprintf("%sv%d", pf.Netdev, i)
			if pf.VFNetdev != nil {
				name = pf.VFNetdev(i)
			}
			if name != "" {
				if err := t.AddNetdev(vf.Addr, name, pf.LinkType); err != nil {
					return nil, err
				}
				vf.Netdev = name
			}
		}
		vfs = append(vfs, vf)
	}
	return vfs, nil
}

// IsUserspaceDriver reports whether a PCI driver leaves the device without a
// kernel netdev (vfio-pci, uio).
func IsUserspaceDriver(drv string) bool {
	return drv == "vfio-pci" || drv == "uio_pci_generic" || drv == "igb_uio"
}

// AddNetdev gives the device at addr a netdev named name.
func (t *Tree) AddNetdev(addr, name, linkType string) error {
	typ := "1"
	if linkType == "infiniband" {
		typ = "32"
	}
	dir := filepath.Join(t.devDir(addr), "net", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeFiles(dir, map[string]string{"operstate": "up", "type": typ, "ifindex": "0"}); err != nil {
		return err
	}
	link := filepath.Join(t.Root, "sys/class/net", name)
	_ = os.Remove(link)
	return os.Symlink(filepath.Join("../../devices/pci0000:00", addr, "net", name), link)
}

// RenameNetdev renames (or, with newName "", removes) a device's netdev, as
// the kernel's sysfs would show after a rename or a move to another netns.
func (t *Tree) RenameNetdev(addr, oldName, newName string) error {
	_ = os.Remove(filepath.Join(t.Root, "sys/class/net", oldName))
	old := filepath.Join(t.devDir(addr), "net", oldName)
	if newName == "" {
		return os.RemoveAll(old)
	}
	if err := os.Rename(old, filepath.Join(t.devDir(addr), "net", newName)); err != nil {
		return err
	}
	return os.Symlink(filepath.Join("../../devices/pci0000:00", addr, "net", newName), filepath.Join(t.Root, "sys/class/net", newName))
}

// SetOperState writes a netdev's operstate ("up", "down").
func (t *Tree) SetOperState(addr, ifname, state string) error {
	return os.WriteFile(filepath.Join(t.devDir(addr), "net", ifname, "operstate"), []byte(state+"\n"), 0o644)
}

// BindDriver rebinds the device at addr to drv. Binding a VF to a userspace
// driver removes its netdevs and creates /dev/vfio/<group>.
func (t *Tree) BindDriver(addr, drv string) error {
	dir := t.devDir(addr)
	if err := t.linkDriver(addr, drv); err != nil {
		return err
	}
	if IsUserspaceDriver(drv) {
		ents, _ := os.ReadDir(filepath.Join(dir, "net"))
		for _, e := range ents {
			_ = os.Remove(filepath.Join(t.Root, "sys/class/net", e.Name()))
		}
		_ = os.RemoveAll(filepath.Join(dir, "net"))
		g, err := t.IOMMUGroup(addr)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(t.Root, "dev/vfio", strconv.Itoa(g)), nil, 0o644)
	}
	return nil
}

// IOMMUGroup returns the IOMMU group number of the device at addr.
func (t *Tree) IOMMUGroup(addr string) (int, error) {
	dest, err := os.Readlink(filepath.Join(t.devDir(addr), "iommu_group"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(filepath.Base(dest))
}

// DevDir is the device's directory under sys/devices.
func (t *Tree) DevDir(addr string) string { return t.devDir(addr) }

func (t *Tree) devDir(addr string) string { return filepath.Join(t.Root, pciRoot, addr) }

func (t *Tree) addDevice(addr, vendor, device, driver string, numa int) error {
	dir := t.devDir(addr)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	modalias := fmt.Sprintf("pci:v0000%sd0000%ssv0000%ssd00000000bc02sc00i00",
		strings.ToUpper(vendor), strings.ToUpper(device), strings.ToUpper(vendor))
	if err := writeFiles(dir, map[string]string{
		"vendor":    "0x" + vendor,
		"device":    "0x" + device,
		"class":     "0x020000",
		"modalias":  modalias,
		"numa_node": strconv.Itoa(numa),
		"revision":  "0x02",
	}); err != nil {
		return err
	}
	if err := os.Symlink(filepath.Join("../../../devices/pci0000:00", addr), filepath.Join(t.Root, "sys/bus/pci/devices", addr)); err != nil {
		return err
	}
	t.mu.Lock()
	g := t.nextGroup
	t.nextGroup++
	t.mu.Unlock()
	if err := os.MkdirAll(filepath.Join(t.Root, "sys/kernel/iommu_groups", strconv.Itoa(g), "devices"), 0o755); err != nil {
		return err
	}
	if err := os.Symlink(filepath.Join("../../../kernel/iommu_groups", strconv.Itoa(g)), filepath.Join(dir, "iommu_group")); err != nil {
		return err
	}
	if err := t.linkDriver(addr, driver); err != nil {
		return err
	}
	if IsUserspaceDriver(driver) {
		return os.WriteFile(filepath.Join(t.Root, "dev/vfio", strconv.Itoa(g)), nil, 0o644)
	}
	return nil
}

func (t *Tree) linkDriver(addr, drv string) error {
	if err := os.MkdirAll(filepath.Join(t.Root, "sys/bus/pci/drivers", drv), 0o755); err != nil {
		return err
	}
	link := filepath.Join(t.devDir(addr), "driver")
	_ = os.Remove(link)
	return os.Symlink(filepath.Join("../../../bus/pci/drivers", drv), link)
}

func writeFiles(dir string, files map[string]string) error {
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func splitAddr(addr string) (dom string, bus, dev, fn int, err error) {
	// dddd:bb:dd.f
	var b, d, f int
	parts := strings.Split(addr, ":")
	if len(parts) != 3 {
		return "", 0, 0, 0, fmt.Errorf("fakesysfs: bad PCI address %q", addr)
	}
	if _, err := fmt.Sscanf(parts[1]+" "+strings.Replace(parts[2], ".", " ", 1), "%x %x %x", &b, &d, &f); err != nil {
		return "", 0, 0, 0, fmt.Errorf("fakesysfs: bad PCI address %q: %v", addr, err)
	}
	return parts[0], b, d, f, nil
}
