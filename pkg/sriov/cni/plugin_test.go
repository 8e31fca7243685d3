package cni

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	nadutils "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/utils"
	"github.com/vishvananda/netlink"

	"github.com/plexus-cni/plexus/pkg/sriov/pf"
	"github.com/plexus-cni/plexus/pkg/testutil"
)

const fullSettings = `"vlan":100,"vlanQoS":3,"vlanProto":"802.1ad","mac":"02:aa:bb:cc:dd:01","spoofchk":"off","trust":"on",
	"link_state":"enable","min_tx_rate":10,"max_tx_rate":500`

func TestAddCheckDel(t *testing.T) {
	for _, ver := range SupportedVersions {
		t.Run(ver, func(t *testing.T) {
			f := newFixture(t, 2, "")
			f.dual = true
			vf := f.vfs[1]
			podNS := testutil.NewNS(t)
			devinfo := f.devinfo("sriovnet-cid-" + ver + "-net1-device.json")
			conf := f.conf(ver, "", fullSettings+fmt.Sprintf(`,"runtimeConfig":{"deviceID":%q,"CNIDeviceInfoFile":%q}`, vf.Addr, devinfo))
			a := args(podNS, "cid-"+ver, "net1", conf)

			r, err := f.p.Add(a)
			if err != nil {
				t.Fatal(err)
			}
			if r.Version() != ver {
				t.Errorf("result version %s, want %s", r.Version(), ver)
			}
			res := mustCurrent(t, r)
			if len(res.Interfaces) != 1 || res.Interfaces[0].Name != "net1" || res.Interfaces[0].Mac != "02:aa:bb:cc:dd:01" ||
				res.Interfaces[0].Sandbox != podNS.Path() {
				t.Errorf("interfaces %v", res.Interfaces)
			}
			if len(res.IPs) != 2 || res.IPs[0].Address.IP.String() != "10.56.217.2" {
				t.Errorf("IPs %v", res.IPs)
			}
			// The VF is gone from the host and is net1 in the pod, up, with MAC and addresses.
			if _, err := netlinksafe.LinkByName(vf.Netdev); err == nil {
				t.Errorf("%s still in host netns", vf.Netdev)
			}
			err = podNS.Do(func(ns.NetNS) error {
				l, err := netlinksafe.LinkByName("net1")
				if err != nil {
					return err
				}
				if l.Attrs().HardwareAddr.String() != "02:aa:bb:cc:dd:01" || l.Attrs().Flags&1 == 0 {
					return fmt.Errorf("net1 mac %s flags %v", l.Attrs().HardwareAddr, l.Attrs().Flags)
				}
				addrs, err := netlinksafe.AddrList(l, netlink.FAMILY_ALL)
				if err != nil {
					return err
				}
				var got []string
				for _, a := range addrs {
					got = append(got, a.IPNet.String())
				}
				if !containsAll(strings.Join(got, " "), "10.56.217.2/24", "fd00:56:217::2/64") {
					return fmt.Errorf("net1 addresses %v", got)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			wantPF := pf.VFState{MAC: "02:aa:bb:cc:dd:01", Vlan: 100, Qos: 3, VlanProto: pf.VlanProto8021AD, Spoofchk: false,
				Trust: true, LinkState: pf.LinkStateEnable, MinTxRate: 10, MaxTxRate: 500}
			if got := f.rec.State(f.pfName, vf.Index); got != wantPF {
				t.Errorf("PF-side state %+v, want %+v", got, wantPF)
			}
			if got := f.rec.State(f.pfName, f.vfs[0].Index).MAC; got != "02:11:22:33:44:00" {
				t.Errorf("other VF touched: %s", got)
			}
			info, err := nadutils.LoadDeviceInfoFromCNI(devinfo)
			if err != nil || info.Type != "pci" || info.Pci.PciAddress != vf.Addr || info.Pci.PfPciAddress != pfAddr {
				t.Errorf("device-info %+v %v", info, err)
			}
			if n := len(f.leases(t)); n != 2 {
				t.Errorf("%d IPAM leases, want 2", n)
			}

			if ver != "0.3.1" { // CHECK exists from 0.4.0
				if err := f.p.Check(args(podNS, "cid-"+ver, "net1", withPrev(t, conf, r))); err != nil {
					t.Errorf("CHECK: %v", err)
				}
				bad := mustCurrent(t, r)
				bad.Interfaces[0].Mac = "02:00:00:00:00:99"
				if err := f.p.Check(args(podNS, "cid-"+ver, "net1", withPrev(t, conf, asVersion(t, bad, ver)))); err == nil || !strings.Contains(err.Error(), "MAC") {
					t.Errorf("CHECK with wrong MAC: %v", err)
				}
				bad = mustCurrent(t, r)
				bad.IPs[0].Address.IP = bad.IPs[0].Address.IP.To4()
				bad.IPs[0].Address.IP[3] = 77
				if err := f.p.Check(args(podNS, "cid-"+ver, "net1", withPrev(t, conf, asVersion(t, bad, ver)))); err == nil {
					t.Errorf("CHECK with wrong address passed")
				}
			}

			f.rec.Reset()
			if err := f.p.Del(a); err != nil {
				t.Fatal(err)
			}
			f.assertVFHome(t, vf)
			if got := linksIn(t, podNS); len(got) != 0 {
				t.Errorf("pod still has %v", got)
			}
			if l := f.leases(t); len(l) != 0 {
				t.Errorf("IPAM leases left: %v", l)
			}
			if _, err := os.Stat(devinfo); !os.IsNotExist(err) {
				t.Errorf("device-info file left: %v", err)
			}
			// The recorder shows each PF-side setting restored, last applied first.
			var ops []string
			for _, c := range f.rec.Calls() {
				ops = append(ops, c.Op)
			}
			want := "LinkSetVfRate LinkSetVfState LinkSetVfTrust LinkSetVfSpoofchk LinkSetVfHardwareAddr LinkSetVfVlanQosProto"
			if strings.Join(ops, " ") != want {
				t.Errorf("restore calls %v, want %s", ops, want)
			}
			// DEL again: nothing left, still success, no PF calls.
			f.rec.Reset()
			if err := f.p.Del(a); err != nil {
				t.Fatalf("second DEL: %v", err)
			}
			if n := len(f.rec.Calls()); n != 0 {
				t.Errorf("second DEL made %d PF calls", n)
			}
		})
	}
}

// The VF's host name already exists in the pod: the temporary name avoids
// the collision. A taken CNI_IFNAME is an error that leaves nothing behind.
func TestAddNameCollision(t *testing.T) {
	f := newFixture(t, 1, "")
	vf := f.vfs[0]
	podNS := testutil.NewNS(t)
	err := podNS.Do(func(ns.NetNS) error {
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: vf.Netdev}, PeerName: "taken0"})
	})
	if err != nil {
		t.Fatal(err)
	}
	conf := f.conf("1.0.0", vf.Addr, "")
	if _, err := f.p.Add(args(podNS, "c1", "net1", conf)); err != nil {
		t.Fatalf("ADD with the VF's host name present in the pod: %v", err)
	}
	if err := f.p.Del(args(podNS, "c1", "net1", conf)); err != nil {
		t.Fatal(err)
	}
	f.assertVFHome(t, vf)

	_, err = f.p.Add(args(podNS, "c2", "taken0", conf))
	if err == nil || !strings.Contains(err.Error(), "rename VF netdev to taken0") {
		t.Fatalf("ADD onto a taken ifname: %v", err)
	}
	f.assertVFHome(t, vf)
	if l := f.leases(t); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
	got := strings.Join(linksIn(t, podNS), " ")
	if got != vf.Netdev+" taken0" && got != "taken0 "+vf.Netdev {
		t.Errorf("pod links %q", got)
	}
}

