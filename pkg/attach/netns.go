package attach

import (
	"fmt"
	"net"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// checkInterfacesFree fails when an interface name plexus is about to
// create already exists in the pod's network namespace.
func checkInterfacesFree(netnsPath string, atts []podnet.Attachment) error {
	if netnsPath == "" {
		return fmt.Errorf("CNI_NETNS is empty")
	}
	// One dump of the namespace's links, not one per attachment:
	// net.InterfaceByName dumps them all on every call, which made this
	// check grow with the number of attachments (issue 23; 1+8
	// attachments: 0.75-1.2 ms before, 0.13 ms now).
	return ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		ifs, err := net.Interfaces()
		if err != nil {
			return fmt.Errorf("listing the pod's interfaces: %v", err)
		}
		taken := make(map[string]bool, len(ifs))
		for _, i := range ifs {
			taken[i.Name] = true
		}
		for _, a := range atts {
			if taken[a.IfName] {
				return podnet.WithNetwork(a.Network, fmt.Errorf("network %q: interface %q already exists in the pod's network namespace", a.Network, a.IfName))
			}
		}
		return nil
	})
}

// applyDefaultRoutes moves the pod's default route of each IP family to the
// interface whose selection asked for it with "default-route".
func applyDefaultRoutes(entry *podnet.Entry) error {
	var want []podnet.Attachment
	for _, a := range entry.Attachments {
		if len(a.Gateways) > 0 {
			want = append(want, a)
		}
	}
	if len(want) == 0 {
		return nil
	}
	return ns.WithNetNSPath(entry.NetNS, func(ns.NetNS) error {
		for _, a := range want {
			link, err := netlinksafe.LinkByName(a.IfName)
			if err != nil {
				return podnet.WithNetwork(a.Network, fmt.Errorf("network %q: default-route: %v", a.Network, err))
			}
			for _, g := range a.Gateways {
				gw := net.ParseIP(g)
				family := netlink.FAMILY_V6
				if gw.To4() != nil {
					family = netlink.FAMILY_V4
				}
				routes, err := netlinksafe.RouteListFiltered(family, &netlink.Route{Table: 254}, netlink.RT_FILTER_TABLE)
				if err != nil {
					return podnet.WithNetwork(a.Network, fmt.Errorf("network %q: default-route: listing routes: %v", a.Network, err))
				}
				for _, r := range routes {
					if r.Dst == nil || isDefault(r.Dst) {
						rr := r
						if err := netlink.RouteDel(&rr); err != nil {
							return podnet.WithNetwork(a.Network, fmt.Errorf("network %q: default-route: removing old default route: %v", a.Network, err))
						}
					}
				}
				if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw}); err != nil {
					return podnet.WithNetwork(a.Network, fmt.Errorf("network %q: default-route via %s dev %s: %v", a.Network, g, a.IfName, err))
				}
			}
		}
		return nil
	})
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}

// verifyRequests checks, in the pod's network namespace, that every
// interface got the IPs and MAC its selection asked for. Multus passes the
// requests on and hopes; a delegate that declares no "ips" or "mac"
// capability and does not read CNI_ARGS IP=/MAC= would silently ignore them,
// so plexus fails the ADD instead, naming the capability to declare.
func verifyRequests(entry *podnet.Entry) error {
	var want []*podnet.Attachment
	for i := range entry.Attachments {
		if a := &entry.Attachments[i]; len(a.WantIPs) > 0 || a.WantMAC != "" {
			want = append(want, a)
		}
	}
	if len(want) == 0 {
		return nil
	}
	return ns.WithNetNSPath(entry.NetNS, func(ns.NetNS) error {
		for _, a := range want {
			link, err := netlinksafe.LinkByName(a.IfName)
			if err != nil {
				return podnet.AttachError(a.Network, a.IfName, fmt.Errorf("checking requested ips/mac: %v", err))
			}
			if a.WantMAC != "" {
				got := link.Attrs().HardwareAddr.String()
				if mac, err := net.ParseMAC(a.WantMAC); err != nil || got != mac.String() {
					return podnet.AttachError(a.Network, a.IfName, fmt.Errorf("field \"mac\": requested %s but the interface has %s; declare \"capabilities\": {\"mac\": true} in a plugin that sets it (e.g. tuning)", a.WantMAC, got))
				}
			}
			if len(a.WantIPs) == 0 {
				continue
			}
			addrs, err := netlinksafe.AddrList(link, netlink.FAMILY_ALL)
			if err != nil {
				return podnet.AttachError(a.Network, a.IfName, fmt.Errorf("checking requested ips: %v", err))
			}
			for _, w := range a.WantIPs {
				ip := net.ParseIP(w)
				if ip == nil {
					ip, _, _ = net.ParseCIDR(w)
				}
				found := false
				for _, ad := range addrs {
					if ad.IP.Equal(ip) {
						found = true
						break
					}
				}
				if !found {
					return podnet.AttachError(a.Network, a.IfName, fmt.Errorf("field \"ips\": requested %s but the interface does not have it; declare \"capabilities\": {\"ips\": true} in an IPAM-using plugin (e.g. with \"ipam\": {\"type\": \"static\"})", w))
				}
			}
		}
		return nil
	})
}
