package resolve

import (
	"context"
	"fmt"
	"strconv"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// Hot-plug (plexusd, docs/hotplug.md) resolves the elements a running
// pod's networks annotation gained with the same code as ADD: one element
// at a time, so that a bad element fails alone. What plexus's config
// attached is not resolved again: hot-plug reads it from the origins ADD
// recorded in the cache entry (podnet.Attachment.Origin).

// Element resolves one element of the pod's networks annotation (the pod's
// own, never a defaultNetwork) to its attachment named ifName, exactly as
// ADD resolves each element: namespaceIsolation, the NAD vetted as tenant
// input, the element's requests as runtime config. Warnings() gains what
// ADD would report. held are the pod's attached interfaces: ADD's checks
// over the whole list (distinct interface names, one default route per IP
// family) run over held and the new attachment.
func (e *Resolver) Element(ctx context.Context, pod *podnet.Pod, req *podnet.Request, el *nadv1.NetworkSelectionElement, ifName string, held []podnet.Attachment) (podnet.Attachment, error) {
	a, err := e.element(ctx, pod, req, el, ifName, false)
	if err != nil {
		return a, err
	}
	a.Origin = podnet.OriginAnnotation
	all := append(append([]podnet.Attachment(nil), held...), a)
	if err := uniqueInterfaces(all); err != nil {
		return podnet.Attachment{}, err
	}
	if err := oneGatewayPerFamily(all); err != nil {
		return podnet.Attachment{}, err
	}
	return a, nil
}

// AssignDevice gives a, a hot-plugged attachment whose NAD names a resource
// or a resource claim, a device the pod already holds that none of held
// (the pod's attached interfaces) uses: kubelet allocates devices only when
// it admits a pod, so hot-plug cannot get a new one. It runs ADD's
// assignment over held and a together (the same checks and messages), then
// picks, among the devices it handed out, one no attached interface uses.
func (e *Resolver) AssignDevice(ctx context.Context, pod *podnet.Pod, req *podnet.Request, held []podnet.Attachment, a *podnet.Attachment) error {
	if a.ResourceName == "" && a.ResourceClaim == "" {
		return nil
	}
	used := map[string]bool{}
	var atts []podnet.Attachment
	for _, h := range held {
		if h.DeviceID == "" {
			continue
		}
		used[h.DeviceID] = true
		if h.ResourceName == a.ResourceName && h.ResourceClaim == a.ResourceClaim {
			atts = append(atts, podnet.Attachment{Network: h.Network, IfName: h.IfName, ResourceName: h.ResourceName, ResourceClaim: h.ResourceClaim})
		}
	}
	atts = append(atts, podnet.Attachment{Network: a.Network, IfName: a.IfName, ResourceName: a.ResourceName, ResourceClaim: a.ResourceClaim})
	if err := e.AssignDevices(ctx, pod, req, atts); err != nil {
		return podnet.WithNetwork(a.Network, fmt.Errorf("%w (hot-plug needs a device already allocated to the pod: kubelet allocates devices only when it admits the pod)", err))
	}
	for _, c := range atts {
		if c.DeviceID != "" && !used[c.DeviceID] {
			e.setDevice(a, req, c.DeviceID)
			return nil
		}
	}
	what := "resource " + strconv.Quote(a.ResourceName)
	if a.ResourceClaim != "" {
		what = "annotation " + ResourceClaimAnnot + ": " + strconv.Quote(a.ResourceClaim)
	}
	return podnet.AttachError(a.Network, a.IfName, fmt.Errorf("%s: every device of it the pod holds is in use by its interfaces; hot-plug needs a device already allocated to the pod (kubelet allocates devices only when it admits the pod)", what))
}
