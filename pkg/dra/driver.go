package dra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/dynamic-resource-allocation/resourceslice"

	"github.com/plexus-cni/plexus/pkg/atomicfile"
	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/sriov/dpconfig"
)

// Driver prepares and unprepares the VFs of ResourceClaims; it is the
// kubeletplugin.DRAPlugin the helper calls. Its state (which claim holds
// which VF) is a checkpoint file written crash-safely before a prepare
// answers, so a restarted driver answers a repeated call the same way.
type Driver struct {
	Name       string // driver name
	Pool       string // the node's pool (the node name)
	DevInfoDir string // device-info base directory (dp/ and dra/ below it)
	StateFile  string // the checkpoint
	// CDIDir receives the CDI specs of vfio-pci VFs ("" : none written).
	CDIDir string
	Log    *slog.Logger

	mu       sync.Mutex
	inv      inventory
	prepared map[types.UID]*preparedClaim // the checkpoint, in memory
	// onChange is called (without mu) after the set of prepared claims
	// changed: the network-data reporter looks again.
	onChange func()
}

// preparedClaim is one claim's entry in the checkpoint.
type preparedClaim struct {
	Namespace string           `json:"namespace"`
	Name      string           `json:"name"`
	Devices   []preparedDevice `json:"devices"`
}

type preparedDevice struct {
	Request  string `json:"request"`
	Pool     string `json:"pool"`
	Device   string `json:"device"`
	PCI      string `json:"pciAddress"`
	PFPCI    string `json:"pfPciAddress,omitempty"`
	Resource string `json:"resourceName"`
	// IOMMUGroup is set for a VF bound to vfio-pci (a CDI device).
	IOMMUGroup string `json:"iommuGroup,omitempty"`
}

type checkpoint struct {
	Version int                          `json:"version"`
	Claims  map[types.UID]*preparedClaim `json:"claims"`
}

// NewDriver loads the checkpoint (none: nothing prepared) and offers the
// VFs of pools.
func NewDriver(name, pool, devInfoDir, stateFile string, pools []*dpconfig.Pool, log *slog.Logger) (*Driver, error) {
	d := &Driver{Name: name, Pool: pool, DevInfoDir: devInfoDir, StateFile: stateFile, Log: log, inv: newInventory(pools), prepared: map[types.UID]*preparedClaim{}}
	b, err := os.ReadFile(stateFile)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("checkpoint %s: %w", stateFile, err)
	}
	if err == nil {
		var cp checkpoint
		if err := json.Unmarshal(b, &cp); err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", stateFile, err)
		}
		if cp.Claims != nil {
			d.prepared = cp.Claims
		}
	}
	return d, nil
}

// Resources is what the node publishes: every offered VF whose PF is not
// in down (PF addresses).
func (d *Driver) Resources(down map[string]bool) resourceslice.DriverResources {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Resources(d.Pool, d.inv, down)
}

// PrepareResourceClaims prepares each claim's VFs of this driver: checks
// no other claim holds them, writes their device-info files (the NPWG
// spec's dp/ file, as the device plugin does, and the dra/ record plexus
// reads), records the claim in the checkpoint, and returns one device per
// allocation result. A claim already prepared gets the same answer.
func (d *Driver) PrepareResourceClaims(ctx context.Context, claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	d.mu.Lock()
	out := make(map[types.UID]kubeletplugin.PrepareResult, len(claims))
	changed := false
	for _, c := range claims {
		res, ch, err := d.prepare(c)
		if err != nil {
			out[c.UID] = kubeletplugin.PrepareResult{Err: err}
			continue
		}
		changed = changed || ch
		out[c.UID] = res
	}
	if err := d.commitUnlock(changed); err != nil {
		return nil, err
	}
	return out, nil
}

func (d *Driver) prepare(c *resourceapi.ResourceClaim) (kubeletplugin.PrepareResult, bool, error) {
	if c.Status.Allocation == nil {
		return kubeletplugin.PrepareResult{}, false, claimErr(c.Namespace, c.Name, "not allocated")
	}
	var devs []preparedDevice
	for _, r := range c.Status.Allocation.Devices.Results {
		if r.Driver != d.Name {
			continue
		}
		if r.Pool != d.Pool {
			return kubeletplugin.PrepareResult{}, false, claimErr(c.Namespace, c.Name, "request %q: device %s is in pool %q, this node's pool is %q", r.Request, r.Device, r.Pool, d.Pool)
		}
		pd, ok := d.lookup(r.Device)
		if !ok {
			return kubeletplugin.PrepareResult{}, false, claimErr(c.Namespace, c.Name, "request %q: device %s is not a VF this node offers", r.Request, r.Device)
		}
		for uid, other := range d.prepared {
			if uid == c.UID {
				continue
			}
			for _, od := range other.Devices {
				if od.Device == r.Device {
					return kubeletplugin.PrepareResult{}, false, claimErr(c.Namespace, c.Name, "request %q: device %s is prepared for claim %s/%s", r.Request, r.Device, other.Namespace, other.Name)
				}
			}
		}
		pd.Request = r.Request
		devs = append(devs, pd)
	}
	for _, pd := range devs {
		if err := d.writeDevInfo(c.UID, pd); err != nil {
			return kubeletplugin.PrepareResult{}, false, claimErr(c.Namespace, c.Name, "request %q: device %s: %v", pd.Request, pd.Device, err)
		}
	}
	cdi, err := d.writeCDI(c.UID, devs)
	if err != nil {
		return kubeletplugin.PrepareResult{}, false, claimErr(c.Namespace, c.Name, "CDI spec: %v", err)
	}
	res := kubeletplugin.PrepareResult{Devices: []kubeletplugin.Device{}}
	for _, pd := range devs {
		dev := kubeletplugin.Device{Requests: []string{pd.Request}, PoolName: pd.Pool, DeviceName: pd.Device}
		if id := cdi[pd.Device]; id != "" {
			dev.CDIDeviceIDs = []string{id}
		}
		res.Devices = append(res.Devices, dev)
	}
	prev := d.prepared[c.UID]
	entry := &preparedClaim{Namespace: c.Namespace, Name: c.Name, Devices: devs}
	changed := prev == nil || !sameDevices(prev.Devices, devs)
	d.prepared[c.UID] = entry
	return res, changed, nil
}

