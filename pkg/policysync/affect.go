package policysync

import (
	"maps"
	"reflect"
	"slices"

	mnp "github.com/k8snetworkplumbingwg/multi-networkpolicy/pkg/apis/k8s.cni.cncf.io/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/plexus-cni/plexus/pkg/netpol"
)

// Local is a local container as the queueing decision sees it: its pod
// (labels from the pod informer, nil when not there yet) and the NADs of
// its secondary attachments (the cache entry's and pending ones).
type Local struct {
	ID              string
	Namespace, Name string
	Labels          map[string]string
	NADs            []netpol.NAD
}

func (l Local) on(nads []netpol.NAD) bool {
	for _, n := range l.NADs {
		if slices.Contains(nads, n) {
			return true
		}
	}
	return false
}

// policyNADs are the NADs p's policy-for names; ok is false when they
// cannot be told (annotation that does not parse: Compile reports the
// error on every interface of the namespace's pods).
func policyNADs(p *mnp.MultiNetworkPolicy) (nads []netpol.NAD, ok bool) {
	v, has := p.Annotations[netpol.PolicyForAnnotation]
	if !has {
		return nil, true
	}
	nads, err := netpol.ParsePolicyFor(p.Namespace, v)
	return nads, err == nil
}

// policySelects reports whether p's podSelector may select l (true when
// the selector does not parse, or l's labels are not known).
func policySelects(p *mnp.MultiNetworkPolicy, l Local) bool {
	sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
	if err != nil || l.Labels == nil {
		return true
	}
	return sel.Matches(labels.Set(l.Labels))
}

// PolicyAffects are the local containers whose plans a change of a
// policy (old nil: added; new nil: deleted) can change: a policy only
// contributes to the plans of the pods it selects, i.e. pods of its
// namespace attached to a NAD it is for and matched by its podSelector,
// before or after the change. Peers are resolved from pods, never from
// other policies, so no other pod is concerned.
func PolicyAffects(old, new *mnp.MultiNetworkPolicy, locals []Local) []string {
	var out []string
	for _, l := range locals {
		for _, p := range []*mnp.MultiNetworkPolicy{old, new} {
			if p == nil || p.Namespace != l.Namespace {
				continue
			}
			nads, ok := policyNADs(p)
			if ok && !l.on(nads) {
				continue
			}
			if !ok || policySelects(p, l) {
				out = append(out, l.ID)
				break
			}
		}
	}
	return out
}

// peerView is what of a pod can change another pod's plan as its peer or
// its own plan as a target.
type peerView struct {
	Namespace, Name string
	Labels          map[string]string
	Peers           map[netpol.NAD]netpol.Peer
	Ports           []netpol.NamedPort
}

func viewOf(p *corev1.Pod) *peerView {
	if p == nil {
		return nil
	}
	return &peerView{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, Peers: netpol.PeersOf(p), Ports: netpol.PodPorts(p)}
}

// PodAffects are the local containers whose plans a change of a pod of
// the cluster (old nil: added; new nil: deleted) can change: none when
// nothing a plan reads of it changed (labels, network-status addresses,
// named ports, phase); else the pod's own containers if it is local, and
// every local container on a NAD the pod is (or was) attached to whose
// namespace has a policy (policies is the namespaces having one): the
// pod may be a peer of any rule of such a pod.
func PodAffects(old, new *corev1.Pod, locals []Local, policies map[string]bool) []string {
	ov, nv := viewOf(old), viewOf(new)
	if ov != nil && nv != nil && reflect.DeepEqual(ov, nv) {
		return nil
	}
	var nads []netpol.NAD
	self := map[[2]string]bool{}
	for _, v := range []*peerView{ov, nv} {
		if v != nil {
			nads = append(nads, slices.Collect(maps.Keys(v.Peers))...)
			self[[2]string{v.Namespace, v.Name}] = true
		}
	}
	var out []string
	for _, l := range locals {
		if self[[2]string{l.Namespace, l.Name}] || policies[l.Namespace] && l.on(nads) {
			out = append(out, l.ID)
		}
	}
	return out
}

// NamespaceAffects are the local containers whose plans a change of a
// namespace can change: none when its labels did not change; else every
// local container in a namespace having a policy (a namespaceSelector of
// any of them may match it now or before).
func NamespaceAffects(old, new *corev1.Namespace, locals []Local, policies map[string]bool) []string {
	if old != nil && new != nil && maps.Equal(old.Labels, new.Labels) {
		return nil
	}
	var out []string
	for _, l := range locals {
		if policies[l.Namespace] {
			out = append(out, l.ID)
		}
	}
	return out
}
