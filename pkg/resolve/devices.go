package resolve

import (
	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/podnet"

	"context"
	"fmt"
	"strings"
)

// assignDevices gives each attachment whose NAD names a resource one of the
// devices of that resource that kubelet allocated to the pod: in annotation
// order, never two attachments the same device, the same way on every ADD.
func (e *Resolver) AssignDevices(ctx context.Context, pod *podnet.Pod, req *podnet.Request, atts []podnet.Attachment) error {
	claimed, err := e.assignClaimDevices(ctx, pod, req, atts)
	if err != nil {
		return err
	}
	byRes := map[string][]int{}
	var order []string
	for i := range atts {
		if r := atts[i].ResourceName; r != "" && !claimed[i] {
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
			return podnet.WithNetwork(first, fmt.Errorf("network %q: resource %q: no device source (kubelet pod-resources) available in this mode", first, res))
		}
		ids, err := e.Devices.Devices(ctx, pod, res)
		if err != nil {
			return podnet.WithNetwork(first, fmt.Errorf("network %q: %w", first, err))
		}
		if len(ids) < len(idxs) {
			var nets []string
			for _, i := range idxs {
				nets = append(nets, atts[i].Network)
			}
			return podnet.WithNetwork(atts[idxs[len(ids)]].Network, fmt.Errorf("resource %q: the pod holds %d device(s) of it but %d attachment(s) need one each (%s); request %d in the pod's resources", res, len(ids), len(idxs), strings.Join(nets, ", "), len(idxs)))
		}
		for k, i := range idxs {
			a := &atts[i]
			// The runner sets deviceID and pciBusID in every plugin of
			// the conflist (as Multus) when it runs the delegate.
			a.DeviceID = ids[k]
			a.DeviceInfoFile = devinfo.CNIPath(e.deviceInfoDir(), a.Network, req.ContainerID, a.IfName)
			if a.CapabilityArgs == nil {
				a.CapabilityArgs = map[string]any{}
			}
			a.CapabilityArgs["deviceID"] = ids[k]
			a.CapabilityArgs["CNIDeviceInfoFile"] = a.DeviceInfoFile
		}
	}
	return nil
}

func (e *Resolver) deviceInfoDir() string { return devinfo.Base(e.DeviceInfoDir) }
