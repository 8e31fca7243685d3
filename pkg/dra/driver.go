package dra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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
// no other claim holds them, writes their device-info files (the dra/
// record plexus reads, then the NPWG spec's dp/ file, as the device plugin
// does), records the claim in the checkpoint, and returns one device per
// allocation result. A claim already prepared gets the same answer.
//
// The new set of prepared claims is built aside, saved, and only then
// becomes the driver's: when the save fails the call fails, the files it
// wrote are removed, and kubelet's retry finds the claims still to do.
func (d *Driver) PrepareResourceClaims(ctx context.Context, claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	out, changed, err := d.prepareAll(claims)
	if err != nil {
		return nil, err
	}
	if changed {
		d.notify()
	}
	return out, nil
}

func (d *Driver) prepareAll(claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := maps.Clone(d.prepared)
	out := make(map[types.UID]kubeletplugin.PrepareResult, len(claims))
	changed := false
	for _, c := range claims {
		res, entry, err := d.prepare(next, c)
		if err != nil {
			out[c.UID] = kubeletplugin.PrepareResult{Err: err}
			continue
		}
		out[c.UID] = res
		if prev := next[c.UID]; prev == nil || !sameDevices(prev.Devices, entry.Devices) {
			next[c.UID] = entry
			changed = true
		}
	}
	if !changed {
		return out, false, nil
	}
	if err := d.save(next); err != nil {
		for uid, e := range next {
			if committed := d.prepared[uid]; committed != e {
				d.rollback(uid, committed, e.Devices)
			}
		}
		return nil, false, err
	}
	d.prepared = next
	return out, true, nil
}

// prepare checks claim c against the claims of next and writes its files;
// it returns the claim's checkpoint entry. When a write fails it puts the
// claim's files back as next has them.
func (d *Driver) prepare(next map[types.UID]*preparedClaim, c *resourceapi.ResourceClaim) (kubeletplugin.PrepareResult, *preparedClaim, error) {
	if c.Status.Allocation == nil {
		return kubeletplugin.PrepareResult{}, nil, claimErr(c.Namespace, c.Name, "not allocated")
	}
	var devs []preparedDevice
	for _, r := range c.Status.Allocation.Devices.Results {
		if r.Driver != d.Name {
			continue
		}
		if r.Pool != d.Pool {
			return kubeletplugin.PrepareResult{}, nil, claimErr(c.Namespace, c.Name, "request %q: device %s is in pool %q, this node's pool is %q", r.Request, r.Device, r.Pool, d.Pool)
		}
		pd, ok := d.lookup(next, r.Device)
		if !ok {
			return kubeletplugin.PrepareResult{}, nil, claimErr(c.Namespace, c.Name, "request %q: device %s is not a VF this node offers", r.Request, r.Device)
		}
		for uid, other := range next {
			if uid == c.UID {
				continue
			}
			for _, od := range other.Devices {
				if od.Device == r.Device {
					return kubeletplugin.PrepareResult{}, nil, claimErr(c.Namespace, c.Name, "request %q: device %s is prepared for claim %s/%s", r.Request, r.Device, other.Namespace, other.Name)
				}
			}
		}
		pd.Request = r.Request
		devs = append(devs, pd)
	}
	cdi, err := d.writeFiles(c.UID, devs)
	if err != nil {
		d.rollback(c.UID, next[c.UID], devs)
		return kubeletplugin.PrepareResult{}, nil, claimErr(c.Namespace, c.Name, "%v", err)
	}
	res := kubeletplugin.PrepareResult{Devices: []kubeletplugin.Device{}}
	for _, pd := range devs {
		dev := kubeletplugin.Device{Requests: []string{pd.Request}, PoolName: pd.Pool, DeviceName: pd.Device}
		if id := cdi[pd.Device]; id != "" {
			dev.CDIDeviceIDs = []string{id}
		}
		res.Devices = append(res.Devices, dev)
	}
	return res, &preparedClaim{Namespace: c.Namespace, Name: c.Name, Devices: devs}, nil
}

// writeFiles writes the device-info files of a claim's VFs and its CDI
// spec, and returns the VFs' CDI device IDs by device name.
func (d *Driver) writeFiles(uid types.UID, devs []preparedDevice) (map[string]string, error) {
	for _, pd := range devs {
		if err := d.writeDevInfo(uid, pd); err != nil {
			return nil, fmt.Errorf("request %q: device %s: %w", pd.Request, pd.Device, err)
		}
	}
	cdi, err := d.writeCDI(uid, devs)
	if err != nil {
		return nil, fmt.Errorf("CDI spec: %w", err)
	}
	return cdi, nil
}

