package netpol

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	mnp "github.com/k8snetworkplumbingwg/multi-networkpolicy/pkg/apis/k8s.cni.cncf.io/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

// lab is real netns joined as pods would be: pod a (the protected one)
// has net1 on a bridge shared with pods b and c (the NAD's L2 segment,
// IPv4 and IPv6), and eth0, a veth to pod d (the primary network, which
// policies for secondary networks must leave alone).
type lab struct {
	a, b, c, d ns.NetNS
}

// ip runs `ip -n netns args...`.
func ip(t *testing.T, n ns.NetNS, args ...string) {
	t.Helper()
	full := append([]string{"-n", filepath.Base(n.Path())}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(full, " "), err, out)
	}
}

const (
	labA4, labB4, labC4 = "10.66.0.1", "10.66.0.2", "10.66.0.3"
	labA6, labB6, labC6 = "fd66::1", "fd66::2", "fd66::3"
	labAeth0, labDeth0  = "10.67.0.1", "10.67.0.2"
	labPorts            = "8080 8081 9000 9001"
)

func newLab(t *testing.T) *lab {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("nft is not installed (hack/deps.sh installs nftables)")
	}
	l := &lab{a: testutil.NewNS(t), b: testutil.NewNS(t), c: testutil.NewNS(t), d: testutil.NewNS(t)}
	seg := testutil.NewNS(t)
	ip(t, seg, "link", "add", "br0", "type", "bridge")
	ip(t, seg, "link", "set", "br0", "up")
	for _, p := range []struct {
		n      ns.NetNS
		v4, v6 string
	}{{l.a, labA4, labA6}, {l.b, labB4, labB6}, {l.c, labC4, labC6}} {
		ip(t, seg, "link", "add", "port", "type", "veth", "peer", "name", "net1", "netns", filepath.Base(p.n.Path()))
		ip(t, seg, "link", "set", "port", "master", "br0", "up")
		port := "p" + strings.ReplaceAll(p.v4, ".", "")
		ip(t, seg, "link", "set", "port", "name", port)
		ip(t, p.n, "link", "set", "lo", "up")
		ip(t, p.n, "addr", "add", p.v4+"/24", "dev", "net1")
		ip(t, p.n, "addr", "add", p.v6+"/64", "dev", "net1", "nodad")
		ip(t, p.n, "link", "set", "net1", "up")
	}
	ip(t, l.a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", filepath.Base(l.d.Path()))
	ip(t, l.a, "addr", "add", labAeth0+"/24", "dev", "eth0")
	ip(t, l.d, "addr", "add", labDeth0+"/24", "dev", "eth0")
	ip(t, l.a, "link", "set", "eth0", "up")
	ip(t, l.d, "link", "set", "eth0", "up")
	ip(t, l.d, "link", "set", "lo", "up")
	for _, n := range []ns.NetNS{l.a, l.b, l.c} {
		serve(t, n)
	}
	return l
}

// serve answers on every address of n, TCP and UDP, on labPorts: a TCP
// connection is accepted and closed, a UDP datagram is echoed.
func serve(t *testing.T, n ns.NetNS) {
	for _, port := range strings.Fields(labPorts) {
		for _, fam := range []string{"4", "6"} {
			var tl net.Listener
			var ul net.PacketConn
			err := n.Do(func(ns.NetNS) error {
				var err error
				if tl, err = net.Listen("tcp"+fam, ":"+port); err != nil {
					return err
				}
				ul, err = net.ListenPacket("udp"+fam, ":"+port)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tl.Close(); ul.Close() })
			go func() {
				for {
					c, err := tl.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			go func() {
				buf := make([]byte, 64)
				for {
					k, from, err := ul.ReadFrom(buf)
					if err != nil {
						return
					}
					_, _ = ul.WriteTo(buf[:k], from)
				}
			}()
		}
	}
}

// probeTimeout bounds a probe: allowed traffic between netns on one host
// answers in well under a millisecond; a dropped one never does.
const probeTimeout = 700 * time.Millisecond

// reach reports whether from reaches addr:port over proto ("tcp" or
// "udp"; a UDP echo must come back).
func reach(t *testing.T, from ns.NetNS, proto, addr string, port int) bool {
	t.Helper()
	ok := false
	err := from.Do(func(ns.NetNS) error {
		c, err := net.DialTimeout(proto, net.JoinHostPort(addr, fmt.Sprint(port)), probeTimeout)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EPERM) {
				return nil // dropped (EPERM: by an output hook in this netns)
			}
			return err
		}
		defer c.Close()
		if proto == "tcp" {
			ok = true
			return nil
		}
		_ = c.SetDeadline(time.Now().Add(probeTimeout))
		if _, err := c.Write([]byte("x")); errors.Is(err, syscall.EPERM) {
			return nil
		} else if err != nil {
			return err
		}
		buf := make([]byte, 8)
		_, err = c.Read(buf)
		ok = err == nil
		return nil
	})
	if err != nil {
		t.Fatalf("probe %s %s:%d: %v", proto, addr, port, err)
	}
	return ok
}

