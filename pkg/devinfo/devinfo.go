// Package devinfo is the one place for the paths of the NPWG device-info
// spec: device plugins write <Dir>/dp/<resource>-<device>-device.json for
// each device they allocate; meta-plugins give each device-backed
// attachment a <Dir>/cni/… file the CNI plugin may update. It imports only
// the standard library, so every stage and binary can use it.
package devinfo

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultDir is the device-info spec's base directory.
const DefaultDir = "/var/run/k8s.cni.cncf.io/devinfo"

// Base is dir, or DefaultDir when dir is empty (config key "deviceInfoDir"
// unset).
func Base(dir string) string {
	if dir != "" {
		return dir
	}
	return DefaultDir
}

func flat(s string) string { return strings.ReplaceAll(s, "/", "-") }

// DPPath is where a device plugin writes the device-info of one device of
// resource (the file name the NAD client's LoadDeviceInfoFromDP reads).
func DPPath(base, resource, device string) string {
	return filepath.Join(base, "dp", DPName(resource, device))
}

// DPName is the file name of a device's device-info in the dp/ directory.
func DPName(resource, device string) string {
	return flat(resource) + "-" + flat(device) + "-device.json"
}

// CNIPath is the device-info file of one attachment (network "ns/name").
func CNIPath(base, network, containerID, ifName string) string {
	return filepath.Join(base, "cni", flat(fmt.Sprintf("%s-%s-%s-device.json", network, containerID, ifName)))
}

// Pools tells which device-plugin pool on this node claims a device, from
// the device-info files under Dir/dp/.
type Pools struct{ Dir string }

// Claim returns the device-info file by which a device plugin claims a
// device (a PCI address); "" when none does.
func (p Pools) Claim(device string) string {
	if device == "" {
		return ""
	}
	files, _ := filepath.Glob(filepath.Join(p.Dir, "dp", "*-device.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var di struct {
			Pci *struct {
				PciAddress string `json:"pci-address"`
			} `json:"pci"`
		}
		if json.Unmarshal(b, &di) == nil && di.Pci != nil && di.Pci.PciAddress == device {
			return f
		}
	}
	return ""
}
