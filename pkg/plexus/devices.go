package plexus

import (
	"github.com/plexus-cni/plexus/pkg/podnet"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/cache"
)

// DefaultDeviceInfoDir is the device-info spec's base directory: device
// plugins write dp/<resource>-<deviceID>-device.json, CNI plugins cni/….
const DefaultDeviceInfoDir = "/var/run/k8s.cni.cncf.io/devinfo"

// assignDevices gives each attachment whose NAD names a resource one of the
// devices of that resource that kubelet allocated to the pod: in annotation
// order, never two attachments the same device, the same way on every ADD.
func (e *Engine) assignDevices(ctx context.Context, pod *Pod, req *Request, atts []podnet.Attachment) error {
	byRes := map[string][]int{}
	var order []string
	for i := range atts {
		if r := atts[i].ResourceName; r != "" {
			if byRes[r] == nil {
				order = append(order, r)
			}
			byRes[r] = append(byRes[r], i)
		}
	}
	for _, res := range order {
		idxs := byRes[res]
		first := atts[idxs[0]].Network
		if e.Devices == nil {
			return withNetwork(first, fmt.Errorf("network %q: resource %q: no device source (kubelet pod-resources) available in this mode", first, res))
		}
		ids, err := e.Devices.Devices(ctx, pod, res)
		if err != nil {
			return withNetwork(first, fmt.Errorf("network %q: %w", first, err))
		}
		if len(ids) < len(idxs) {
			var nets []string
			for _, i := range idxs {
				nets = append(nets, atts[i].Network)
			}
			return withNetwork(atts[idxs[len(ids)]].Network, fmt.Errorf("resource %q: the pod holds %d device(s) of it but %d attachment(s) need one each (%s); request %d in the pod's resources", res, len(ids), len(idxs), strings.Join(nets, ", "), len(idxs)))
		}
		for k, i := range idxs {
			a := &atts[i]
			// The runner sets deviceID and pciBusID in every plugin of
			// the conflist (as Multus) when it runs the delegate.
			a.DeviceID = ids[k]
			a.DeviceInfoFile = filepath.Join(e.deviceInfoDir(), "cni",
				strings.ReplaceAll(fmt.Sprintf("%s-%s-%s-device.json", a.Network, req.ContainerID, a.IfName), "/", "-"))
			if a.CapabilityArgs == nil {
				a.CapabilityArgs = map[string]any{}
			}
			a.CapabilityArgs["deviceID"] = ids[k]
			a.CapabilityArgs["CNIDeviceInfoFile"] = a.DeviceInfoFile
		}
	}
	return nil
}

func (e *Engine) deviceInfoDir() string {
	if e.DeviceInfoDir != "" {
		return e.DeviceInfoDir
	}
	return DefaultDeviceInfoDir
}

// DPDeviceInfoPath is where a device plugin writes a device's info.
func DPDeviceInfoPath(base, resource, deviceID string) string {
	return filepath.Join(base, "dp", fmt.Sprintf("%s-%s-device.json",
		strings.ReplaceAll(resource, "/", "-"), strings.ReplaceAll(deviceID, "/", "-")))
}

// copyDeviceInfo copies the device plugin's device-info file of the
// attachment's device to the attachment's CNIDeviceInfoFile, before the
// delegate runs (which may update it).
func (e *Engine) copyDeviceInfo(a *podnet.Attachment) error {
	if a.DeviceID == "" || a.DeviceInfoFile == "" {
		return nil
	}
	b, err := os.ReadFile(DPDeviceInfoPath(e.deviceInfoDir(), a.ResourceName, a.DeviceID))
	if errors.Is(err, os.ErrNotExist) {
		return nil // a device plugin that writes no device-info
	}
	if err != nil {
		return withNetwork(a.Network, fmt.Errorf("network %q: device-info of %s: %v", a.Network, a.DeviceID, err))
	}
	var di nadv1.DeviceInfo
	if err := json.Unmarshal(b, &di); err != nil {
		return withNetwork(a.Network, fmt.Errorf("network %q: device-info file of %s does not parse: %v", a.Network, a.DeviceID, err))
	}
	return cache.WriteFileAtomic(a.DeviceInfoFile, b)
}

// loadDeviceInfo reads an attachment's device-info for network-status.
func (e *Engine) loadDeviceInfo(a *podnet.Attachment) *nadv1.DeviceInfo {
	if a.DeviceInfoFile == "" {
		return nil
	}
	b, err := os.ReadFile(a.DeviceInfoFile)
	if err != nil {
		return nil
	}
	di := &nadv1.DeviceInfo{}
	if json.Unmarshal(b, di) != nil {
		return nil
	}
	return di
}

// removeDeviceInfo removes the device-info file plexus made for an
// attachment, once its delegate's DEL succeeded.
func (e *Engine) removeDeviceInfo(a *podnet.Attachment) {
	if a.DeviceInfoFile != "" {
		_ = os.Remove(a.DeviceInfoFile)
	}
}
