package netpol

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	mnp "github.com/k8snetworkplumbingwg/multi-networkpolicy/pkg/apis/k8s.cni.cncf.io/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func set(addrs ...string) AddrSet {
	var rs []Range
	for _, a := range addrs {
		from, to, ok := strings.Cut(a, "-")
		if !ok {
			to = from
		}
		rs = append(rs, Range{From: netip.MustParseAddr(from), To: netip.MustParseAddr(to)})
	}
	return addrSet(rs)
}

func sel(kv ...string) *metav1.LabelSelector {
	s := &metav1.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

func withFor(p *mnp.MultiNetworkPolicy, v string) *mnp.MultiNetworkPolicy {
	p.Annotations[PolicyForAnnotation] = v
	return p
}

func TestParsePolicyFor(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []NAD
		err  bool
	}{
		{"lan", []NAD{{"ns1", "lan"}}, false},
		{"ns2/lan, lan2 ,", []NAD{{"ns2", "lan"}, {"ns1", "lan2"}}, false},
		{"", nil, false},
		{"a/b/c", nil, true},
		{"/lan", nil, true},
		{"ns/", nil, true},
	} {
		got, err := ParsePolicyFor("ns1", tc.in)
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParsePolicyFor(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestCompile(t *testing.T) {
	allB := set(labB4, labB6)
	allA := set(labA4, labA6)
	webB := Port{Protocol: corev1.ProtocolTCP, From: 9001, To: 9001}
	udp := corev1.ProtocolUDP
	icmp := corev1.Protocol("ICMP")
	named := intstr.FromString("http")
	missing := intstr.FromString("nope")
	web := intstr.FromString("web")
	for _, tc := range []struct {
		name     string
		policies []*mnp.MultiNetworkPolicy
		pod      func(*Pod)
		want     []Interface
		refused  int
		errs     []string
	}{
		{name: "no policy: open", want: nil},
		{
			name: "policy in another namespace: ignored",
			policies: []*mnp.MultiNetworkPolicy{func() *mnp.MultiNetworkPolicy {
				p := policy(mnp.MultiNetworkPolicySpec{})
				p.Namespace = "ns2"
				return p
			}()},
		},
		{
			name:     "policy for another NAD: ignored",
			policies: []*mnp.MultiNetworkPolicy{withFor(policy(mnp.MultiNetworkPolicySpec{}), "ns2/lan,other")},
		},
		{
			name: "policy without policy-for: ignored",
			policies: []*mnp.MultiNetworkPolicy{func() *mnp.MultiNetworkPolicy {
				p := policy(mnp.MultiNetworkPolicySpec{})
				p.Annotations = nil
				return p
			}()},
		},
		{
			name:     "podSelector not matching: open",
			policies: []*mnp.MultiNetworkPolicy{policy(mnp.MultiNetworkPolicySpec{PodSelector: *sel("app", "b")})},
		},
		{
			name:     "default deny ingress, by ns/name",
			policies: []*mnp.MultiNetworkPolicy{withFor(policy(mnp.MultiNetworkPolicySpec{}), " ns1/lan ")},
			want:     []Interface{{Name: "net1", NAD: testNAD, Ingress: &Direction{}, Policies: []string{"ns1/p"}}},
		},
		{
			name: "egress rules make Egress a default policy type",
			policies: []*mnp.MultiNetworkPolicy{policy(mnp.MultiNetworkPolicySpec{
				Egress: []mnp.MultiNetworkPolicyEgressRule{{}}})},
			want: []Interface{{Name: "net1", NAD: testNAD, Ingress: &Direction{},
				Egress: &Direction{Rules: []Rule{{AnyPeer: true}}}, Policies: []string{"ns1/p"}}},
		},
		{
			name: "explicit Egress only: ingress rules ignored",
			policies: []*mnp.MultiNetworkPolicy{policy(mnp.MultiNetworkPolicySpec{
				PolicyTypes: []mnp.MultiPolicyType{mnp.PolicyTypeEgress},
				Ingress:     []mnp.MultiNetworkPolicyIngressRule{{}}})},
			want: []Interface{{Name: "net1", NAD: testNAD, Egress: &Direction{}, Policies: []string{"ns1/p"}}},
		},
		{
			name: "empty podSelector peer: the policy's namespace only",
			policies: []*mnp.MultiNetworkPolicy{policy(mnp.MultiNetworkPolicySpec{Ingress: []mnp.MultiNetworkPolicyIngressRule{{
				From: []mnp.MultiNetworkPolicyPeer{{PodSelector: sel()}}}}})},
			want: []Interface{{Name: "net1", NAD: testNAD, Policies: []string{"ns1/p"},
				Ingress: &Direction{Rules: []Rule{{Peers: set(labA4, labB4, labA6, labB6)}}}}},
		},
		{
			name: "empty namespaceSelector: every namespace",
			policies: []*mnp.MultiNetworkPolicy{policy(mnp.MultiNetworkPolicySpec{Ingress: []mnp.MultiNetworkPolicyIngressRule{{
				From: []mnp.MultiNetworkPolicyPeer{{NamespaceSelector: sel()}}}}})},
			want: []Interface{{Name: "net1", NAD: testNAD, Policies: []string{"ns1/p"},
				Ingress: &Direction{Rules: []Rule{{Peers: set(labA4+"-"+labC4, labA6+"-"+labC6)}}}}},
		},
		{
			name: "namespaceSelector and podSelector together",
			policies: []*mnp.MultiNetworkPolicy{policy(mnp.MultiNetworkPolicySpec{Ingress: []mnp.MultiNetworkPolicyIngressRule{{
				From: []mnp.MultiNetworkPolicyPeer{{NamespaceSelector: sel("team", "x"), PodSelector: sel("app", "c")},
					{NamespaceSelector: sel("team", "y"), PodSelector: sel("app", "c")}}}}})},
			want: []Interface{{Name: "net1", NAD: testNAD, Policies: []string{"ns1/p"},
				Ingress: &Direction{Rules: []Rule{{Peers: set(labC4, labC6)}}}}},
		},
		{
			name: "ipBlock except",
			policies: []*mnp.MultiNetworkPolicy{policy(mnp.MultiNetworkPolicySpec{Ingress: []mnp.MultiNetworkPolicyIngressRule{{
				From: []mnp.MultiNetworkPolicyPeer{{IPBlock: &mnp.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16", "10.255.255.255/32"}}}}}}})},
			want: []Interface{{Name: "net1", NAD: testNAD, Policies: []string{"ns1/p"},
				Ingress: &Direction{Rules: []Rule{{Peers: set("10.0.0.0-10.0.255.255", "10.2.0.0-10.255.255.254")}}}}},
		},
		{
			name: "ingress named port: the protected pod's; unresolved alone allows nothing",
			policies: []*mnp.MultiNetworkPolicy{policy(mnp.MultiNetworkPolicySpec{Ingress: []mnp.MultiNetworkPolicyIngressRule{
				{Ports: []mnp.MultiNetworkPolicyPort{{Port: &named}, {Protocol: &udp}}},
				{Ports: []mnp.MultiNetworkPolicyPort{{Port: &missing}}},
			}})},
			want: []Interface{{Name: "net1", NAD: testNAD, Policies: []string{"ns1/p"},
				Ingress: &Direction{Rules: []Rule{{AnyPeer: true, Ports: []Port{{Protocol: corev1.ProtocolTCP, From: 8081, To: 8081}, {Protocol: udp}}}}}}},
		},
		{
			name: "egress named port: each destination pod's",
			policies: []*mnp.MultiNetworkPolicy{policy(mnp.MultiNetworkPolicySpec{Egress: []mnp.MultiNetworkPolicyEgressRule{
				{Ports: []mnp.MultiNetworkPolicyPort{{Port: &web}}},
			}})},
			want: []Interface{{Name: "net1", NAD: testNAD, Policies: []string{"ns1/p"}, Ingress: &Direction{},
				Egress: &Direction{Rules: []Rule{{Peers: allB, Ports: []Port{webB}}}}}},
		},
		{
			name: "two policies: union",
			policies: []*mnp.MultiNetworkPolicy{
				policy(mnp.MultiNetworkPolicySpec{Ingress: []mnp.MultiNetworkPolicyIngressRule{{From: []mnp.MultiNetworkPolicyPeer{{PodSelector: sel("app", "b")}}}}}),
				func() *mnp.MultiNetworkPolicy {
					p := policy(mnp.MultiNetworkPolicySpec{Ingress: []mnp.MultiNetworkPolicyIngressRule{{From: []mnp.MultiNetworkPolicyPeer{{PodSelector: sel("app", "a")}}}}})
					p.Name = "q"
					return p
				}(),
			},
			want: []Interface{{Name: "net1", NAD: testNAD, Policies: []string{"ns1/p", "ns1/q"},
				Ingress: &Direction{Rules: []Rule{{Peers: allB}, {Peers: allA}}}}},
		},
		{
			name:     "vfio VF: refused, never open silently",
			policies: []*mnp.MultiNetworkPolicy{policy(mnp.MultiNetworkPolicySpec{})},
			pod: func(p *Pod) {
				p.Attachments = append(p.Attachments, Attachment{NAD: testNAD, Interface: "net2", VFIO: true},
					Attachment{NAD: NAD{"ns1", "other"}, Interface: "net3"})
			},
			want:    []Interface{{Name: "net1", NAD: testNAD, Ingress: &Direction{}, Policies: []string{"ns1/p"}}},
			refused: 1,
		},
		{
			name: "bad parts allow nothing; isolation holds",
			policies: []*mnp.MultiNetworkPolicy{policy(mnp.MultiNetworkPolicySpec{Ingress: []mnp.MultiNetworkPolicyIngressRule{
				{Ports: []mnp.MultiNetworkPolicyPort{{Protocol: &icmp}}},
				{From: []mnp.MultiNetworkPolicyPeer{{IPBlock: &mnp.IPBlock{CIDR: "10.0.0.0/33"}}}},
				{From: []mnp.MultiNetworkPolicyPeer{{}}},
			}})},
			want: []Interface{{Name: "net1", NAD: testNAD, Ingress: &Direction{}, Policies: []string{"ns1/p"}}},
			errs: []string{
				`pod ns1/a: network ns1/lan: policy ns1/p: spec.ingress[0].ports[0].protocol: "ICMP" is not TCP, UDP or SCTP`,
				`pod ns1/a: network ns1/lan: policy ns1/p: spec.ingress[1].from[0].ipBlock.cidr:`,
				`pod ns1/a: network ns1/lan: policy ns1/p: spec.ingress[2].from[0]: a peer needs`,
			},
		},
		{
			name: "podSelector that cannot be understood: selects (fail closed)",
			policies: []*mnp.MultiNetworkPolicy{policy(mnp.MultiNetworkPolicySpec{PodSelector: metav1.LabelSelector{
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}}})},
			want: []Interface{{Name: "net1", NAD: testNAD, Ingress: &Direction{}, Policies: []string{"ns1/p"}}},
			errs: []string{"pod ns1/a: network ns1/lan: policy ns1/p: spec.podSelector:"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := labPod()
			if tc.pod != nil {
				tc.pod(&pod)
			}
			plan := Compile(tc.policies, pod, labIndex())
			if !reflect.DeepEqual(plan.Interfaces, tc.want) {
				t.Errorf("interfaces:\n got %+v\nwant %+v", dumpIfcs(plan.Interfaces), dumpIfcs(tc.want))
			}
			if len(plan.Refused) != tc.refused {
				t.Errorf("refused %v, want %d", plan.Refused, tc.refused)
			}
			if len(plan.Errors) != len(tc.errs) {
				t.Fatalf("errors %v, want %d", plan.Errors, len(tc.errs))
			}
			for i, e := range plan.Errors {
				if !strings.HasPrefix(e.Error(), tc.errs[i]) {
					t.Errorf("error %d: %q, want prefix %q", i, e, tc.errs[i])
				}
			}
		})
	}
}

func dumpIfcs(ifcs []Interface) []string {
	var out []string
	for _, i := range ifcs {
		s := i.Name + " " + i.NAD.String() + " " + strings.Join(i.Policies, ",")
		for _, d := range []struct {
			n string
			d *Direction
		}{{"in", i.Ingress}, {"out", i.Egress}} {
			if d.d != nil {
				s += " " + d.n + ":" + fmtRules(d.d.Rules)
			}
		}
		out = append(out, s)
	}
	return out
}

func fmtRules(rs []Rule) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString("[")
		if r.AnyPeer {
			b.WriteString("any")
		}
		for _, x := range append(append([]Range{}, r.Peers.V4...), r.Peers.V6...) {
			b.WriteString(x.String() + " ")
		}
		for _, p := range r.Ports {
			b.WriteString(string(p.Protocol) + ":" + fmt.Sprintf("%d-%d", p.From, p.To) + " ")
		}
		b.WriteString("]")
	}
	return b.String()
}
