// Package netpol decides which traffic MultiNetworkPolicies allow on a
// pod's secondary interfaces (Compile: policies + the pod + an address
// index → a Plan), renders a Plan as one nftables table (Render), and
// applies it in the pod's network namespace (Apply). The semantics are
// networking.k8s.io/v1 NetworkPolicy's, per network: a policy is for the
// NADs its k8s.v1.cni.cncf.io/policy-for annotation names, and its peers
// are the selected pods' addresses on that same NAD. See
// docs/network-policy.md.
package netpol

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	mnp "github.com/k8snetworkplumbingwg/multi-networkpolicy/pkg/apis/k8s.cni.cncf.io/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// PolicyForAnnotation names the NADs a MultiNetworkPolicy is for.
const PolicyForAnnotation = "k8s.v1.cni.cncf.io/policy-for"

// NAD names a NetworkAttachmentDefinition.
type NAD struct {
	Namespace, Name string
}

func (n NAD) String() string { return n.Namespace + "/" + n.Name }

// NamedPort is a container port that has a name.
type NamedPort struct {
	Name     string
	Protocol corev1.Protocol // empty: TCP
	Port     int32
}

// Attachment is one interface plexus attached to the protected pod.
type Attachment struct {
	NAD       NAD
	Interface string // the name in the pod's netns
	// VFIO: an SR-IOV VF bound to vfio-pci, which has no netdev in the
	// pod and so cannot be filtered there.
	VFIO bool
}

// Pod is the pod whose interfaces are protected.
type Pod struct {
	Namespace, Name string
	Labels          map[string]string
	Ports           []NamedPort // its containers' named ports
	Attachments     []Attachment
}

// Peer is a pod attached to a NAD, as a policy's peer.
type Peer struct {
	Namespace, Name string
	Labels          map[string]string
	IPs             []netip.Addr // its addresses on that NAD
	Ports           []NamedPort
}

// Index is what Compile knows of the cluster: every pod attached to each
// NAD, and the labels of namespaces (a namespace missing here has none).
type Index struct {
	Peers      map[NAD][]Peer
	Namespaces map[string]map[string]string
}

// Port is a protocol and an inclusive range of destination ports; From 0
// is every port of the protocol.
type Port struct {
	Protocol corev1.Protocol
	From, To uint16
}

// Rule allows traffic from (ingress) or to (egress) its peers on its
// ports.
type Rule struct {
	AnyPeer bool    // every address (a rule without from/to)
	Peers   AddrSet // when !AnyPeer
	Ports   []Port  // empty: every port and protocol
}

// Direction is an isolated direction: only its rules' traffic passes
// (besides replies, ICMPv6 neighbour discovery and DHCP).
type Direction struct {
	Rules []Rule
}

// Interface is the filter of one selected interface; a nil direction is
// not isolated.
type Interface struct {
	Name            string
	NAD             NAD
	Ingress, Egress *Direction
	Policies        []string // ns/name of the policies selecting it
}

// Refusal is an interface policies select that cannot be enforced.
type Refusal struct {
	Interface string
	NAD       NAD
	Reason    string
}

// Plan is what the pod's table must hold.
type Plan struct {
	Interfaces []Interface // sorted by name
	Refused    []Refusal
	Errors     []error // policies (or parts) that could not be understood
}

// ParsePolicyFor parses a policy-for annotation: comma-separated NAD names,
// "ns/name" or "name" (in the policy's namespace).
func ParsePolicyFor(policyNamespace, value string) ([]NAD, error) {
	var out []NAD
	for _, f := range strings.Split(value, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		ns, name, ok := strings.Cut(f, "/")
		if !ok {
			ns, name = policyNamespace, f
		}
		if ns == "" || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("annotation %s: %q is not a NAD name (ns/name or name)", PolicyForAnnotation, f)
		}
		out = append(out, NAD{Namespace: ns, Name: name})
	}
	return out, nil
}

