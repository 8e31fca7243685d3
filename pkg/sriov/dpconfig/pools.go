package dpconfig

import (
	"slices"

	"github.com/plexus-cni/plexus/pkg/sriov/discovery"
)

// Pool is a resource with the VFs its selectors picked.
type Pool struct {
	Resource *Resource
	Devices  []*Device // ordered by PCI address
}

// Device is a VF in a pool, with what its matching selector asked for.
type Device struct {
	*discovery.VF
	NeedVhostNet bool
}

// Pools sorts the VFs into the config's pools. Resources are tried in
// order and, within a resource, its selectors in order: a VF goes to the
// first pool with a matching selector, and to no other. Every resource
// yields a pool, possibly empty.
func Pools(cfg *Config, pfs []*discovery.PF) []*Pool {
	pools := make([]*Pool, len(cfg.Resources))
	for i, r := range cfg.Resources {
		pools[i] = &Pool{Resource: r}
	}
	for _, pf := range pfs {
		for _, vf := range pf.VFs {
			for _, p := range pools {
				if sel := p.Resource.Match(vf); sel != nil {
					p.Devices = append(p.Devices, &Device{VF: vf, NeedVhostNet: sel.NeedVhostNet})
					break
				}
			}
		}
	}
	for _, p := range pools {
		slices.SortFunc(p.Devices, func(a, b *Device) int {
			switch {
			case a.Addr < b.Addr:
				return -1
			case a.Addr > b.Addr:
				return 1
			}
			return 0
		})
	}
	return pools
}

// Match returns the resource's first selector matching vf, or nil.
func (r *Resource) Match(vf *discovery.VF) *Selector {
	for _, s := range r.Selectors {
		if s.Match(vf) {
			return s
		}
	}
	return nil
}

// Match reports whether every criterion the selector sets holds for vf.
func (s *Selector) Match(vf *discovery.VF) bool {
	if len(s.Vendors) > 0 && !slices.Contains(s.Vendors, vf.Vendor) {
		return false
	}
	if len(s.Devices) > 0 && !slices.Contains(s.Devices, vf.Device) {
		return false
	}
	if len(s.Drivers) > 0 && !slices.Contains(s.Drivers, vf.Driver) {
		return false
	}
	if len(s.PCIAddresses) > 0 && !slices.Contains(s.PCIAddresses, vf.Addr) {
		return false
	}
	if len(s.PFNames) > 0 && !refsMatch(s.PFNames, vf.PFNetdev, vf.Index) {
		return false
	}
	if len(s.RootDevices) > 0 && !refsMatch(s.RootDevices, vf.PFAddr, vf.Index) {
		return false
	}
	if len(s.LinkTypes) > 0 && !slices.Contains(s.LinkTypes, vf.LinkType) {
		return false
	}
	if s.IsRdma && len(vf.RDMA) == 0 {
		return false
	}
	return true
}

func refsMatch(refs []DeviceRef, name string, index int) bool {
	if name == "" {
		return false
	}
	for _, r := range refs {
		if r.Name == name && r.Contains(index) {
			return true
		}
	}
	return false
}
