package dra

import (
	"encoding/json"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/types"
	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

// DefaultCDIDir is where the container runtime looks for transient CDI
// specs.
const DefaultCDIDir = "/var/run/cdi"

// cdiVersion is the CDI spec version written: 0.5.0 is the first with
// hostPath, which containerd 1.7 and 2.x read.
const cdiVersion = "0.5.0"

// cdiKind is the CDI kind of the driver's VFs ("sriov.plexus.io/vf").
func (d *Driver) cdiKind() string { return d.Name + "/vf" }

// cdiSpecPath is the CDI spec of one claim's VFs.
func (d *Driver) cdiSpecPath(uid types.UID) string {
	return filepath.Join(d.CDIDir, d.Name+"-"+string(uid)+".json")
}

// cdiName is a VF's CDI device name, unique per claim so that a runtime's
// cached spec is never wrongly reused.
func cdiName(uid types.UID, device string) string { return string(uid) + "-" + device }

// writeCDI writes the CDI spec of the claim's userspace (vfio-pci) VFs —
// the VFIO container device and the VF's IOMMU group — and returns their
// CDI device IDs by device name; no spec without such VFs.
func (d *Driver) writeCDI(uid types.UID, devs []preparedDevice) (map[string]string, error) {
	spec := cdispec.Spec{Version: cdiVersion, Kind: d.cdiKind()}
	ids := map[string]string{}
	for _, pd := range devs {
		if pd.IOMMUGroup == "" {
			continue
		}
		name := cdiName(uid, pd.Device)
		spec.Devices = append(spec.Devices, cdispec.Device{Name: name, ContainerEdits: cdispec.ContainerEdits{
			DeviceNodes: []*cdispec.DeviceNode{{Path: "/dev/vfio/vfio"}, {Path: "/dev/vfio/" + pd.IOMMUGroup}},
			Env:         []string{"PCIDEVICE_" + envName(pd.Resource) + "_" + envName(pd.Device) + "=" + pd.PCI},
		}})
		ids[pd.Device] = d.cdiKind() + "=" + name
	}
	if len(spec.Devices) == 0 || d.CDIDir == "" {
		return ids, nil
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	return ids, writeFile(d.cdiSpecPath(uid), b, 0o644)
}

func (d *Driver) removeCDI(uid types.UID) error {
	if d.CDIDir == "" {
		return nil
	}
	if err := os.Remove(d.cdiSpecPath(uid)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// envName upper-cases s with every other character than A-Z, 0-9 as '_'.
func envName(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}
