// Package dra_test is the SR-IOV DRA e2e on the real local node: the real
// kube-scheduler allocates VFs that the sriov-dra-driver binary publishes
// (from a fake sysfs tree whose VF netdevs are veths) to a pod's
// ResourceClaimTemplate; kubelet calls the driver's NodePrepareResources;
// containerd runs plexus, which reads the pod's claim and hands each
// claimed VF to the sriov plugin; the driver reports the interfaces'
// network data into the claim's status (KEP-4817). The pods run in both
// deployments: the daemon deployment (plexusd resolves, from its
// informers; the default) and the thin one (plexus-thin resolves).
package dra_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned/typed/k8s.cni.cncf.io/v1"
	"github.com/vishvananda/netlink"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	resourceac "k8s.io/client-go/applyconfigurations/resource/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/plexus-cni/plexus/e2e/cluster"
	"github.com/plexus-cni/plexus/pkg/dra"
	"github.com/plexus-cni/plexus/pkg/testutil"
	"github.com/plexus-cni/plexus/pkg/testutil/fakesysfs"
	"github.com/plexus-cni/plexus/pkg/testutil/sriovseams"
)

func TestMain(m *testing.M) { cluster.Main(m) }

const (
	podNS    = "default"
	resName  = "plexus.io/sriov_dra"
	class    = "sriov-vf.plexus.io"
	template = "two-vfs"
)