func TestVFHeldByAnotherPod(t *testing.T) {
	f := newFixture(t, 1, "")
	vf := f.vfs[0]
	podA, podB := testutil.NewNS(t), testutil.NewNS(t)
	conf := f.conf("1.1.0", vf.Addr, `"vlan":7`)
	if _, err := f.p.Add(args(podA, "podA", "net1", conf)); err != nil {
		t.Fatal(err)
	}
	_, err := f.p.Add(args(podB, "podB", "net1", conf))
	if err == nil || !containsAll(err.Error(), "in use by container podA", vf.Addr) {
		t.Fatalf("second pod got the VF: %v", err)
	}
	if got := linksIn(t, podB); len(got) != 0 {
		t.Errorf("pod B has %v", got)
	}
	if got := linksIn(t, podA); len(got) != 1 || got[0] != "net1" {
		t.Errorf("pod A has %v", got)
	}
	if n := len(f.leases(t)); n != 1 {
		t.Errorf("%d leases, want pod A's 1", n)
	}
	// DEL for pod B must not reset pod A's VF.
	f.rec.Reset()
	if err := f.p.Del(args(podB, "podB", "net1", conf)); err != nil {
		t.Fatal(err)
	}
	if n := len(f.rec.Calls()); n != 0 {
		t.Errorf("DEL of a non-owner made PF calls: %v", f.rec.Calls())
	}
	if got := linksIn(t, podA); len(got) != 1 {
		t.Errorf("pod A lost its VF: %v", got)
	}
	if f.rec.State(f.pfName, vf.Index).Vlan != 7 {
		t.Error("pod A's VLAN was reset")
	}
	if err := f.p.Del(args(podA, "podA", "net1", conf)); err != nil {
		t.Fatal(err)
	}
	f.assertVFHome(t, vf)
}

