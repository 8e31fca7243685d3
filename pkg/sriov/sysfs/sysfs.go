// Package sysfs reads what the sriov CNI plugin needs to know about a VF
// from sysfs: its PF, its index on the PF, its driver and its netdev names.
// Everything is read under a configurable root so tests can use a fake tree
// (pkg/testutil/fakesysfs).
package sysfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// VF is what sysfs says about one virtual function.
type VF struct {
	Addr    string   // VF PCI address
	PFAddr  string   // PF PCI address
	PFName  string   // PF netdev name (first one listed)
	Index   int      // VF index on its PF (virtfnN)
	Driver  string   // bound driver, "" when unbound
	Netdevs []string // VF netdev names, empty for userspace drivers
}

// Userspace reports whether the VF is bound to a userspace driver (vfio-pci,
// uio): such a VF has no netdev to move.
func (v VF) Userspace() bool { return IsUserspaceDriver(v.Driver) }

// IsUserspaceDriver reports whether drv leaves a device without a kernel netdev.
func IsUserspaceDriver(drv string) bool {
	switch drv {
	case "vfio-pci", "uio_pci_generic", "igb_uio":
		return true
	}
	return false
}

var pciAddrRE = regexp.MustCompile(`^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$`)

// ValidPCIAddr reports whether addr looks like dddd:bb:dd.f.
func ValidPCIAddr(addr string) bool { return pciAddrRE.MatchString(addr) }

// Reader reads sysfs under Root ("/" in production).
type Reader struct {
	Root string
}

func (r Reader) devDir(addr string) string {
	root := r.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, "sys/bus/pci/devices", addr)
}

// VF resolves the VF at PCI address addr.
func (r Reader) VF(addr string) (VF, error) {
	if !ValidPCIAddr(addr) {
		return VF{}, fmt.Errorf("VF %q: not a PCI address (want dddd:bb:dd.f)", addr)
	}
	dir := r.devDir(addr)
	if _, err := os.Stat(dir); err != nil {
		return VF{}, fmt.Errorf("VF %s: no such PCI device: %w", addr, err)
	}
	pfAddr, err := r.PhysFn(addr)
	if err != nil {
		return VF{}, err
	}
	vf := VF{Addr: addr, PFAddr: pfAddr}
	if vf.Index, err = r.vfIndex(vf.PFAddr, addr); err != nil {
		return VF{}, err
	}
	pfNet, err := r.Netdevs(vf.PFAddr)
	if err != nil {
		return VF{}, fmt.Errorf("VF %s: PF %s: %w", addr, vf.PFAddr, err)
	}
	if len(pfNet) == 0 {
		return VF{}, fmt.Errorf("VF %s: PF %s has no netdev", addr, vf.PFAddr)
	}
	vf.PFName = pfNet[0]
	if drv, err := os.Readlink(filepath.Join(dir, "driver")); err == nil {
		vf.Driver = filepath.Base(drv)
	} else if !errors.Is(err, os.ErrNotExist) {
		return VF{}, fmt.Errorf("VF %s: driver: %w", addr, err)
	}
	if vf.Netdevs, err = r.Netdevs(addr); err != nil {
		return VF{}, fmt.Errorf("VF %s: %w", addr, err)
	}
	return vf, nil
}

// PhysFn returns the PCI address of the PF of the VF at addr (its physfn link).
func (r Reader) PhysFn(addr string) (string, error) {
	pfLink, err := os.Readlink(filepath.Join(r.devDir(addr), "physfn"))
	if err != nil {
		return "", fmt.Errorf("VF %s: not a virtual function (no physfn): %w", addr, err)
	}
	return filepath.Base(pfLink), nil
}

// Netdevs lists the netdev names of the PCI device at addr (sorted).
func (r Reader) Netdevs(addr string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(r.devDir(addr), "net"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list netdevs: %w", err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

func (r Reader) vfIndex(pfAddr, vfAddr string) (int, error) {
	ents, err := os.ReadDir(r.devDir(pfAddr))
	if err != nil {
		return 0, fmt.Errorf("VF %s: PF %s: %w", vfAddr, pfAddr, err)
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "virtfn") {
			continue
		}
		idx, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "virtfn"))
		if err != nil {
			continue
		}
		dest, err := os.Readlink(filepath.Join(r.devDir(pfAddr), e.Name()))
		if err == nil && filepath.Base(dest) == vfAddr {
			return idx, nil
		}
	}
	return 0, fmt.Errorf("VF %s: not listed among PF %s's virtfn links", vfAddr, pfAddr)
}