// probe is one connection attempt and whether policy allows it.
type probe struct {
	from  string // a, b, c, d
	proto string
	to    string // address
	port  int
	allow bool
}

func (l *lab) ns(name string) ns.NetNS {
	return map[string]ns.NetNS{"a": l.a, "b": l.b, "c": l.c, "d": l.d}[name]
}

var testNAD = NAD{Namespace: "ns1", Name: "lan"}

// labIndex is the NAD's address index: b (app=b, ns1) and c (app=c, ns2).
func labIndex() Index {
	return Index{
		Peers: map[NAD][]Peer{testNAD: {
			{Namespace: "ns1", Name: "a", Labels: map[string]string{"app": "a"},
				IPs: []netip.Addr{netip.MustParseAddr(labA4), netip.MustParseAddr(labA6)}},
			{Namespace: "ns1", Name: "b", Labels: map[string]string{"app": "b"},
				IPs:   []netip.Addr{netip.MustParseAddr(labB4), netip.MustParseAddr(labB6)},
				Ports: []NamedPort{{Name: "web", Port: 9001}}},
			{Namespace: "ns2", Name: "c", Labels: map[string]string{"app": "c"},
				IPs: []netip.Addr{netip.MustParseAddr(labC4), netip.MustParseAddr(labC6)}},
		}},
		Namespaces: map[string]map[string]string{"ns1": {"team": "x"}, "ns2": {"team": "y"}},
	}
}

func labPod() Pod {
	return Pod{Namespace: "ns1", Name: "a", Labels: map[string]string{"app": "a"},
		Ports:       []NamedPort{{Name: "http", Port: 8081}},
		Attachments: []Attachment{{NAD: testNAD, Interface: "net1"}}}
}

func policy(spec mnp.MultiNetworkPolicySpec) *mnp.MultiNetworkPolicy {
	return &mnp.MultiNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "p",
			Annotations: map[string]string{PolicyForAnnotation: "lan"}},
		Spec: spec,
	}
}

func tcpPort(p int) mnp.MultiNetworkPolicyPort {
	v := intstr.FromInt32(int32(p))
	return mnp.MultiNetworkPolicyPort{Port: &v}
}

func proto(p corev1.Protocol, port mnp.MultiNetworkPolicyPort) mnp.MultiNetworkPolicyPort {
	port.Protocol = &p
	return port
}

