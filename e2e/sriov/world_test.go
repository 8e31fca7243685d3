// Package sriov_test proves the whole SR-IOV chain on this machine without
// SR-IOV hardware or a cluster: the built sriov-device-plugin discovers VFs
// in a fake sysfs tree whose VF netdevs are real veths and registers with
// the test kubelet (kubeletstub), which allocates VFs to a pod over the real
// v1beta1 API and serves the real pod-resources v1 API; plexus, exec'd
// through libcni as a runtime does, learns the pod's VFs from pod-resources
// and hands each to the built sriov plugin, which moves it into the pod.
// PF-side VF settings go to the file-backed fake PF: the sriov plugin is
// its test binary (pkg/testutil/sriovseams), which takes the fake sysfs
// root, the fake PF and the device-info directory from its environment.
package sriov_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"github.com/vishvananda/netlink"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/plexus-cni/plexus/pkg/sriov/pf"
	"github.com/plexus-cni/plexus/pkg/testutil"
	"github.com/plexus-cni/plexus/pkg/testutil/cnienv"
	"github.com/plexus-cni/plexus/pkg/testutil/fakesysfs"
	"github.com/plexus-cni/plexus/pkg/testutil/kubeletstub"
	"github.com/plexus-cni/plexus/pkg/testutil/sriovseams"
)

// Resources the device plugin serves in every world.
const (
	resA = "plexus.io/sriov_test"  // PF A's VFs
	resB = "plexus.io/sriov_other" // PF B's VFs

	resourceAnnot = "k8s.v1.cni.cncf.io/resourceName"
)

// pfDev is one fake PF and its veth-backed VFs.
type pfDev struct {
	Addr, Netdev string
	VFs          []fakesysfs.VF
	peer         map[string]int // host veth peer name -> VF index
}

// hostVF is a VF netdev's host-side state, to compare after DEL.
type hostVF struct {
	Name string
	MAC  string
	MTU  int
	Up   bool
}

// world is one test's node: fake sysfs with two PFs, the fake PF recorder,
// the device plugin daemon, the test kubelet with pod-resources, and a
// cnienv running plexus.
type world struct {
	t       testing.TB
	E       *cnienv.Env
	Tree    *fakesysfs.Tree
	A, B    *pfDev
	PFFile  string
	DevInfo string // plexus's deviceInfoDir (dp/ and cni/ below)
	SRIOV   string // sriov plugin dataDir
	Kubelet *kubeletstub.Kubelet
	Node    *kubeletstub.Node
	orig    map[string]pf.VFState // "pf/vf" -> seeded PF-side state
	before  map[string]hostVF     // VF PCI address -> host netdev state
	dpLog   *syncBuffer
}