// policyTypes is what a policy isolates, defaulted as NetworkPolicy does:
// Ingress always, Egress when it has egress rules.
func policyTypes(spec *mnp.MultiNetworkPolicySpec) (ingress, egress bool) {
	if len(spec.PolicyTypes) == 0 {
		return true, len(spec.Egress) > 0
	}
	for _, t := range spec.PolicyTypes {
		switch t {
		case mnp.PolicyTypeIngress:
			ingress = true
		case mnp.PolicyTypeEgress:
			egress = true
		}
	}
	return ingress, egress
}

// compiler holds one Compile's inputs.
type compiler struct {
	pod  *Pod
	idx  *Index
	errs []error
}

func (c *compiler) errorf(policy *mnp.MultiNetworkPolicy, nad NAD, field, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("pod %s/%s: network %s: policy %s/%s: %s: %s",
		c.pod.Namespace, c.pod.Name, nad, policy.Namespace, policy.Name, field, fmt.Sprintf(format, args...)))
}

// Compile decides the filters of pod's interfaces under policies (any
// namespace; those not in the pod's are ignored). A part of a policy that
// cannot be understood allows nothing and is reported in Plan.Errors; a
// podSelector that cannot be understood selects the pod (its isolation
// holds, its rules allow nothing): never open by mistake.
func Compile(policies []*mnp.MultiNetworkPolicy, pod Pod, idx Index) Plan {
	c := &compiler{pod: &pod, idx: &idx}
	var plan Plan
	atts := slices.Clone(pod.Attachments)
	slices.SortFunc(atts, func(a, b Attachment) int { return strings.Compare(a.Interface, b.Interface) })
	pols := slices.Clone(policies)
	slices.SortFunc(pols, func(a, b *mnp.MultiNetworkPolicy) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	for _, att := range atts {
		ifc := Interface{Name: att.Interface, NAD: att.NAD}
		for _, p := range pols {
			if p.Namespace != pod.Namespace || !c.policyFor(p, att.NAD) || !c.selects(p, att.NAD) {
				continue
			}
			ifc.Policies = append(ifc.Policies, p.Namespace+"/"+p.Name)
			in, eg := policyTypes(&p.Spec)
			if in {
				if ifc.Ingress == nil {
					ifc.Ingress = &Direction{}
				}
				for i := range p.Spec.Ingress {
					r := &p.Spec.Ingress[i]
					ifc.Ingress.Rules = append(ifc.Ingress.Rules,
						c.rules(p, att.NAD, fmt.Sprintf("spec.ingress[%d]", i), "from", r.From, r.Ports, false)...)
				}
			}
			if eg {
				if ifc.Egress == nil {
					ifc.Egress = &Direction{}
				}
				for i := range p.Spec.Egress {
					r := &p.Spec.Egress[i]
					ifc.Egress.Rules = append(ifc.Egress.Rules,
						c.rules(p, att.NAD, fmt.Sprintf("spec.egress[%d]", i), "to", r.To, r.Ports, true)...)
				}
			}
		}
		if len(ifc.Policies) == 0 {
			continue
		}
		if att.VFIO {
			plan.Refused = append(plan.Refused, Refusal{Interface: att.Interface, NAD: att.NAD,
				Reason: "a VF bound to vfio-pci has no netdev in the pod: policies " +
					strings.Join(ifc.Policies, ", ") + " cannot be enforced on it"})
			continue
		}
		if ifc.Ingress == nil && ifc.Egress == nil {
			continue // e.g. policyTypes [] with neither type
		}
		plan.Interfaces = append(plan.Interfaces, ifc)
	}
	plan.Errors = c.errs
	return plan
}

// policyFor reports whether p names nad in its policy-for annotation.
func (c *compiler) policyFor(p *mnp.MultiNetworkPolicy, nad NAD) bool {
	v, ok := p.Annotations[PolicyForAnnotation]
	if !ok {
		return false
	}
	nads, err := ParsePolicyFor(p.Namespace, v)
	if err != nil {
		// Which NADs were meant is unknown: the error is reported on
		// every interface of the namespace's pods, and no NAD is taken.
		c.errorf(p, nad, "metadata.annotations", "%v", err)
		return false
	}
	return slices.Contains(nads, nad)
}

// selects reports whether p's podSelector selects the pod.
func (c *compiler) selects(p *mnp.MultiNetworkPolicy, nad NAD) bool {
	sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
	if err != nil {
		c.errorf(p, nad, "spec.podSelector", "%v", err)
		return true
	}
	return sel.Matches(labels.Set(c.pod.Labels))
}

// peerMatch is what a rule's peers select: every address, or pods and
// address ranges.
type peerMatch struct {
	any    bool
	pods   []*Peer
	ranges []Range
}

// peers resolves a rule's from/to on nad.
func (c *compiler) peers(p *mnp.MultiNetworkPolicy, nad NAD, field string, peers []mnp.MultiNetworkPolicyPeer) peerMatch {
	if len(peers) == 0 {
		return peerMatch{any: true}
	}
	var m peerMatch
	seen := map[*Peer]bool{}
	for i := range peers {
		peer := &peers[i]
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case peer.IPBlock != nil:
			if peer.PodSelector != nil || peer.NamespaceSelector != nil {
				c.errorf(p, nad, f, "ipBlock with a pod or namespace selector")
				continue
			}
			m.ranges = append(m.ranges, c.ipBlock(p, nad, f+".ipBlock", peer.IPBlock)...)
		case peer.PodSelector != nil || peer.NamespaceSelector != nil:
			podSel, nsSel := labels.Everything(), labels.Selector(nil)
			var err error
			if peer.PodSelector != nil {
				if podSel, err = metav1.LabelSelectorAsSelector(peer.PodSelector); err != nil {
					c.errorf(p, nad, f+".podSelector", "%v", err)
					continue
				}
			}
			if peer.NamespaceSelector != nil {
				if nsSel, err = metav1.LabelSelectorAsSelector(peer.NamespaceSelector); err != nil {
					c.errorf(p, nad, f+".namespaceSelector", "%v", err)
					continue
				}
			}
			for j := range c.idx.Peers[nad] {
				pp := &c.idx.Peers[nad][j]
				if nsSel == nil && pp.Namespace != p.Namespace {
					continue
				}
				if nsSel != nil && !nsSel.Matches(labels.Set(c.idx.Namespaces[pp.Namespace])) {
					continue
				}
				if podSel.Matches(labels.Set(pp.Labels)) && !seen[pp] {
					seen[pp] = true
					m.pods = append(m.pods, pp)
				}
			}
		default:
			c.errorf(p, nad, f, "a peer needs a podSelector, namespaceSelector or ipBlock")
		}
	}
	return m
}

