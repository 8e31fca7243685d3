package netpol

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"
)

// TableName is the table plexus owns in each pod's netns (family inet).
const TableName = "plexus"

// ifnameRE is what Render accepts as an interface name (IFNAMSIZ-1 bytes
// of a conservative alphabet): the name is written into nft syntax.
var ifnameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// Render fills tx with the whole table for plan, from scratch: the table
// is created if missing, deleted and written again, in one transaction
// (nft applies it atomically: the old rules filter until the new ones
// do). An empty plan leaves no table. Interfaces not in the plan (eth0,
// interfaces of NADs no policy is for) are not matched by any rule.
func Render(tx *knftables.Transaction, plan Plan) error {
	for _, ifc := range plan.Interfaces {
		if !ifnameRE.MatchString(ifc.Name) {
			return fmt.Errorf("network %s: interface name %q: not a name plexus filters", ifc.NAD, ifc.Name)
		}
	}
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	if len(plan.Interfaces) == 0 {
		return nil
	}
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("MultiNetworkPolicy of secondary interfaces, owned by plexusd")})
	var inMap, outMap []string
	for i, ifc := range plan.Interfaces {
		comment := chainComment(ifc)
		if ifc.Ingress != nil {
			chain := fmt.Sprintf("in-%d", i)
			inMap = append(inMap, fmt.Sprintf("%q : jump %s", ifc.Name, chain))
			renderDirection(tx, chain, comment, ifc.Ingress, true)
		}
		if ifc.Egress != nil {
			chain := fmt.Sprintf("out-%d", i)
			outMap = append(outMap, fmt.Sprintf("%q : jump %s", ifc.Name, chain))
			renderDirection(tx, chain, comment, ifc.Egress, false)
		}
	}
	for _, base := range []struct {
		name string
		hook knftables.BaseChainHook
		key  string
		vmap []string
	}{
		{"ingress", knftables.InputHook, "iifname", inMap},
		{"egress", knftables.OutputHook, "oifname", outMap},
	} {
		if len(base.vmap) == 0 {
			continue
		}
		tx.Add(&knftables.Chain{Name: base.name, Type: knftables.PtrTo(knftables.FilterType),
			Hook: knftables.PtrTo(base.hook), Priority: knftables.PtrTo(knftables.FilterPriority),
			Policy: knftables.PtrTo(knftables.AcceptPolicy)})
		tx.Add(&knftables.Rule{Chain: base.name,
			Rule: base.key + " vmap { " + strings.Join(base.vmap, ", ") + " }"})
	}
	return nil
}

// chainComment names an interface's chain for people reading the table
// (plexusctl policy): the interface, its NAD and the policies selecting
// it, cut to nft's comment length.
func chainComment(ifc Interface) string {
	c := ifc.Name + " " + ifc.NAD.String() + ": " + strings.Join(ifc.Policies, ", ")
	if len(c) > knftables.CommentLengthMax {
		c = c[:knftables.CommentLengthMax-3] + "..."
	}
	return c
}

// ndTypes are the ICMPv6 neighbour discovery messages, which an
// interface needs to have IPv6 neighbours at all.
const ndTypes = "{ nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect }"

// renderDirection writes one interface's chain for a direction: replies,
// neighbour discovery and DHCP pass, then the rules' traffic, then drop.
func renderDirection(tx *knftables.Transaction, chain, comment string, d *Direction, ingress bool) {
	tx.Add(&knftables.Chain{Name: chain, Comment: &comment})
	rule := func(s string) { tx.Add(&knftables.Rule{Chain: chain, Rule: s}) }
	rule("ct state established,related accept")
	rule("icmpv6 type " + ndTypes + " accept")
	if ingress {
		rule("udp sport 67 udp dport 68 accept")
		rule("udp sport 547 udp dport 546 accept")
	} else {
		rule("udp sport 68 udp dport 67 accept")
		rule("udp sport 546 udp dport 547 accept")
	}
	addr := "daddr"
	if ingress {
		addr = "saddr"
	}
	for i, r := range d.Rules {
		var peers []string
		if r.AnyPeer {
			peers = []string{""}
		} else {
			for _, fam := range []struct {
				name, typ, match string
				rs               []Range
			}{
				{"v4", "ipv4_addr", "ip " + addr, r.Peers.V4},
				{"v6", "ipv6_addr", "ip6 " + addr, r.Peers.V6},
			} {
				if len(fam.rs) == 0 {
					continue
				}
				set := fmt.Sprintf("%s-%d-%s", chain, i, fam.name)
				tx.Add(&knftables.Set{Name: set, Type: fam.typ, Flags: []knftables.SetFlag{knftables.IntervalFlag}})
				for _, rg := range fam.rs {
					tx.Add(&knftables.Element{Set: set, Key: []string{rg.String()}})
				}
				peers = append(peers, fam.match+" @"+set+" ")
			}
		}
		for _, p := range peers {
			for _, ports := range portMatches(r.Ports) {
				rule(p + ports + "accept")
			}
		}
	}
	rule("drop")
}

// portMatches are the matches of a rule's ports, one per protocol (""
// when the rule has none: every port and protocol).
func portMatches(ports []Port) []string {
	if len(ports) == 0 {
		return []string{""}
	}
	var out []string
	for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP} {
		var rs []Port
		all := false
		for _, p := range ports {
			if p.Protocol == proto {
				all = all || p.From == 0
				rs = append(rs, p)
			}
		}
		var elems []string
		for _, p := range mergePorts(rs) {
			if p.From == p.To {
				elems = append(elems, fmt.Sprint(p.From))
			} else {
				elems = append(elems, fmt.Sprintf("%d-%d", p.From, p.To))
			}
		}
		l4 := "meta l4proto " + strings.ToLower(string(proto)) + " "
		switch {
		case all:
			out = append(out, l4)
		case len(elems) > 0:
			out = append(out, l4+"th dport { "+strings.Join(elems, ", ")+" } ")
		}
	}
	return out
}

// mergePorts sorts port ranges and merges the overlapping and adjacent
// ones (nft refuses overlapping elements in an interval set).
func mergePorts(ps []Port) []Port {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b Port) int { return int(a.From) - int(b.From) })
	var out []Port
	for _, p := range ps {
		if n := len(out); n > 0 && int(p.From) <= int(out[n-1].To)+1 {
			out[n-1].To = max(out[n-1].To, p.To)
			continue
		}
		out = append(out, p)
	}
	return out
}
