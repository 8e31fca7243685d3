package netpol

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"
)

// render runs Render's transaction on fake and returns its dump.
func render(t *testing.T, fake *knftables.Fake, plan Plan) string {
	t.Helper()
	tx := fake.NewTransaction()
	if err := Render(tx, plan); err != nil {
		t.Fatal(err)
	}
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatalf("%v\n%s", err, tx)
	}
	return fake.Dump()
}

var renderPlan = Plan{Interfaces: []Interface{
	{Name: "net1", NAD: testNAD, Policies: []string{"ns1/p", "ns1/q"},
		Ingress: &Direction{Rules: []Rule{
			{Peers: set("10.0.0.0-10.0.255.255", "10.2.0.1", "fd00::1"), Ports: []Port{
				{Protocol: corev1.ProtocolTCP, From: 80, To: 80}, {Protocol: corev1.ProtocolTCP, From: 79, To: 85},
				{Protocol: corev1.ProtocolTCP, From: 443, To: 443},
				{Protocol: corev1.ProtocolUDP, From: 53, To: 53}, {Protocol: corev1.ProtocolSCTP}}},
			{AnyPeer: true, Ports: []Port{{Protocol: corev1.ProtocolUDP, From: 5000, To: 5100}}},
			{Peers: AddrSet{}}, // matched nothing: no rule
		}}},
	{Name: "net2", NAD: NAD{"ns1", "other"}, Policies: []string{"ns1/" + strings.Repeat("x", 200)}, Egress: &Direction{Rules: []Rule{{Peers: set("fd00::2")}}}},
}}

func TestRender(t *testing.T) {
	fake := knftables.NewFake(knftables.InetFamily, TableName)
	got := render(t, fake, renderPlan)
	want := `
add table inet plexus { comment "MultiNetworkPolicy of secondary interfaces, owned by plexusd" ; }
add chain inet plexus egress { type filter hook output priority 0 ; policy accept ; }
add chain inet plexus in-0 { comment "net1 ns1/lan: ns1/p, ns1/q" ; }
add chain inet plexus ingress { type filter hook input priority 0 ; policy accept ; }
add chain inet plexus out-1 { comment "net2 ns1/other: ns1/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..." ; }
add set inet plexus in-0-0-v4 { type ipv4_addr ; flags interval ; }
add set inet plexus in-0-0-v6 { type ipv6_addr ; flags interval ; }
add set inet plexus out-1-0-v6 { type ipv6_addr ; flags interval ; }
add rule inet plexus egress oifname vmap { "net2" : jump out-1 }
add rule inet plexus in-0 ct state established,related accept
add rule inet plexus in-0 icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } accept
add rule inet plexus in-0 udp sport 67 udp dport 68 accept
add rule inet plexus in-0 udp sport 547 udp dport 546 accept
add rule inet plexus in-0 ip saddr @in-0-0-v4 meta l4proto tcp th dport { 79-85, 443 } accept
add rule inet plexus in-0 ip saddr @in-0-0-v4 meta l4proto udp th dport { 53 } accept
add rule inet plexus in-0 ip saddr @in-0-0-v4 meta l4proto sctp accept
add rule inet plexus in-0 ip6 saddr @in-0-0-v6 meta l4proto tcp th dport { 79-85, 443 } accept
add rule inet plexus in-0 ip6 saddr @in-0-0-v6 meta l4proto udp th dport { 53 } accept
add rule inet plexus in-0 ip6 saddr @in-0-0-v6 meta l4proto sctp accept
add rule inet plexus in-0 meta l4proto udp th dport { 5000-5100 } accept
add rule inet plexus in-0 drop
add rule inet plexus ingress iifname vmap { "net1" : jump in-0 }
add rule inet plexus out-1 ct state established,related accept
add rule inet plexus out-1 icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } accept
add rule inet plexus out-1 udp sport 68 udp dport 67 accept
add rule inet plexus out-1 udp sport 546 udp dport 547 accept
add rule inet plexus out-1 ip6 daddr @out-1-0-v6 accept
add rule inet plexus out-1 drop
add element inet plexus in-0-0-v4 { 10.0.0.0-10.0.255.255 }
add element inet plexus in-0-0-v4 { 10.2.0.1 }
add element inet plexus in-0-0-v6 { fd00::1 }
add element inet plexus out-1-0-v6 { fd00::2 }
`
	if strings.TrimSpace(got) != strings.TrimSpace(want) {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// From scratch: the same plan again gives the same table, an
	// unselected interface's chain and sets go, an empty plan leaves none.
	if again := render(t, fake, renderPlan); again != got {
		t.Errorf("rendering twice differs:\n%s", again)
	}
	one := Plan{Interfaces: renderPlan.Interfaces[1:]}
	if got := render(t, fake, one); strings.Contains(got, "in-0") || strings.Contains(got, "net1") {
		t.Errorf("net1 left behind:\n%s", got)
	}
	if got := render(t, fake, Plan{}); strings.TrimSpace(got) != "" {
		t.Errorf("empty plan left:\n%s", got)
	}
}

// TestRenderRefusesOddNames: an interface name is written into nft
// syntax; one that is not a plain name is refused, nothing is written.
func TestRenderRefusesOddNames(t *testing.T) {
	for _, name := range []string{`net1" : accept, "x`, "", "a-very-long-interface"} {
		tx := knftables.NewFake(knftables.InetFamily, TableName).NewTransaction()
		err := Render(tx, Plan{Interfaces: []Interface{{Name: name, NAD: testNAD, Ingress: &Direction{}}}})
		if err == nil || !strings.HasPrefix(err.Error(), "network ns1/lan: interface name") {
			t.Errorf("%q: err %v", name, err)
		}
		if tx.NumOperations() != 0 {
			t.Errorf("%q: %d operations", name, tx.NumOperations())
		}
	}
}
