package devinfo

import (
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
