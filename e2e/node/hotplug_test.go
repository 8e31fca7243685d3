package node_test

// Hot-plug on the real node (issue 15, docs/hotplug.md): the networks
// annotation of a Running pod is edited through the API and plexusd, which
// the world runs, attaches and detaches the interfaces in the pod's
// sandbox with the real plugins.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/testutil"
	"github.com/plexus-cni/plexus/pkg/testutil/fakesysfs"
)

// hotplugNADs are the hot-plug tests' networks: "slow-n" is macvlan
// followed by cni-sleep, which holds its ADD for 1.5 s — a reconcile
// caught in the middle of its delegate.
func (w *world) hotplugNADs(t *testing.T) {
	t.Helper()
	if err := copyFile(testutil.BuildPackage(t, "cni-sleep", "./e2e/cmd/cni-sleep"), filepath.Join(w.binDir, "cni-sleep")); err != nil {
		t.Fatal(err)
	}
	ipam := filepath.Join(baseDir, "ipam")
	n := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: "slow-n", Namespace: "default"},
		Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: fmt.Sprintf(`{"cniVersion":"1.0.0","name":"slow-n","plugins":[
			{"type":"macvlan","master":%q,"mode":"bridge","ipam":{"type":"host-local","dataDir":%q,"subnet":"10.248.4.0/24"}},
			{"type":"cni-sleep","sleepMs":1500}]}`, uplink, ipam)}}
	if _, err := w.nads.NetworkAttachmentDefinitions("default").Create(context.Background(), n, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func (w *world) setNetworks(t *testing.T, pod, networks string) {
	t.Helper()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{nadv1.NetworkAttachmentAnnot: networks}}})
	if _, err := w.cs.CoreV1().Pods("default").Patch(context.Background(), pod, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// entryOf is the cache entry of the pod's sandbox (nil when none).
func entryOf(uid string) *podnet.Entry {
	st := cache.Store{Dir: filepath.Join(baseDir, "cache")}
	ids, _ := st.List()
	for _, id := range ids {
		if e, err := st.Load(id); err == nil && e != nil && e.PodUID == uid {
			return e
		}
	}
	return nil
}

func ifNames(ifs map[string][]string) string {
	var names []string
	for n := range ifs {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// leasesOf are the host-local leases held by a container, as network/ip.
func leasesOf(containerID string) []string {
	var out []string
	for _, p := range leases() {
		b, err := os.ReadFile(p)
		if err == nil && strings.HasPrefix(string(b), containerID) {
			out = append(out, filepath.Base(filepath.Dir(p))+"/"+filepath.Base(p))
		}
	}
	sort.Strings(out)
	return out
}

// until polls cond every 5 ms for at most d and returns how long it took.
func until(t *testing.T, d time.Duration, what string, cond func() bool, dump func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			extra := ""
			if dump != nil {
				extra = dump()
			}
			t.Fatalf("%s: not within %s\n%s", what, d, extra)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func (w *world) pod(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	p, err := w.cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// statusOf is the pod's network-status by interface.
func (w *world) statusOf(t *testing.T, name string) map[string]nadv1.NetworkStatus {
	out := map[string]nadv1.NetworkStatus{}
	for _, s := range networkStatus(t, w.pod(t, name)) {
		out[s.Interface] = s
	}
	return out
}

func (w *world) dump(pod string) func() string {
	return func() string {
		b, _ := os.ReadFile(filepath.Join(baseDir, "plexusd.log"))
		ev, _ := w.cp.Kubectl("get", "events", "-n", "default", "--field-selector", "involvedObject.name="+pod)
		return fmt.Sprintf("events:\n%s\nplexusd log tail:\n%s", ev, tail(string(b), 4000))
	}
}

// warningEvents are the messages of the pod's Warning events.
func (w *world) warningEvents(t *testing.T, pod string) []string {
	evs, err := w.cs.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod + ",type=Warning"})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		out = append(out, e.Reason+": "+e.Message)
	}
	return out
}

// hotplugPod creates a pod with networks and waits until it runs with
// network-status published; it returns the pod, its netns and container.
func (w *world) hotplugPod(t *testing.T, name, networks string, ifaces int) (*corev1.Pod, string, string) {
	t.Helper()
	created := w.createPod(t, name, networks, nil)
	pod, _ := w.waitRunning(t, created.Name)
	until(t, 10*time.Second, "network-status of the new pod", func() bool {
		return len(w.statusOf(t, name)) == ifaces
	}, w.dump(name))
	e := entryOf(string(pod.UID))
	if e == nil {
		t.Fatalf("no cache entry for pod %s", name)
	}
	return pod, e.NetNS, e.ContainerID
}

func TestHotplugAddPingRemove(t *testing.T) {
	w := setup(t)
	// A peer on the same macvlan uplink, attached at creation.
	_, peerNS, _ := w.hotplugPod(t, "hp-peer", "macvlan-n", 2)
	pod, netns, cid := w.hotplugPod(t, "hp-basic", "bridge-n", 2)
	if got := ifNames(podInterfaces(t, netns)); got != "eth0,net1" {
		t.Fatalf("interfaces before hot-plug: %s", got)
	}
	before := leasesOf(cid)
	// The world is the daemon deployment: the shim asked plexusd.
	if n := w.plexusd.Metric("plexus_resolve_duration_seconds_count"); n == 0 {
		t.Fatalf("plexusd resolved nothing: the shim did not use it\n%s", w.dump(pod.Name)())
	}

	w.setNetworks(t, pod.Name, "bridge-n,macvlan-n")
	patched := time.Now()
	attach := until(t, 2*time.Second, "net2 with its address in the pod's namespace within 2 s of the annotation", func() bool {
		return len(podInterfaces(t, netns)["net2"]) == 1
	}, w.dump(pod.Name))
	until(t, 5*time.Second, "net2 in network-status", func() bool {
		s, ok := w.statusOf(t, pod.Name)["net2"]
		return ok && len(s.IPs) == 1
	}, w.dump(pod.Name))
	published := time.Since(patched)
	st := w.statusOf(t, pod.Name)["net2"]
	ifs := podInterfaces(t, netns)
	if st.Name != "default/macvlan-n" || len(ifs["net2"]) != 1 || ifs["net2"][0] != st.IPs[0] || !strings.HasPrefix(st.IPs[0], "10.248.1.") {
		t.Fatalf("network-status net2 %+v; the namespace has %v", st, ifs["net2"])
	}
	if got := ifNames(ifs); got != "eth0,net1,net2" {
		t.Fatalf("interfaces after hot-plug: %s", got)
	}
	out, err := exec.Command("nsenter", "--net="+peerNS, "ping", "-c", "1", "-W", "2", st.IPs[0]).CombinedOutput()
	if err != nil {
		t.Fatalf("ping from the peer pod to the hot-plugged %s: %v\n%s", st.IPs[0], err, out)
	}
	if e := entryOf(string(pod.UID)); e == nil || len(e.Attachments) != 3 || !e.Attachments[2].Added || e.Attachments[2].IfName != "net2" {
		t.Fatalf("cache entry after hot-plug: %+v", e)
	}
	lease := "macvlan-n/" + st.IPs[0]
	if got := leasesOf(cid); len(got) != len(before)+1 || !contains(got, lease) {
		t.Fatalf("leases of the pod %v, want %v and %s", got, before, lease)
	}

	w.setNetworks(t, pod.Name, "bridge-n")
	patched = time.Now()
	detach := until(t, 2*time.Second, "net2 gone from the pod's namespace", func() bool {
		_, ok := podInterfaces(t, netns)["net2"]
		return !ok
	}, w.dump(pod.Name))
	until(t, 5*time.Second, "net2 gone from network-status", func() bool {
		_, ok := w.statusOf(t, pod.Name)["net2"]
		return !ok
	}, w.dump(pod.Name))
	unpublished := time.Since(patched)
	if got := leasesOf(cid); strings.Join(got, " ") != strings.Join(before, " ") {
		t.Fatalf("leases after detach %v, want %v (lease %s freed)", got, before, lease)
	}
	if e := entryOf(string(pod.UID)); e == nil || len(e.Attachments) != 2 {
		t.Fatalf("cache entry after detach: %+v", e)
	}
	t.Logf("hot-plug latency, annotation PATCH → interface (with its address) in the pod: attach %v, detach %v; → network-status: %v, %v",
		attach.Round(time.Millisecond), detach.Round(time.Millisecond), published.Round(time.Millisecond), unpublished.Round(time.Millisecond))
	t.Logf("plexusd's own figure (plexus_hotplug_duration_seconds): attach %.1f ms, detach %.1f ms (mean over the process)",
		1000*w.plexusd.Metric("plexus_hotplug_duration_seconds_sum", `op="attach"`)/w.plexusd.Metric("plexus_hotplug_duration_seconds_count", `op="attach"`),
		1000*w.plexusd.Metric("plexus_hotplug_duration_seconds_sum", `op="detach"`)/w.plexusd.Metric("plexus_hotplug_duration_seconds_count", `op="detach"`))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestHotplugBadElement(t *testing.T) {
	w := setup(t)
	pod, netns, cid := w.hotplugPod(t, "hp-bad", "bridge-n", 2)
	leases := leasesOf(cid)
	// Two bad elements: a NAD that does not exist, and an interface name
	// the primary holds.
	w.setNetworks(t, pod.Name, `[{"name":"bridge-n"},{"name":"no-such-net"},{"name":"macvlan-n","interface":"eth0"}]`)
	var warnings []string
	until(t, 10*time.Second, "Warning events naming both bad elements", func() bool {
		warnings = w.warningEvents(t, pod.Name)
		all := strings.Join(warnings, "\n")
		return strings.Contains(all, `network "default/no-such-net"`) && strings.Contains(all, `field "interface"`)
	}, w.dump(pod.Name))
	t.Logf("warnings: %q", warnings)
	// The events are written after the reconcile finished: the pod is as
	// it was.
	if got := ifNames(podInterfaces(t, netns)); got != "eth0,net1" {
		t.Errorf("interfaces after bad elements: %s", got)
	}
	if e := entryOf(string(pod.UID)); e == nil || len(e.Attachments) != 2 {
		t.Errorf("cache entry after bad elements: %+v", e)
	}
	if got := leasesOf(cid); strings.Join(got, " ") != strings.Join(leases, " ") {
		t.Errorf("leases %v, want %v", got, leases)
	}
	if got := w.pod(t, pod.Name).Annotations[nadv1.NetworkAttachmentAnnot]; !strings.Contains(got, "no-such-net") {
		t.Errorf("the annotation was rewritten: %q", got)
	}
	if st := w.statusOf(t, pod.Name); len(st) != 2 {
		t.Errorf("network-status %+v", st)
	}
}

func TestHotplugFlips(t *testing.T) {
	w := setup(t)
	pod, netns, cid := w.hotplugPod(t, "hp-flips", "bridge-n,macvlan-n", 3)
	// 20 flips as fast as the API takes them: remove, add, …, add.
	for i := 1; i <= 20; i++ {
		nets := "bridge-n,macvlan-n"
		if i%2 == 1 {
			nets = "bridge-n"
		}
		w.setNetworks(t, pod.Name, nets)
	}
	until(t, 20*time.Second, "the last requested state: net2 from macvlan-n, in the namespace and network-status", func() bool {
		s, ok := w.statusOf(t, pod.Name)["net2"]
		e := entryOf(string(pod.UID))
		return ok && len(s.IPs) == 1 && e != nil && len(e.Attachments) == 3 && e.Attachments[2].Added &&
			ifNames(podInterfaces(t, netns)) == "eth0,net1,net2" && len(leasesOf(cid)) == 3 && s.Name == "default/macvlan-n" &&
			len(podInterfaces(t, netns)["net2"]) == 1 && podInterfaces(t, netns)["net2"][0] == s.IPs[0]
	}, func() string {
		return fmt.Sprintf("interfaces %v, leases %v, entry %+v\n%s", podInterfaces(t, netns), leasesOf(cid), entryOf(string(pod.UID)), w.dump(pod.Name)())
	})
	t.Logf("after 20 flips: leases %v", leasesOf(cid))
	w.deletePod(t, pod.Name)
	waitFor(t, "nothing of the pod left", func() bool {
		return entryOf(string(pod.UID)) == nil && len(leasesOf(cid)) == 0
	})
}

// waitIntent waits until the pod's cache entry holds the intent of an
// attachment of network whose delegate has not finished.
func (w *world) waitIntent(t *testing.T, uid, network string) {
	t.Helper()
	until(t, 10*time.Second, "the intent of "+network+" in the cache", func() bool {
		e := entryOf(uid)
		if e == nil {
			return false
		}
		for _, a := range e.Attachments {
			if a.Network == network && !a.Added {
				return true
			}
		}
		return false
	}, w.dump(""))
}

func TestHotplugPlexusdKilledMidReconcile(t *testing.T) {
	w := setup(t)
	w.hotplugNADs(t)
	pod, netns, cid := w.hotplugPod(t, "hp-kill", "bridge-n", 2)
	w.setNetworks(t, pod.Name, "bridge-n,slow-n")
	w.waitIntent(t, string(pod.UID), "default/slow-n")
	// macvlan has run (or is about to): give it a moment, then kill
	// plexusd while cni-sleep holds the delegate.
	until(t, 2*time.Second, "macvlan's net2 in the namespace", func() bool {
		_, ok := podInterfaces(t, netns)["net2"]
		return ok
	}, w.dump(pod.Name))
	w.plexusd.Kill()
	t.Logf("plexusd SIGKILLed with net2 made and its result not recorded (leases %v)", leasesOf(cid))
	w.ensurePlexusd(t)
	restarted := time.Now()
	until(t, 15*time.Second, "converged after the restart: net2 once, its result recorded, one lease, in network-status", func() bool {
		e := entryOf(string(pod.UID))
		s, ok := w.statusOf(t, pod.Name)["net2"]
		ifs := podInterfaces(t, netns)
		return e != nil && len(e.Attachments) == 3 && e.Attachments[2].Added && len(e.Attachments[2].Result) > 0 &&
			ok && len(s.IPs) == 1 && ifNames(ifs) == "eth0,net1,net2" && len(ifs["net2"]) == 1 && ifs["net2"][0] == s.IPs[0] &&
			len(leasesOf(cid)) == 3
	}, func() string {
		return fmt.Sprintf("interfaces %v, leases %v, entry %+v\n%s", podInterfaces(t, netns), leasesOf(cid), entryOf(string(pod.UID)), w.dump(pod.Name)())
	})
	t.Logf("converged %v after the restart", time.Since(restarted).Round(time.Millisecond))
	w.deletePod(t, pod.Name)
	waitFor(t, "nothing of the pod left", func() bool {
		return entryOf(string(pod.UID)) == nil && len(leasesOf(cid)) == 0
	})
}

func TestHotplugPodDeletedMidReconcile(t *testing.T) {
	w := setup(t)
	w.hotplugNADs(t)
	pod, netns, cid := w.hotplugPod(t, "hp-del", "bridge-n", 2)
	w.setNetworks(t, pod.Name, "bridge-n,slow-n")
	w.waitIntent(t, string(pod.UID), "default/slow-n")
	zero := int64(0)
	if err := w.cs.CoreV1().Pods("default").Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	w.deletePod(t, pod.Name)
	waitFor(t, "nothing of the pod left: cache entry, leases, namespace", func() bool {
		_, err := os.Stat(netns)
		return entryOf(string(pod.UID)) == nil && len(leasesOf(cid)) == 0 && os.IsNotExist(err)
	})
}

// TestHotplugLatency attaches and detaches a macvlan interface ten times
// and reports the latencies from the annotation PATCH.
func TestHotplugLatency(t *testing.T) {
	w := setup(t)
	pod, netns, cid := w.hotplugPod(t, "hp-lat", "bridge-n", 2)
	const n = 10
	var att, det, pub []time.Duration
	has := func() bool { _, ok := podInterfaces(t, netns)["lat0"]; return ok }
	addressed := func() bool { return len(podInterfaces(t, netns)["lat0"]) == 1 }
	metric := func(op string) (sum, count float64) {
		return w.plexusd.Metric("plexus_hotplug_duration_seconds_sum", `op="`+op+`"`), w.plexusd.Metric("plexus_hotplug_duration_seconds_count", `op="`+op+`"`)
	}
	as0, ac0 := metric("attach")
	ds0, dc0 := metric("detach")
	for i := 0; i < n; i++ {
		w.setNetworks(t, pod.Name, `[{"name":"bridge-n"},{"name":"macvlan-n","interface":"lat0"}]`)
		start := time.Now()
		att = append(att, until(t, 2*time.Second, "lat0 attached with its address", addressed, w.dump(pod.Name)))
		until(t, 5*time.Second, "lat0 in network-status", func() bool { _, ok := w.statusOf(t, pod.Name)["lat0"]; return ok }, w.dump(pod.Name))
		pub = append(pub, time.Since(start))
		w.setNetworks(t, pod.Name, "bridge-n")
		det = append(det, until(t, 2*time.Second, "lat0 detached", func() bool { return !has() }, w.dump(pod.Name)))
		until(t, 5*time.Second, "lat0 out of network-status", func() bool { _, ok := w.statusOf(t, pod.Name)["lat0"]; return !ok }, w.dump(pod.Name))
	}
	if got := leasesOf(cid); len(got) != 2 {
		t.Errorf("leases after %d cycles: %v", n, got)
	}
	t.Logf("hot-plug of macvlan, %d cycles, PATCH → interface with its address: attach %s; PATCH → interface gone: detach %s; PATCH → network-status (attach): %s",
		n, spread(att), spread(det), spread(pub))
	as1, ac1 := metric("attach")
	ds1, dc1 := metric("detach")
	t.Logf("plexusd's plexus_hotplug_duration_seconds over these cycles (one attach or detach: resolution and delegate): attach %.1f ms, detach %.1f ms (mean)",
		1000*(as1-as0)/(ac1-ac0), 1000*(ds1-ds0)/(dc1-dc0))
}

// spread is "min/median/max".
func spread(ds []time.Duration) string {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("min %v / median %v / max %v", r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]))
}

// SR-IOV hot-plug on the real node: the device plugin advertises VFs, the
// real kubelet allocates two to the pod at admission, the pod starts with
// one; hot-plug gives the second element the VF the pod holds and no
// interface uses, refuses a third (no device left: kubelet allocates only
// at admission), and gives the VF back to the host on removal.
func TestHotplugSRIOV(t *testing.T) {
	w := setup(t)
	vfs, err := w.sysfs.AddVethPF(t, fakesysfs.PF{Addr: "0000:9e:00.0", Netdev: "pxhppf", NumVFs: 3, NUMA: 0})
	if err != nil {
		t.Fatal(err)
	}
	w.startDevicePlugin(t, w.sysfs.Root, `{"resourceList":[{"resourceName":"sriov_vf","resourcePrefix":"plexus.io","selectors":[{"pfNames":["pxhppf"]}]}]}`, "plexus.io/sriov_vf", 3)
	byAddr := map[string]fakesysfs.VF{}
	for _, v := range vfs {
		byAddr[v.Addr] = v
	}
	created := w.createPod(t, "hp-sriov", `[{"name":"sriov-n","interface":"vf0"}]`, corev1.ResourceList{"plexus.io/sriov_vf": resource2()})
	pod, _ := w.waitRunning(t, created.Name)
	until(t, 10*time.Second, "network-status of the new pod", func() bool { return len(w.statusOf(t, pod.Name)) == 2 }, w.dump(pod.Name))
	netns := entryOf(string(pod.UID)).NetNS
	vf0 := w.statusOf(t, pod.Name)["vf0"].DeviceInfo.Pci.PciAddress

	w.setNetworks(t, pod.Name, `[{"name":"sriov-n","interface":"vf0"},{"name":"sriov-n","interface":"vf1"}]`)
	took := until(t, 5*time.Second, "vf1 in the pod and in network-status with its device", func() bool {
		s, ok := w.statusOf(t, pod.Name)["vf1"]
		_, in := podInterfaces(t, netns)["vf1"]
		return ok && in && s.DeviceInfo != nil && s.DeviceInfo.Pci != nil && len(s.IPs) == 1
	}, w.dump(pod.Name))
	vf1 := w.statusOf(t, pod.Name)["vf1"].DeviceInfo.Pci.PciAddress
	if _, ok := byAddr[vf1]; !ok || vf1 == vf0 {
		t.Fatalf("hot-plugged VF %s (vf0 has %s; the PF's VFs %v)", vf1, vf0, byAddr)
	}
	if _, err := netlinksafe.LinkByName(byAddr[vf1].Netdev); err == nil {
		t.Errorf("VF %s (%s) is still on the host", vf1, byAddr[vf1].Netdev)
	}
	t.Logf("SR-IOV VF hot-plugged in %v (PATCH → in the pod and network-status)", took.Round(time.Millisecond))

	w.setNetworks(t, pod.Name, `[{"name":"sriov-n","interface":"vf0"},{"name":"sriov-n","interface":"vf1"},{"name":"sriov-n","interface":"vf2"}]`)
	until(t, 10*time.Second, "a Warning: no device left for vf2", func() bool {
		return strings.Contains(strings.Join(w.warningEvents(t, pod.Name), "\n"), `resource "plexus.io/sriov_vf"`)
	}, w.dump(pod.Name))
	if got := ifNames(podInterfaces(t, netns)); got != "eth0,vf0,vf1" {
		t.Errorf("interfaces after the refused vf2: %s", got)
	}

	w.setNetworks(t, pod.Name, `[{"name":"sriov-n","interface":"vf0"}]`)
	until(t, 5*time.Second, "vf1's VF back on the host under its name, out of network-status", func() bool {
		_, err := netlinksafe.LinkByName(byAddr[vf1].Netdev)
		_, ok := w.statusOf(t, pod.Name)["vf1"]
		return err == nil && !ok
	}, w.dump(pod.Name))
	w.deletePod(t, pod.Name)
	waitFor(t, "both VFs back on the host, nothing of the pod left", func() bool {
		for _, a := range []string{vf0, vf1} {
			if _, err := netlinksafe.LinkByName(byAddr[a].Netdev); err != nil {
				return false
			}
		}
		return entryOf(string(pod.UID)) == nil
	})
}
