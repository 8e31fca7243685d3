// Package dra is plexus's SR-IOV Dynamic Resource Allocation driver: a
// kubelet DRA plugin (k8s.io/dynamic-resource-allocation's kubeletplugin
// helper) that publishes the node's VFs as ResourceSlice devices, prepares
// and unprepares the VFs of allocated ResourceClaims (device-info files,
// a crash-safe checkpoint), and reports each prepared VF's network data in
// the claim's status (KEP-4817) once plexus has attached it.
package dra

import (
	"fmt"
	"slices"
	"strings"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/utils/ptr"

	"github.com/plexus-cni/plexus/pkg/sriov/dpconfig"
)

// DefaultDriverName is the driver's name in ResourceSlices, DeviceClasses
// and claims, and the domain of its device attributes.
const DefaultDriverName = "sriov.plexus.io"

// Attribute names beyond the driver's own domain.
const (
	// AttrMultusResourceName and AttrMultusDeviceID are the attributes
	// Multus's DRA support and dra-driver-sriov agree on: the NAD's
	// k8s.v1.cni.cncf.io/resourceName matches the first, the second is the
	// deviceID handed to the CNI plugin.
	AttrMultusResourceName resourceapi.QualifiedName = "k8s.cni.cncf.io/resourceName"
	AttrMultusDeviceID     resourceapi.QualifiedName = "k8s.cni.cncf.io/deviceID"
	// AttrPCIBusID is Kubernetes' standard PCI address attribute.
	AttrPCIBusID resourceapi.QualifiedName = "resource.kubernetes.io/pciBusID"
	// AttrDraNetNUMA is the NUMA attribute dranet and dracpu publish, for
	// matchAttribute constraints across drivers.
	AttrDraNetNUMA resourceapi.QualifiedName = "dra.net/numaNode"
)

// maxDevicesPerSlice is the API's limit of devices in one ResourceSlice.
const maxDevicesPerSlice = resourceapi.ResourceSliceMaxDevices

// DeviceName is a VF's device name in the slice: "vf-" and its PCI address
// with ':' and '.' as '-' (a DNS label; "0000:3b:02.1" → "vf-0000-3b-02-1").
func DeviceName(pciAddr string) string {
	return "vf-" + strings.NewReplacer(":", "-", ".", "-").Replace(strings.ToLower(pciAddr))
}

// inventoryDevice is one VF the driver offers, with the pool (resource)
// that selected it.
type inventoryDevice struct {
	Name     string
	Resource string // resourcePrefix/resourceName of its pool
	Dev      *dpconfig.Device
}

// inventory is every VF the driver offers, by device name.
type inventory map[string]*inventoryDevice

func newInventory(pools []*dpconfig.Pool) inventory {
	inv := inventory{}
	for _, p := range pools {
		for _, d := range p.Devices {
			n := DeviceName(d.Addr)
			if _, dup := inv[n]; !dup {
				inv[n] = &inventoryDevice{Name: n, Resource: p.Resource.FullName(), Dev: d}
			}
		}
	}
	return inv
}

// attributes are a VF's attributes for CEL selectors: the driver's own
// (device.attributes["sriov.plexus.io"].pfName, …), Multus's and the
// standard PCI address.
func attributes(d *inventoryDevice) map[resourceapi.QualifiedName]resourceapi.DeviceAttribute {
	s := func(v string) resourceapi.DeviceAttribute { return resourceapi.DeviceAttribute{StringValue: ptr.To(v)} }
	i := func(v int) resourceapi.DeviceAttribute {
		return resourceapi.DeviceAttribute{IntValue: ptr.To(int64(v))}
	}
	vf := d.Dev.VF
	a := map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
		"resourceName":         s(d.Resource),
		"pciAddress":           s(vf.Addr),
		"pfPciAddress":         s(vf.PFAddr),
		"vendor":               s(vf.Vendor),
		"deviceID":             s(vf.Device),
		"driver":               s(vf.Driver),
		"vfIndex":              i(vf.Index),
		AttrMultusResourceName: s(d.Resource),
		AttrMultusDeviceID:     s(vf.Addr),
		AttrPCIBusID:           s(vf.Addr),
	}
	if vf.PFNetdev != "" {
		a["pfName"] = s(vf.PFNetdev)
	}
	if vf.LinkType != "" {
		a["linkType"] = s(vf.LinkType)
	}
	if vf.NUMA >= 0 {
		a["numaNode"] = i(vf.NUMA)
		a[AttrDraNetNUMA] = i(vf.NUMA)
	}
	if vf.IOMMUGroup != "" {
		a["iommuGroup"] = s(vf.IOMMUGroup)
	}
	if len(vf.RDMA) > 0 {
		a["rdma"] = resourceapi.DeviceAttribute{BoolValue: ptr.To(true)}
	}
	return a
}

// Resources is the node's pool for the ResourceSlice helper: one pool
// named after the node, every VF of inv not on a PF in down, in PCI
// address order, split into slices of at most 128 devices.
func Resources(pool string, inv inventory, down map[string]bool) resourceslice.DriverResources {
	var names []string
	for n, d := range inv {
		if !down[d.Dev.PFAddr] {
			names = append(names, n)
		}
	}
	sortStrings(names)
	var out []resourceslice.Slice
	for start := 0; start < len(names); start += maxDevicesPerSlice {
		end := min(start+maxDevicesPerSlice, len(names))
		devs := make([]resourceapi.Device, 0, end-start)
		for _, n := range names[start:end] {
			devs = append(devs, resourceapi.Device{Name: n, Attributes: attributes(inv[n])})
		}
		out = append(out, resourceslice.Slice{Devices: devs})
	}
	if len(out) == 0 {
		out = []resourceslice.Slice{{}}
	}
	return resourceslice.DriverResources{Pools: map[string]resourceslice.Pool{pool: {Slices: out}}}
}

func sortStrings(s []string) { slices.Sort(s) }

// claimErr names the claim once, first.
func claimErr(ns, name string, format string, args ...any) error {
	return fmt.Errorf("claim %s/%s: %s", ns, name, fmt.Sprintf(format, args...))
}
