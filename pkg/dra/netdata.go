package dra

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	resourceac "k8s.io/client-go/applyconfigurations/resource/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// ConditionReady is the condition type of a VF whose interface is in the
// pod.
const ConditionReady = "Ready"

// DeviceNetworkData is one prepared VF's network data as the pod's
// network-status reports it (KEP-4817's networkData), or nil when no
// interface of the pod is that VF.
func DeviceNetworkData(pd preparedDevice, statuses []nadv1.NetworkStatus) *resourceapi.NetworkDeviceData {
	for _, s := range statuses {
		if s.DeviceInfo == nil || s.DeviceInfo.Pci == nil || s.DeviceInfo.Pci.PciAddress != pd.PCI {
			continue
		}
		nd := &resourceapi.NetworkDeviceData{InterfaceName: s.Interface, HardwareAddress: s.Mac}
		for _, ip := range s.IPs {
			nd.IPs = append(nd.IPs, hostCIDR(ip))
		}
		return nd
	}
	return nil
}

// hostCIDR writes an address of network-status (no prefix length) in the
// CIDR form networkData requires: /32 or /128.
func hostCIDR(ip string) string {
	if strings.Contains(ip, "/") {
		return ip
	}
	p := net.ParseIP(ip)
	if p == nil {
		return ip
	}
	if p.To4() != nil {
		return p.String() + "/32"
	}
	return p.String() + "/128"
}

// reporter keeps each prepared claim's status.devices entries of this
// driver equal to what the pods using the claim report in their
// network-status annotation (written by plexus after ADD), with server-side
// apply under the driver's field manager; an unprepared claim's entries
// are removed (applying none).
type reporter struct {
	d      *Driver
	client kubernetes.Interface
	pods   cache.Indexer
	kick   chan struct{}
	// applied is what was last applied per claim (a digest), so that an
	// unchanged status is not applied again.
	applied map[types.UID]appliedClaim
}

type appliedClaim struct {
	Namespace, Name, Digest string
}

func newReporter(d *Driver, client kubernetes.Interface) *reporter {
	return &reporter{d: d, client: client, kick: make(chan struct{}, 1), applied: map[types.UID]appliedClaim{}}
}

func (r *reporter) trigger() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run watches the node's pods and reconciles until ctx ends.
func (r *reporter) run(ctx context.Context, node string) {
	f := informers.NewSharedInformerFactoryWithOptions(r.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = "spec.nodeName=" + node
	}))
	inf := f.Core().V1().Pods().Informer()
	r.pods = inf.GetIndexer()
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { r.trigger() },
		UpdateFunc: func(any, any) { r.trigger() },
		DeleteFunc: func(any) { r.trigger() },
	}
	if _, err := inf.AddEventHandler(h); err != nil {
		r.d.Log.Error("pod informer", "err", err)
		return
	}
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	retry := time.NewTimer(time.Hour)
	for {
		if err := r.reconcile(ctx); err != nil {
			r.d.Log.Warn("reporting network data", "err", err)
			retry.Reset(time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-retry.C:
		}
	}
}

func (r *reporter) reconcile(ctx context.Context) error {
	prepared := r.d.Prepared()
	// The pods of the node by the claims they use.
	byClaim := map[string][]nadv1.NetworkStatus{}
	for _, o := range r.pods.List() {
		p := o.(*corev1.Pod)
		raw := p.Annotations[nadv1.NetworkStatusAnnot]
		if raw == "" {
			continue
		}
		var st []nadv1.NetworkStatus
		if json.Unmarshal([]byte(raw), &st) != nil {
			continue
		}
		for _, name := range podClaimNames(p) {
			k := p.Namespace + "/" + name
			byClaim[k] = append(byClaim[k], st...)
		}
	}
	var errs []string
	for uid, c := range prepared {
		var devs []*resourceac.AllocatedDeviceStatusApplyConfiguration
		var digest []string
		for _, pd := range c.Devices {
			nd := DeviceNetworkData(pd, byClaim[c.Namespace+"/"+c.Name])
			if nd == nil {
				continue
			}
			digest = append(digest, fmt.Sprintf("%s/%s=%s,%s,%v", pd.Pool, pd.Device, nd.InterfaceName, nd.HardwareAddress, nd.IPs))
			devs = append(devs, resourceac.AllocatedDeviceStatus().WithDriver(r.d.Name).WithPool(pd.Pool).WithDevice(pd.Device).
				WithNetworkData(resourceac.NetworkDeviceData().WithInterfaceName(nd.InterfaceName).WithHardwareAddress(nd.HardwareAddress).WithIPs(nd.IPs...)).
				WithConditions(metav1ac.Condition().WithType(ConditionReady).WithStatus(metav1.ConditionTrue).WithReason("InterfaceAttached").
					WithMessage(fmt.Sprintf("interface %s in the pod", nd.InterfaceName)).WithLastTransitionTime(metav1.Now())))
		}
		sort.Strings(digest)
		dg := strings.Join(digest, ";")
		if a, ok := r.applied[uid]; (ok && a.Digest == dg) || (!ok && dg == "") {
			// Unchanged; or nothing attached yet, and nothing of this
			// driver's in the claim to clear (its entries are only ever
			// written for attached VFs of a prepared claim).
			continue
		}
		if err := r.apply(ctx, c.Namespace, c.Name, uid, devs); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		r.applied[uid] = appliedClaim{Namespace: c.Namespace, Name: c.Name, Digest: dg}
	}
	for uid, a := range r.applied {
		if _, ok := prepared[uid]; ok {
			continue
		}
		if a.Digest != "" {
			if err := r.apply(ctx, a.Namespace, a.Name, uid, nil); err != nil {
				errs = append(errs, err.Error())
				continue
			}
		}
		delete(r.applied, uid)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// apply sets this driver's status.devices entries of the claim to devs
// (none: removes them). A claim that is gone, or is another claim by now,
// has nothing to clear.
func (r *reporter) apply(ctx context.Context, ns, name string, uid types.UID, devs []*resourceac.AllocatedDeviceStatusApplyConfiguration) error {
	ac := resourceac.ResourceClaim(name, ns).WithUID(uid).WithStatus(resourceac.ResourceClaimStatus().WithDevices(devs...))
	_, err := r.client.ResourceV1().ResourceClaims(ns).ApplyStatus(ctx, ac, metav1.ApplyOptions{FieldManager: r.d.Name, Force: true})
	if err != nil && (apierrors.IsNotFound(err) || apierrors.IsConflict(err)) && len(devs) == 0 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("claim %s/%s: status.devices: %w", ns, name, err)
	}
	r.d.Log.Info("claim network data", "claim", ns+"/"+name, "devices", len(devs))
	return nil
}

// podClaimNames are the ResourceClaims a pod uses: those its spec names and
// those its templates became (status.resourceClaimStatuses).
func podClaimNames(p *corev1.Pod) []string {
	var out []string
	for _, rc := range p.Spec.ResourceClaims {
		if rc.ResourceClaimName != nil {
			out = append(out, *rc.ResourceClaimName)
		}
	}
	for _, cs := range p.Status.ResourceClaimStatuses {
		if cs.ResourceClaimName != nil {
			out = append(out, *cs.ResourceClaimName)
		}
	}
	return out
}
