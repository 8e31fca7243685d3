package netpol

import (
	"encoding/json"
	"net/netip"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// TrimPod is the transform of a cluster-wide pod informer feeding the
// index: it keeps only what peers are resolved from (namespace, name,
// labels, network-status, named container ports, phase, node) and drops
// the rest (managedFields, specs, env, volumes, conditions), so that every
// pod of the cluster costs plexusd under 3 KiB instead of ~14 KiB
// (TestTrimPodMemory). Objects that are not pods pass unchanged.
func TrimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	t := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: p.Namespace, Name: p.Name, UID: p.UID,
			ResourceVersion: p.ResourceVersion, Labels: p.Labels,
			DeletionTimestamp: p.DeletionTimestamp,
		},
		Spec:   corev1.PodSpec{NodeName: p.Spec.NodeName},
		Status: corev1.PodStatus{Phase: p.Status.Phase},
	}
	if s, ok := p.Annotations[nadv1.NetworkStatusAnnot]; ok {
		t.Annotations = map[string]string{nadv1.NetworkStatusAnnot: s}
	}
	for _, c := range p.Spec.Containers {
		var ports []corev1.ContainerPort
		for _, cp := range c.Ports {
			if cp.Name != "" {
				ports = append(ports, corev1.ContainerPort{Name: cp.Name, ContainerPort: cp.ContainerPort, Protocol: cp.Protocol})
			}
		}
		if ports != nil {
			t.Spec.Containers = append(t.Spec.Containers, corev1.Container{Ports: ports})
		}
	}
	return t, nil
}

// PodPorts are a pod's named container ports.
func PodPorts(p *corev1.Pod) []NamedPort {
	var out []NamedPort
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name != "" {
				out = append(out, NamedPort{Name: cp.Name, Protocol: cp.Protocol, Port: cp.ContainerPort})
			}
		}
	}
	return out
}

// PeersOf is what a pod is as a peer, per NAD it is attached to: its
// addresses there from its network-status (the primary network's entry
// is skipped). A pod that has finished (Succeeded, Failed) is no peer:
// its addresses may be someone else's already. An annotation that does
// not parse gives no peer (the pod is matched by no selector; it is the
// pod's own annotation, written by the plugin that attached it).
func PeersOf(p *corev1.Pod) map[NAD]Peer {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return nil
	}
	s, ok := p.Annotations[nadv1.NetworkStatusAnnot]
	if !ok {
		return nil
	}
	var status []nadv1.NetworkStatus
	if err := json.Unmarshal([]byte(s), &status); err != nil {
		return nil
	}
	out := map[NAD]Peer{}
	ports := PodPorts(p)
	for _, st := range status {
		if st.Default {
			continue
		}
		ns, name, ok := strings.Cut(st.Name, "/")
		if !ok {
			ns, name = p.Namespace, st.Name
		}
		nad := NAD{Namespace: ns, Name: name}
		peer, ok := out[nad]
		if !ok {
			peer = Peer{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, Ports: ports}
		}
		for _, ip := range st.IPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				peer.IPs = append(peer.IPs, a.Unmap())
			} else if pf, err := netip.ParsePrefix(ip); err == nil {
				peer.IPs = append(peer.IPs, pf.Addr().Unmap())
			}
		}
		out[nad] = peer
	}
	return out
}

// BuildIndex is the index of pods (trimmed or not) and namespaces.
func BuildIndex(pods []*corev1.Pod, namespaces []*corev1.Namespace) Index {
	idx := Index{Peers: map[NAD][]Peer{}, Namespaces: map[string]map[string]string{}}
	for _, p := range pods {
		for nad, peer := range PeersOf(p) {
			idx.Peers[nad] = append(idx.Peers[nad], peer)
		}
	}
	for _, n := range namespaces {
		idx.Namespaces[n.Name] = n.Labels
	}
	return idx
}

// AttachmentsOf are the secondary interfaces of a pod plexus attached
// (its cache entry), as Compile takes them; vfio names the interfaces
// that are VFs bound to vfio-pci (no netdev in the pod).
func AttachmentsOf(e *podnet.Entry, vfio func(podnet.Attachment) bool) []Attachment {
	var out []Attachment
	for _, a := range e.Attachments {
		if a.Primary {
			continue
		}
		ns, name, ok := strings.Cut(a.Network, "/")
		if !ok {
			continue
		}
		out = append(out, Attachment{NAD: NAD{Namespace: ns, Name: name}, Interface: a.IfName, VFIO: vfio != nil && vfio(a)})
	}
	return out
}