// ipBlock is cidr minus its excepts.
func (c *compiler) ipBlock(p *mnp.MultiNetworkPolicy, nad NAD, field string, b *mnp.IPBlock) []Range {
	pfx, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		c.errorf(p, nad, field+".cidr", "%v", err)
		return nil
	}
	rs := []Range{prefixRange(unmapPrefix(pfx))}
	for i, e := range b.Except {
		ex, err := netip.ParsePrefix(e)
		if err != nil {
			// The block minus an unknown range is unknown: allow none of it.
			c.errorf(p, nad, fmt.Sprintf("%s.except[%d]", field, i), "%v", err)
			return nil
		}
		rs = subtract(rs, prefixRange(unmapPrefix(ex)))
	}
	return rs
}

func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// podRanges are the addresses of pods, as single-address ranges.
func podRanges(pods []*Peer) []Range {
	var rs []Range
	for _, pp := range pods {
		for _, ip := range pp.IPs {
			ip = ip.Unmap()
			rs = append(rs, Range{From: ip, To: ip})
		}
	}
	return rs
}

// rules compiles one ingress or egress rule into Rules: one for its
// numeric ports (named ports of the protected pod resolved, for ingress),
// and, for egress, one per port number its named ports resolve to on the
// destination pods.
func (c *compiler) rules(p *mnp.MultiNetworkPolicy, nad NAD, field, peerField string,
	peers []mnp.MultiNetworkPolicyPeer, ports []mnp.MultiNetworkPolicyPort, egress bool) []Rule {
	m := c.peers(p, nad, field+"."+peerField, peers)
	var numeric []Port
	type named struct {
		name  string
		proto corev1.Protocol
	}
	var names []named
	for i := range ports {
		pp := &ports[i]
		f := fmt.Sprintf("%s.ports[%d]", field, i)
		proto := corev1.ProtocolTCP
		if pp.Protocol != nil {
			proto = *pp.Protocol
		}
		if proto != corev1.ProtocolTCP && proto != corev1.ProtocolUDP && proto != corev1.ProtocolSCTP {
			c.errorf(p, nad, f+".protocol", "%q is not TCP, UDP or SCTP", proto)
			continue
		}
		switch {
		case pp.Port == nil:
			if pp.EndPort != nil {
				c.errorf(p, nad, f+".endPort", "endPort without port")
				continue
			}
			numeric = append(numeric, Port{Protocol: proto})
		case pp.Port.Type == intstr.String:
			if pp.EndPort != nil {
				c.errorf(p, nad, f+".endPort", "endPort with a named port")
				continue
			}
			if egress {
				names = append(names, named{pp.Port.StrVal, proto})
			} else if n, ok := lookupPort(c.pod.Ports, pp.Port.StrVal, proto); ok {
				numeric = append(numeric, Port{Protocol: proto, From: n, To: n})
			}
		default:
			from := pp.Port.IntVal
			to := from
			if pp.EndPort != nil {
				to = *pp.EndPort
			}
			if from < 1 || from > 65535 || to < from || to > 65535 {
				c.errorf(p, nad, f, "port %d to endPort %d is not a range of 1-65535", from, to)
				continue
			}
			numeric = append(numeric, Port{Protocol: proto, From: uint16(from), To: uint16(to)})
		}
	}
	var out []Rule
	addrs := addrSet(append(podRanges(m.pods), m.ranges...))
	if len(ports) == 0 || len(numeric) > 0 {
		if m.any || !addrs.Empty() {
			out = append(out, Rule{AnyPeer: m.any, Peers: addrs, Ports: numeric})
		}
	}
	if len(names) == 0 {
		return out
	}
	// Egress named ports: each destination pod's own number. A rule
	// without "to" reaches every pod of the NAD by its named port; an
	// ipBlock has no named ports.
	cands := m.pods
	if m.any {
		for j := range c.idx.Peers[nad] {
			cands = append(cands, &c.idx.Peers[nad][j])
		}
	}
	byPort := map[Port][]*Peer{}
	var order []Port
	for _, n := range names {
		for _, pp := range cands {
			num, ok := lookupPort(pp.Ports, n.name, n.proto)
			if !ok {
				continue
			}
			k := Port{Protocol: n.proto, From: num, To: num}
			if _, ok := byPort[k]; !ok {
				order = append(order, k)
			}
			byPort[k] = append(byPort[k], pp)
		}
	}
	for _, k := range order {
		if s := addrSet(podRanges(byPort[k])); !s.Empty() {
			out = append(out, Rule{Peers: s, Ports: []Port{k}})
		}
	}
	return out
}

// lookupPort finds a named container port of a protocol.
func lookupPort(ports []NamedPort, name string, proto corev1.Protocol) (uint16, bool) {
	for _, p := range ports {
		pr := p.Protocol
		if pr == "" {
			pr = corev1.ProtocolTCP
		}
		if p.Name == name && pr == proto && p.Port >= 1 && p.Port <= 65535 {
			return uint16(p.Port), true
		}
	}
	return 0, false
}