// A holder whose netns is gone (pod died without DEL) no longer blocks the VF.
func TestStaleHolderTakenOver(t *testing.T) {
	f := newFixture(t, 1, "")
	vf := f.vfs[0]
	podA := testutil.NewNS(t)
	conf := f.conf("1.0.0", vf.Addr, `"vlan":9`)
	if _, err := f.p.Add(args(podA, "podA", "net1", conf)); err != nil {
		t.Fatal(err)
	}
	pathA := podA.Path()
	_ = podA.Close()
	if err := testutils.UnmountNS(podA); err != nil {
		t.Fatal(err)
	}
	// The veth stand-in died with the netns; recreate the "VF" as the kernel
	// would return a physical netdev.
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: vf.Netdev}, PeerName: vf.Netdev + "q"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := netlinksafe.LinkByName(vf.Netdev + "q"); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	podB := testutil.NewNS(t)
	if _, err := f.p.Add(args(podB, "podB", "net1", f.conf("1.0.0", vf.Addr, ""))); err != nil {
		t.Fatalf("VF held by dead pod (netns %s) not taken over: %v", pathA, err)
	}
	if v := f.rec.State(f.pfName, vf.Index).Vlan; v != 0 {
		t.Errorf("vlan %d after takeover, want 0", v)
	}
	st, err := Store{Dir: f.dataDir}.Load(vf.Addr)
	if err != nil || st == nil || st.ContainerID != "podB" || st.OrigPF.Vlan != 0 {
		t.Fatalf("state after takeover %+v %v", st, err)
	}
}

func TestDelNetnsGone(t *testing.T) {
	f := newFixture(t, 1, "")
	vf := f.vfs[0]
	podNS := testutil.NewNS(t)
	conf := f.conf("1.0.0", vf.Addr, fullSettings)
	a := args(podNS, "c1", "net1", conf)
	if _, err := f.p.Add(a); err != nil {
		t.Fatal(err)
	}
	_ = podNS.Close()
	if err := testutils.UnmountNS(podNS); err != nil {
		t.Fatal(err)
	}
	if err := f.p.Del(a); err != nil {
		t.Fatalf("DEL with netns gone: %v", err)
	}
	a.Netns = "" // runtimes may also pass no netns at all
	if err := f.p.Del(a); err != nil {
		t.Fatalf("DEL without netns: %v", err)
	}
	want := pf.DefaultVFState()
	want.MAC = "02:11:22:33:44:00"
	if got := f.rec.State(f.pfName, vf.Index); got != want {
		t.Errorf("PF-side state %+v, want %+v", got, want)
	}
	if l := f.leases(t); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
	if _, err := os.Stat(filepath.Join(f.dataDir, vf.Addr+".json")); !os.IsNotExist(err) {
		t.Errorf("state file left")
	}
}

// DEL without deviceID (state found by container and ifname) and with a
// missing state file.
func TestDelFindsStateByAttachment(t *testing.T) {
	f := newFixture(t, 2, "")
	vf := f.vfs[1]
	podNS := testutil.NewNS(t)
	if _, err := f.p.Add(args(podNS, "c1", "net3", f.conf("1.0.0", vf.Addr, ""))); err != nil {
		t.Fatal(err)
	}
	if err := f.p.Del(args(podNS, "c1", "net3", f.conf("1.0.0", "", ""))); err != nil {
		t.Fatal(err)
	}
	f.assertVFHome(t, vf)
	if err := f.p.Del(args(podNS, "never-added", "net9", f.conf("1.0.0", "", ""))); err != nil {
		t.Fatalf("DEL of an unknown attachment: %v", err)
	}
}

