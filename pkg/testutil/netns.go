package testutil

import (
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/plexus-cni/plexus/pkg/cache"
)

// CachedNetns is the netns path plexus recorded in its cache (cacheDir)
// for the sandbox of pod (by name); the test fails when there is none.
func CachedNetns(t testing.TB, cacheDir, pod string) string {
	t.Helper()
	st := cache.Store{Dir: cacheDir}
	ids, _ := st.List()
	for _, id := range ids {
		if e, err := st.Load(id); err == nil && e != nil && e.PodName == pod {
			return e.NetNS
		}
	}
	t.Fatalf("no plexus cache entry for pod %s", pod)
	return ""
}

// NetnsIPv4 lists the interfaces of a network namespace (but lo) with
// their IPv4 addresses.
func NetnsIPv4(t testing.TB, netnsPath string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	n, err := ns.GetNS(netnsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.Do(func(ns.NetNS) error {
		links, _ := netlinksafe.LinkList()
		for _, l := range links {
			if l.Attrs().Name == "lo" {
				continue
			}
			addrs, _ := netlinksafe.AddrList(l, netlink.FAMILY_V4)
			var ips []string
			for _, a := range addrs {
				ips = append(ips, a.IP.String())
			}
			out[l.Attrs().Name] = ips
		}
		return nil
	})
	return out
}
