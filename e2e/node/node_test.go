// Node e2e: a real kubelet + containerd + runc node (e2e/cluster) with
// plexus installed as its CNI. Pods created through the API get their
// interfaces from the runtime calling plexus; the sriov device plugin
// registers with the real kubelet and the pod-resources answers come from
// the real kubelet.
package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
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
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned/typed/k8s.cni.cncf.io/v1"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/plexus-cni/plexus/e2e/cluster"
	"github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/sriov/pf"
	"github.com/plexus-cni/plexus/pkg/testutil"
	"github.com/plexus-cni/plexus/pkg/testutil/fakesysfs"
	"github.com/plexus-cni/plexus/pkg/testutil/sriovseams"
)

func TestMain(m *testing.M) { cluster.Main(m) }

// world is the node with plexus as its CNI, shared by the package's tests.
type world struct {
	cp      *cluster.ControlPlane
	node    *cluster.Node
	cs      *kubernetes.Clientset
	nads    nadclient.K8sCniCncfIoV1Interface
	dir     string // plexus's dirs, IPAM data, recordings
	binDir  string
	devinfo string
	sysfs   *fakesysfs.Tree // the node's (fake) SR-IOV hardware
	pfFile  string          // the file-backed fake PF the sriov plugin records into
	// The daemon deployment: plexusd runs beside the node for the whole
	// process, and the plexus config names its socket.
	kubeconfig string
	plexusd    *testutil.Plexusd
}

var (
	worldOnce sync.Once
	theWorld  *world
	worldErr  error
	// One per test process (every test of the process passes the same
	// NodeOptions): a second node test process, waiting for the node lock,
	// must not rebuild the directory the running node uses.
	baseDir = filepath.Join(os.TempDir(), "plexus-node-e2e-"+strconv.Itoa(os.Getpid()))
)

// sweepStaleBaseDirs removes the directories of node test processes that
// are gone.
func sweepStaleBaseDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "plexus-node-e2e*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "plexus-node-e2e-"))
		if err != nil || syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}

const (
	uplink  = "pxnode-up"
	primBr  = "pxnode-br"
	secBr   = "pxnode-b1"
	resName = "plexus.io/sriov_node"
)