// lookup is the VF a device name stands for: an offered one, else one a
// prepared claim holds (its PF may be down or its pool gone since).
func (d *Driver) lookup(name string) (preparedDevice, bool) {
	if iv := d.inv[name]; iv != nil {
		pd := preparedDevice{Pool: d.Pool, Device: name, PCI: iv.Dev.Addr, PFPCI: iv.Dev.PFAddr, Resource: iv.Resource}
		if iv.Dev.IsVFIO() {
			pd.IOMMUGroup = iv.Dev.IOMMUGroup
		}
		return pd, true
	}
	for _, c := range d.prepared {
		for _, pd := range c.Devices {
			if pd.Device == name {
				return pd, true
			}
		}
	}
	return preparedDevice{}, false
}

func sameDevices(a, b []preparedDevice) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (d *Driver) writeDevInfo(uid types.UID, pd preparedDevice) error {
	di := nadv1.DeviceInfo{Type: nadv1.DeviceInfoTypePCI, Version: nadv1.DeviceInfoVersion, Pci: &nadv1.PciDevice{PciAddress: pd.PCI, PfPciAddress: pd.PFPCI}}
	b, err := json.Marshal(di)
	if err != nil {
		return err
	}
	if err := writeFile(devinfo.DPPath(d.DevInfoDir, pd.Resource, pd.PCI), b, 0o444); err != nil {
		return err
	}
	rec := devinfo.DRADevice{Driver: d.Name, Pool: pd.Pool, Device: pd.Device, PCIAddress: pd.PCI, PFPCIAddress: pd.PFPCI, ResourceName: pd.Resource, ClaimUID: string(uid), Request: pd.Request}
	if b, err = json.Marshal(rec); err != nil {
		return err
	}
	return writeFile(devinfo.DRAPath(d.DevInfoDir, d.Name, pd.Pool, pd.Device), b, 0o444)
}

func writeFile(path string, b []byte, mode os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(b) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, mode)
}

// UnprepareResourceClaims removes the device-info files of each claim's
// VFs and forgets the claim; a claim it does not know is already done.
func (d *Driver) UnprepareResourceClaims(ctx context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	d.mu.Lock()
	out := make(map[types.UID]error, len(claims))
	changed := false
	for _, c := range claims {
		out[c.UID] = nil
		p := d.prepared[c.UID]
		if p == nil {
			continue
		}
		var errs []error
		for _, pd := range p.Devices {
			for _, f := range []string{devinfo.DPPath(d.DevInfoDir, pd.Resource, pd.PCI), devinfo.DRAPath(d.DevInfoDir, d.Name, pd.Pool, pd.Device)} {
				if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
					errs = append(errs, err)
				}
			}
		}
		if err := d.removeCDI(c.UID); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			out[c.UID] = claimErr(c.Namespace, c.Name, "%v", err)
			continue
		}
		delete(d.prepared, c.UID)
		changed = true
	}
	if err := d.commitUnlock(changed); err != nil {
		return nil, err
	}
	return out, nil
}

// save writes the checkpoint (unique temp file, fsync, rename, fsync dir).
func (d *Driver) save() error {
	b, err := json.Marshal(checkpoint{Version: 1, Claims: d.prepared})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(d.StateFile), 0o700); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(d.StateFile, b, 0o600); err != nil {
		return fmt.Errorf("checkpoint %s: %w", d.StateFile, err)
	}
	return nil
}

// Prepared is a copy of the prepared claims' devices, by claim UID.
func (d *Driver) Prepared() map[types.UID]preparedClaim {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[types.UID]preparedClaim, len(d.prepared))
	for k, v := range d.prepared {
		out[k] = *v
	}
	return out
}

// HandleError logs background errors (ResourceSlice publishing); every one
// of them is retried by the helper.
func (d *Driver) HandleError(ctx context.Context, err error, msg string) {
	d.Log.Error(msg, "err", err)
}

// WatchHealthStatus: VF health is expressed by withdrawing the VFs of a
// PF whose link is down from the ResourceSlice instead.
func (d *Driver) WatchHealthStatus(ctx context.Context, reports chan<- kubeletplugin.DeviceHealthReport) error {
	return kubeletplugin.ErrHealthNotSupported
}

// commitUnlock ends a Prepare or Unprepare that holds d.mu: the checkpoint
// is saved when something changed, the lock released, and onChange told.
func (d *Driver) commitUnlock(changed bool) error {
	var err error
	if changed {
		err = d.save()
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if changed && d.onChange != nil {
		d.onChange()
	}
	return nil
}
