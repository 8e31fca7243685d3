package devinfo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DRADevice is what the SR-IOV DRA driver records, when it prepares a
// claim, about one device it prepared: plexus reads it to learn the PCI
// address and pool of a device named in a ResourceClaim's allocation.
type DRADevice struct {
	Driver       string `json:"driver"`
	Pool         string `json:"pool"`
	Device       string `json:"device"`
	PCIAddress   string `json:"pciAddress"`
	PFPCIAddress string `json:"pfPciAddress,omitempty"`
	ResourceName string `json:"resourceName"`
	// ClaimUID and Request name the claim and request it was prepared for.
	ClaimUID string `json:"claimUID"`
	Request  string `json:"request"`
}

// DRAPath is where the DRA driver records a prepared device.
func DRAPath(base, driver, pool, device string) string {
	return filepath.Join(base, "dra", flat(driver)+"_"+flat(pool)+"_"+flat(device)+".json")
}

// DRARecords reads the DRA driver's records of prepared devices under Dir.
type DRARecords struct {
	Dir string
	// Mounted: Dir is read through a container's mount (Pools.Mounted).
	Mounted bool
}

// Record is the record of a prepared device; nil (no error) when the DRA
// driver prepared no such device on this node. A record it cannot read is
// an error wrapping the *fs.PathError.
func (r DRARecords) Record(driver, pool, device string) (*DRADevice, error) {
	if err := mounted(r.Dir, r.Mounted); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(DRAPath(r.Dir, driver, pool, device))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var d DRADevice
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", DRAPath(r.Dir, driver, pool, device), err)
	}
	if d.Driver != driver || d.Pool != pool || d.Device != device || d.PCIAddress == "" {
		return nil, fmt.Errorf("%s: records %s/%s/%s, want %s/%s/%s with a PCI address", DRAPath(r.Dir, driver, pool, device), d.Driver, d.Pool, d.Device, driver, pool, device)
	}
	return &d, nil
}
