// Package netlinksafe is a stand-in: the one package that may call the raw
// dumps, to retry them.
package netlinksafe

import "github.com/vishvananda/netlink"

func LinkList() ([]netlink.Link, error) { return netlink.LinkList() }

func LinkByName(n string) (netlink.Link, error) { return netlink.LinkByName(n) }