// Failure injected at every ADD step leaves nothing: the VF back on the host
// under its name with its MAC, PF settings restored, no lease, no state.
func TestAddFailureLeavesNothing(t *testing.T) {
	steps := []string{"lock", "read-state", "save-state", "pf-vlan", "pf-mac", "pf-spoofchk", "pf-trust",
		"pf-link_state", "pf-rate", "move", "rename", "set-mac", "link-up", "ipam", "configure", "device-info", "commit"}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			f := newFixture(t, 1, "")
			vf := f.vfs[0]
			podNS := testutil.NewNS(t)
			devinfo := f.devinfo("d.json")
			boom := errors.New("injected")
			seen := false
			f.p.hooks = testHooks{inject: func(s string) error {
				if s == step {
					seen = true
					return boom
				}
				return nil
			}}
			conf := f.conf("1.0.0", vf.Addr, fullSettings+fmt.Sprintf(`,"runtimeConfig":{"CNIDeviceInfoFile":%q}`, devinfo))
			_, err := f.p.Add(args(podNS, "c1", "net1", conf))
			if !errors.Is(err, boom) || !seen {
				t.Fatalf("ADD error %v (step reached: %v)", err, seen)
			}
			if !containsAll(err.Error(), "c1", "net1", vf.Addr) {
				t.Errorf("error does not name the attachment: %v", err)
			}
			f.assertVFHome(t, vf)
			if got := linksIn(t, podNS); len(got) != 0 {
				t.Errorf("pod has %v", got)
			}
			if l := f.leases(t); len(l) != 0 {
				t.Errorf("leases left: %v", l)
			}
			if _, err := os.Stat(devinfo); !os.IsNotExist(err) {
				t.Errorf("device-info file left")
			}
			// And the VF works afterwards.
			f.p.hooks = nil
			if _, err := f.p.Add(args(podNS, "c2", "net1", conf)); err != nil {
				t.Fatalf("ADD after failed ADD: %v", err)
			}
			if err := f.p.Del(args(podNS, "c2", "net1", conf)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Real failures (not injected): the PF driver refusing a setting, and an
// IPAM plugin that fails.
func TestAddRealFailures(t *testing.T) {
	t.Run("pf refuses trust", func(t *testing.T) {
		f := newFixture(t, 1, "")
		f.rec.Fail = func(c pf.Call) error {
			if c.Op == "LinkSetVfTrust" && c.On != nil && *c.On {
				return errors.New("operation not supported")
			}
			return nil
		}
		podNS := testutil.NewNS(t)
		_, err := f.p.Add(args(podNS, "c1", "net1", f.conf("1.0.0", f.vfs[0].Addr, fullSettings)))
		if err == nil || !containsAll(err.Error(), "set trust", "not supported") {
			t.Fatalf("err %v", err)
		}
		f.assertVFHome(t, f.vfs[0])
	})
	t.Run("ipam exhausted", func(t *testing.T) {
		f := newFixture(t, 1, "")
		podNS := testutil.NewNS(t)
		conf := []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"tiny","type":"sriov","dataDir":%q,"deviceID":%q,
			"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.9.0.0/30","rangeStart":"10.9.0.2","rangeEnd":"10.9.0.2"}]]}}`,
			f.dataDir, f.vfs[0].Addr, f.ipamDir))
		// Use up the only address with another container.
		other := testutil.NewNS(t)
		f2 := newFixture(t, 1, "")
		conf2 := []byte(strings.Replace(string(conf), f.vfs[0].Addr, f2.vfs[0].Addr, 1))
		conf2 = []byte(strings.Replace(string(conf2), fmt.Sprintf("%q", f.dataDir), fmt.Sprintf("%q", f2.dataDir), 1))
		f2.tree = f.tree
		if _, err := (&Plugin{PF: f2.rec, Sysfs: f2.p.Sysfs}).Add(args(other, "c0", "net1", conf2)); err != nil {
			t.Fatal(err)
		}
		_, err := f.p.Add(args(podNS, "c1", "net1", conf))
		if err == nil || !strings.Contains(err.Error(), "IPAM host-local") {
			t.Fatalf("err %v", err)
		}
		f.assertVFHome(t, f.vfs[0])
		if got := linksIn(t, podNS); len(got) != 0 {
			t.Errorf("pod has %v", got)
		}
	})
	t.Run("ipam plugin missing", func(t *testing.T) {
		f := newFixture(t, 1, "")
		podNS := testutil.NewNS(t)
		conf := []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"n","type":"sriov","dataDir":%q,"deviceID":%q,"ipam":{"type":"no-such-ipam"}}`,
			f.dataDir, f.vfs[0].Addr))
		_, err := f.p.Add(args(podNS, "c1", "net1", conf))
		if err == nil || !strings.Contains(err.Error(), "no-such-ipam") {
			t.Fatalf("err %v", err)
		}
		f.assertVFHome(t, f.vfs[0])
	})
	t.Run("missing VF", func(t *testing.T) {
		f := newFixture(t, 1, "")
		podNS := testutil.NewNS(t)
		_, err := f.p.Add(args(podNS, "c1", "net1", f.conf("1.0.0", "0000:aa:00.1", "")))
		if err == nil || !containsAll(err.Error(), "0000:aa:00.1", "no such PCI device") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("no deviceID", func(t *testing.T) {
		f := newFixture(t, 1, "")
		podNS := testutil.NewNS(t)
		_, err := f.p.Add(args(podNS, "c1", "net1", f.conf("1.0.0", "", "")))
		if err == nil || !strings.Contains(err.Error(), `key "deviceID": required`) {
			t.Fatalf("err %v", err)
		}
	})
}

// A VF bound to vfio-pci is not moved: IPAM is allocated and reported, the
// device-info says pci, DEL releases it all.
func TestVfioVF(t *testing.T) {
	f := newFixture(t, 2, "vfio-pci")
	vf := f.vfs[1]
	podNS := testutil.NewNS(t)
	devinfo := f.devinfo("d.json")
	conf := f.conf("1.1.0", vf.Addr, fmt.Sprintf(`"vlan":55,"mac":"02:aa:00:00:00:05","runtimeConfig":{"CNIDeviceInfoFile":%q}`, devinfo))
	a := args(podNS, "dpdk", "net1", conf)
	r, err := f.p.Add(a)
	if err != nil {
		t.Fatal(err)
	}
	res := mustCurrent(t, r)
	if len(res.IPs) != 1 || len(res.Interfaces) != 1 || res.Interfaces[0].PciID != vf.Addr || res.Interfaces[0].Mac != "02:aa:00:00:00:05" {
		t.Errorf("result %+v", res)
	}
	if got := linksIn(t, podNS); len(got) != 0 {
		t.Errorf("pod got links %v", got)
	}
	if s := f.rec.State(f.pfName, vf.Index); s.Vlan != 55 || s.MAC != "02:aa:00:00:00:05" {
		t.Errorf("PF-side %+v", s)
	}
	info, err := nadutils.LoadDeviceInfoFromCNI(devinfo)
	if err != nil || info.Type != "pci" || info.Pci.PciAddress != vf.Addr {
		t.Errorf("device-info %+v %v", info, err)
	}
	if err := f.p.Check(args(podNS, "dpdk", "net1", withPrev(t, conf, r))); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := f.p.Del(a); err != nil {
		t.Fatal(err)
	}
	f.assertVFHome(t, vf)
	if l := f.leases(t); len(l) != 0 {
		t.Errorf("leases left %v", l)
	}
	if _, err := os.Stat(devinfo); !os.IsNotExist(err) {
		t.Error("device-info file left")
	}
}

func TestCheckErrors(t *testing.T) {
	f := newFixture(t, 1, "")
	podNS := testutil.NewNS(t)
	conf := f.conf("1.0.0", f.vfs[0].Addr, "")
	if err := f.p.Check(args(podNS, "c1", "net1", conf)); err == nil || !strings.Contains(err.Error(), `"prevResult": required`) {
		t.Errorf("CHECK without prevResult: %v", err)
	}
	prev := &current.Result{CNIVersion: "1.0.0", Interfaces: []*current.Interface{{Name: "net1"}}}
	if err := f.p.Check(args(podNS, "c1", "net1", withPrev(t, conf, prev))); err == nil || !strings.Contains(err.Error(), "not attached") {
		t.Errorf("CHECK of an unattached VF: %v", err)
	}
	r, err := f.p.Add(args(podNS, "c1", "net1", conf))
	if err != nil {
		t.Fatal(err)
	}
	// VLAN changed behind our back on the PF.
	_ = f.rec.LinkSetVfVlanQosProto(f.pfName, f.vfs[0].Index, 3, 0, pf.VlanProto8021Q)
	if err := f.p.Check(args(podNS, "c1", "net1", withPrev(t, conf, r))); err == nil || !strings.Contains(err.Error(), "vlan 3") {
		t.Errorf("CHECK with a changed VLAN: %v", err)
	}
	_ = f.rec.LinkSetVfVlanQosProto(f.pfName, f.vfs[0].Index, 0, 0, pf.VlanProto8021Q)
	// Interface renamed inside the pod.
	_ = podNS.Do(func(ns.NetNS) error {
		l, _ := netlinksafe.LinkByName("net1")
		_ = netlink.LinkSetDown(l)
		return netlink.LinkSetName(l, "other")
	})
	if err := f.p.Check(args(podNS, "c1", "net1", withPrev(t, conf, r))); err == nil || !strings.Contains(err.Error(), "not in the pod") {
		t.Errorf("CHECK with net1 gone: %v", err)
	}
	_ = types.Result(r)
}

// A failing IPAM DEL is reported, but the VF still goes home; a retried DEL
// then finishes the IPAM part.
func TestDelIPAMFailureStillReleasesVF(t *testing.T) {
	f := newFixture(t, 1, "")
	vf := f.vfs[0]
	podNS := testutil.NewNS(t)
	conf := f.conf("1.0.0", vf.Addr, `"vlan":12`)
	if _, err := f.p.Add(args(podNS, "c1", "net1", conf)); err != nil {
		t.Fatal(err)
	}
	broken := []byte(strings.Replace(string(conf), `"type":"host-local"`, `"type":"gone-ipam"`, 1))
	err := f.p.Del(args(podNS, "c1", "net1", broken))
	if err == nil || !strings.Contains(err.Error(), "IPAM gone-ipam") {
		t.Fatalf("DEL with failing IPAM: %v", err)
	}
	f.assertVFHome(t, vf)
	if len(f.leases(t)) != 1 {
		t.Fatal("lease should survive the failed IPAM DEL")
	}
	if err := f.p.Del(args(podNS, "c1", "net1", conf)); err != nil {
		t.Fatal(err)
	}
	if l := f.leases(t); len(l) != 0 {
		t.Errorf("leases left %v", l)
	}
}

// sysfs names a netdev that is not in this netns: a clear error, nothing left.
func TestAddNetdevMissing(t *testing.T) {
	f := newFixture(t, 1, "")
	vf := f.vfs[0]
	l, err := netlinksafe.LinkByName(vf.Netdev)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	podNS := testutil.NewNS(t)
	_, err = f.p.Add(args(podNS, "c1", "net1", f.conf("1.0.0", vf.Addr, "")))
	if err == nil || !containsAll(err.Error(), "VF netdev "+vf.Netdev, vf.Addr) {
		t.Fatalf("err %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.dataDir, vf.Addr+".json")); !os.IsNotExist(err) {
		t.Error("state file left")
	}
	if n := len(f.rec.Calls()); n != 0 {
		t.Errorf("PF calls made: %v", f.rec.Calls())
	}
}

// Concurrent ADDs of one VF from several pods: the VF lock lets exactly one win.
func TestConcurrentAddsOneVF(t *testing.T) {
	f := newFixture(t, 1, "")
	vf := f.vfs[0]
	const n = 4
	pods := make([]ns.NetNS, n)
	for i := range pods {
		pods[i] = testutil.NewNS(t)
	}
	conf := f.conf("1.0.0", vf.Addr, "")
	errs := make(chan error, n)
	for i := range pods {
		go func(i int) {
			_, err := f.p.Add(args(pods[i], fmt.Sprintf("pod%d", i), "net1", conf))
			errs <- err
		}(i)
	}
	var ok, inUse int
	for range pods {
		err := <-errs
		switch {
		case err == nil:
			ok++
		case strings.Contains(err.Error(), "in use by container"):
			inUse++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || inUse != n-1 {
		t.Fatalf("%d ADDs succeeded and %d were refused, want 1 and %d", ok, inUse, n-1)
	}
	if l := f.leases(t); len(l) != 1 {
		t.Errorf("leases %v, want exactly the winner's", l)
	}
	for i := range pods {
		if err := f.p.Del(args(pods[i], fmt.Sprintf("pod%d", i), "net1", conf)); err != nil {
			t.Fatal(err)
		}
	}
	f.assertVFHome(t, vf)
}

// DEL restores what the pod changed on the netdev (MTU, MAC, name) and the
// original admin state; logFile receives the plugin's log lines.
func TestDelRestoresNetdevAttributes(t *testing.T) {
	f := newFixture(t, 1, "")
	vf := f.vfs[0]
	l, err := netlinksafe.LinkByName(vf.Netdev)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	if f.orig[vf.Addr], err = readNetdev(vf.Netdev); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(t.TempDir(), "sriov.log")
	podNS := testutil.NewNS(t)
	conf := f.conf("1.0.0", vf.Addr, fmt.Sprintf(`"mac":"02:aa:bb:cc:dd:0e","logFile":%q,"logLevel":"debug"`, logFile))
	if _, err := f.p.Add(args(podNS, "c1", "net1", conf)); err != nil {
		t.Fatal(err)
	}
	err = podNS.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName("net1")
		if err != nil {
			return err
		}
		return netlink.LinkSetMTU(l, 1280)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.p.Del(args(podNS, "c1", "net1", conf)); err != nil {
		t.Fatal(err)
	}
	f.assertVFHome(t, vf)
	if l, err = netlinksafe.LinkByName(vf.Netdev); err != nil || l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("VF netdev not back up: %v", err)
	}
	b, err := os.ReadFile(logFile)
	if err != nil || !containsAll(string(b), "[info] sriov: ADD container c1 ifname net1", "[info] sriov: DEL container c1") {
		t.Errorf("log file: %q %v", b, err)
	}
}

// The ips and mac capabilities: static IPAM takes runtimeConfig.ips, the
// runtime's MAC wins over the NAD's.
func TestStaticIPAMAndRuntimeMAC(t *testing.T) {
	f := newFixture(t, 1, "")
	testutil.RefPlugin(t, "static")
	vf := f.vfs[0]
	podNS := testutil.NewNS(t)
	conf := []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"st","type":"sriov","dataDir":%q,"deviceID":%q,
		"mac":"02:00:00:00:00:01","capabilities":{"ips":true,"mac":true},"ipam":{"type":"static"},
		"runtimeConfig":{"ips":["10.77.0.5/24"],"mac":"02:00:00:00:00:02"}}`, f.dataDir, vf.Addr))
	r, err := f.p.Add(args(podNS, "c1", "net1", conf))
	if err != nil {
		t.Fatal(err)
	}
	res := mustCurrent(t, r)
	if len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.77.0.5/24" || res.Interfaces[0].Mac != "02:00:00:00:00:02" {
		t.Fatalf("result %+v", res)
	}
	err = podNS.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName("net1")
		if err != nil {
			return err
		}
		addrs, _ := netlinksafe.AddrList(l, netlink.FAMILY_V4)
		if len(addrs) != 1 || addrs[0].IPNet.String() != "10.77.0.5/24" || l.Attrs().HardwareAddr.String() != "02:00:00:00:00:02" {
			return fmt.Errorf("net1 %v %s", addrs, l.Attrs().HardwareAddr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.rec.State(f.pfName, vf.Index).MAC; got != "02:00:00:00:00:02" {
		t.Errorf("PF admin MAC %s", got)
	}
	if err := f.p.Del(args(podNS, "c1", "net1", conf)); err != nil {
		t.Fatal(err)
	}
	f.assertVFHome(t, vf)
}

// Something in the pod renamed the interface: DEL still finds the VF (by
// ifindex and MAC) and brings it home.
func TestDelAfterRenameInPod(t *testing.T) {
	f := newFixture(t, 1, "")
	vf := f.vfs[0]
	podNS := testutil.NewNS(t)
	conf := f.conf("1.0.0", vf.Addr, "")
	if _, err := f.p.Add(args(podNS, "c1", "net1", conf)); err != nil {
		t.Fatal(err)
	}
	err := podNS.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName("net1")
		if err != nil {
			return err
		}
		_ = netlink.LinkSetDown(l)
		return netlink.LinkSetName(l, "renamed0")
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.p.Del(args(podNS, "c1", "net1", conf)); err != nil {
		t.Fatal(err)
	}
	f.assertVFHome(t, vf)
	if got := linksIn(t, podNS); len(got) != 0 {
		t.Errorf("pod still has %v", got)
	}
}
