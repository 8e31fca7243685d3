package cni

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/plexus-cni/plexus/pkg/sriov/pf"
	"github.com/plexus-cni/plexus/pkg/testutil"
)

// upstreamCacheFixture is what k8snetworkplumbingwg/sriov-cni (v2.8+) saves
// at <dataDir>/<containerID>-<ifname> after an ADD with fullSettings: its
// NetConf, the keys of types.NetConf and SriovNetConf merged, with the VF's
// original state in OrigVfState. Written by hand from sriov-cni's
// pkg/types/types.go and pkg/utils/utils.go (SaveNetConf).
const upstreamCacheFixture = `{"cniVersion":"1.0.0","name":"sriovnet","type":"sriov",
 "ipam":{"type":"host-local","dataDir":%[6]q,"ranges":[[{"subnet":"10.56.217.0/24"}]]},
 "OrigVfState":{"HostIFName":%[1]q,"SpoofChk":true,"Trust":false,"AdminMAC":%[2]q,"EffectiveMAC":%[3]q,
  "Vlan":0,"VlanQoS":0,"VlanProto":33024,"MinTxRate":0,"MaxTxRate":0,"LinkState":0,"MTU":%[7]d},
 "Master":%[4]q,"MAC":"02:aa:bb:cc:dd:01","MTU":9000,"vlan":100,"vlanQoS":3,"vlanProto":"802.1ad",
 "deviceID":%[5]q,"VFID":%[8]d,"min_tx_rate":10,"max_tx_rate":500,"spoofchk":"off","trust":"on",
 "link_state":"enable","runtimeConfig":{"mac":"02:aa:bb:cc:dd:01"},"logLevel":"","logFile":""}`

// upstreamAdd does to the VF what sriov-cni's ADD does and leaves its cache
// file and PCI allocation file behind, as a node switching to plexus has them.
func (f *fixture) upstreamAdd(t *testing.T, vfIdx int, podNS ns.NetNS, cid, ifName string) (cache, alloc string) {
	t.Helper()
	vf := f.vfs[vfIdx]
	o := f.orig[vf.Addr]
	origPF := f.rec.State(f.pfName, vf.Index)
	for _, err := range []error{
		f.rec.LinkSetVfVlanQosProto(f.pfName, vf.Index, 100, 3, pf.VlanProto8021AD),
		f.rec.LinkSetVfHardwareAddr(f.pfName, vf.Index, net.HardwareAddr{2, 0xaa, 0xbb, 0xcc, 0xdd, 1}),
		f.rec.LinkSetVfRate(f.pfName, vf.Index, 10, 500),
		f.rec.LinkSetVfSpoofchk(f.pfName, vf.Index, false),
		f.rec.LinkSetVfTrust(f.pfName, vf.Index, true),
		f.rec.LinkSetVfState(f.pfName, vf.Index, pf.LinkStateEnable),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	l, err := netlinksafe.LinkByName(vf.Netdev)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetNsFd(l, int(podNS.Fd())); err != nil {
		t.Fatal(err)
	}
	err = podNS.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(vf.Netdev)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetName(l, ifName); err != nil {
			return err
		}
		if err := netlink.LinkSetHardwareAddr(l, net.HardwareAddr{2, 0xaa, 0xbb, 0xcc, 0xdd, 1}); err != nil {
			return err
		}
		if err := netlink.LinkSetMTU(l, 9000); err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	})
	if err != nil {
		t.Fatal(err)
	}
	cache = filepath.Join(f.dataDir, cid+"-"+ifName)
	body := fmt.Sprintf(upstreamCacheFixture, o.Name, origPF.MAC, o.MAC, f.pfName, vf.Addr, f.ipamDir, o.MTU, vf.Index)
	if err := os.WriteFile(cache, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	alloc = filepath.Join(f.dataDir, "pci", vf.Addr)
	if err := os.MkdirAll(filepath.Dir(alloc), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alloc, []byte(podNS.Path()), 0o600); err != nil {
		t.Fatal(err)
	}
	return cache, alloc
}

