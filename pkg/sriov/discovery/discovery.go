// Package discovery finds SR-IOV physical functions (PFs) and their virtual
// functions (VFs) under a host root directory. PCI devices are listed with
// ghw (chrooted to the root); the SR-IOV attributes ghw does not cover are
// read from the same root's sysfs.
package discovery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/jaypipes/ghw"

	"github.com/plexus-cni/plexus/pkg/sriov/sysfs"
)

// Options say where and how to discover.
type Options struct {
	// Root plays the part of "/" (the host's root, e.g. a bind mount of it);
	// empty means "/".
	Root string
	// PCIDBPath names a pci.ids file for vendor and product names. Empty
	// means: look for one under Root, then under "/", and otherwise go on
	// with raw IDs. Nothing is ever fetched from the network.
	PCIDBPath string
}

// PF is an SR-IOV capable network physical function.
type PF struct {
	Addr       string // PCI address, "0000:3b:00.0"
	Netdev     string // netdev name, "" when it has none
	Vendor     string // 4 lower-case hex digits
	Device     string
	VendorName string // from pci.ids, "unknown" without it
	DeviceName string
	Driver     string
	NUMA       int // -1 when unknown
	TotalVFs   int
	NumVFs     int
	LinkType   string // "ether", "infiniband", "" when no netdev
	OperState  string // sysfs operstate of the netdev ("up", "down", ...)
	VFs        []*VF  // ordered by VF index
}

// VF is one virtual function.
type VF struct {
	Addr       string
	Index      int // N of the PF's virtfnN link
	PFAddr     string
	PFNetdev   string
	Vendor     string
	Device     string
	Driver     string
	Netdev     string   // "" for userspace drivers or a moved netdev
	NUMA       int      // -1 when unknown
	IOMMUGroup string   // "" without an IOMMU
	LinkType   string   // of its netdev, else the PF's
	RDMA       []string // RDMA devices (infiniband/<name>)
	Verbs      []string // user verbs char devices (infiniband_verbs/uverbsN)
}

// IsUserspace reports whether the VF is bound to a userspace I/O driver.
func (v *VF) IsUserspace() bool { return sysfs.IsUserspaceDriver(v.Driver) }

// IsVFIO reports whether the VF is bound to vfio-pci.
func (v *VF) IsVFIO() bool { return v.Driver == "vfio-pci" }

// ErrNoSysfs is returned when the root has no sys/bus/pci/devices.
var ErrNoSysfs = errors.New("no PCI sysfs")

// Discover lists the network-class PFs with SR-IOV capability and their VFs,
// ordered by PCI address.
func Discover(opts Options) ([]*PF, error) {
	root := opts.Root
	if root == "" {
		root = "/"
	}
	busDir := filepath.Join(root, "sys/bus/pci/devices")
	if _, err := os.Stat(busDir); err != nil {
		return nil, fmt.Errorf("discovery: host root %q: %w: %v", root, ErrNoSysfs, err)
	}
	devs, err := listPCI(root, opts.PCIDBPath)
	if err != nil {
		return nil, err
	}
	var (
		pfs  []*PF
		errs []error
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	// PFs are read concurrently: sysfs reads are syscall-bound.
	for addr, d := range devs {
		if !d.network || fileExists(filepath.Join(busDir, addr, "physfn")) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			total, err := readInt(filepath.Join(busDir, addr, "sriov_totalvfs"))
			if err != nil || total <= 0 {
				return // not SR-IOV capable
			}
			pf, err := readPF(busDir, addr, d, devs)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			pf.TotalVFs = total
			pfs = append(pfs, pf)
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(pfs, func(i, j int) bool { return pfs[i].Addr < pfs[j].Addr })
	return pfs, nil
}

// pciDev is what ghw tells about one device.
type pciDev struct {
	vendor, device, vendorName, deviceName, driver, iommu string
	network                                               bool
}

func readPF(busDir, addr string, d pciDev, devs map[string]pciDev) (*PF, error) {
	dir := filepath.Join(busDir, addr)
	pf := &PF{
		Addr: addr, Vendor: d.vendor, Device: d.device, VendorName: d.vendorName,
		DeviceName: d.deviceName, Driver: d.driver, NUMA: readNUMA(dir),
	}
	pf.NumVFs, _ = readInt(filepath.Join(dir, "sriov_numvfs"))
	pf.Netdev, pf.LinkType, pf.OperState = readNetdev(dir)
	links, err := filepath.Glob(filepath.Join(dir, "virtfn*"))
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		idx, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(l), "virtfn"))
		if err != nil {
			continue
		}
		dest, err := os.Readlink(l)
		if err != nil {
			return nil, fmt.Errorf("discovery: PF %s: %s: %w", addr, filepath.Base(l), err)
		}
		vfAddr := filepath.Base(dest)
		vd, ok := devs[vfAddr]
		if !ok {
			return nil, fmt.Errorf("discovery: PF %s: virtfn%d points to %s, which is not a listed PCI device", addr, idx, vfAddr)
		}
		pf.VFs = append(pf.VFs, readVF(busDir, vfAddr, idx, vd, pf))
	}
	sort.Slice(pf.VFs, func(i, j int) bool { return pf.VFs[i].Index < pf.VFs[j].Index })
	return pf, nil
}

