package cni

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/plexus-cni/plexus/pkg/sriov/pf"
	"github.com/plexus-cni/plexus/pkg/sriov/sysfs"
	"github.com/plexus-cni/plexus/pkg/testutil"
	"github.com/plexus-cni/plexus/pkg/testutil/fakesysfs"
)

// fixture: a fake sysfs PF whose VF netdevs are real veths in the host
// netns, a PF recorder seeded with a non-default original state per VF,
// and private data dirs for the plugin and host-local.
type fixture struct {
	tree    *fakesysfs.Tree
	pfName  string
	vfs     []fakesysfs.VF
	rec     *pf.Recorder
	p       *Plugin
	dataDir string
	ipamDir string
	orig    map[string]netdevInfo // by VF address
	dual    bool                  // IPAM ranges include IPv6 (DAD settling makes ADD slower)
	// devinfoBase plays /var/run/k8s.cni.cncf.io/devinfo.
	devinfoBase string
}

const pfAddr = "0000:3b:00.0"

func newFixture(t testing.TB, numVFs int, vfDriver string) *fixture {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RefPlugin(t, "host-local")
	f := &fixture{tree: fakesysfs.New(t), rec: pf.NewRecorder(), dataDir: t.TempDir(), ipamDir: t.TempDir(),
		orig: map[string]netdevInfo{}, devinfoBase: t.TempDir()}
	f.pfName = fmt.Sprintf("pf%d", os.Getpid()%100000)
	vfs, err := f.tree.AddVethPF(t, fakesysfs.PF{Addr: pfAddr, Netdev: f.pfName, NumVFs: numVFs, VFDriver: vfDriver})
	if err != nil {
		t.Fatal(err)
	}
	f.vfs = vfs
	for _, vf := range vfs {
		s := pf.DefaultVFState()
		s.MAC = fmt.Sprintf("02:11:22:33:44:%02x", vf.Index)
		f.rec.Seed(f.pfName, vf.Index, s)
		if vf.Netdev != "" {
			nd, err := readNetdev(vf.Netdev)
			if err != nil {
				t.Fatal(err)
			}
			f.orig[vf.Addr] = nd
		}
	}
	f.p = &Plugin{PF: f.rec, Sysfs: sysfs.Reader{Root: f.tree.Root}, DeviceInfoDir: f.devinfoBase}
	return f
}

// devinfo is a device-info file path where a meta-plugin would put one.
func (f *fixture) devinfo(name string) string {
	return filepath.Join(f.devinfoBase, "cni", name)
}

// testHooks fails named ADD steps (inject) and times netdev moves (observe).
type testHooks struct {
	inject  func(step string) error
	observe func(step string, d time.Duration)
}

func (h testHooks) before(step string) error {
	if h.inject == nil {
		return nil
	}
	return h.inject(step)
}

func (h testHooks) took(step string, d time.Duration) {
	if h.observe != nil {
		h.observe(step, d)
	}
}

// conf builds a config; extra is spliced in as more top-level keys.
func (f *fixture) conf(version, deviceID, extra string) []byte {
	ranges := `[{"subnet":"10.56.217.0/24"}]`
	if f.dual {
		ranges += `,[{"subnet":"fd00:56:217::/64"}]`
	}
	s := fmt.Sprintf(`{"cniVersion":%q,"name":"sriovnet","type":"sriov","dataDir":%q,
		"ipam":{"type":"host-local","dataDir":%q,"ranges":[%s]}`,
		version, f.dataDir, f.ipamDir, ranges)
	if deviceID != "" {
		s += fmt.Sprintf(`,"deviceID":%q`, deviceID)
	}
	if extra != "" {
		s += "," + extra
	}
	return []byte(s + "}")
}

func args(netns ns.NetNS, cid, ifname string, conf []byte) *skel.CmdArgs {
	path := ""
	if netns != nil {
		path = netns.Path()
	}
	return &skel.CmdArgs{ContainerID: cid, Netns: path, IfName: ifname, Path: testutil.CNIBinDir(), StdinData: conf}
}

// withPrev adds prevResult to a config (for CHECK).
func withPrev(t *testing.T, conf []byte, res types.Result) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var pr map[string]any
	if err := json.Unmarshal(b, &pr); err != nil {
		t.Fatal(err)
	}
	m["prevResult"] = pr
	out, _ := json.Marshal(m)
	return out
}

// leases lists host-local's allocations (IP-named files) under ipamDir.
func (f *fixture) leases(t testing.TB) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(f.ipamDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && net.ParseIP(fi.Name()) != nil {
			out = append(out, fi.Name())
		}
		return nil
	})
	return out
}

// linksIn lists non-loopback link names in a netns.
func linksIn(t testing.TB, n ns.NetNS) []string {
	t.Helper()
	var names []string
	err := n.Do(func(ns.NetNS) error {
		ls, err := netlinksafe.LinkList()
		for _, l := range ls {
			if l.Attrs().Name != "lo" {
				names = append(names, l.Attrs().Name)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// assertVFHome checks the VF netdev is in the host with its original name,
// MAC and MTU and no addresses, the PF-side state is back to the seed and
// no state file is left.
func (f *fixture) assertVFHome(t *testing.T, vf fakesysfs.VF) {
	t.Helper()
	if vf.Netdev != "" {
		o := f.orig[vf.Addr]
		l, err := netlinksafe.LinkByName(o.Name)
		if err != nil {
			t.Fatalf("VF netdev %s not back in host: %v", o.Name, err)
		}
		if got := l.Attrs().HardwareAddr.String(); got != o.MAC {
			t.Errorf("VF netdev %s MAC %s, want original %s", o.Name, got, o.MAC)
		}
		if l.Attrs().MTU != o.MTU {
			t.Errorf("VF netdev %s MTU %d, want %d", o.Name, l.Attrs().MTU, o.MTU)
		}
		addrs, _ := netlinksafe.AddrList(l, netlink.FAMILY_V4)
		if len(addrs) != 0 {
			t.Errorf("VF netdev %s kept addresses %v", o.Name, addrs)
		}
	}
	want := pf.DefaultVFState()
	want.MAC = fmt.Sprintf("02:11:22:33:44:%02x", vf.Index)
	if got := f.rec.State(f.pfName, vf.Index); got != want {
		t.Errorf("PF-side state of VF %d = %+v, want original %+v", vf.Index, got, want)
	}
	if _, err := os.Stat(filepath.Join(f.dataDir, vf.Addr+".json")); !os.IsNotExist(err) {
		t.Errorf("state file for %s left behind (%v)", vf.Addr, err)
	}
}

func mustCurrent(t *testing.T, r types.Result) *current.Result {
	t.Helper()
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func asVersion(t *testing.T, r *current.Result, ver string) types.Result {
	t.Helper()
	out, err := r.GetAsVersion(ver)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
