package attach

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/plexus-cni/plexus/pkg/atomicfile"
	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

// copyDeviceInfo copies the device plugin's device-info file of the
// attachment's device to the attachment's CNIDeviceInfoFile, before the
// delegate runs (which may update it). The copy is atomic (a reader never
// sees part of it, even if plexus is killed) but not fsynced: after a power
// loss the sandbox it describes is gone, and the intent, the one durable
// write of an ADD, already names every attachment a DEL must undo; an
// fsync here would cost each SR-IOV attachment two more (issue 23).
func (e *Attacher) copyDeviceInfo(a *podnet.Attachment) error {
	if a.DeviceID == "" || a.DeviceInfoFile == "" {
		return nil
	}
	b, err := os.ReadFile(devinfo.DPPath(e.deviceInfoDir(), a.ResourceName, a.DeviceID))
	if errors.Is(err, os.ErrNotExist) {
		return nil // a device plugin that writes no device-info
	}
	if err != nil {
		return podnet.WithNetwork(a.Network, fmt.Errorf("network %q: device-info of %s: %v", a.Network, a.DeviceID, err))
	}
	var di map[string]any
	if err := json.Unmarshal(b, &di); err != nil {
		return podnet.WithNetwork(a.Network, fmt.Errorf("network %q: device-info file of %s does not parse: %v", a.Network, a.DeviceID, err))
	}
	return atomicfile.Replace(a.DeviceInfoFile, b, 0o600)
}

// removeDeviceInfo removes the device-info file plexus made for an
// attachment, once its delegate's DEL succeeded.
func (e *Attacher) removeDeviceInfo(a *podnet.Attachment) {
	if a.DeviceInfoFile != "" {
		_ = os.Remove(a.DeviceInfoFile)
	}
}

func (e *Attacher) deviceInfoDir() string { return devinfo.Base(e.DeviceInfoDir) }
