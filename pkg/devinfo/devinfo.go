// Package devinfo is the one place for the paths of the NPWG device-info
// spec: device plugins write <Dir>/dp/<resource>-<device>-device.json for
// each device they allocate; meta-plugins give each device-backed
// attachment a <Dir>/cni/… file the CNI plugin may update. It imports only
// the standard library, so every stage and binary can use it.
package devinfo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
type Pools struct {
	Dir string
	// Mounted says Dir is the node's directory as mounted into a
	// container (plexusd's): a missing Dir is then a mount that is not
	// there, which is not the same as no device plugin having written
	// one, and so an error. On the node itself a missing Dir or Dir/dp
	// means no pool.
	Mounted bool
}

// Claim returns the device-info file by which a device plugin claims a
// device (a PCI address); "" when none does. It fails closed: a directory
// or file it cannot read is an error wrapping the *fs.PathError, and a
// file that is not device-info JSON an error naming it, since either may be
// the pool's claim on the device.
func (p Pools) Claim(device string) (string, error) {
	if device == "" {
		return "", nil
	}
	if err := mounted(p.Dir, p.Mounted); err != nil {
		return "", err
	}
	dp := filepath.Join(p.Dir, "dp")
	ents, err := os.ReadDir(dp)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), "-device.json") {
			continue
		}
		f := filepath.Join(dp, e.Name())
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue // released since the listing
		}
		if err != nil {
			return "", err
		}
		var di struct {
			Pci *struct {
				PciAddress string `json:"pci-address"`
			} `json:"pci"`
		}
		if err := json.Unmarshal(b, &di); err != nil {
			return "", fmt.Errorf("device-info %s: %v", f, err)
		}
		if di.Pci != nil && di.Pci.PciAddress == device {
			return f, nil
		}
	}
	return "", nil
}

// mounted checks, for a Dir read through a container's mount, that the
// mount is there (an *fs.PathError when not).
func mounted(dir string, isMount bool) error {
	if !isMount {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &fs.PathError{Op: "stat", Path: dir, Err: syscall.ENOTDIR}
	}
	return nil
}
