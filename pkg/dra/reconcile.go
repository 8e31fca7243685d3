package dra

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/plexus-cni/plexus/pkg/devinfo"
)

// driverFiles is what a start finds on disk that may be the driver's: the
// dra/ records named after the driver and pool, and the CDI specs.
type driverFiles struct {
	// Records: path of a dra/ record → the record (nil: unreadable).
	Records map[string]*devinfo.DRADevice
	// Specs: path of a CDI spec → its kind ("": unreadable).
	Specs map[string]string
}

// planReconcile is the files to remove so that those on disk match the
// checkpoint claims: a dra/ record of the driver's pool that no prepared
// VF has, with the dp/ file it names (dp/ first: a record outlives its
// dp/ file, see writeDevInfo), and a CDI spec of the driver's kind for no
// prepared claim. Files that the checkpoint expects are never removed; a
// dp/ file without a record is not known to be the driver's (the device
// plugin writes there too) and is left alone. The files of the checkpoint
// claims that are missing are written by the caller.
func planReconcile(d *Driver, claims map[types.UID]*preparedClaim, on driverFiles) []string {
	expected := map[string]bool{}
	for uid, c := range claims {
		for _, pd := range c.Devices {
			expected[devinfo.DPPath(d.DevInfoDir, pd.Resource, pd.PCI)] = true
			expected[devinfo.DRAPath(d.DevInfoDir, d.Name, pd.Pool, pd.Device)] = true
			if pd.IOMMUGroup != "" && d.CDIDir != "" {
				expected[d.cdiSpecPath(uid)] = true
			}
		}
	}
	var remove []string
	for _, path := range sortedKeys(on.Records) {
		if expected[path] {
			continue
		}
		if r := on.Records[path]; r != nil && r.Driver == d.Name && r.ResourceName != "" && r.PCIAddress != "" {
			if dp := devinfo.DPPath(d.DevInfoDir, r.ResourceName, r.PCIAddress); !expected[dp] {
				remove = append(remove, dp)
			}
		}
		remove = append(remove, path)
	}
	for _, path := range sortedKeys(on.Specs) {
		if !expected[path] && on.Specs[path] == d.cdiKind() {
			remove = append(remove, path)
		}
	}
	return remove
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Reconcile makes the device-info files and CDI specs match the
// checkpoint, before the driver serves kubelet: those of claims the
// checkpoint does not hold (a prepare that died before its save, or whose
// save failed and whose clean-up failed too) are removed, and those of
// prepared claims are written where missing or different (a tmpfs
// cleared, an unprepare that died between its removals and its save: kubelet
// unprepares it again). It does what it can and returns every error.
func (d *Driver) Reconcile() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	on, err := d.scanFiles()
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, path := range planReconcile(d, d.prepared, on) {
		if err := removeFile(path); err != nil {
			errs = append(errs, err)
			continue
		}
		d.Log.Info("removed a file of a claim the checkpoint does not hold", "path", path)
	}
	for uid, c := range d.prepared {
		if _, err := d.writeFiles(uid, c.Devices); err != nil {
			errs = append(errs, claimErr(c.Namespace, c.Name, "%v", err))
		}
	}
	return errors.Join(errs...)
}

// scanFiles reads the driver's dra/ records (of its pool) and the CDI
// specs named after it.
func (d *Driver) scanFiles() (driverFiles, error) {
	on := driverFiles{Records: map[string]*devinfo.DRADevice{}, Specs: map[string]string{}}
	var errs []error
	// DRAPath(base, driver, pool, "") is the records' common prefix; driver
	// and pool names are DNS names, without the "_" that separates them.
	prefix := strings.TrimSuffix(filepath.Base(devinfo.DRAPath(d.DevInfoDir, d.Name, d.Pool, "")), ".json")
	dir := filepath.Dir(devinfo.DRAPath(d.DevInfoDir, d.Name, d.Pool, ""))
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		errs = append(errs, err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), prefix) || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		var r devinfo.DRADevice
		if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &r) == nil {
			on.Records[path] = &r
		} else {
			on.Records[path] = nil
		}
	}
	if d.CDIDir == "" {
		return on, errors.Join(errs...)
	}
	specs, err := filepath.Glob(filepath.Join(d.CDIDir, d.Name+"-*.json"))
	if err != nil {
		errs = append(errs, err)
	}
	for _, path := range specs {
		var s cdispec.Spec
		if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &s) == nil {
			on.Specs[path] = s.Kind
		} else {
			on.Specs[path] = ""
		}
	}
	return on, errors.Join(errs...)
}