func readVF(busDir, addr string, idx int, d pciDev, pf *PF) *VF {
	dir := filepath.Join(busDir, addr)
	vf := &VF{
		Addr: addr, Index: idx, PFAddr: pf.Addr, PFNetdev: pf.Netdev,
		Vendor: d.vendor, Device: d.device, Driver: d.driver,
		NUMA: readNUMA(dir), IOMMUGroup: d.iommu,
	}
	vf.Netdev, vf.LinkType = readNetdevName(dir)
	if vf.LinkType == "" {
		vf.LinkType = pf.LinkType
	}
	if vf.RDMA = dirNames(filepath.Join(dir, "infiniband")); vf.RDMA != nil {
		vf.Verbs = dirNames(filepath.Join(dir, "infiniband_verbs"))
	}
	return vf
}

// readNetdev returns the first netdev under dir/net with its link type and
// operstate.
func readNetdev(dir string) (name, linkType, operState string) {
	name, linkType = readNetdevName(dir)
	if name == "" {
		return "", "", ""
	}
	if b, err := os.ReadFile(filepath.Join(dir, "net", name, "operstate")); err == nil {
		operState = strings.TrimSpace(string(b))
	}
	return name, linkType, operState
}

// readNetdevName returns the first netdev under dir/net and its link type.
func readNetdevName(dir string) (name, linkType string) {
	names := dirNames(filepath.Join(dir, "net"))
	if len(names) == 0 {
		return "", ""
	}
	sort.Strings(names)
	linkType = "ether"
	if t, err := readInt(filepath.Join(dir, "net", names[0], "type")); err == nil {
		linkType = LinkTypeName(t)
	}
	return names[0], linkType
}

// LinkTypeName maps an ARPHRD number (sysfs net/<if>/type) to the name used
// by the linkTypes selector.
func LinkTypeName(t int) string {
	switch t {
	case 1:
		return "ether"
	case 32:
		return "infiniband"
	default:
		return strconv.Itoa(t)
	}
}

// dirNames lists a directory's entries, nil when it has none.
func dirNames(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func readNUMA(dir string) int {
	n, err := readInt(filepath.Join(dir, "numa_node"))
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// readInt reads a small decimal sysfs attribute (open, one read, close).
func readInt(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var buf [32]byte
	n, err := f.Read(buf[:])
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// listPCI lists the PCI devices under root with ghw.
func listPCI(root, dbPath string) (map[string]pciDev, error) {
	db, err := pciDBPath(root, dbPath)
	if err != nil {
		return nil, err
	}
	info, err := ghwPCI(root, db)
	if err != nil {
		return nil, fmt.Errorf("discovery: host root %q: list PCI devices: %w", root, err)
	}
	out := make(map[string]pciDev, len(info.Devices))
	for _, d := range info.Devices {
		pd := pciDev{driver: d.Driver, iommu: d.IOMMUGroup}
		if d.Vendor != nil {
			pd.vendor, pd.vendorName = d.Vendor.ID, d.Vendor.Name
		}
		if d.Product != nil {
			pd.device, pd.deviceName = d.Product.ID, d.Product.Name
		}
		pd.network = d.Class != nil && d.Class.ID == "02"
		out[d.Address] = pd
	}
	return out, nil
}

// ghwPCI runs ghw under root with the pci.ids at db.
func ghwPCI(root, db string) (*ghw.PCIInfo, error) {
	pcidbEnv.Lock()
	defer pcidbEnv.Unlock()
	// ghw v0.26 loads pcidb itself and takes its path only from the
	// environment; network fetch stays off (pcidb's default) whatever the
	// environment says.
	restore := setEnv(map[string]string{"PCIDB_PATH": db, "PCIDB_ENABLE_NETWORK_FETCH": "0"})
	defer restore()
	return ghw.PCI(ghw.WithChroot(root), ghw.WithDisableTopology(), ghw.WithDisableWarnings(), ghw.WithDisableTools())
}