// TestApplyTruthTable applies compiled policies in real netns and checks
// real TCP and UDP traffic. Every case first checks that, without the
// table, each of its probes passes (so every denial the case expects
// is one the enforcement makes: with enforcement off the case fails).
func TestApplyTruthTable(t *testing.T) {
	l := newLab(t)
	end := int32(9000)
	named := intstr.FromString("http")
	namedEgress := intstr.FromString("web")
	for _, tc := range []struct {
		name   string
		spec   mnp.MultiNetworkPolicySpec
		probes []probe
	}{
		{
			name: "default deny ingress; eth0 untouched; egress open",
			spec: mnp.MultiNetworkPolicySpec{},
			probes: []probe{
				{"b", "tcp", labA4, 8080, false},
				{"c", "udp", labA4, 8080, false},
				{"b", "tcp", labA6, 8080, false},
				{"d", "tcp", labAeth0, 8080, true},
				{"a", "tcp", labB4, 8080, true},
			},
		},
		{
			name: "ingress from a podSelector peer, both families",
			spec: mnp.MultiNetworkPolicySpec{Ingress: []mnp.MultiNetworkPolicyIngressRule{{
				From: []mnp.MultiNetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "b"}}}},
			}}},
			probes: []probe{
				{"b", "tcp", labA4, 8080, true},
				{"b", "udp", labA6, 8080, true},
				{"c", "tcp", labA4, 8080, false},
				{"c", "tcp", labA6, 8080, false},
			},
		},
		{
			name: "namespaceSelector selects c's namespace",
			spec: mnp.MultiNetworkPolicySpec{Ingress: []mnp.MultiNetworkPolicyIngressRule{{
				From: []mnp.MultiNetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "y"}}}},
			}}},
			probes: []probe{
				{"c", "tcp", labA4, 8080, true},
				{"b", "tcp", labA4, 8080, false},
			},
		},
		{
			name: "ipBlock with except",
			spec: mnp.MultiNetworkPolicySpec{Ingress: []mnp.MultiNetworkPolicyIngressRule{{
				From: []mnp.MultiNetworkPolicyPeer{
					{IPBlock: &mnp.IPBlock{CIDR: "10.66.0.0/24", Except: []string{labC4 + "/32"}}},
					{IPBlock: &mnp.IPBlock{CIDR: "fd66::/64", Except: []string{"fd66::2/128"}}},
				},
			}}},
			probes: []probe{
				{"b", "tcp", labA4, 8080, true},
				{"c", "tcp", labA4, 8080, false},
				{"c", "tcp", labA6, 8080, true},
				{"b", "tcp", labA6, 8080, false},
			},
		},
		{
			name: "ports: TCP port + endPort, UDP port, named port",
			spec: mnp.MultiNetworkPolicySpec{Ingress: []mnp.MultiNetworkPolicyIngressRule{{
				Ports: []mnp.MultiNetworkPolicyPort{
					func() mnp.MultiNetworkPolicyPort { p := tcpPort(8080); p.EndPort = &end; return p }(),
					proto(corev1.ProtocolUDP, tcpPort(9001)),
				},
			}, {
				Ports: []mnp.MultiNetworkPolicyPort{{Port: &named}},
			}}},
			probes: []probe{
				{"b", "tcp", labA4, 8080, true},
				{"b", "tcp", labA6, 9000, true},
				{"b", "tcp", labA4, 9001, false},
				{"b", "udp", labA4, 9001, true},
				{"b", "udp", labA4, 8080, false},
			},
		},
		{
			name: "egress to a peer's named port; ingress not isolated",
			spec: mnp.MultiNetworkPolicySpec{
				PolicyTypes: []mnp.MultiPolicyType{mnp.PolicyTypeEgress},
				Egress: []mnp.MultiNetworkPolicyEgressRule{{
					Ports: []mnp.MultiNetworkPolicyPort{{Port: &namedEgress}},
					To:    []mnp.MultiNetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}},
				}},
			},
			probes: []probe{
				{"a", "tcp", labB4, 9001, true},
				{"a", "tcp", labB6, 9001, true},
				{"a", "tcp", labB4, 8080, false},
				{"a", "udp", labB4, 9001, false},
				{"a", "tcp", labC4, 9001, false},
				{"b", "tcp", labA4, 8080, true},
				{"d", "tcp", labAeth0, 8080, true},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if err := Apply(ctx, l.a.Path(), Plan{}); err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.probes {
				if !reach(t, l.ns(p.from), p.proto, p.to, p.port) {
					t.Fatalf("without enforcement, %s → %s %s:%d does not pass: the lab is broken", p.from, p.proto, p.to, p.port)
				}
			}
			plan := Compile([]*mnp.MultiNetworkPolicy{policy(tc.spec)}, labPod(), labIndex())
			if len(plan.Errors) > 0 {
				t.Fatal(plan.Errors)
			}
			if err := Apply(ctx, l.a.Path(), plan); err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.probes {
				if got := reach(t, l.ns(p.from), p.proto, p.to, p.port); got != p.allow {
					dump, _ := Dump(ctx, l.a.Path())
					t.Errorf("%s → %s %s:%d passes=%v, want %v\n%s", p.from, p.proto, p.to, p.port, got, p.allow, dump)
				}
			}
		})
	}
}