type world struct {
	cp      *cluster.ControlPlane
	node    *cluster.Node
	cs      *kubernetes.Clientset
	base    string
	devinfo string
	tree    *fakesysfs.Tree
	// driverBin is the built sriov-dra-driver.
	driverBin string
	// vfNames are the host names of the node's VF stand-ins.
	vfNames map[string]bool
	// plexus's config: its path and keys (deploy adds daemonSocket).
	confPath string
	conf     map[string]any
	// kubeconfig is plexus's ServiceAccount's; binDir the node's CNI bin.
	kubeconfig, binDir string
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func poll(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s (last error: %v)", what, timeout, last)
}

func setup(t *testing.T) *world {
	testutil.RequireRoot(t)
	cp := cluster.Shared(t)
	if err := cp.StartControllers(); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(os.TempDir(), "plexus-dra-e2e-"+strconv.Itoa(os.Getpid()))
	os.RemoveAll(base)
	w := &world{cp: cp, base: base, devinfo: filepath.Join(base, "devinfo")}
	binDir := filepath.Join(base, "bin")
	for _, d := range []string{binDir, filepath.Join(base, "net.d"), filepath.Join(base, "primary"), filepath.Join(base, "ipam"), w.devinfo} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cluster.AtTeardown(func() { os.RemoveAll(base) })
	tree, err := fakesysfs.NewAt(filepath.Join(base, "sysfs"))
	if err != nil {
		t.Fatal(err)
	}
	w.tree = tree
	pfFile := filepath.Join(base, "pf-calls.jsonl")
	if err := os.WriteFile(pfFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// containerd inherits this environment and passes it through plexus to
	// the sriov test binary (pkg/testutil/sriovseams).
	for _, kv := range (sriovseams.Seams{SysfsRoot: tree.Root, FakePF: pfFile, DeviceInfoDir: w.devinfo}).Env() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	w.driverBin = testutil.BuildBinary(t, "sriov-dra-driver")
	plexus := testutil.BuildBinary(t, "plexus")
	bins := map[string]string{"sriov": testutil.SriovTestBinary(t), "plexus": plexus}
	if thin := filepath.Join(filepath.Dir(plexus), "plexus-thin"); fileExists(thin) {
		bins["plexus-thin"] = thin // the shim execs it from beside itself
	}
	for name, src := range bins {
		b, err := os.ReadFile(src)
		if err == nil {
			err = os.WriteFile(filepath.Join(binDir, name), b, 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if err := os.Symlink(testutil.RefPlugin(t, p), filepath.Join(binDir, p)); err != nil {
			t.Fatal(err)
		}
	}
	primary := filepath.Join(base, "primary", "10-bridge.conflist")
	if err := os.WriteFile(primary, []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"dra-primary","plugins":[
		{"type":"bridge","bridge":"pxdra-br","isGateway":true,"ipMasq":false,"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.249.0.0/24"}]]}}]}`, filepath.Join(base, "ipam"))), 0o644); err != nil {
		t.Fatal(err)
	}
	cluster.AtTeardown(func() {
		if l, err := netlinksafe.LinkByName("pxdra-br"); err == nil {
			netlink.LinkDel(l)
		}
	})
	// plexus's ServiceAccount reads the pod's claims (deployments/sriov-dra.yaml).
	if err := cp.ApplyFile(filepath.Join(cluster.RepoRoot(), "deployments", "sriov-dra.yaml")); err != nil {
		t.Fatal(err)
	}
	kc, err := cp.ServiceAccountKubeconfig("kube-system", "plexus")
	if err != nil {
		t.Fatal(err)
	}
	w.kubeconfig, w.binDir = kc, binDir
	w.confPath = filepath.Join(base, "net.d", "00-plexus.conflist")
	w.conf = map[string]any{
		"type": "plexus", "kubeconfig": kc, "clusterNetwork": primary,
		"cniDir": filepath.Join(base, "cache"), "binDir": binDir, "confDir": filepath.Join(base, "primary"),
		"deviceInfoDir": w.devinfo, "logFile": filepath.Join(base, "plexus.log"), "logLevel": "debug",
		"multusCacheDir": filepath.Join(base, "multus"),
	}
	w.writeConf(t)
	w.node = cluster.SharedNode(t, cluster.NodeOptions{CNIBinDir: binDir, CNIConfDir: filepath.Join(base, "net.d")})
	if w.cs, err = cp.Clientset(); err != nil {
		t.Fatal(err)
	}
	return w
}

// writeConf writes plexus's config (the shim reads it on every exec).
func (w *world) writeConf(t *testing.T) {
	t.Helper()
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "plexus-net", "plugins": []any{w.conf}})
	if err := os.WriteFile(w.confPath, conf, 0o644); err != nil {
		t.Fatal(err)
	}
}

// deploy makes the node one of plexus's two deployments until the test
// ends: "daemon" runs plexusd (the built binary, as the DaemonSet's second
// container: plexus's ServiceAccount, the node's cache and bin dirs and
// pod-resources) and points plexus's config at its socket; "thin" has no
// plexusd and no daemonSocket. It returns the plexusd (nil for thin).
func (w *world) deploy(t *testing.T, mode string) *testutil.Plexusd {
	t.Helper()
	delete(w.conf, "daemonSocket")
	if mode == "thin" {
		w.writeConf(t)
		return nil
	}
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ml.Addr().String()
	ml.Close()
	sock := filepath.Join(w.base, "run", "plexusd.sock")
	d := &testutil.Plexusd{T: t, Bin: testutil.BuildBinary(t, "plexusd"), Socket: sock, Metrics: addr, LogFile: filepath.Join(w.base, "plexusd.log"),
		Args: []string{"--kubeconfig", w.kubeconfig, "--node-name", w.node.Name, "--socket", sock,
			"--cni-dir", filepath.Join(w.base, "cache"), "--bin-dir", w.binDir, "--metrics-address", addr,
			"--pod-resources-socket", w.node.PodResourcesSocket, "--cni-config", w.confPath, "--log-level", "debug"}}
	d.Start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plexusd log:\n%s", tail(d.Log(), 4000))
		}
		d.Kill()
		delete(w.conf, "daemonSocket")
		w.writeConf(t)
	})
	w.conf["daemonSocket"] = sock
	w.writeConf(t)
	return d
}

// startDriver runs the sriov-dra-driver binary on a sysfs root and returns
// when it runs, with the URL of its /readyz; it is stopped (SIGTERM) when
// the test ends.
func (w *world) startDriver(t *testing.T, name, root, config, devinfo, kubeconfig string) (*exec.Cmd, string) {
	t.Helper()
	dir := filepath.Join(w.base, "drv-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "driver.log"))
	if err != nil {
		t.Fatal(err)
	}
	health := testutil.FreeAddr(t)
	cmd := exec.Command(w.driverBin, "--driver-name", name, "--node-name", w.node.Name,
		"--kubeconfig", kubeconfig, "--config", cfg, "--host-root", root, "--devinfo-dir", devinfo,
		"--registry-dir", filepath.Join(w.node.KubeletRootDir, "plugins_registry"), "--plugin-dir", filepath.Join(dir, "plugin"), "--log-level", "debug",
		"--health-address", health)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		logf.Close()
		if t.Failed() || testing.Verbose() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("driver %s log:\n%s", name, tail(string(b), 4000))
		}
	})
	return cmd, "http://" + health + "/readyz"
}

// readyz asks url: its status code and body.
func readyz(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// sliceDevices counts the devices of driver's ResourceSlices on the node.
func (w *world) sliceDevices(driver string) (int, error) {
	l, err := w.cs.ResourceV1().ResourceSlices().List(context.Background(), metav1.ListOptions{FieldSelector: "spec.driver=" + driver})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range l.Items {
		if s.Spec.NodeName != nil && *s.Spec.NodeName == w.node.Name {
			n += len(s.Spec.Devices)
		}
	}
	return n, nil
}

// publish starts a driver on a fresh tree of n VFs and returns how long
// until all n are in the API.
func (w *world) publish(t *testing.T, driver string, n int) time.Duration {
	tree, err := fakesysfs.NewAt(filepath.Join(w.base, "sysfs-"+driver))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.AddPF(fakesysfs.PF{Addr: "0000:81:00.0", Netdev: "pxbench" + strconv.Itoa(n), NumVFs: n, TotalVFs: n, NUMA: 0, VFAddr: func(i int) string {
		return fmt.Sprintf("0000:%02x:%02x.%d", 0x82+i/256, (i%256)/8, i%8)
	}}); err != nil {
		t.Fatal(err)
	}
	// A watch (not polling LISTs, which would compete with the apiserver
	// for the 2 cores) sees the slices arrive. The apiserver's watch cache
	// of a resource nothing was written to refuses watches at first
	// ("Too large resource version"): watch again until it takes one.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	watchSlices := func() watch.Interface {
		wt, err := w.cs.ResourceV1().ResourceSlices().Watch(ctx, metav1.ListOptions{FieldSelector: "spec.driver=" + driver})
		if err != nil {
			t.Fatal(err)
		}
		return wt
	}
	start := time.Now()
	cmd, _ := w.startDriver(t, driver, tree.Root, `{"resourceList":[{"resourceName":"bench","selectors":[{"pfNames":["pxbench`+strconv.Itoa(n)+`"]}]}]}`, filepath.Join(w.base, "devinfo-"+driver), w.cp.AdminKubeconfig)
	wt := watchSlices()
	devices := map[string]int{}
	for total := 0; total != n; {
		ev, ok := <-wt.ResultChan()
		if !ok || ev.Type == watch.Error {
			wt.Stop()
			if ctx.Err() != nil {
				t.Fatalf("%s: %d of %d devices published within 60s (last event %+v)", driver, total, n, ev)
			}
			time.Sleep(20 * time.Millisecond)
			wt = watchSlices()
			// What was published meanwhile arrives as ADDED events.
			devices = map[string]int{}
			continue
		}
		sl, ok := ev.Object.(*resourcev1.ResourceSlice)
		if !ok {
			continue
		}
		if ev.Type == watch.Deleted {
			delete(devices, sl.Name)
		} else {
			devices[sl.Name] = len(sl.Spec.Devices)
		}
		total = 0
		for _, c := range devices {
			total += c
		}
	}
	wt.Stop()
	d := time.Since(start)
	cmd.Process.Signal(syscall.SIGTERM)
	return d
}

func TestSRIOVThroughDRA(t *testing.T) {
	w := setup(t)
	ctx := context.Background()

	// Figures: publication of 512 VFs against 4, each from a cold start
	// of the driver binary.
	t4 := w.publish(t, "bench4.sriov.plexus.io", 4)
	t512 := w.publish(t, "bench512.sriov.plexus.io", 512)
	t.Logf("FIGURE ResourceSlice publication after start: 4 VFs %v, 512 VFs %v (%.2fx)", t4.Round(time.Millisecond), t512.Round(time.Millisecond), float64(t512)/float64(t4))

	// The node's SR-IOV hardware: PF pxdrapf with 4 veth-backed VFs.
	// PCI addresses no other e2e uses (sriov keeps per-VF state by address).
	vfs, err := w.tree.AddVethPF(t, fakesysfs.PF{Addr: "0000:a6:00.0", Netdev: "pxdrapf", NumVFs: 4, NUMA: 0})
	if err != nil {
		t.Fatal(err)
	}
	byAddr := map[string]fakesysfs.VF{}
	w.vfNames = map[string]bool{}
	for _, v := range vfs {
		byAddr[v.Addr] = v
		w.vfNames[v.Netdev] = true
	}
	// The PF's netdev is a real link (a veth), so its link state reaches
	// the driver over netlink.
	pfLink := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "pxdrapf"}, PeerName: "pxdrapfp"}
	if err := netlink.LinkAdd(pfLink); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := netlinksafe.LinkByName("pxdrapf"); err == nil {
			netlink.LinkDel(l)
		}
	})
	for _, n := range []string{"pxdrapfp", "pxdrapf"} {
		l, err := netlinksafe.LinkByName(n)
		if err == nil {
			err = netlink.LinkSetUp(l)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "pxdrapf operationally up", 10*time.Second, func() (bool, error) {
		l, err := netlinksafe.LinkByName("pxdrapf")
		return err == nil && l.Attrs().OperState == netlink.OperUp, err
	})
	// The driver runs as deployments/sriov-dra.yaml has it: its
	// ServiceAccount's RBAC, with a token bound to a pod on this node (what
	// associated-node:patch of the claim status needs).
	_, ready := w.startDriver(t, dra.DefaultDriverName, w.tree.Root, `{"resourceList":[{"resourceName":"sriov_dra","resourcePrefix":"plexus.io","selectors":[{"pfNames":["pxdrapf"]}]}]}`, w.devinfo, w.nodeBoundDriverKubeconfig(t))
	// The DaemonSet's readinessProbe: ready once kubelet registered the
	// plugin and the API holds the published slices, 503 with the reason
	// before.
	var notReady []string
	poll(t, "the driver's /readyz 200", 30*time.Second, func() (bool, error) {
		code, body, err := readyz(ready)
		if err == nil && code != http.StatusOK && (len(notReady) == 0 || notReady[len(notReady)-1] != body) {
			notReady = append(notReady, body)
		}
		return code == http.StatusOK, fmt.Errorf("%d %s (%v)", code, body, err)
	})
	t.Logf("/readyz answers before ready: %q", notReady)
	poll(t, "the node's 4 VFs published", 30*time.Second, func() (bool, error) {
		n, err := w.sliceDevices(dra.DefaultDriverName)
		return n == 4, err
	})
	// Health: the PF's link goes down, its VFs leave the slice; back up,
	// they return.
	pf, _ := netlinksafe.LinkByName("pxdrapf")
	down := time.Now()
	if err := netlink.LinkSetDown(pf); err != nil {
		t.Fatal(err)
	}
	poll(t, "the down PF's VFs withdrawn", 10*time.Second, func() (bool, error) {
		n, err := w.sliceDevices(dra.DefaultDriverName)
		return n == 0, err
	})
	t.Logf("FIGURE VFs of a down PF withdrawn from the ResourceSlice in %v", time.Since(down).Round(time.Millisecond))
	if err := netlink.LinkSetUp(pf); err != nil {
		t.Fatal(err)
	}
	poll(t, "the VFs back with the PF's link", 10*time.Second, func() (bool, error) {
		n, err := w.sliceDevices(dra.DefaultDriverName)
		return n == 4, err
	})
	poll(t, "the driver's /readyz 200 after the republication", 10*time.Second, func() (bool, error) {
		code, body, err := readyz(ready)
		return code == http.StatusOK, fmt.Errorf("%d %s (%v)", code, body, err)
	})

	// DeviceClass (as deployments/sriov-dra-deviceclass.yaml), a template of
	// two VFs of one PF, and a NAD whose resourceName is the VFs'.
	if _, err := w.cs.ResourceV1().DeviceClasses().Create(ctx, &resourcev1.DeviceClass{ObjectMeta: metav1.ObjectMeta{Name: class},
		Spec: resourcev1.DeviceClassSpec{Selectors: []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{
			Expression: `device.driver == "sriov.plexus.io"`}}}}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	mkTemplate := func(name string, count int64) {
		pfName := resourcev1.FullyQualifiedName("sriov.plexus.io/pfName")
		if _, err := w.cs.ResourceV1().ResourceClaimTemplates(podNS).Create(ctx, &resourcev1.ResourceClaimTemplate{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: resourcev1.ResourceClaimTemplateSpec{Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{
				Requests: []resourcev1.DeviceRequest{{Name: "vfs", Exactly: &resourcev1.ExactDeviceRequest{
					DeviceClassName: class, AllocationMode: resourcev1.DeviceAllocationModeExactCount, Count: count,
					Selectors: []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{Expression: `device.attributes["sriov.plexus.io"].resourceName == "plexus.io/sriov_dra"`}}}}}},
				Constraints: []resourcev1.DeviceConstraint{{MatchAttribute: &pfName}},
			}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mkTemplate(template, 2)
	mkTemplate("three-vfs", 3)
	nc, err := nadclient.NewForConfig(w.cp.RestConfig())
	if err != nil {
		t.Fatal(err)
	}
	nad := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: "sriov-dra", Namespace: podNS, Annotations: map[string]string{"k8s.v1.cni.cncf.io/resourceName": resName}},
		Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: fmt.Sprintf(`{"cniVersion":"1.0.0","name":"sriov-dra","type":"sriov","dataDir":%q,"ipam":{"type":"host-local","dataDir":%q,"subnet":"10.249.3.0/24"}}`, filepath.Join(w.base, "sriov-state"), filepath.Join(w.base, "ipam"))}}
	if _, err := nc.NetworkAttachmentDefinitions(podNS).Create(ctx, nad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The other shape: a NAD naming the pod's claim and request.
	byClaim := nad.DeepCopy()
	byClaim.Name, byClaim.Annotations = "sriov-dra-claim", map[string]string{"plexus.io/resourceClaim": "sriov/vfs"}
	byClaim.Spec.Config = strings.Replace(byClaim.Spec.Config, `"name":"sriov-dra"`, `"name":"sriov-dra-claim"`, 1)
	if _, err := nc.NetworkAttachmentDefinitions(podNS).Create(ctx, byClaim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The pods, in both deployments: daemon (the default: plexusd
	// resolves from its informers; the shim never falls back) and thin.
	for _, mode := range []string{"daemon", "thin"} {
		t.Run(mode, func(t *testing.T) {
			d := w.deploy(t, mode)
			w.claimedPods(t, mode, byAddr)
			if d == nil {
				return
			}
			if n := d.Metric("plexus_resolve_duration_seconds_count", `result="success"`); n < 2 {
				t.Errorf("plexusd resolved %v pods, want the baseline's and dra-two's at least: the shim did not use it", n)
			}
			if log, _ := os.ReadFile(filepath.Join(w.base, "plexus.log")); strings.Contains(string(log), "running the thin path") {
				t.Errorf("the shim fell back to the thin path with plexusd running:\n%s", tail(string(log), 3000))
			}
		})
	}
}

// claimedPods runs the pods of the test in one deployment: a two-VF pod
// whose networks take the VFs by resourceName and by naming the claim,
// a pod that asks for more VFs than are free, and the clean-up.
func (w *world) claimedPods(t *testing.T, mode string, byAddr map[string]fakesysfs.VF) {
	ctx := context.Background()
	// Baseline in the same run: a pod with the primary network only.
	tBase := w.runPod(t, "dra-baseline", "", "")
	w.deletePod(t, "dra-baseline")

	hostBefore := w.hostLinks(t)
	tPod := w.runPod(t, "dra-two", template, `[{"name":"sriov-dra","interface":"vf0"},{"name":"sriov-dra-claim","interface":"vf1"}]`)
	t.Logf("FIGURE %s deployment: pod Running (2 claimed VFs, 2 networks, scheduled by kube-scheduler): %v; primary-only pod %v (%.2fx)", mode, tPod.Round(time.Millisecond), tBase.Round(time.Millisecond), float64(tPod)/float64(tBase))
	// network-status: written before ADD returns by the thin path, soon
	// after by plexusd (from the outbox).
	var pod *corev1.Pod
	var err error
	poll(t, "network-status of dra-two's 3 interfaces", 10*time.Second, func() (bool, error) {
		pod, err = w.cs.CoreV1().Pods(podNS).Get(ctx, "dra-two", metav1.GetOptions{})
		var st []nadv1.NetworkStatus
		if err == nil {
			err = json.Unmarshal([]byte(pod.Annotations[nadv1.NetworkStatusAnnot]), &st)
		}
		return err == nil && len(st) == 3, err
	})
	// The two VFs are in the pod under the requested names.
	ifs := podInterfaces(t, w.sandboxNetns(t, "dra-two"))
	if _, ok := ifs["vf0"]; !ok {
		t.Errorf("pod interfaces %v: no vf0", ifs)
	}
	if _, ok := ifs["vf1"]; !ok {
		t.Errorf("pod interfaces %v: no vf1", ifs)
	}
	var st []nadv1.NetworkStatus
	if err := json.Unmarshal([]byte(pod.Annotations[nadv1.NetworkStatusAnnot]), &st); err != nil {
		t.Fatal(err)
	}
	byIf := map[string]nadv1.NetworkStatus{}
	for _, s := range st {
		byIf[s.Interface] = s
	}
	claimName := ""
	for _, s := range pod.Status.ResourceClaimStatuses {
		if s.Name == "sriov" && s.ResourceClaimName != nil {
			claimName = *s.ResourceClaimName
		}
	}
	if claimName == "" {
		t.Fatalf("pod has no claim: %+v", pod.Status.ResourceClaimStatuses)
	}
	// The claim's status carries both interfaces' networkData, agreeing
	// with network-status.
	var claim *resourcev1.ResourceClaim
	poll(t, "networkData of both VFs in the claim", 20*time.Second, func() (bool, error) {
		claim, err = w.cs.ResourceV1().ResourceClaims(podNS).Get(ctx, claimName, metav1.GetOptions{})
		return err == nil && len(claim.Status.Devices) == 2, err
	})
	allocated := map[string]string{} // device -> request
	for _, r := range claim.Status.Allocation.Devices.Results {
		allocated[r.Device] = r.Request
	}
	var gotIfs []string
	pcis := map[string]bool{}
	for _, d := range claim.Status.Devices {
		if d.Driver != dra.DefaultDriverName || d.NetworkData == nil || allocated[d.Device] != "vfs" {
			t.Errorf("claim device status %+v", d)
			continue
		}
		s, ok := byIf[d.NetworkData.InterfaceName]
		if !ok || s.DeviceInfo == nil || s.DeviceInfo.Pci == nil {
			t.Errorf("networkData interface %q not in network-status %+v", d.NetworkData.InterfaceName, st)
			continue
		}
		if dra.DeviceName(s.DeviceInfo.Pci.PciAddress) != d.Device {
			t.Errorf("interface %s: network-status VF %s, claim device %s", s.Interface, s.DeviceInfo.Pci.PciAddress, d.Device)
		}
		if d.NetworkData.HardwareAddress != s.Mac || len(s.IPs) != 1 || len(d.NetworkData.IPs) != 1 || d.NetworkData.IPs[0] != s.IPs[0]+"/32" {
			t.Errorf("interface %s: networkData %+v, network-status %+v", s.Interface, d.NetworkData, s)
		}
		if len(d.Conditions) != 1 || d.Conditions[0].Type != "Ready" || d.Conditions[0].Status != metav1.ConditionTrue {
			t.Errorf("conditions %+v", d.Conditions)
		}
		gotIfs = append(gotIfs, d.NetworkData.InterfaceName)
		pcis[s.DeviceInfo.Pci.PciAddress] = true
	}
	sort.Strings(gotIfs)
	if strings.Join(gotIfs, ",") != "vf0,vf1" || len(pcis) != 2 {
		t.Errorf("networkData interfaces %v over VFs %v, want vf0,vf1 over two VFs", gotIfs, pcis)
	}
	for pci := range pcis {
		if _, ok := byAddr[pci]; !ok {
			t.Errorf("VF %s is not one of the node's", pci)
		}
	}

	// The driver's ServiceAccount with a token bound to no pod (so to no
	// node) may not write the claim's device status: associated-node only.
	unbound, err := w.cp.ServiceAccountKubeconfig("kube-system", "plexus-sriov-dra")
	if err != nil {
		t.Fatal(err)
	}
	ucfg, err := clientcmd.BuildConfigFromFlags("", unbound)
	if err != nil {
		t.Fatal(err)
	}
	ucs, err := kubernetes.NewForConfig(ucfg)
	if err != nil {
		t.Fatal(err)
	}
	d0 := claim.Status.Devices[0]
	_, err = ucs.ResourceV1().ResourceClaims(podNS).ApplyStatus(ctx, resourceac.ResourceClaim(claimName, podNS).WithStatus(resourceac.ResourceClaimStatus().WithDevices(
		resourceac.AllocatedDeviceStatus().WithDriver(d0.Driver).WithPool(d0.Pool).WithDevice(d0.Device).WithNetworkData(resourceac.NetworkDeviceData().WithInterfaceName("evil0")))),
		metav1.ApplyOptions{FieldManager: "e2e-unbound", Force: true})
	if err == nil || !strings.Contains(err.Error(), `cannot arbitrary-node:patch resource "resourceclaims/driver"`) {
		t.Errorf("unbound token writing status.devices: %v, want refused for want of arbitrary-node:patch on resourceclaims/driver", err)
	}

	// A pod asking for more VFs than are free (3 of the 2 left) stays
	// Pending with the scheduler's reason; nothing on the node changes.
	cacheBefore := dirList(filepath.Join(w.base, "cache", "containers"))
	devinfoBefore := dirList(filepath.Join(w.devinfo, "dra"))
	w.createPod(t, "dra-three", "three-vfs", `[{"name":"sriov-dra"}]`)
	var cond corev1.PodCondition
	poll(t, "dra-three Unschedulable", 60*time.Second, func() (bool, error) {
		p, err := w.cs.CoreV1().Pods(podNS).Get(ctx, "dra-three", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				cond = c
				return true, nil
			}
		}
		return false, nil
	})
	if cond.Reason != corev1.PodReasonUnschedulable || !strings.Contains(cond.Message, "cannot allocate all claims") {
		t.Errorf("PodScheduled condition %+v, want Unschedulable: cannot allocate all claims", cond)
	}
	if p, _ := w.cs.CoreV1().Pods(podNS).Get(ctx, "dra-three", metav1.GetOptions{}); p.Spec.NodeName != "" || p.Status.Phase != corev1.PodPending {
		t.Errorf("dra-three: node %q phase %s", p.Spec.NodeName, p.Status.Phase)
	}
	if a, b := dirList(filepath.Join(w.base, "cache", "containers")), cacheBefore; a != b {
		t.Errorf("plexus cache changed for an unschedulable pod: %s -> %s", b, a)
	}
	if a, b := dirList(filepath.Join(w.devinfo, "dra")), devinfoBefore; a != b {
		t.Errorf("prepared devices changed for an unschedulable pod: %s -> %s", b, a)
	}
	w.deletePod(t, "dra-three")

	// Deleting the pod restores both VFs on the host, unprepares them and
	// the claim (its status with it) is gone.
	w.deletePod(t, "dra-two")
	poll(t, "claim "+claimName+" deleted", 30*time.Second, func() (bool, error) {
		_, err := w.cs.ResourceV1().ResourceClaims(podNS).Get(ctx, claimName, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	poll(t, "device-info of the claim removed", 30*time.Second, func() (bool, error) {
		return dirList(filepath.Join(w.devinfo, "dra")) == "", nil
	})
	if after := w.hostLinks(t); after != hostBefore {
		t.Errorf("host links after DEL:\n%s\nwant as before:\n%s", after, hostBefore)
	}
}

// nodeBoundDriverKubeconfig is a kubeconfig of the driver's ServiceAccount
// (kube-system/plexus-sriov-dra) with a token bound to a pod of that
// ServiceAccount on the node, as the DaemonSet pod's own token is.
func (w *world) nodeBoundDriverKubeconfig(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	no, zero := false, int64(0)
	pod, err := w.cs.CoreV1().Pods("kube-system").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "sriov-dra-driver-e2e"},
		Spec: corev1.PodSpec{NodeName: w.node.Name, ServiceAccountName: "plexus-sriov-dra", AutomountServiceAccountToken: &no, TerminationGracePeriodSeconds: &zero,
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers:  []corev1.Container{{Name: "c", Image: cluster.BusyboxImage, ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "3600"}}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.cs.CoreV1().Pods("kube-system").Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	exp := int64(3600)
	tr, err := w.cs.CoreV1().ServiceAccounts("kube-system").CreateToken(ctx, "plexus-sriov-dra", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &exp, BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(w.base, "sriov-dra.kubeconfig")
	kc := fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: %s\n    certificate-authority: %s\nusers:\n- name: u\n  user:\n    token: %s\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n", w.cp.Server, w.cp.CACertFile, tr.Status.Token)
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func dirList(dir string) string {
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return strings.Join(names, ",")
}

// hostLinks lists which of this test's VF stand-ins are in the host, with
// their MACs (other tests' links are not looked at).
func (w *world) hostLinks(t *testing.T) string {
	links, err := netlinksafe.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if n := l.Attrs().Name; w.vfNames[n] {
			out = append(out, n+"="+l.Attrs().HardwareAddr.String())
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func (w *world) createPod(t *testing.T, name, tmpl, networks string) {
	t.Helper()
	no, zero := false, int64(0)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: podNS},
		Spec: corev1.PodSpec{AutomountServiceAccountToken: &no, TerminationGracePeriodSeconds: &zero,
			// The kubelet registers the node with the not-ready taint, which
			// only the node lifecycle controller (not run here) removes.
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers:  []corev1.Container{{Name: "c", Image: cluster.BusyboxImage, ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "3600"}}}}}
	if networks != "" {
		pod.Annotations = map[string]string{nadv1.NetworkAttachmentAnnot: networks}
	}
	if tmpl != "" {
		pod.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "sriov", ResourceClaimTemplateName: &tmpl}}
		pod.Spec.Containers[0].Resources.Claims = []corev1.ResourceClaim{{Name: "sriov"}}
	}
	if _, err := w.cs.CoreV1().Pods(podNS).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.deletePod(t, name) })
}

// runPod creates a pod (scheduled by kube-scheduler) and returns how long
// it took to be Running.
func (w *world) runPod(t *testing.T, name, tmpl, networks string) time.Duration {
	t.Helper()
	start := time.Now()
	w.createPod(t, name, tmpl, networks)
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		p, err := w.cs.CoreV1().Pods(podNS).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p, _ := w.cs.CoreV1().Pods(podNS).Get(context.Background(), name, metav1.GetOptions{})
	ev, _ := w.cp.Kubectl("get", "events", "-n", podNS, "--field-selector", "involvedObject.name="+name)
	log, _ := os.ReadFile(filepath.Join(w.base, "plexus.log"))
	t.Fatalf("pod %s not Running after 90s: %+v\nevents:\n%s\nplexus log:\n%s\nhost VF links: %s\n%s", name, p.Status, ev, tail(string(log), 3000), w.hostLinks(t), w.node.LogTails())
	return 0
}

func (w *world) deletePod(t *testing.T, name string) {
	zero := int64(0)
	w.cs.CoreV1().Pods(podNS).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	for i := 0; i < 600; i++ {
		if _, err := w.cs.CoreV1().Pods(podNS).Get(context.Background(), name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("pod %s not gone after 60s", name)
}

func (w *world) sandboxNetns(t *testing.T, pod string) string {
	t.Helper()
	return testutil.CachedNetns(t, filepath.Join(w.base, "cache"), pod)
}

func podInterfaces(t *testing.T, netnsPath string) map[string][]string {
	t.Helper()
	return testutil.NetnsIPv4(t, netnsPath)
}
