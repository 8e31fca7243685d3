package netlinkuser

import (
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	nl "github.com/vishvananda/netlink"
)

func raw() {
	links, _ := netlink.LinkList()                           // want `netlink.LinkList: an interrupted dump returns partial results; use netlinksafe.LinkList`
	l, _ := nl.LinkByName("eth0")                            // want `netlink.LinkByName: .*use netlinksafe.LinkByName`
	_, _ = netlink.AddrList(l, netlink.FAMILY_ALL)           // want `netlink.AddrList`
	_, _ = netlink.RouteListFiltered(0, &netlink.Route{}, 0) // want `netlink.RouteListFiltered`
	f := netlink.LinkList                                    // want `netlink.LinkList`
	_ = f
	var h netlink.Handle
	_, _ = h.LinkList() // want `\(\*netlink.Handle\).LinkList`
	_ = links
}

func fine() {
	_, _ = netlinksafe.LinkList()
	l, _ := netlinksafe.LinkByName("eth0")
	_ = netlink.LinkSetUp(l)
	_, _ = netlink.LinkByIndex(1) // not a dump; netlinksafe has no wrapper
	var h netlink.Handle
	_, _ = h.LinkByIndex(1)
}
