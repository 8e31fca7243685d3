package resolve

import (
	"context"
	"fmt"
	"strconv"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/delegate"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/selection"
)

// Hot-plug (plexusd, docs/hotplug.md) resolves the elements a running
// pod's networks annotation gained with the same code as ADD: one element
// at a time, so that a bad element fails alone.

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
	all := append(append([]podnet.Attachment(nil), held...), a)
	if err := uniqueInterfaces(all); err != nil {
		return podnet.Attachment{}, err
	}
	if err := oneGatewayPerFamily(all); err != nil {
		return podnet.Attachment{}, err
	}
	return a, nil
}

// Layout is what ADD puts before and around a pod's annotation elements:
// the networks of the other attachments plexus makes (the primary, the
// extra inline delegates, defaultNetworks unless the namespace is a system
// namespace, the auxiliary chain), each counted as often as ADD attaches
// it, and how many secondaries precede the first annotation element (which
// ADD names net<Offset+1> when it requests no interface).
type Layout struct {
	Fixed  map[string]int
	Offset int
}

// Layout is the pod's layout under this config. It reads no NAD: the names
// come from the config alone (a defaultNetwork's NAD deleted since the
// pod's ADD does not change what is attached).
func (e *Resolver) Layout(pod *podnet.Pod) (Layout, error) {
	l := Layout{Fixed: map[string]int{}}
	for i := 1; i < len(e.Conf.Delegates); i++ {
		cl, err := delegate.ConfList(e.Conf.Delegates[i], "delegate-"+strconv.Itoa(i), e.Conf.CNIVersion)
		if err != nil {
			return l, fmt.Errorf("plexus config: key \"delegates\"[%d]: %v", i, err)
		}
		l.Fixed[cl.Name]++
		l.Offset++
	}
	if !e.Conf.IsSystemNamespace(pod.Namespace) {
		for _, name := range e.Conf.DefaultNetworks {
			ds, _, err := selection.ParseWithWarnings(name, e.Conf.MultusNamespace, true)
			if err != nil {
				return l, fmt.Errorf("plexus config: key \"defaultNetworks\": %v", err)
			}
			for _, d := range ds {
				l.Fixed[d.Namespace+"/"+d.Name]++
				l.Offset++
			}
		}
	}
	if aux, err := e.Confs.Auxiliary(); err == nil && aux != nil {
		l.Fixed[aux.Name]++
	}
	return l, nil
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
