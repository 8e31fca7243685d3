package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/atomicfile"
	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/sriov/sysfs"
)

// DefaultDeviceInfoDir is the device-info spec's base directory. Device
// plugins write under its dp/ subdirectory, meta-plugins (Multus, plexus)
// name per-attachment files under cni/ — the only place this plugin writes
// or removes a runtimeConfig.CNIDeviceInfoFile.
const DefaultDeviceInfoDir = devinfo.DefaultDir

const deviceInfoKey = "runtimeConfig.CNIDeviceInfoFile"

// deviceInfoRoot is the directory CNIDeviceInfoFile paths must lie under.
func (p *Plugin) deviceInfoRoot() string {
	base := p.DeviceInfoDir
	if base == "" {
		base = DefaultDeviceInfoDir
	}
	return filepath.Join(base, "cni")
}

// confineDeviceInfo checks that path names a file under the device-info
// cni/ directory once cleaned (filepath.Clean: no ".." left) and with the
// symlinks of its existing parent directories resolved (no escape through a
// link; a base reached through one, like /var/run -> /run, is fine), and
// returns the resolved path. With create (ADD) the root and the missing
// parents are made, the parents only after the check; without it (DEL) ""
// and no error means there is nothing to remove.
func (p *Plugin) confineDeviceInfo(path string, create bool) (string, error) {
	root := p.deviceInfoRoot()
	clean := filepath.Clean(path)
	if !filepath.IsAbs(clean) {
		return "", fmt.Errorf("%q is not an absolute path", path)
	}
	if create {
		if err := os.MkdirAll(root, 0o755); err != nil {
			return "", fmt.Errorf("device-info directory %s: %w", root, err)
		}
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if errors.Is(err, os.ErrNotExist) && !create {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("device-info directory %s: %w", root, err)
	}
	parent, err := resolveExisting(filepath.Dir(clean))
	if err != nil {
		return "", fmt.Errorf("%q: %w", path, err)
	}
	if parent != realRoot && !under(realRoot, parent) {
		if parent != filepath.Dir(clean) {
			return "", fmt.Errorf("%q is not a file under %s (its directory resolves to %s)", path, root, parent)
		}
		return "", fmt.Errorf("%q is not a file under %s", path, root)
	}
	if create {
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return "", fmt.Errorf("%q: %w", path, err)
		}
	}
	return filepath.Join(parent, filepath.Base(clean)), nil
}

// under reports whether p lies strictly below dir (both clean and absolute).
func under(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// resolveExisting resolves the symlinks of the longest existing prefix of
// dir and appends the rest unchanged (it does not exist, so it holds no
// symlink to follow).
func resolveExisting(dir string) (string, error) {
	rest := ""
	for {
		real, err := filepath.EvalSymlinks(dir)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		parent := filepath.Dir(dir)
		if !errors.Is(err, os.ErrNotExist) || parent == dir {
			return "", err
		}
		rest = filepath.Join(filepath.Base(dir), rest)
		dir = parent
	}
}

// writeDeviceInfo writes the NPWG device-info file (replacing the copy of
// the device plugin's that the meta-plugin put there) crash-safely. It is
// written here rather than with the NAD client's utils package, which would
// link client-go into the plugin. path has been through confineDeviceInfo.
func writeDeviceInfo(path string, vf sysfs.VF) error {
	info := &nadv1.DeviceInfo{Type: nadv1.DeviceInfoTypePCI, Version: nadv1.DeviceInfoVersion,
		Pci: &nadv1.PciDevice{PciAddress: vf.Addr, PfPciAddress: vf.PFAddr}}
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, b, 0o444); err != nil {
		return fmt.Errorf("device-info file %s: %w", path, err)
	}
	return nil
}

// cleanDeviceInfo removes a device-info file on DEL, but only one under the
// device-info cni/ directory: anything else is logged and left alone.
func (p *Plugin) cleanDeviceInfo(path string, log *logger) error {
	if path == "" {
		return nil
	}
	confined, err := p.confineDeviceInfo(path, false)
	if err != nil {
		log.Warnf("%s: %v: not removed", deviceInfoKey, err)
		return nil
	}
	if confined == "" {
		return nil
	}
	if err := os.Remove(confined); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("device-info file %s: %w", confined, err)
	}
	return nil
}