func setup(t *testing.T) *world {
	t.Helper()
	testutil.RequireRoot(t)
	cp := cluster.Shared(t)
	worldOnce.Do(func() { theWorld, worldErr = build(t, cp) })
	if worldErr != nil {
		t.Fatal(worldErr)
	}
	theWorld.node = cluster.SharedNode(t, cluster.NodeOptions{CNIBinDir: theWorld.binDir, CNIConfDir: filepath.Join(baseDir, "net.d")})
	// The world was built before this process held the node; the uplink
	// (a host link) is checked again now that it does.
	if err := ensureUplink(); err != nil {
		t.Fatal(err)
	}
	// The kubelet's pod-resources socket is known once it runs; plexus reads
	// its config on every exec.
	confPath := filepath.Join(baseDir, "net.d", "00-plexus.conflist")
	b, _ := os.ReadFile(confPath)
	b = []byte(strings.Replace(string(b), "/var/lib/kubelet/pod-resources/kubelet.sock", theWorld.node.PodResourcesSocket, 1))
	if err := os.WriteFile(confPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	theWorld.ensurePlexusd(t)
	return theWorld
}

// ensurePlexusd runs the node's plexusd (the built binary) when it is not
// running: once per process, and again after a test killed it.
func (w *world) ensurePlexusd(t *testing.T) {
	t.Helper()
	if w.plexusd == nil {
		ml, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ml.Addr().String()
		ml.Close()
		sock := filepath.Join(baseDir, "run", "plexusd.sock")
		w.plexusd = &testutil.Plexusd{Bin: testutil.BuildBinary(t, "plexusd"), Socket: sock, Metrics: addr, LogFile: filepath.Join(baseDir, "plexusd.log"),
			Args: []string{"--kubeconfig", w.kubeconfig, "--node-name", w.node.Name, "--socket", sock,
				"--cni-dir", filepath.Join(baseDir, "cache"), "--bin-dir", w.binDir, "--metrics-address", addr,
				"--pod-resources-socket", w.node.PodResourcesSocket, "--cni-config", filepath.Join(baseDir, "net.d", "00-plexus.conflist"),
				"--log-level", "debug",
				// MultiNetworkPolicy enforcement (docs/network-policy.md): a
				// pod no policy selects gets no table, so the other tests'
				// pods attach as without it.
				"--network-policy"}}
		d := w.plexusd
		cluster.AtTeardown(func() { d.Kill() })
	}
	w.plexusd.T = t
	if w.plexusd.PID() == 0 {
		w.plexusd.Start()
	}
}

func build(t *testing.T, cp *cluster.ControlPlane) (*world, error) {
	sweepStaleBaseDirs()
	os.RemoveAll(baseDir)
	w := &world{cp: cp, dir: baseDir, binDir: filepath.Join(baseDir, "bin"), devinfo: filepath.Join(baseDir, "devinfo")}
	for _, d := range []string{w.binDir, filepath.Join(baseDir, "net.d"), filepath.Join(baseDir, "primary"), filepath.Join(baseDir, "ipam"), w.devinfo} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// The node's SR-IOV "hardware": a fake sysfs tree and a recording PF.
	// containerd inherits this process's environment and passes it to
	// plexus, which passes it to sriov — the test binary with seams
	// (pkg/testutil/sriovseams): the seams reach the plugin.
	tree, err := fakesysfs.NewAt(filepath.Join(baseDir, "sysfs"))
	if err != nil {
		return nil, err
	}
	w.sysfs, w.pfFile = tree, filepath.Join(baseDir, "pf-calls.jsonl")
	if err := os.WriteFile(w.pfFile, nil, 0o644); err != nil {
		return nil, err
	}
	for _, kv := range (sriovseams.Seams{SysfsRoot: tree.Root, FakePF: w.pfFile, DeviceInfoDir: w.devinfo}).Env() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	// The node's CNI bin dir: plexus, sriov, the test recorder and the reference plugins.
	for name, src := range map[string]string{
		"sriov":        testutil.SriovTestBinary(t),
		"plexus":       testutil.BuildBinary(t, "plexus"),
		"plexus-thin":  testutil.BuildBinary(t, "plexus-thin"), // the shim's thin path, beside it
		"cni-recorder": testutil.BuildPackage(t, "cni-recorder", "./e2e/cmd/cni-recorder"),
	} {
		if err := copyFile(src, filepath.Join(w.binDir, name)); err != nil {
			return nil, err
		}
	}
	for _, p := range []string{"bridge", "macvlan", "host-local", "loopback", "portmap", "tuning", "static"} {
		if err := os.Symlink(testutil.RefPlugin(t, p), filepath.Join(w.binDir, p)); err != nil {
			return nil, err
		}
	}
	// An uplink for macvlan; it and the bridges the delegates make go when
	// the package's tests end.
	cluster.AtTeardown(func() {
		for _, n := range []string{uplink, primBr, secBr} {
			if l, err := netlinksafe.LinkByName(n); err == nil {
				netlink.LinkDel(l)
			}
		}
		os.RemoveAll(baseDir)
	})
	if err := ensureUplink(); err != nil {
		return nil, err
	}
	// The primary network, outside containerd's conf dir, as plexus-install lays it out.
	primary := filepath.Join(baseDir, "primary", "10-bridge.conflist")
	if err := os.WriteFile(primary, []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"node-primary","plugins":[
		{"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.248.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
		{"type":"portmap","capabilities":{"portMappings":true}}]}`, primBr, filepath.Join(baseDir, "ipam"))), 0o644); err != nil {
		return nil, err
	}
	// The MultiNetworkPolicy CRD, applied server-side as
	// docs/network-policy.md says, before plexusd starts.
	if out, err := cp.Kubectl("apply", "--server-side", "-f", filepath.Join(testutil.RepoRoot(), "deployments", "multi-networkpolicy-crd.yaml")); err != nil {
		return nil, fmt.Errorf("MultiNetworkPolicy CRD: %v: %s", err, out)
	}
	if out, err := cp.Kubectl("wait", "--for=condition=Established", "crd/multi-networkpolicies.k8s.cni.cncf.io"); err != nil {
		return nil, fmt.Errorf("MultiNetworkPolicy CRD established: %v: %s", err, out)
	}
	kc, err := cp.ServiceAccountKubeconfig("kube-system", "plexus")
	if err != nil {
		return nil, err
	}
	w.kubeconfig = kc
	conf := map[string]any{
		"cniVersion": "1.0.0", "name": "plexus-net",
		"plugins": []any{map[string]any{
			"type": "plexus", "kubeconfig": kc, "clusterNetwork": primary,
			"cniDir": filepath.Join(baseDir, "cache"), "binDir": w.binDir, "confDir": filepath.Join(baseDir, "primary"),
			"podResourcesSocket": "/var/lib/kubelet/pod-resources/kubelet.sock", "deviceInfoDir": w.devinfo,
			"logFile": filepath.Join(baseDir, "plexus.log"), "logLevel": "debug", "multusCacheDir": filepath.Join(baseDir, "multus"),
			"capabilities": map[string]bool{"portMappings": true},
			// The daemon deployment: ensurePlexusd runs plexusd on it.
			"daemonSocket": filepath.Join(baseDir, "run", "plexusd.sock"),
		}},
	}
	b, _ := json.Marshal(conf)
	if err := os.WriteFile(filepath.Join(baseDir, "net.d", "00-plexus.conflist"), b, 0o644); err != nil {
		return nil, err
	}
	cs, err := cp.Clientset()
	if err != nil {
		return nil, err
	}
	nc, err := nadclient.NewForConfig(cp.RestConfig())
	if err != nil {
		return nil, err
	}
	w.cs, w.nads = cs, nc
	ipam := filepath.Join(baseDir, "ipam")
	for name, cfg := range map[string]string{
		"macvlan-n":  fmt.Sprintf(`{"cniVersion":"1.0.0","name":"macvlan-n","type":"macvlan","master":%q,"mode":"bridge","ipam":{"type":"host-local","dataDir":%q,"subnet":"10.248.1.0/24"}}`, uplink, ipam),
		"bridge-n":   fmt.Sprintf(`{"cniVersion":"1.0.0","name":"bridge-n","type":"bridge","bridge":%q,"ipam":{"type":"host-local","dataDir":%q,"subnet":"10.248.2.0/24"}}`, secBr, ipam),
		"sriov-n":    fmt.Sprintf(`{"cniVersion":"1.0.0","name":"sriov-n","type":"sriov","vlan":100,"capabilities":{"mac":true,"ips":true},"ipam":{"type":"host-local","dataDir":%q,"subnet":"10.248.3.0/24"}}`, ipam),
		"recorder-n": fmt.Sprintf(`{"cniVersion":"1.0.0","name":"recorder-n","type":"cni-recorder","dir":%q,"capabilities":{"deviceID":true,"CNIDeviceInfoFile":true}}`, filepath.Join(baseDir, "recorded")),
	} {
		n := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: cfg}}
		if name == "recorder-n" {
			n.Annotations = map[string]string{"k8s.v1.cni.cncf.io/resourceName": resName}
		}
		if name == "sriov-n" {
			n.Annotations = map[string]string{"k8s.v1.cni.cncf.io/resourceName": "plexus.io/sriov_vf"}
		}
		if _, err := nc.NetworkAttachmentDefinitions("default").Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
			return nil, err
		}
	}
	t.Cleanup(func() {}) // per-test cleanups are in the tests
	return w, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

func (w *world) createPod(t *testing.T, name, networks string, res corev1.ResourceList) *corev1.Pod {
	t.Helper()
	no, zero := false, int64(0)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: map[string]string{nadv1.NetworkAttachmentAnnot: networks}},
		Spec: corev1.PodSpec{
			NodeName: w.node.Name, AutomountServiceAccountToken: &no, TerminationGracePeriodSeconds: &zero,
			Containers: []corev1.Container{{Name: "c", Image: cluster.BusyboxImage, ImagePullPolicy: corev1.PullNever,
				Command:   []string{"sh", "-c", "env | grep ^PCIDEVICE_ || true; exec sleep 3600"},
				Resources: corev1.ResourceRequirements{Limits: res, Requests: res}}},
		},
	}
	p, err := w.cs.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.deletePod(t, p.Name) })
	return p
}

func (w *world) waitRunning(t *testing.T, name string) (*corev1.Pod, time.Duration) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 90*time.Second {
		p, err := w.cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning {
			return p, time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p, _ := w.cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	ev, _ := w.cp.Kubectl("get", "events", "-n", "default", "--field-selector", "involvedObject.name="+name)
	log, _ := os.ReadFile(filepath.Join(baseDir, "plexus.log"))
	t.Fatalf("pod %s not Running after 90s: %+v\nevents:\n%s\nplexus log tail:\n%s\n%s", name, p.Status, ev, tail(string(log), 3000), w.node.LogTails())
	return nil, 0
}

func (w *world) deletePod(t *testing.T, name string) {
	zero := int64(0)
	w.cs.CoreV1().Pods("default").Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	for i := 0; i < 600; i++ {
		if _, err := w.cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("pod %s not gone after 60s", name)
}

// sandboxNetns finds the pod's netns from plexus's cache.
func (w *world) sandboxNetns(t *testing.T, pod string) string {
	t.Helper()
	return testutil.CachedNetns(t, filepath.Join(baseDir, "cache"), pod)
}

func podInterfaces(t *testing.T, netnsPath string) map[string][]string {
	t.Helper()
	return testutil.NetnsIPv4(t, netnsPath)
}

func leases() []string {
	var out []string
	filepath.Walk(filepath.Join(baseDir, "ipam"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasPrefix(fi.Name(), "last_reserved_ip") && fi.Name() != "lock" {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func networkStatus(t *testing.T, p *corev1.Pod) []nadv1.NetworkStatus {
	var st []nadv1.NetworkStatus
	if err := json.Unmarshal([]byte(p.Annotations[nadv1.NetworkStatusAnnot]), &st); err != nil {
		t.Fatalf("network-status %q: %v", p.Annotations[nadv1.NetworkStatusAnnot], err)
	}
	return st
}

func TestPodGetsInterfacesFromPlexus(t *testing.T) {
	w := setup(t)
	created := w.createPod(t, "multi", "macvlan-n,bridge-n", nil)
	pod, took := w.waitRunning(t, created.Name)
	t.Logf("pod create → Running: %v", took)
	st := networkStatus(t, pod)
	ifs := podInterfaces(t, w.sandboxNetns(t, pod.Name))
	var names []string
	for n := range ifs {
		names = append(names, n)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "eth0,net1,net2" {
		t.Fatalf("pod interfaces %v, want eth0,net1,net2", names)
	}
	if len(st) != 3 || !st[0].Default || st[1].Name != "default/macvlan-n" || st[2].Interface != "net2" {
		t.Fatalf("network-status %+v", st)
	}
	for _, s := range st {
		if len(s.IPs) != 1 || len(ifs[s.Interface]) != 1 || ifs[s.Interface][0] != s.IPs[0] {
			t.Errorf("network-status %s %v, netns has %v", s.Interface, s.IPs, ifs[s.Interface])
		}
	}
	if !strings.HasPrefix(pod.Status.PodIP, "10.248.0.") {
		t.Errorf("pod IP %q is not the primary's", pod.Status.PodIP)
	}
	w.deletePod(t, pod.Name)
	waitFor(t, "plexus cache and IPAM leases released", func() bool {
		ids, _ := cache.Store{Dir: filepath.Join(baseDir, "cache")}.List()
		return len(ids) == 0 && len(leases()) == 0
	})
}

func TestDevicePluginOnRealKubelet(t *testing.T) {
	w := setup(t)
	tree := fakesysfs.New(t)
	vfs, err := tree.AddPF(fakesysfs.PF{Addr: "0000:5e:00.0", Netdev: "pxnodepf", NumVFs: 4, NUMA: 0})
	if err != nil {
		t.Fatal(err)
	}
	w.startDevicePlugin(t, tree.Root, `{"resourceList":[{"resourceName":"sriov_node","resourcePrefix":"plexus.io","selectors":[{"pfNames":["pxnodepf"]}]}]}`, resName, 4)
	two := corev1.ResourceList{corev1.ResourceName(resName): resource2()}
	created := w.createPod(t, "vfs", "recorder-n,recorder-n", two)
	pod, took := w.waitRunning(t, created.Name)
	t.Logf("pod with 2 VFs create → Running: %v", took)
	logs, err := w.cp.Kubectl("logs", "-n", "default", pod.Name)
	if err != nil {
		t.Fatalf("kubectl logs: %v", err)
	}
	var line string
	for _, l := range strings.Split(string(logs), "\n") {
		if strings.HasPrefix(l, "PCIDEVICE_PLEXUS_IO_SRIOV_NODE=") {
			line = strings.TrimSpace(l)
		}
	}
	_, val, _ := strings.Cut(line, "=")
	env := strings.Split(val, ",")
	if !strings.HasPrefix(line, "PCIDEVICE_PLEXUS_IO_SRIOV_NODE=") || len(env) != 2 {
		t.Fatalf("container env %q, want PCIDEVICE_PLEXUS_IO_SRIOV_NODE with 2 devices", line)
	}
	vfSet := map[string]bool{}
	for _, v := range vfs {
		vfSet[v.Addr] = true
	}
	got := map[string]bool{}
	for _, ifn := range []string{"net1", "net2"} {
		matches, _ := filepath.Glob(filepath.Join(baseDir, "recorded", "*-"+ifn+".json"))
		if len(matches) != 1 {
			t.Fatalf("recorded configs for %s: %v", ifn, matches)
		}
		var rec struct {
			DeviceID      string         `json:"deviceID"`
			RuntimeConfig map[string]any `json:"runtimeConfig"`
		}
		b, _ := os.ReadFile(matches[0])
		json.Unmarshal(b, &rec)
		if !vfSet[rec.DeviceID] || rec.RuntimeConfig["deviceID"] != rec.DeviceID || !strings.Contains(val, rec.DeviceID) {
			t.Errorf("%s got deviceID %q (runtimeConfig %v); allocated %v", ifn, rec.DeviceID, rec.RuntimeConfig, env)
		}
		got[rec.DeviceID] = true
	}
	if len(got) != 2 {
		t.Errorf("both attachments got the same device: %v", got)
	}
	st := networkStatus(t, pod)
	for _, s := range st[1:] {
		if s.DeviceInfo == nil || s.DeviceInfo.Pci == nil || !got[s.DeviceInfo.Pci.PciAddress] {
			t.Errorf("network-status %s device-info %+v", s.Interface, s.DeviceInfo)
		}
	}
	w.deletePod(t, pod.Name)
	waitFor(t, "recordings and device-info copies removed", func() bool {
		rec, _ := filepath.Glob(filepath.Join(baseDir, "recorded", "*.json"))
		cni, _ := filepath.Glob(filepath.Join(w.devinfo, "cni", "*"))
		return len(rec) == 0 && len(cni) == 0
	})
}

// startDevicePlugin runs the sriov-device-plugin binary against the real
// kubelet until the test ends, and waits for the node to advertise want
// devices of resource.
func (w *world) startDevicePlugin(t *testing.T, hostRoot, config, resource string, want int64) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "sriov-dp.json")
	os.WriteFile(cfg, []byte(config), 0o644)
	health := testutil.FreeAddr(t)
	dp := exec.Command(testutil.BuildBinary(t, "sriov-device-plugin"), "--config", cfg, "--host-root", hostRoot,
		"--device-plugin-dir", w.node.DevicePluginDir, "--devinfo-dir", filepath.Join(w.devinfo, "dp"), "--health-address", health)
	var dpLog strings.Builder
	dp.Stdout, dp.Stderr = &dpLog, &dpLog
	if err := dp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dp.Process.Signal(os.Interrupt)
		dp.Wait()
		if t.Failed() {
			t.Logf("device plugin log:\n%s", dpLog.String())
		}
	})
	waitFor(t, "node allocatable shows "+resource, func() bool {
		n, err := w.cs.CoreV1().Nodes().Get(context.Background(), w.node.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		q := n.Status.Allocatable[corev1.ResourceName(resource)]
		return q.Value() == want
	})
	// Registered with the real kubelet: the DaemonSet's readinessProbe
	// (/readyz) says so.
	waitFor(t, "device plugin /readyz 200", func() bool {
		resp, err := http.Get("http://" + health + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// The whole SR-IOV chain on the real node: device plugin → kubelet →
// containerd → plexus → sriov → VFs (veth stand-ins) in the pod, and back.
func TestSRIOVChainOnRealNode(t *testing.T) {
	w := setup(t)
	vfs, err := w.sysfs.AddVethPF(t, fakesysfs.PF{Addr: "0000:6e:00.0", Netdev: "pxsrpf", NumVFs: 3, NUMA: 0})
	if err != nil {
		t.Fatal(err)
	}
	w.startDevicePlugin(t, w.sysfs.Root, `{"resourceList":[{"resourceName":"sriov_vf","resourcePrefix":"plexus.io","selectors":[{"pfNames":["pxsrpf"]}]}]}`, "plexus.io/sriov_vf", 3)
	byNetdev := map[string]fakesysfs.VF{}
	byAddr := map[string]fakesysfs.VF{}
	for _, v := range vfs {
		byNetdev[v.Netdev], byAddr[v.Addr] = v, v
	}
	res := corev1.ResourceList{"plexus.io/sriov_vf": resource2()}
	created := w.createPod(t, "sriov", `[{"name":"sriov-n","interface":"vf0"},{"name":"sriov-n","interface":"vf1","mac":"02:00:00:aa:bb:01"}]`, res)
	pod, took := w.waitRunning(t, created.Name)
	t.Logf("pod with 2 SR-IOV VFs create → Running: %v", took)
	st := networkStatus(t, pod)
	ifs := podInterfaces(t, w.sandboxNetns(t, pod.Name))
	var moved []fakesysfs.VF
	for _, s := range st[1:] {
		if s.DeviceInfo == nil || s.DeviceInfo.Pci == nil {
			t.Fatalf("network-status %s has no PCI device-info: %+v", s.Interface, s)
		}
		vf, ok := byAddr[s.DeviceInfo.Pci.PciAddress]
		if !ok {
			t.Fatalf("network-status %s names PCI address %s, not one of the VFs", s.Interface, s.DeviceInfo.Pci.PciAddress)
		}
		moved = append(moved, vf)
		if ips := ifs[s.Interface]; len(ips) != 1 || !strings.HasPrefix(ips[0], "10.248.3.") || len(s.IPs) != 1 || s.IPs[0] != ips[0] {
			t.Errorf("%s: netns addresses %v, network-status %v", s.Interface, ips, s.IPs)
		}
		if _, err := netlinksafe.LinkByName(vf.Netdev); err == nil {
			t.Errorf("VF %s (%s) is still on the host", vf.Addr, vf.Netdev)
		}
	}
	if len(moved) != 2 || moved[0].Addr == moved[1].Addr {
		t.Fatalf("VFs in the pod: %+v", moved)
	}
	if st[2].Mac != "02:00:00:aa:bb:01" {
		t.Errorf("vf1 MAC %s, want the requested 02:00:00:aa:bb:01", st[2].Mac)
	}
	calls, err := pf.ReadCalls(w.pfFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, vf := range moved {
		if s := pf.StateOf(calls, "pxsrpf", vf.Index); s.Vlan != 100 {
			t.Errorf("VF %d on the PF: vlan %d, want 100 while in the pod", vf.Index, s.Vlan)
		}
	}
	w.deletePod(t, pod.Name)
	waitFor(t, "both VFs back on the host under their names, PF settings restored, nothing left", func() bool {
		for _, vf := range moved {
			if _, err := netlinksafe.LinkByName(vf.Netdev); err != nil {
				return false
			}
		}
		calls, _ := pf.ReadCalls(w.pfFile)
		for _, vf := range moved {
			if pf.StateOf(calls, "pxsrpf", vf.Index).Vlan != 0 {
				return false
			}
		}
		ids, _ := cache.Store{Dir: filepath.Join(baseDir, "cache")}.List()
		return len(ids) == 0 && len(leases()) == 0
	})
}

func resource2() resource.Quantity { return resource.MustParse("2") }

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	for i := 0; i < 600; i++ {
		if f() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting: %s", what)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// ensureUplink makes the macvlan master (a veth pair, both ends up) exist.
func ensureUplink() error {
	if l, err := netlinksafe.LinkByName(uplink); err == nil && l.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	netlink.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: uplink}})
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: uplink}, PeerName: uplink + "p"}); err != nil {
		return fmt.Errorf("uplink: %v", err)
	}
	for _, n := range []string{uplink, uplink + "p"} {
		l, err := netlinksafe.LinkByName(n)
		if err != nil {
			return fmt.Errorf("uplink: %v", err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("uplink %s up: %v", n, err)
		}
	}
	return nil
}
