package sriov_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"

	"github.com/plexus-cni/plexus/pkg/deviceplugin"
	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/sriov/pf"
	"github.com/plexus-cni/plexus/pkg/testutil/cnienv"
)

// want is what one SR-IOV attachment should look like in the pod.
type want struct {
	ifname  string
	network string // namespace/name
	pf      *pfDev
	vfAddr  string
	vlan    int
	mac     string   // "" for any
	ips     []string // exact addresses, or nil for one from subnet
	subnet  string   // "10.a.b." when ips is nil
}

// checkAttached checks each attachment: the VF is the expected one, in the
// pod under the requested name with the requested MAC and addresses, gone
// from the host, its PF-side VLAN/MAC/spoofchk set, its device-info in
// network-status; and that no other VF was touched on the PF.
func (w *world) checkAttached(p *cnienv.Pod, wants []want) {
	t := w.t
	t.Helper()
	links := w.E.Links(p)
	if len(links) != len(wants)+1 {
		var names []string
		for n := range links {
			names = append(names, n)
		}
		t.Errorf("pod interfaces %v, want eth0 and %d VFs", names, len(wants))
	}
	st := w.status(p)
	if len(st) != len(wants)+1 || st[0].Interface != "eth0" {
		t.Fatalf("network-status %+v", st)
	}
	touched := map[string]bool{}
	for i, wt := range wants {
		d, vf := w.vfOf(p, wt.ifname)
		if d != wt.pf || vf.Addr != wt.vfAddr {
			t.Errorf("%s is VF %s of %s, want %s of %s", wt.ifname, vf.Addr, d.Netdev, wt.vfAddr, wt.pf.Netdev)
		}
		touched[d.Netdev+"/"+strconv.Itoa(vf.Index)] = true
		mac := links[wt.ifname].Attrs().HardwareAddr.String()
		if wt.mac != "" && mac != wt.mac {
			t.Errorf("%s MAC %s, want %s", wt.ifname, mac, wt.mac)
		}
		if _, err := netlinksafe.LinkByName(vf.Netdev); err == nil {
			t.Errorf("VF %s: netdev %s still in the host", vf.Addr, vf.Netdev)
		}
		addrs := w.E.Addrs(p, wt.ifname)
		if wt.ips != nil && !slices.Equal(addrs, wt.ips) {
			t.Errorf("%s addresses %v, want %v", wt.ifname, addrs, wt.ips)
		}
		if wt.ips == nil && (len(addrs) != 1 || !strings.HasPrefix(addrs[0], wt.subnet) || !strings.HasSuffix(addrs[0], "/24")) {
			t.Errorf("%s addresses %v, want one from %s0/24", wt.ifname, addrs, wt.subnet)
		}
		ws := w.orig[d.Netdev+"/"+strconv.Itoa(vf.Index)]
		ws.Vlan, ws.Spoofchk = wt.vlan, false
		if wt.mac != "" {
			ws.MAC = wt.mac // else the admin MAC is left alone
		}
		if got := w.pfState(d, vf.Index); got != ws {
			t.Errorf("%s (%s vf %d): PF-side state %+v, want %+v", wt.ifname, d.Netdev, vf.Index, got, ws)
		}
		s := st[i+1]
		if s.Interface != wt.ifname || s.Name != wt.network || s.Mac != mac || len(s.IPs) != len(addrs) {
			t.Errorf("network-status[%d] %+v, want %s on %s with MAC %s and %v", i+1, s, wt.network, wt.ifname, mac, addrs)
		}
		for k, ip := range addrs {
			if k < len(s.IPs) && s.IPs[k]+"/24" != ip {
				t.Errorf("network-status[%d] IPs %v, want %v", i+1, s.IPs, addrs)
			}
		}
		if di := s.DeviceInfo; di == nil || di.Type != "pci" || di.Pci == nil || di.Pci.PciAddress != wt.vfAddr || di.Pci.PfPciAddress != wt.pf.Addr {
			t.Errorf("network-status[%d] (%s) device-info %+v, want pci %s on PF %s", i+1, wt.ifname, di, wt.vfAddr, wt.pf.Addr)
		}
	}
	for _, c := range w.calls() {
		if !touched[c.PF+"/"+strconv.Itoa(c.VF)] {
			t.Errorf("PF call on a VF the pod does not hold: %s", c)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(w.DevInfo, "cni", "*")); len(files) != len(wants) {
		t.Errorf("plexus device-info files %v, want %d", files, len(wants))
	}
}

// hasCall reports whether the fake PF recorded a call.
func hasCall(calls []pf.Call, op, pfName string, vf int, match func(pf.Call) bool) bool {
	for _, c := range calls {
		if c.Op == op && c.PF == pfName && c.VF == vf && match(c) {
			return true
		}
	}
	return false
}

// The whole chain: device plugin → test kubelet (Allocate, pod-resources)
// → plexus → sriov → two VFs in the pod with the requested names, MACs,
// VLANs and IPs; DEL returns them as they were.
func TestChain(t *testing.T) {
	w := newWorld(t)
	w.writeSRIOVNAD("sriov-a", resA, 100, 1)
	w.writeSRIOVNAD("sriov-b", resA, 200, 2)
	mac0, mac1 := "02:5a:00:00:00:01", "02:5a:00:00:00:02"
	ip0 := w.E.IPN(1, 9) + "/24"
	nets := fmt.Sprintf(`[{"name":"sriov-a","interface":"data0","mac":%q,"ips":[%q]},{"name":"sriov-b","interface":"data1","mac":%q}]`, mac0, ip0, mac1)
	p, kp := w.admit("chain", nets, map[string]int{resA: 2})
	ids := sorted(kp.DeviceIDs(resA))
	if len(ids) != 2 {
		t.Fatalf("kubelet allocated %v", ids)
	}

	// What the device plugin gave kubelet: the env and, where plexus reads
	// them, the device-info files.
	env := strings.Split(kp.Responses["app"][resA].Envs[deviceplugin.EnvName(resA)], ",")
	if !slices.Equal(sorted(env), ids) {
		t.Errorf("%s=%v, want %v", deviceplugin.EnvName(resA), env, ids)
	}
	for _, id := range ids {
		if _, err := os.Stat(devinfo.DPPath(w.DevInfo, resA, id)); err != nil {
			t.Errorf("device plugin's device-info for %s not where plexus reads it: %v", id, err)
		}
	}

	start := time.Now()
	if _, err := w.E.Add(p); err != nil {
		t.Fatalf("ADD: %v\n%s", err, w.E.Log())
	}
	add := time.Since(start)
	// Attachments of one resource get its devices in PCI address order.
	w.checkAttached(p, []want{
		{ifname: "data0", network: "default/sriov-a", pf: w.A, vfAddr: ids[0], vlan: 100, mac: mac0, ips: []string{ip0}},
		{ifname: "data1", network: "default/sriov-b", pf: w.A, vfAddr: ids[1], vlan: 200, mac: mac1, subnet: prefix(w.E.IPN(2, 0))},
	})
	calls := w.calls()
	for k, id := range ids {
		idx := w.indexOf(w.A, id)
		vlan, mac := []int{100, 200}[k], []string{mac0, mac1}[k]
		if !hasCall(calls, "LinkSetVfVlanQosProto", w.A.Netdev, idx, func(c pf.Call) bool { return *c.Vlan == vlan && *c.Qos == 0 && *c.Proto == pf.VlanProto8021Q }) {
			t.Errorf("no VLAN %d call for %s vf %d in %v", vlan, w.A.Netdev, idx, calls)
		}
		if !hasCall(calls, "LinkSetVfHardwareAddr", w.A.Netdev, idx, func(c pf.Call) bool { return c.MAC == mac }) {
			t.Errorf("no MAC %s call for %s vf %d in %v", mac, w.A.Netdev, idx, calls)
		}
	}
	if err := w.E.Check(p); err != nil {
		t.Errorf("CHECK: %v\n%s", err, w.E.Log())
	}

	// DEL works from plexus's cache: kubelet may have forgotten the pod.
	w.Node.Remove("default", "chain")
	gets, lists := w.Node.Calls()
	start = time.Now()
	if err := w.E.Del(p); err != nil {
		t.Fatalf("DEL: %v\n%s", err, w.E.Log())
	}
	del := time.Since(start)
	t.Logf("chain with 2 VFs (plexus → bridge + 2×sriov, exec'd): ADD %v, DEL %v", add, del)
	w.assertHome(p)
	if len(w.calls()) <= len(calls) {
		t.Error("DEL made no PF-side call: nothing was restored")
	}
	if err := w.E.Del(p); err != nil {
		t.Errorf("second DEL: %v", err)
	}
	w.assertHome(p)
	if g, l := w.Node.Calls(); gets == 0 || g != gets || l != lists {
		t.Errorf("pod-resources calls: %d Get before DEL, %d Get / %d List after (%d before): want >0 for ADD, none for DEL", gets, g, l, lists)
	}
}

// DEL without plexus's cache entry (lost with /var/lib/cni), after kubelet
// forgot the pod: plexus rebuilds the attachments from CNI_ARGS without
// device IDs, and sriov finds each VF from its own state by container and
// interface. Both VFs go home restored.
func TestDelWithoutCacheOrKubelet(t *testing.T) {
	w := newWorld(t)
	w.writeSRIOVNAD("sriov-a", resA, 100, 1)
	w.writeSRIOVNAD("sriov-b", resA, 200, 2)
	p, _ := w.admit("lost", "sriov-a@data0,sriov-b@data1", map[string]int{resA: 2})
	if _, err := w.E.Add(p); err != nil {
		t.Fatalf("ADD: %v\n%s", err, w.E.Log())
	}
	if err := os.RemoveAll(filepath.Join(w.E.CNIDir, "containers")); err != nil {
		t.Fatal(err)
	}
	w.Node.Remove("default", "lost")
	if err := w.E.Del(p); err != nil {
		t.Fatalf("DEL: %v\n%s", err, w.E.Log())
	}
	// Nothing is left, not even plexus's device-info files in cni/ (sriov
	// removes the CNIDeviceInfoFile it saved in its state).
	w.assertHome(p)
}

func (w *world) indexOf(d *pfDev, addr string) int {
	for _, vf := range d.VFs {
		if vf.Addr == addr {
			return vf.Index
		}
	}
	w.t.Fatalf("%s is not a VF of %s", addr, d.Netdev)
	return -1
}

// Two SR-IOV networks of one resource and one of another: each interface
// gets a VF of its own resource, the same one on every sandbox of the pod
// (kubelet's pod-resources answers in a different order each time). The
// last run has kubelet's Get disabled, so plexus falls back to List.
func TestMappingIsStable(t *testing.T) {
	w := newWorld(t)
	w.writeSRIOVNAD("a1", resA, 101, 1)
	w.writeSRIOVNAD("a2", resA, 102, 2)
	w.writeSRIOVNAD("b", resB, 201, 3)
	_, kp := w.admit("stable", "", map[string]int{resA: 2, resB: 1})
	a, b := sorted(kp.DeviceIDs(resA)), kp.DeviceIDs(resB)
	if len(a) != 2 || len(b) != 1 {
		t.Fatalf("kubelet allocated %v and %v", a, b)
	}
	const runs = 5
	for run := 0; run < runs; run++ {
		if run == runs-1 {
			w.Node.GetDisabled.Store(true)
		}
		p := w.E.NewPod("stable", "a1,a2,b")
		p.UID = kp.UID
		if _, err := w.E.Add(p); err != nil {
			t.Fatalf("run %d: ADD: %v\n%s", run, err, w.E.Log())
		}
		w.checkAttached(p, []want{
			{ifname: "net1", network: "default/a1", pf: w.A, vfAddr: a[0], vlan: 101, subnet: prefix(w.E.IPN(1, 0))},
			{ifname: "net2", network: "default/a2", pf: w.A, vfAddr: a[1], vlan: 102, subnet: prefix(w.E.IPN(2, 0))},
			{ifname: "net3", network: "default/b", pf: w.B, vfAddr: b[0], vlan: 201, subnet: prefix(w.E.IPN(3, 0))},
		})
		if err := w.E.Del(p); err != nil {
			t.Fatalf("run %d: DEL: %v\n%s", run, err, w.E.Log())
		}
		w.assertHome(p)
		if t.Failed() {
			t.Fatalf("run %d failed", run)
		}
	}
	if _, lists := w.Node.Calls(); lists == 0 {
		t.Error("with Get disabled plexus did not fall back to List")
	}
}

// A third attachment whose delegate fails: plexus rolls back, both VFs go
// home restored, nothing is left.
func TestFailingThirdAttachmentReturnsVFs(t *testing.T) {
	w := newWorld(t)
	w.writeSRIOVNAD("sriov-a", resA, 100, 1)
	w.writeSRIOVNAD("sriov-b", resA, 200, 2)
	w.E.WriteNAD("default", "broken", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"broken","type":"macvlan","master":"nosuch%s","ipam":{"type":"host-local","dataDir":%q,"subnet":%q}}`, w.E.Suffix, w.E.IPAMDir, w.E.SubnetN(3)))
	p, kp := w.admit("fail", "sriov-a@data0,sriov-b@data1,broken@data2", map[string]int{resA: 2})
	_, err := w.E.Add(p)
	if err == nil {
		t.Fatal("ADD succeeded with a broken third delegate")
	}
	if wantErr := `network "default/broken" (interface data2): delegate macvlan`; !strings.Contains(err.Error(), wantErr) {
		t.Errorf("error %q does not contain %q", err, wantErr)
	}
	// Both VFs did go into the pod (their VLANs were set) before coming back.
	calls := w.calls()
	for k, id := range sorted(kp.DeviceIDs(resA)) {
		idx, vlan := w.indexOf(w.A, id), []int{100, 200}[k]
		if !hasCall(calls, "LinkSetVfVlanQosProto", w.A.Netdev, idx, func(c pf.Call) bool { return *c.Vlan == vlan }) {
			t.Errorf("VF %s never got VLAN %d: %v", id, vlan, calls)
		}
	}
	w.assertHome(p)
}

// prefix turns "10.a.b.0" into "10.a.b.".
func prefix(ip string) string { return strings.TrimSuffix(ip, "0") }
