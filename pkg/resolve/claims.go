package resolve

import (
	"context"
	"fmt"
	"strings"

	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

// ResourceClaimAnnot on a NAD names the pod's DRA claim, and optionally
// its request, whose VFs the NAD's attachments take: "claim" or
// "claim/request", where claim is the pod's reference
// (spec.resourceClaims[].name).
const ResourceClaimAnnot = "plexus.io/resourceClaim"

// ClaimSource gets a pod's ResourceClaim by namespace and name: a GET
// (pkg/k8s) or an informer's store (plexusd).
type ClaimSource interface {
	Claim(ctx context.Context, namespace, name string) (*podnet.Claim, error)
}

// DRADeviceSource tells which VF a DRA driver prepared for a device of a
// claim's allocation: nil when the device is not one the SR-IOV DRA
// driver prepared on this node (another driver's device).
type DRADeviceSource interface {
	Record(driver, pool, device string) (*devinfo.DRADevice, error)
}

// DeviceAttributes tells the string attributes (fully qualified names) of
// the devices another DRA driver publishes in a pool, by device name.
// plexus reads dra-driver-sriov's VFs this way: their
// k8s.cni.cncf.io/resourceName and k8s.cni.cncf.io/deviceID.
type DeviceAttributes interface {
	PoolAttributes(ctx context.Context, driver, pool string) (map[string]map[string]string, error)
}

// The attributes by which Multus's DRA support and dra-driver-sriov match a
// device to a NAD and hand it to the CNI plugin.
const (
	AttrResourceName = "k8s.cni.cncf.io/resourceName"
	AttrDeviceID     = "k8s.cni.cncf.io/deviceID"
)

// claimDevice is a VF a claim of the pod holds.
type claimDevice struct {
	podClaim string // the pod's reference to the claim
	request  string
	rec      *devinfo.DRADevice
	used     bool
}

// assignClaimDevices gives VFs from the pod's ResourceClaims to the
// attachments whose NAD names a claim (ResourceClaimAnnot), and to those
// whose NAD's resourceName is the resourceName attribute of VFs the pod's
// claims hold (as Multus and dra-driver-sriov match them): in annotation
// order, claims in the pod's order, devices in allocation order, never two
// attachments one VF. It returns the attachments it served; the others
// (resourceName without claimed VFs of it) are left to the device plugin.
func (e *Resolver) assignClaimDevices(ctx context.Context, pod *podnet.Pod, req *podnet.Request, atts []podnet.Attachment) (map[int]bool, error) {
	done := map[int]bool{}
	want := false
	for i := range atts {
		if atts[i].ResourceClaim != "" || atts[i].ResourceName != "" {
			want = true
		}
		if atts[i].ResourceClaim != "" && len(pod.ResourceClaims) == 0 {
			return nil, podnet.AttachError(atts[i].Network, atts[i].IfName, fmt.Errorf("annotation %s: %q, but the pod has no resourceClaims", ResourceClaimAnnot, atts[i].ResourceClaim))
		}
	}
	if !want || len(pod.ResourceClaims) == 0 {
		return done, nil
	}
	explicit := false
	for i := range atts {
		explicit = explicit || atts[i].ResourceClaim != ""
	}
	devs, err := e.podClaimDevices(ctx, pod, atts)
	if err != nil {
		if explicit || podnet.Unavailable(err) {
			// A claim or a record that could not be read here and now
			// may hold the VF: no device plugin's VF instead of it.
			return nil, err
		}
		// Only resourceName matches were possible: a pod whose claims are
		// other devices (GPUs) keeps working with the device plugin's VFs
		// as before, e.g. where plexus may not read claims.
		e.warn("", "", fmt.Sprintf("VFs from the pod's resourceClaims not considered: %v", err))
		return done, nil
	}
	take := func(i int, match func(*claimDevice) bool, what string) error {
		a := &atts[i]
		for _, d := range devs {
			if !d.used && match(d) {
				d.used = true
				e.setDevice(a, req, d.rec.PCIAddress)
				if a.ResourceName == "" {
					// The VF's pool: its device-info file is the DRA
					// driver's dp/ file of that resource.
					a.ResourceName = d.rec.ResourceName
				}
				done[i] = true
				return nil
			}
		}
		n := 0
		for _, d := range devs {
			if match(d) {
				n++
			}
		}
		return podnet.AttachError(a.Network, a.IfName, fmt.Errorf("%s: the pod's claims hold %d VF(s) of it on this node, all taken by earlier attachments; ask for more in the claim", what, n))
	}
	// Explicit claim references first, then resourceName matches.
	for i := range atts {
		ref := atts[i].ResourceClaim
		if ref == "" {
			continue
		}
		claim, request, _ := strings.Cut(ref, "/")
		known := false
		for _, pc := range pod.ResourceClaims {
			known = known || pc.Name == claim
		}
		if !known {
			return nil, podnet.AttachError(atts[i].Network, atts[i].IfName, fmt.Errorf("annotation %s: the pod has no resourceClaim %q", ResourceClaimAnnot, claim))
		}
		match := func(d *claimDevice) bool { return d.podClaim == claim && (request == "" || d.request == request) }
		if err := take(i, match, fmt.Sprintf("annotation %s: %q", ResourceClaimAnnot, ref)); err != nil {
			return nil, err
		}
	}
	for i := range atts {
		r := atts[i].ResourceName
		if done[i] || r == "" {
			continue
		}
		match := func(d *claimDevice) bool { return d.rec.ResourceName == r }
		any := false
		for _, d := range devs {
			any = any || match(d)
		}
		if !any {
			continue // the device plugin's
		}
		if err := take(i, match, fmt.Sprintf("resource %q", r)); err != nil {
			return nil, err
		}
	}
	return done, nil
}

// podClaimDevices are the VFs of the pod's claims that the SR-IOV DRA
// driver prepared on this node.
func (e *Resolver) podClaimDevices(ctx context.Context, pod *podnet.Pod, atts []podnet.Attachment) ([]*claimDevice, error) {
	first := atts[0]
	for _, a := range atts {
		if a.ResourceClaim != "" || a.ResourceName != "" {
			first = a
			break
		}
	}
	src := e.Claims
	if src == nil {
		return nil, podnet.AttachError(first.Network, first.IfName, fmt.Errorf("the pod has resourceClaims, but no claim source (the API) is available in this mode"))
	}
	recs := e.DRADevices
	if recs == nil {
		recs = devinfo.DRARecords{Dir: e.deviceInfoDir()}
	}
	pools := map[[2]string]map[string]map[string]string{}
	var out []*claimDevice
	for _, pc := range pod.ResourceClaims {
		if pc.ClaimName == "" {
			continue
		}
		c, err := src.Claim(ctx, pod.Namespace, pc.ClaimName)
		if err != nil {
			return nil, podnet.AttachError(first.Network, first.IfName, fmt.Errorf("resourceClaim %q: %w", pc.Name, err))
		}
		for _, r := range c.Results {
			rec, err := recs.Record(r.Driver, r.Pool, r.Device)
			if err != nil {
				return nil, podnet.AttachError(first.Network, first.IfName, fmt.Errorf("resourceClaim %q: device %s: %w", pc.Name, r.Device, err))
			}
			if rec == nil {
				// Not prepared by plexus's driver: another driver's VF
				// (dra-driver-sriov) by its published attributes.
				if rec, err = e.attributeDevice(ctx, r, pools); err != nil {
					return nil, podnet.AttachError(first.Network, first.IfName, fmt.Errorf("resourceClaim %q: device %s/%s/%s: %w", pc.Name, r.Driver, r.Pool, r.Device, err))
				}
				if rec == nil {
					continue
				}
			}
			if rec.ClaimUID != "" && c.UID != "" && rec.ClaimUID != c.UID {
				return nil, podnet.AttachError(first.Network, first.IfName, fmt.Errorf("resourceClaim %q: device %s was prepared for another claim (%s)", pc.Name, r.Device, rec.ClaimUID))
			}
			out = append(out, &claimDevice{podClaim: pc.Name, request: r.Request, rec: rec})
		}
	}
	return out, nil
}

// setDevice hands a VF to an attachment as the device plugin path does:
// deviceID and the device-info file the CNI plugin may write.
func (e *Resolver) setDevice(a *podnet.Attachment, req *podnet.Request, id string) {
	a.DeviceID = id
	a.DeviceInfoFile = devinfo.CNIPath(e.deviceInfoDir(), a.Network, req.ContainerID, a.IfName)
	if a.CapabilityArgs == nil {
		a.CapabilityArgs = map[string]any{}
	}
	a.CapabilityArgs["deviceID"] = id
	a.CapabilityArgs["CNIDeviceInfoFile"] = a.DeviceInfoFile
}

// attributeDevice is a device of another driver that publishes the
// k8s.cni.cncf.io/deviceID attribute, as a record; nil for every other.
// pools caches each driver's pool for one resolution.
func (e *Resolver) attributeDevice(ctx context.Context, r podnet.ClaimResult, pools map[[2]string]map[string]map[string]string) (*devinfo.DRADevice, error) {
	src := e.Attributes
	if src == nil {
		return nil, nil
	}
	key := [2]string{r.Driver, r.Pool}
	p, ok := pools[key]
	if !ok {
		var err error
		if p, err = src.PoolAttributes(ctx, r.Driver, r.Pool); err != nil {
			return nil, err
		}
		pools[key] = p
	}
	a := p[r.Device]
	if a[AttrDeviceID] == "" {
		return nil, nil
	}
	return &devinfo.DRADevice{Driver: r.Driver, Pool: r.Pool, Device: r.Device, PCIAddress: a[AttrDeviceID], ResourceName: a[AttrResourceName]}, nil
}
