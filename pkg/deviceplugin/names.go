// Package deviceplugin serves pools of SR-IOV VFs to kubelet over the
// device plugin API (k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1): one gRPC
// server per pool on a unix socket in kubelet's device-plugin directory,
// registered with kubelet, with health from the PF's link state, NUMA
// topology, preferred allocation, Allocate (env, device specs, device-info
// files), hot reload of the pool configuration and Prometheus metrics.
package deviceplugin

import (
	"path/filepath"
	"strings"

	"github.com/plexus-cni/plexus/pkg/devinfo"
)

// Defaults of the daemon's flags.
const (
	DefaultPluginDir  = "/var/lib/kubelet/device-plugins/"
	DefaultDevInfoDir = devinfo.DefaultDir + "/dp/"
	DefaultConfigPath = "/etc/plexus/sriov-dp.json"
	KubeletSocketName = "kubelet.sock"
)

// SocketName is the plugin's socket file for an extended resource
// "prefix/name": "prefix_name.sock".
func SocketName(fullName string) string {
	return strings.ReplaceAll(fullName, "/", "_") + ".sock"
}

// EnvName is the container variable listing a resource's PCI addresses:
// PCIDEVICE_ + the resource name upper-cased, non-alphanumerics as "_".
func EnvName(fullName string) string {
	var b strings.Builder
	b.WriteString("PCIDEVICE_")
	for _, r := range strings.ToUpper(fullName) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// DevInfoPath is where the device-info file of one allocated device goes;
// the file name is the one the NAD client's LoadDeviceInfoFromDP reads:
// "<prefix>-<name>-<pci address>-device.json".
func DevInfoPath(dir, fullName, deviceID string) string {
	return filepath.Join(dir, devinfo.DPName(fullName, deviceID))
}