// newWorld builds the node: PF A (4 VFs, NUMA 0) serves resA, PF B (2 VFs,
// NUMA 1) serves resB.
func newWorld(t testing.TB) *world {
	t.Helper()
	e := cnienv.New(t)
	e.WritePrimary()
	w := &world{t: t, E: e, Tree: fakesysfs.New(t), orig: map[string]pf.VFState{}, before: map[string]hostVF{}}
	w.A = w.addPF("0000:3b:00.0", "pa"+e.Suffix, 4, 0)
	w.B = w.addPF("0000:5e:00.0", "pb"+e.Suffix, 2, 1)

	w.PFFile = filepath.Join(e.Dir, "pf.jsonl")
	if err := os.WriteFile(w.PFFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Non-default original PF-side state, so "restored" means restored.
	for _, d := range []*pfDev{w.A, w.B} {
		for _, vf := range d.VFs {
			s := pf.DefaultVFState()
			s.MAC = fmt.Sprintf("02:ee:00:00:%02x:%02x", len(d.Netdev), vf.Index)
			s.Trust = vf.Index%2 == 1
			if err := pf.SeedFile(w.PFFile, d.Netdev, vf.Index, s); err != nil {
				t.Fatal(err)
			}
			w.orig[d.Netdev+"/"+strconv.Itoa(vf.Index)] = s
		}
	}
	w.snapshotHost()

	w.DevInfo = filepath.Join(e.Dir, "devinfo")
	w.SRIOV = filepath.Join(e.Dir, "sriov-state")
	// unix socket paths must stay short: not under t.TempDir()'s long names.
	short, err := os.MkdirTemp("", "sv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	w.Kubelet = kubeletstub.Start(t, filepath.Join(short, "dp"))
	w.Node = kubeletstub.StartNode(t, w.Kubelet, filepath.Join(short, "pr", "kubelet.sock"))
	w.startDevicePlugin(filepath.Join(short, "dp"))

	// sriov (the test binary) is built next to plexus, so plexus finds it
	// on CNI_PATH; plexus passes its environment on to it.
	if got := testutil.SriovTestBinary(t); filepath.Dir(got) != filepath.Dir(e.PlexusBin) {
		t.Fatalf("sriov built in %s, plexus in %s", got, e.PlexusBin)
	}
	e.Extra = map[string]any{"podResourcesSocket": w.Node.Socket, "deviceInfoDir": w.DevInfo}
	e.ExecEnv = sriovseams.Seams{SysfsRoot: w.Tree.Root, FakePF: w.PFFile, DeviceInfoDir: w.DevInfo}.Env()
	return w
}

func (w *world) addPF(addr, netdev string, n, numa int) *pfDev {
	w.t.Helper()
	vfs, err := w.Tree.AddVethPF(w.t, fakesysfs.PF{Addr: addr, Netdev: netdev, NumVFs: n, NUMA: numa})
	if err != nil {
		w.t.Fatal(err)
	}
	d := &pfDev{Addr: addr, Netdev: netdev, VFs: vfs, peer: map[string]int{}}
	for _, vf := range vfs {
		// AddVethPF names the peer of "<base>v<i>" "<base>p<i>".
		d.peer[strings.TrimSuffix(vf.Netdev, "v"+strconv.Itoa(vf.Index))+"p"+strconv.Itoa(vf.Index)] = vf.Index
	}
	return d
}

// snapshotHost records every VF netdev's host-side state.
func (w *world) snapshotHost() {
	for _, d := range []*pfDev{w.A, w.B} {
		for _, vf := range d.VFs {
			l, err := netlinksafe.LinkByName(vf.Netdev)
			if err != nil {
				w.t.Fatalf("VF %s netdev %s: %v", vf.Addr, vf.Netdev, err)
			}
			w.before[vf.Addr] = hostState(l)
		}
	}
}

func hostState(l netlink.Link) hostVF {
	a := l.Attrs()
	return hostVF{Name: a.Name, MAC: a.HardwareAddr.String(), MTU: a.MTU, Up: a.Flags&net.FlagUp != 0}
}

// syncBuffer collects the daemon's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDevicePlugin runs the built daemon as its DaemonSet would and waits
// until the test kubelet sees both pools' devices healthy. At the end of
// the test it must exit 0 on SIGTERM.
func (w *world) startDevicePlugin(pluginDir string) {
	t := w.t
	t.Helper()
	bin := testutil.BuildBinary(t, "sriov-device-plugin")
	cfg := filepath.Join(w.E.Dir, "sriov-dp.json")
	w.E.WriteFile(cfg, fmt.Sprintf(`{"resourceList":[
 {"resourceName":"sriov_test","resourcePrefix":"plexus.io","selectors":[{"pfNames":[%q]}]},
 {"resourceName":"sriov_other","resourcePrefix":"plexus.io","selectors":[{"pfNames":[%q]}]}]}`, w.A.Netdev, w.B.Netdev))
	w.dpLog = &syncBuffer{}
	cmd := exec.Command(bin, "--config", cfg, "--host-root", w.Tree.Root, "--device-plugin-dir", pluginDir,
		"--devinfo-dir", filepath.Join(w.DevInfo, "dp"), "--log-level", "debug", "--health-address", testutil.FreeAddr(t))
	cmd.Stderr = w.dpLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("device plugin exit after SIGTERM: %v\n%s", err, w.dpLog)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("device plugin did not exit 10s after SIGTERM\n%s", w.dpLog)
		}
		// The device-info files stay: a plugin restart must not take them
		// from pods that hold the devices (docs/sriov-device-plugin.md);
		// they go with the test's directory.
	})
	for res, n := range map[string]int{resA: len(w.A.VFs), resB: len(w.B.VFs)} {
		p := w.Kubelet.WaitPlugin(t, res, 1, 20*time.Second)
		p.WaitDevices(t, 20*time.Second, func(ds []*pluginapi.Device) bool {
			healthy := 0
			for _, d := range ds {
				if d.Health == pluginapi.Healthy {
					healthy++
				}
			}
			return healthy == n
		})
	}
}

// nadConf is a "type":"sriov" NAD config with a private dataDir and
// host-local IPAM on subnet n of the Env.
func (w *world) nadConf(name string, vlan, subnet int) string {
	return fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"sriov","vlan":%d,"spoofchk":"off","dataDir":%q,`+
		`"capabilities":{"mac":true,"ips":true,"deviceID":true,"CNIDeviceInfoFile":true},`+
		`"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}]]}}`,
		name, vlan, w.SRIOV, w.E.IPAMDir, w.E.SubnetN(subnet))
}

