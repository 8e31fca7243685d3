package node_test

// Migration on the real node (issue "drop-in for Multus and the SR-IOV
// projects"): a pod attached by Multus + sriov-cni before the node switched
// to plexus is deleted after the switch; plexus's DEL finds no cache entry
// of its own, reads Multus's cache file, runs each delegate's DEL, and the
// sriov plugin restores the VF from sriov-cni's state file.
//
// "Before the switch" is played as faithfully as this node allows: the
// node's CNI config is the cluster network alone, so the runtime itself
// makes the pod's eth0 (the delegate Multus would have run as eth0, same
// config, same host-local data dir); the VF is allocated by kubelet through
// the device plugin; then the test does what Multus and sriov-cni did next
// for the networks annotation — the bridge network through libcni as
// Multus runs a delegate, the VF by hand the way sriov-cni's ADD moves and
// configures it (PF settings on the recording PF, netdev into the pod,
// host-local IPAM) — and leaves their state files in their formats:
// Multus's cache (<multusCacheDir>/<containerID>) and sriov-cni's
// (/var/lib/cni/sriov/<containerID>-<ifname>, pci/<address>). Real Multus
// and sriov-cni cannot run here (no SR-IOV hardware, no registry).

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ipam"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/podresources"
	"github.com/plexus-cni/plexus/pkg/sriov/pf"
	"github.com/plexus-cni/plexus/pkg/testutil/fakesysfs"
)

const (
	migPF  = "pxmigpf"
	migRes = "plexus.io/sriov_mig"
	migNAD = "mig-sriov"
	migMAC = "02:00:00:aa:bb:02"
	// sriovCNIDir is sriov-cni's state directory (fixed in sriov-cni) and
	// the default dataDir of plexus's sriov plugin.
	sriovCNIDir = "/var/lib/cni/sriov"
	// runtimeCacheDir is where containerd's libcni keeps its results.
	runtimeCacheDir = "/var/lib/cni/results"
)