// rollback undoes a prepare of claim uid with devs that is not committed:
// the files of devs the committed entry (nil: none) does not hold are
// removed, the committed entry's files written as they were.
func (d *Driver) rollback(uid types.UID, committed *preparedClaim, devs []preparedDevice) {
	held := map[string]bool{}
	if committed != nil {
		for _, pd := range committed.Devices {
			held[pd.Device] = true
		}
	}
	var drop []preparedDevice
	for _, pd := range devs {
		if !held[pd.Device] {
			drop = append(drop, pd)
		}
	}
	err := d.removeDevInfo(drop)
	if committed != nil {
		_, werr := d.writeFiles(uid, committed.Devices)
		err = errors.Join(err, werr)
	} else {
		err = errors.Join(err, d.removeCDI(uid))
	}
	if err != nil {
		d.Log.Error("undoing a failed prepare; the files are reconciled with the checkpoint at the next start", "claim", uid, "err", err)
	}
}

// lookup is the VF a device name stands for: an offered one, else one a
// prepared claim holds (its PF may be down or its pool gone since).
func (d *Driver) lookup(prepared map[types.UID]*preparedClaim, name string) (preparedDevice, bool) {
	if iv := d.inv[name]; iv != nil {
		pd := preparedDevice{Pool: d.Pool, Device: name, PCI: iv.Dev.Addr, PFPCI: iv.Dev.PFAddr, Resource: iv.Resource}
		if iv.Dev.IsVFIO() {
			pd.IOMMUGroup = iv.Dev.IOMMUGroup
		}
		return pd, true
	}
	for _, c := range prepared {
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

// writeDevInfo writes a prepared VF's dra/ record, then its dp/ file: a
// dp/ file the driver wrote always has a record naming it, which is how a
// start finds the dp/ files of claims the checkpoint does not hold.
func (d *Driver) writeDevInfo(uid types.UID, pd preparedDevice) error {
	rec := devinfo.DRADevice{Driver: d.Name, Pool: pd.Pool, Device: pd.Device, PCIAddress: pd.PCI, PFPCIAddress: pd.PFPCI, ResourceName: pd.Resource, ClaimUID: string(uid), Request: pd.Request}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := writeFile(devinfo.DRAPath(d.DevInfoDir, d.Name, pd.Pool, pd.Device), b, 0o444); err != nil {
		return err
	}
	di := nadv1.DeviceInfo{Type: nadv1.DeviceInfoTypePCI, Version: nadv1.DeviceInfoVersion, Pci: &nadv1.PciDevice{PciAddress: pd.PCI, PfPciAddress: pd.PFPCI}}
	if b, err = json.Marshal(di); err != nil {
		return err
	}
	return writeFile(devinfo.DPPath(d.DevInfoDir, pd.Resource, pd.PCI), b, 0o444)
}

// removeDevInfo removes the VFs' dp/ files, then their dra/ records (a
// record stays while its dp/ file could not be removed).
func (d *Driver) removeDevInfo(devs []preparedDevice) error {
	var errs []error
	for _, pd := range devs {
		if err := removeFile(devinfo.DPPath(d.DevInfoDir, pd.Resource, pd.PCI)); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := removeFile(devinfo.DRAPath(d.DevInfoDir, d.Name, pd.Pool, pd.Device)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeFile removes path; one that is not there is done.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
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

// UnprepareResourceClaims removes the device-info files and CDI spec of
// each claim's VFs and forgets the claim; a claim it does not know is
// already done. As for a prepare, the claims are forgotten in memory only
// once the checkpoint without them is saved.
func (d *Driver) UnprepareResourceClaims(ctx context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	out, changed, err := d.unprepareAll(claims)
	if err != nil {
		return nil, err
	}
	if changed {
		d.notify()
	}
	return out, nil
}

func (d *Driver) unprepareAll(claims []kubeletplugin.NamespacedObject) (map[types.UID]error, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := maps.Clone(d.prepared)
	out := make(map[types.UID]error, len(claims))
	changed := false
	for _, c := range claims {
		out[c.UID] = nil
		p := next[c.UID]
		if p == nil {
			continue
		}
		if err := errors.Join(d.removeDevInfo(p.Devices), d.removeCDI(c.UID)); err != nil {
			out[c.UID] = claimErr(c.Namespace, c.Name, "%v", err)
			continue
		}
		delete(next, c.UID)
		changed = true
	}
	if !changed {
		return out, false, nil
	}
	if err := d.save(next); err != nil {
		return nil, false, err
	}
	d.prepared = next
	return out, true, nil
}

// save writes claims as the checkpoint (unique temp file, fsync, rename,
// fsync dir).
func (d *Driver) save(claims map[types.UID]*preparedClaim) error {
	b, err := json.Marshal(checkpoint{Version: 1, Claims: claims})
	if err == nil {
		err = os.MkdirAll(filepath.Dir(d.StateFile), 0o700)
	}
	if err == nil {
		err = atomicfile.WriteFile(d.StateFile, b, 0o600)
	}
	if err != nil {
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

// notify tells onChange, without d.mu, that the set of prepared claims
// changed.
func (d *Driver) notify() {
	if d.onChange != nil {
		d.onChange()
	}
}