// writeSRIOVNAD writes a sriov NAD annotated with resource.
func (w *world) writeSRIOVNAD(name, resource string, vlan, subnet int) {
	w.E.WriteNAD("default", name, w.nadConf(name, vlan, subnet), resourceAnnot, resource)
}

// admit has the test kubelet admit a one-container pod with the given
// resource counts, and returns the CNI pod for it.
func (w *world) admit(name, networks string, resources map[string]int) (*cnienv.Pod, *kubeletstub.Pod) {
	w.t.Helper()
	kp, err := w.Node.Admit(context.Background(), "default", name, kubeletstub.Container{Name: "app", Resources: resources})
	if err != nil {
		w.t.Fatal(err)
	}
	p := w.E.NewPod(name, networks)
	p.UID = kp.UID
	return p, kp
}

// vfOf finds which VF the pod's interface ifname is: its veth peer is one
// of the PFs' host-side peers.
func (w *world) vfOf(p *cnienv.Pod, ifname string) (*pfDev, fakesysfs.VF) {
	w.t.Helper()
	var peer int
	err := p.NS.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(ifname)
		if err != nil {
			return err
		}
		v, ok := l.(*netlink.Veth)
		if !ok {
			return fmt.Errorf("%s is a %s, not a VF stand-in veth", ifname, l.Type())
		}
		peer, err = netlink.VethPeerIndex(v)
		return err
	})
	if err != nil {
		w.t.Fatalf("pod %s interface %s: %v", p.Name, ifname, err)
	}
	l, err := netlink.LinkByIndex(peer)
	if err != nil {
		w.t.Fatalf("pod %s interface %s: host peer %d: %v", p.Name, ifname, peer, err)
	}
	for _, d := range []*pfDev{w.A, w.B} {
		if i, ok := d.peer[l.Attrs().Name]; ok {
			return d, d.VFs[i]
		}
	}
	w.t.Fatalf("pod %s interface %s: peer %s is no VF's", p.Name, ifname, l.Attrs().Name)
	return nil, fakesysfs.VF{}
}

// calls reads the fake PF's record without the seeded Init lines.
func (w *world) calls() []pf.Call {
	w.t.Helper()
	all, err := pf.ReadCalls(w.PFFile)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []pf.Call
	for _, c := range all {
		if c.Op != "Init" {
			out = append(out, c)
		}
	}
	return out
}

// pfState is a VF's PF-side state as the fake PF holds it now.
func (w *world) pfState(d *pfDev, idx int) pf.VFState {
	w.t.Helper()
	all, err := pf.ReadCalls(w.PFFile)
	if err != nil {
		w.t.Fatal(err)
	}
	return pf.StateOf(all, d.Netdev, idx)
}

// assertHome fails unless every VF is back in the host as it was: same
// netdev name, MAC, MTU and admin state, PF-side state as seeded; and no
// sriov state, plexus device-info, lease or cache entry is left.
func (w *world) assertHome(p *cnienv.Pod) {
	t := w.t
	t.Helper()
	for _, d := range []*pfDev{w.A, w.B} {
		for _, vf := range d.VFs {
			l, err := netlinksafe.LinkByName(vf.Netdev)
			if err != nil {
				t.Errorf("VF %s: netdev %s not back in the host: %v", vf.Addr, vf.Netdev, err)
				continue
			}
			if got := hostState(l); got != w.before[vf.Addr] {
				t.Errorf("VF %s: host netdev %+v, was %+v", vf.Addr, got, w.before[vf.Addr])
			}
			if got, want := w.pfState(d, vf.Index), w.orig[d.Netdev+"/"+strconv.Itoa(vf.Index)]; got != want {
				t.Errorf("VF %s (%s vf %d): PF-side state %+v, want the original %+v", vf.Addr, d.Netdev, vf.Index, got, want)
			}
		}
	}
	if left, _ := filepath.Glob(filepath.Join(w.SRIOV, "*.json")); len(left) != 0 {
		t.Errorf("sriov state left: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(w.DevInfo, "cni", "*")); len(left) != 0 {
		t.Errorf("device-info files left in cni/: %v", left)
	}
	w.E.AssertClean(p)
}

// status reads the pod's network-status from plexus's cache.
func (w *world) status(p *cnienv.Pod) []nadv1.NetworkStatus {
	w.t.Helper()
	b, err := os.ReadFile(filepath.Join(w.E.CNIDir, "containers", p.ContainerID, "network-status.json"))
	if err != nil {
		w.t.Fatalf("network-status: %v", err)
	}
	var st []nadv1.NetworkStatus
	if err := json.Unmarshal(b, &st); err != nil {
		w.t.Fatal(err)
	}
	return st
}

func sorted(ids []string) []string {
	s := append([]string(nil), ids...)
	sort.Strings(s)
	return s
}