func TestMigrationFromMultusAndSriovCNI(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	vfs, err := w.sysfs.AddVethPF(t, fakesysfs.PF{Addr: "0000:7e:00.0", Netdev: migPF, NumVFs: 2, NUMA: 0})
	if err != nil {
		t.Fatal(err)
	}
	w.startDevicePlugin(t, w.sysfs.Root, `{"resourceList":[{"resourceName":"sriov_mig","resourcePrefix":"plexus.io","selectors":[{"pfNames":["`+migPF+`"]}]}]}`, migRes, 2)
	// An SR-IOV NAD as sriov-cni users write them: every PF-side setting.
	w.createNAD(t, migNAD, migRes, fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"sriov","vlan":100,"spoofchk":"off","trust":"on",
		"link_state":"enable","min_tx_rate":10,"max_tx_rate":500,"capabilities":{"mac":true},
		"ipam":{"type":"host-local","dataDir":%q,"subnet":"10.248.4.0/24"}}`, migNAD, filepath.Join(baseDir, "ipam")))

	// Cleanups run last-registered first: the pod deleted (createPod),
	// plexus back as the node's CNI, then whatever a failed run left.
	var (
		sb sandbox
		vf fakesysfs.VF
	)
	t.Cleanup(func() { sb.removeLeftovers(vf) })

	// Before the switch.
	start := time.Now()
	install := w.uninstallPlexus(t)
	t.Cleanup(install)
	created := w.createPod(t, "migrated", `[{"name":"bridge-n"},{"name":"`+migNAD+`","interface":"vf0","mac":"`+migMAC+`"}]`,
		corev1.ResourceList{migRes: resource.MustParse("1")})
	pod, took := w.waitRunning(t, created.Name)
	t.Logf("pod create → Running with the cluster network as the node's CNI: %v", took)
	sb = w.podSandbox(t, pod)
	if e, _ := (cache.Store{Dir: filepath.Join(baseDir, "cache")}).Load(sb.ID); e != nil {
		t.Fatalf("plexus attached sandbox %s: the node's CNI was still plexus when the pod was created", sb.ID)
	}
	if _, err := os.Stat(filepath.Join(runtimeCacheDir, "node-primary-"+sb.ID+"-eth0")); err != nil {
		t.Fatalf("the runtime did not run the cluster network for the pod's eth0: %v", err)
	}
	devs, err := podresources.NewClient(w.node.PodResourcesSocket).Devices(ctx, &podnet.Pod{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)}, migRes)
	if err != nil || len(devs) != 1 {
		t.Fatalf("kubelet pod-resources: %v devices of %s (%v), want 1", devs, migRes, err)
	}
	for _, v := range vfs {
		if v.Addr == devs[0] {
			vf = v
		}
	}
	if vf.Addr == "" {
		t.Fatalf("kubelet allocated %s, not one of the VFs %+v", devs[0], vfs)
	}
	attachStart := time.Now()
	orig := w.multusAttach(t, pod, sb, vf)
	t.Logf("Multus + sriov-cni attach of net1 and vf0 (played by the test): %v", time.Since(attachStart))
	ifs := podInterfaces(t, sb.NetNS)
	for _, want := range []struct{ ifName, prefix string }{{"eth0", "10.248.0."}, {"net1", "10.248.2."}, {"vf0", "10.248.4."}} {
		if ips := ifs[want.ifName]; len(ips) != 1 || !strings.HasPrefix(ips[0], want.prefix) {
			t.Fatalf("pod interfaces before the switch %v: %s wants one address in %s0/24", ifs, want.ifName, want.prefix)
		}
	}
	if l := sb.leases(); len(l) != 3 {
		t.Fatalf("host-local leases of sandbox %s before the switch: %v, want eth0, net1 and vf0's", sb.ID, l)
	}
	moved := pf.StateOf(mustCalls(t, w.pfFile), migPF, vf.Index)
	if moved.Vlan != 100 || moved.Spoofchk || !moved.Trust || moved.LinkState != pf.LinkStateEnable || moved.MaxTxRate != 500 || moved.MAC != migMAC {
		t.Fatalf("VF %d on the PF while in the pod: %+v", vf.Index, moved)
	}
	if left := sb.leftovers(vf, orig); len(left) < 8 {
		t.Fatalf("positive control: while the pod runs the probe sees only %v", left)
	}
	t.Logf("before the switch, set up in %v", time.Since(start))

	// The switch: plexus becomes the node's CNI; pods created from now on
	// get their networks from plexus.
	install()
	probe := w.createPod(t, "migrated-probe", "", nil)
	w.waitRunning(t, probe.Name)
	w.sandboxNetns(t, probe.Name) // fatal unless plexus attached it
	w.deletePod(t, probe.Name)

	// Delete the pod attached before the switch.
	delStart := time.Now()
	zero := int64(0)
	if err := w.cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	var left []string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		left = sb.leftovers(vf, orig)
		return len(left) == 0, nil
	})
	if err != nil {
		log, lerr := os.ReadFile(filepath.Join(baseDir, "plexus.log"))
		var lines []string
		for _, l := range strings.Split(string(log), "\n") {
			if strings.Contains(l, sb.ID) && !strings.Contains(l, "msg=\"peak RSS") {
				lines = append(lines, l)
			}
		}
		t.Fatalf("60s after deleting pod %s (sandbox %s), still there:\n  %s\nplexus log of the sandbox (%v):\n%s",
			pod.Name, sb.ID, strings.Join(left, "\n  "), lerr, tail(strings.Join(lines, "\n"), 4000))
	}
	t.Logf("pod delete → sandbox gone, VF home, PF restored, leases and state files released: %v", time.Since(delStart))
	if got := pf.StateOf(mustCalls(t, w.pfFile), migPF, vf.Index); got != orig.pf {
		t.Errorf("VF %d on the PF after DEL: %+v, want its state before sriov-cni's ADD %+v", vf.Index, got, orig.pf)
	}
	// And the node as a whole: no plexus cache entry, no lease (the probe's
	// included).
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		ids, _ := cache.Store{Dir: filepath.Join(baseDir, "cache")}.List()
		return len(ids) == 0 && len(leases()) == 0, nil
	})
	if err != nil {
		ids, _ := cache.Store{Dir: filepath.Join(baseDir, "cache")}.List()
		t.Fatalf("plexus cache entries %v, leases %v left on the node", ids, leases())
	}
}

// sandbox is a pod sandbox as the runtime knows it.
type sandbox struct {
	ID, NetNS string
}

// podSandbox finds the pod's sandbox (CNI container ID and netns) in
// containerd.
func (w *world) podSandbox(t *testing.T, pod *corev1.Pod) sandbox {
	t.Helper()
	out, err := w.node.Ctr("containers", "ls", "-q")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range strings.Fields(string(out)) {
		info, err := w.node.Ctr("containers", "info", id)
		if err != nil {
			continue
		}
		var c struct {
			Labels map[string]string
			Spec   struct {
				Linux struct{ Namespaces []struct{ Type, Path string } }
			}
		}
		if json.Unmarshal(info, &c) != nil || c.Labels["io.cri-containerd.kind"] != "sandbox" || c.Labels["io.kubernetes.pod.uid"] != string(pod.UID) {
			continue
		}
		for _, n := range c.Spec.Linux.Namespaces {
			if n.Type == "network" && n.Path != "" {
				return sandbox{ID: id, NetNS: n.Path}
			}
		}
	}
	t.Fatalf("no sandbox with a netns for pod %s (uid %s) in containerd", pod.Name, pod.UID)
	return sandbox{}
}

// uninstallPlexus makes the cluster network alone the node's CNI config, as
// it was for the delegate Multus ran as eth0, and returns the install of
// plexus: its conflist back, the cluster network's out of the conf dir.
// Each swap is one rename or one new file that sorts after plexus's, so the
// runtime never sees an empty conf dir.
func (w *world) uninstallPlexus(t *testing.T) (install func()) {
	t.Helper()
	confDir := filepath.Join(baseDir, "net.d")
	plexusConf, parked := filepath.Join(confDir, "00-plexus.conflist"), filepath.Join(baseDir, "00-plexus.conflist.parked")
	primary := filepath.Join(confDir, "10-cluster-network.conflist")
	b, err := os.ReadFile(filepath.Join(baseDir, "primary", "10-bridge.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(confDir, ".cluster-network.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, primary); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(plexusConf, parked); err != nil {
		t.Fatal(err)
	}
	installed := false
	return func() {
		if installed {
			return
		}
		installed = true
		if err := os.Rename(parked, plexusConf); err != nil {
			t.Errorf("installing plexus: %v", err)
		}
		if err := os.Remove(primary); err != nil {
			t.Errorf("installing plexus: %v", err)
		}
	}
}

func (w *world) createNAD(t *testing.T, name, resourceName, config string) {
	t.Helper()
	n := &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: map[string]string{"k8s.v1.cni.cncf.io/resourceName": resourceName}},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: config},
	}
	if _, err := w.nads.NetworkAttachmentDefinitions("default").Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.nads.NetworkAttachmentDefinitions("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

// origVF is a VF's state before sriov-cni's ADD.
type origVF struct {
	pf  pf.VFState
	mac string
	mtu int
}

// multusDelegate is one element of Multus's cache file: its
// types.DelegateNetConf as encoding/json writes it (pkg/types/types.go of
// k8snetworkplumbingwg/multus-cni v4).
type multusDelegate struct {
	Conf                  cnitypes.NetConf
	ConfList              cnitypes.NetConfList
	Name                  string
	IfnameRequest         string   `json:"ifnameRequest,omitempty"`
	MacRequest            string   `json:"macRequest,omitempty"`
	InfinibandGUIDRequest string   `json:"infinibandGUIDRequest,omitempty"`
	IPRequest             []string `json:"ipRequest,omitempty"`
	IsFilterV4Gateway     bool
	IsFilterV6Gateway     bool
	DeviceID              string `json:"deviceID,omitempty"`
	ResourceName          string `json:"resourceName,omitempty"`
	Bytes                 []byte
}

// multusAttach does what Multus and sriov-cni did for the pod's networks
// annotation after the cluster network made eth0: bridge-n as net1 through
// libcni, the VF as vf0 the way sriov-cni's ADD does it, and their state
// files. It returns the VF's state before.
func (w *world) multusAttach(t *testing.T, pod *corev1.Pod, sb sandbox, vf fakesysfs.VF) origVF {
	t.Helper()
	ctx := context.Background()
	cniArgs := [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", pod.Namespace}, {"K8S_POD_NAME", pod.Name},
		{"K8S_POD_INFRA_CONTAINER_ID", sb.ID}, {"K8S_POD_UID", string(pod.UID)}}
	nadConf := func(name string) []byte {
		n, err := w.nads.NetworkAttachmentDefinitions("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return []byte(n.Spec.Config)
	}
	// Multus's delegates: the cluster network (eth0), then the annotation's
	// elements; the VF's PCI address goes into its delegate's config.
	clusterConf, err := os.ReadFile(filepath.Join(baseDir, "primary", "10-bridge.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	sriovConf := setKey(t, nadConf(migNAD), "deviceID", vf.Addr)
	var cluster multusDelegate
	if err := json.Unmarshal(clusterConf, &cluster.ConfList); err != nil {
		t.Fatal(err)
	}
	cluster.Name, cluster.Bytes = cluster.ConfList.Name, clusterConf
	bridge := multusDelegate{Name: "bridge-n", Bytes: nadConf("bridge-n")}
	vfDel := multusDelegate{Name: migNAD, IfnameRequest: "vf0", MacRequest: migMAC, DeviceID: vf.Addr, ResourceName: migRes, Bytes: sriovConf}
	for _, d := range []*multusDelegate{&bridge, &vfDel} {
		if err := json.Unmarshal(d.Bytes, &d.Conf); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal([]multusDelegate{cluster, bridge, vfDel})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(baseDir, "multus"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(baseDir, "multus", sb.ID), b, 0o600); err != nil {
		t.Fatal(err)
	}

	// net1: no interface requested, Multus names it net<index>.
	cni := libcni.NewCNIConfigWithCacheDir([]string{w.binDir}, t.TempDir(), nil)
	bconf, err := libcni.NetworkPluginConfFromBytes(bridge.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cni.AddNetwork(ctx, bconf, &libcni.RuntimeConf{ContainerID: sb.ID, NetNS: sb.NetNS, IfName: "net1", Args: cniArgs}); err != nil {
		t.Fatalf("bridge-n ADD as Multus runs it: %v", err)
	}

	// vf0: libcni gives sriov-cni the mac in runtimeConfig (the NAD
	// declares the capability); sriov-cni's ADD does the rest.
	stdin := setKey(t, sriovConf, "runtimeConfig", map[string]string{"mac": migMAC})
	return w.sriovCNIAdd(t, stdin, sb, cniArgs, vf, "vf0")
}

// sriovCNIAdd is k8snetworkplumbingwg/sriov-cni's ADD of a netdevice VF on
// this node's fake hardware: the VF's state saved, the NAD's settings
// applied on the PF (its ApplyVFConfig, through the recording PF), the
// netdev moved into the pod under ifName with the MAC, host-local run and
// its address set, then its NetConf with OrigVfState saved at
// <dir>/<containerID>-<ifName> and the VF marked allocated in
// <dir>/pci/<address>.
func (w *world) sriovCNIAdd(t *testing.T, stdin []byte, sb sandbox, cniArgs [][2]string, vf fakesysfs.VF, ifName string) origVF {
	t.Helper()
	fake := pf.FileFake{Path: w.pfFile}
	pfState, err := fake.VF(migPF, vf.Index)
	if err != nil {
		t.Fatal(err)
	}
	l, err := netlinksafe.LinkByName(vf.Netdev)
	if err != nil {
		t.Fatal(err)
	}
	orig := origVF{pf: pfState, mac: l.Attrs().HardwareAddr.String(), mtu: l.Attrs().MTU}
	mac, _ := net.ParseMAC(migMAC)
	for _, err := range []error{
		fake.LinkSetVfVlanQosProto(migPF, vf.Index, 100, 0, pf.VlanProto8021Q),
		fake.LinkSetVfHardwareAddr(migPF, vf.Index, mac),
		fake.LinkSetVfRate(migPF, vf.Index, 10, 500),
		fake.LinkSetVfSpoofchk(migPF, vf.Index, false),
		fake.LinkSetVfTrust(migPF, vf.Index, true),
		fake.LinkSetVfState(migPF, vf.Index, pf.LinkStateEnable),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	podNS, err := ns.GetNS(sb.NetNS)
	if err != nil {
		t.Fatal(err)
	}
	defer podNS.Close()
	if err := netlink.LinkSetNsFd(l, int(podNS.Fd())); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var kv []string
	for _, a := range cniArgs {
		kv = append(kv, a[0]+"="+a[1])
	}
	r, err := invoke.ExecPluginWithResult(ctx, filepath.Join(w.binDir, "host-local"), stdin,
		&invoke.Args{Command: "ADD", ContainerID: sb.ID, NetNS: sb.NetNS, IfName: ifName, PluginArgsStr: strings.Join(kv, ";"), Path: w.binDir}, nil)
	if err != nil {
		t.Fatalf("host-local ADD for %s: %v", ifName, err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	res.Interfaces = []*current.Interface{{Name: ifName, Mac: migMAC, Sandbox: sb.NetNS}}
	for _, ip := range res.IPs {
		ip.Interface = current.Int(0)
	}
	if err := podNS.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(vf.Netdev)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetName(l, ifName); err != nil {
			return err
		}
		if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		return ipam.ConfigureIface(ifName, res)
	}); err != nil {
		t.Fatalf("VF %s into the pod as %s: %v", vf.Addr, ifName, err)
	}
	// sriov-cni's NetConf as SaveNetConf writes it: the config it ran with
	// and its own fields (format of pkg/sriov/cni/upstream_test.go).
	var conf map[string]any
	if err := json.Unmarshal(stdin, &conf); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{
		"OrigVfState": map[string]any{"HostIFName": vf.Netdev, "SpoofChk": pfState.Spoofchk, "Trust": pfState.Trust,
			"AdminMAC": pfState.MAC, "EffectiveMAC": orig.mac, "Vlan": pfState.Vlan, "VlanQoS": pfState.Qos, "VlanProto": pfState.VlanProto,
			"MinTxRate": pfState.MinTxRate, "MaxTxRate": pfState.MaxTxRate, "LinkState": pfState.LinkState, "MTU": orig.mtu},
		"Master": migPF, "MAC": migMAC, "VFID": vf.Index, "vlanQoS": 0, "vlanProto": "802.1q", "ContIFNames": ifName,
		"logLevel": "", "logFile": "",
	} {
		conf[k] = v
	}
	b, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(sriovCNIDir, "pci"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sriovCNIDir, sb.ID+"-"+ifName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sriovCNIDir, "pci", vf.Addr), []byte(sb.NetNS), 0o600); err != nil {
		t.Fatal(err)
	}
	return orig
}

// leftovers lists what the pod attached before the switch still holds on
// the node: its netns, host-local leases, Multus's cache file, sriov-cni's
// state, a plexus cache entry or plexus sriov state, and the VF away from
// home (not in the host netns under its name with its MAC and MTU).
func (sb sandbox) leftovers(vf fakesysfs.VF, orig origVF) []string {
	var left []string
	if _, err := os.Stat(sb.NetNS); err == nil {
		left = append(left, "sandbox netns "+sb.NetNS)
	}
	for _, l := range sb.leases() {
		left = append(left, "host-local lease "+l)
	}
	for _, f := range []string{
		filepath.Join(baseDir, "multus", sb.ID),
		filepath.Join(sriovCNIDir, sb.ID+"-vf0"),
		filepath.Join(sriovCNIDir, "pci", vf.Addr),
		filepath.Join(sriovCNIDir, vf.Addr+".json"),
		filepath.Join(baseDir, "cache", sb.ID),
	} {
		if _, err := os.Stat(f); err == nil {
			left = append(left, f)
		}
	}
	if e, err := (cache.Store{Dir: filepath.Join(baseDir, "cache")}).Load(sb.ID); e != nil || err != nil {
		left = append(left, fmt.Sprintf("plexus cache entry %s (%v)", sb.ID, err))
	}
	l, err := netlinksafe.LinkByName(vf.Netdev)
	switch {
	case err != nil:
		left = append(left, fmt.Sprintf("VF %s not in the host netns as %s: %v", vf.Addr, vf.Netdev, err))
	case l.Attrs().HardwareAddr.String() != orig.mac || l.Attrs().MTU != orig.mtu:
		left = append(left, fmt.Sprintf("VF %s home as %s with MAC %s MTU %d, want MAC %s MTU %d",
			vf.Addr, vf.Netdev, l.Attrs().HardwareAddr, l.Attrs().MTU, orig.mac, orig.mtu))
	}
	return left
}

// leases are the host-local lease files holding the sandbox's ID.
func (sb sandbox) leases() []string {
	var out []string
	for _, p := range leases() {
		if b, err := os.ReadFile(p); err == nil && sb.ID != "" && strings.HasPrefix(string(b), sb.ID) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// removeLeftovers removes what a failed run left of the sandbox, so the
// package's other tests (which expect no leases at all) are not affected.
// The runtime's own libcni result of the cluster network's ADD goes too:
// after the switch the runtime deletes under plexus's network name, so that
// file is never removed (as the runtime's result of Multus's ADD is not
// after a real switch); it is no network resource.
func (sb sandbox) removeLeftovers(vf fakesysfs.VF) {
	if sb.ID == "" {
		return
	}
	for _, p := range sb.leases() {
		os.Remove(p)
	}
	os.Remove(filepath.Join(runtimeCacheDir, "node-primary-"+sb.ID+"-eth0"))
	os.Remove(filepath.Join(baseDir, "multus", sb.ID))
	os.Remove(filepath.Join(sriovCNIDir, sb.ID+"-vf0"))
	if vf.Addr != "" {
		os.Remove(filepath.Join(sriovCNIDir, "pci", vf.Addr))
	}
}

func mustCalls(t *testing.T, path string) []pf.Call {
	t.Helper()
	calls, err := pf.ReadCalls(path)
	if err != nil {
		t.Fatal(err)
	}
	return calls
}

// setKey returns the JSON object conf with key set to v.
func setKey(t *testing.T, conf []byte, key string, v any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		t.Fatal(err)
	}
	m[key] = v
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