// DEL of an attachment sriov-cni made (no plexus state, its cache file
// present) restores the VF from that file: PF-side settings, the netdev
// home under its original name with its MAC and MTU, and removes the file.
func TestDelRestoresUpstreamAttachment(t *testing.T) {
	for _, withDeviceID := range []bool{true, false} {
		t.Run(fmt.Sprintf("deviceID=%v", withDeviceID), func(t *testing.T) {
			f := newFixture(t, 2, "")
			vf := f.vfs[1]
			podNS := testutil.NewNS(t)
			cache, alloc := f.upstreamAdd(t, 1, podNS, "upstream-ctr", "net1")
			f.rec.Reset()

			dev := ""
			if withDeviceID {
				dev = vf.Addr
			}
			// The NAD as the runtime passes it on DEL (same config as ADD).
			conf := f.conf("1.0.0", dev, fullSettings)
			if err := f.p.Del(args(podNS, "upstream-ctr", "net1", conf)); err != nil {
				t.Fatalf("DEL of a sriov-cni attachment: %v", err)
			}
			f.assertVFHome(t, vf)
			if got := linksIn(t, podNS); len(got) != 0 {
				t.Errorf("pod still has %v", got)
			}
			var ops []string
			for _, c := range f.rec.Calls() {
				if c.PF != f.pfName || c.VF != vf.Index {
					t.Errorf("call on the wrong VF: %v", c)
				}
				ops = append(ops, c.String())
			}
			want := []string{
				fmt.Sprintf("LinkSetVfVlanQosProto %s vf 1 vlan 0 qos 0 proto 0x8100", f.pfName),
				fmt.Sprintf("LinkSetVfSpoofchk %s vf 1 true", f.pfName),
				fmt.Sprintf("LinkSetVfHardwareAddr %s vf 1 mac 02:11:22:33:44:01", f.pfName),
				fmt.Sprintf("LinkSetVfTrust %s vf 1 false", f.pfName),
				fmt.Sprintf("LinkSetVfRate %s vf 1 min 0 max 0", f.pfName),
				fmt.Sprintf("LinkSetVfState %s vf 1 state 0", f.pfName),
			}
			if strings.Join(ops, "\n") != strings.Join(want, "\n") {
				t.Errorf("PF calls\n%s\nwant\n%s", strings.Join(ops, "\n"), strings.Join(want, "\n"))
			}
			for _, p := range []string{cache, alloc} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Errorf("%s left behind (%v)", p, err)
				}
			}
			// DEL again: nothing left to do.
			f.rec.Reset()
			if err := f.p.Del(args(podNS, "upstream-ctr", "net1", conf)); err != nil {
				t.Fatalf("second DEL: %v", err)
			}
			if n := len(f.rec.Calls()); n != 0 {
				t.Errorf("second DEL made PF calls: %v", f.rec.Calls())
			}
		})
	}
}

// Only what sriov-cni changed is restored: a NAD without vlan, trust, rates
// or link_state leaves those alone (some drivers refuse them).
func TestDelUpstreamRestoresOnlyWhatWasSet(t *testing.T) {
	f := newFixture(t, 1, "")
	vf := f.vfs[0]
	podNS := testutil.NewNS(t)
	o := f.orig[vf.Addr]
	l, err := netlinksafe.LinkByName(vf.Netdev)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetNsFd(l, int(podNS.Fd())); err != nil {
		t.Fatal(err)
	}
	if err := podNS.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(vf.Netdev)
		if err != nil {
			return err
		}
		return netlink.LinkSetName(l, "eth1")
	}); err != nil {
		t.Fatal(err)
	}
	// sriov-cni v2.7 format: no Trust, no VlanProto, no MTU in OrigVfState.
	body := fmt.Sprintf(`{"cniVersion":"0.3.1","name":"old","type":"sriov","OrigVfState":{"HostIFName":%q,"SpoofChk":true,
		"AdminMAC":"02:11:22:33:44:00","EffectiveMAC":%q,"Vlan":0,"VlanQoS":0,"MinTxRate":0,"MaxTxRate":0,"LinkState":0},
		"DPDKMode":false,"Master":%q,"MAC":"","vlan":null,"vlanQoS":null,"deviceID":%q,"VFID":0,"ContIFNames":"eth1",
		"min_tx_rate":null,"max_tx_rate":null,"spoofchk":"on","runtimeConfig":{}}`, o.Name, o.MAC, f.pfName, vf.Addr)
	cache := filepath.Join(f.dataDir, "old-ctr-eth1")
	if err := os.WriteFile(cache, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := []byte(fmt.Sprintf(`{"cniVersion":"0.3.1","name":"old","type":"sriov","dataDir":%q,"spoofchk":"on"}`, f.dataDir))
	if err := f.p.Del(args(podNS, "old-ctr", "eth1", conf)); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, c := range f.rec.Calls() {
		ops = append(ops, c.Op)
	}
	if got := strings.Join(ops, " "); got != "LinkSetVfSpoofchk LinkSetVfHardwareAddr" {
		t.Errorf("PF calls %q, want spoofchk and admin MAC only", got)
	}
	f.assertVFHome(t, vf)
	if _, err := os.Stat(cache); !os.IsNotExist(err) {
		t.Errorf("cache file left (%v)", err)
	}
}
