package deviceplugin

import (
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

// pfVeth makes, in a fresh netns, a veth whose end is named like the fake
// PF netdev, both ends up; it stands in for the PF's link.
func pfVeth(t testing.TB, name string) ns.NetNS {
	t.Helper()
	n := testutil.NewNS(t)
	err := n.Do(func(ns.NetNS) error {
		la := netlink.NewLinkAttrs()
		la.Name = name
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: name + "p"}); err != nil {
			return err
		}
		for _, l := range []string{name, name + "p"} {
			if err := setLink(l, true); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("veth %s: %v", name, err)
	}
	return n
}

func setLink(name string, up bool) error {
	l, err := netlinksafe.LinkByName(name)
	if err != nil {
		return err
	}
	if up {
		return netlink.LinkSetUp(l)
	}
	return netlink.LinkSetDown(l)
}

func setLinkIn(t testing.TB, n ns.NetNS, name string, up bool) {
	t.Helper()
	if err := n.Do(func(ns.NetNS) error { return setLink(name, up) }); err != nil {
		t.Fatal(err)
	}
}

// healthOf summarises a list as "prefix:health" per PF bus (3c = ens1f0).
func healthOf(devs []*pluginapi.Device, bus string) (healthy, unhealthy int) {
	for _, d := range devs {
		if !strings.HasPrefix(d.ID, "0000:"+bus) {
			continue
		}
		if d.Health == pluginapi.Healthy {
			healthy++
		} else {
			unhealthy++
		}
	}
	return
}

func TestHealthFollowsPFLink(t *testing.T) {
	n := pfVeth(t, "ens1f0")
	e := newTestEnv(t, twoPools, NetlinkMonitor{NetNS: n.Path()})
	p := e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 1, 5*time.Second)
	state := func(wantEns1f0Healthy bool) func([]*pluginapi.Device) bool {
		return func(d []*pluginapi.Device) bool {
			h0, u0 := healthOf(d, "3c")
			h1, u1 := healthOf(d, "3d")
			if h1 != 4 || u1 != 0 {
				return false // ens1f1's VFs are never touched
			}
			if wantEns1f0Healthy {
				return h0 == 4 && u0 == 0
			}
			return h0 == 0 && u0 == 4
		}
	}
	p.WaitDevices(t, 5*time.Second, state(true))

	setLinkIn(t, n, "ens1f0", false)
	p.WaitDevices(t, time.Second, state(false))
	setLinkIn(t, n, "ens1f0", true)
	p.WaitDevices(t, time.Second, state(true))

	// Carrier loss (the peer going down) counts as down too.
	setLinkIn(t, n, "ens1f0p", false)
	p.WaitDevices(t, time.Second, state(false))
	setLinkIn(t, n, "ens1f0p", true)
	p.WaitDevices(t, time.Second, state(true))

	// The netdev disappearing makes its VFs unhealthy.
	if err := n.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName("ens1f0")
		if err != nil {
			return err
		}
		return netlink.LinkDel(l)
	}); err != nil {
		t.Fatal(err)
	}
	p.WaitDevices(t, time.Second, state(false))
}

// Without a link monitor, the sysfs operstate at discovery decides.
func TestHealthFromSysfs(t *testing.T) {
	e := newTestEnv(t, twoPools, nil)
	if err := e.tr.SetOperState("0000:3b:00.1", "ens1f1", "down"); err != nil {
		t.Fatal(err)
	}
	p := e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 1, 5*time.Second)
	if err := e.m.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	p.WaitDevices(t, 2*time.Second, func(d []*pluginapi.Device) bool {
		h0, _ := healthOf(d, "3c")
		h1, u1 := healthOf(d, "3d")
		return h0 == 4 && h1 == 0 && u1 == 4
	})
}
