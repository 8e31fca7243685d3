package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
)

// The node's fixed host-side resources: kubelet allows one node per machine
// (its device-plugin directory is fixed), so they never collide.
const (
	// NodeIP is the node's InternalIP, on a veth (kubelet rejects loopback).
	NodeIP = "198.18.255.1"
	nodeIP = NodeIP
	// DevicePluginDir is kubelet's fixed device-plugin socket directory.
	DevicePluginDir = "/var/lib/kubelet/device-plugins/"
	// NodeVeth carries NodeIP; NodeVethPeer is its peer, up and without
	// addresses: tests may use it as a macvlan master. Both exist while a
	// node runs.
	NodeVeth        = "plxnode0"
	NodeVethPeer    = "plxnode1"
	nodeVeth        = NodeVeth
	nodeVethPeer    = NodeVethPeer
	nodeLockFile    = "/run/lock/plexus-e2e-node.lock"
	nodeStateFile   = "/run/plexus-e2e-node.json"
	defaultNodeName = "plexus-e2e-node"

	nodeLockTimeout  = 30 * time.Minute
	nodeReadyTimeout = 90 * time.Second
	podDrainTimeout  = 90 * time.Second
)

// localNode is held while this process runs a node: a second StartNode in
// the same process would otherwise wait for its own file lock.
var localNode sync.Mutex

// NodeOptions configures StartNode.
type NodeOptions struct {
	// CNIBinDir and CNIConfDir are containerd's CNI directories (required).
	CNIBinDir, CNIConfDir string
	// NodeName defaults to "plexus-e2e-node".
	NodeName string
	// Dir holds the node's state (kubelet root, containerd root and state,
	// logs). Empty: a fresh temporary directory. Stop removes it.
	Dir string
	// Detached marks a node that outlives the process starting it
	// (localcluster up).
	Detached bool
}

// Node is a kubelet + containerd + runc node registered with a ControlPlane.
type Node struct {
	Name               string
	IP                 string
	Dir                string
	PodResourcesSocket string // kubelet's pod-resources v1 socket
	DevicePluginDir    string // kubelet's device-plugin registration dir
	ContainerdSocket   string
	KubeletRootDir     string

	cp         *ControlPlane
	cniConfDir string
	lock       *os.File
	stopped    bool
	state      nodeState
}

// nodeState is what Stop needs, persisted in nodeStateFile (fixed, since
// there is one node per machine) so that another process can stop the node.
type nodeState struct {
	Owner              int        `json:"owner"`
	Detached           bool       `json:"detached"`
	Name               string     `json:"name"`
	Dir                string     `json:"dir"`
	CPDir              string     `json:"cpDir"`
	Processes          []*process `json:"processes"`
	CreatedRunDir      bool       `json:"createdRunContainerd"`
	CreatedVarLibKubel bool       `json:"createdVarLibKubelet"`
	Netns              []string   `json:"netns"`
}

// StartNode starts containerd (images pause and busybox imported) and a
// kubelet registered as opts.NodeName, and waits for the node to be Ready
// (only registered when opts.CNIConfDir holds no config yet: the runtime's
// network, and so the node, is not ready before one is there).
// Only one node runs per machine: StartNode waits (bounded) for a node of
// another test binary to stop. It needs root.
func StartNode(cp *ControlPlane, opts NodeOptions) (*Node, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("start node: needs root")
	}
	if opts.CNIBinDir == "" || opts.CNIConfDir == "" {
		return nil, fmt.Errorf("start node: NodeOptions.CNIBinDir and CNIConfDir are required")
	}
	for _, b := range []string{"kubelet", "containerd", "containerd-shim-runc-v2", "ctr", "runc"} {
		if _, err := k8sBin(b); err != nil {
			return nil, err
		}
	}
	if v, _ := os.ReadFile(filepath.Join(K8sBinDir(), ".containerd.version")); !strings.HasPrefix(string(v), "v2.") {
		return nil, fmt.Errorf("start node: the node needs containerd v2 built by `make k8s`, %s says %q", filepath.Join(K8sBinDir(), ".containerd.version"), strings.TrimSpace(string(v)))
	}
	lock, err := acquireNode()
	if err != nil {
		return nil, err
	}
	if err := reapStaleNode(); err != nil {
		releaseNode(lock)
		return nil, err
	}
	name := opts.NodeName
	if name == "" {
		name = defaultNodeName
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "plexus-node-"); err != nil {
			releaseNode(lock)
			return nil, err
		}
	} else {
		dir, _ = filepath.Abs(dir)
		_ = os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			releaseNode(lock)
			return nil, err
		}
	}
	n := &Node{
		Name: name, IP: NodeIP, Dir: dir, DevicePluginDir: DevicePluginDir,
		KubeletRootDir:   filepath.Join(dir, "kubelet"),
		ContainerdSocket: filepath.Join(dir, "containerd.sock"),
		cp:               cp, lock: lock, cniConfDir: opts.CNIConfDir,
	}
	n.PodResourcesSocket = filepath.Join(n.KubeletRootDir, "pod-resources", "kubelet.sock")
	n.state = nodeState{Owner: os.Getpid(), Detached: opts.Detached, Name: name, Dir: dir, CPDir: cp.Dir}
	err = n.start(opts)
	if err != nil && strings.Contains(tail(filepath.Join(dir, "kubelet.log"), 50), "address already in use") {
		// the free port found for kubelet was taken before kubelet bound it
		err = errors.Join(n.state.teardown()...)
		if err == nil {
			if err = os.MkdirAll(dir, 0o755); err == nil {
				n.state.Processes, n.state.Netns = nil, nil
				err = n.start(opts)
			}
		}
	}
	if err != nil {
		logs := n.LogTails()
		if serr := n.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, fmt.Errorf("start node %s: %w\n%s", name, err, logs)
	}
	return n, nil
}

func (n *Node) start(opts NodeOptions) error {
	_, err := os.Stat("/run/containerd")
	n.state.CreatedRunDir = os.IsNotExist(err)
	_, err = os.Stat("/var/lib/kubelet")
	n.state.CreatedVarLibKubel = os.IsNotExist(err)
	if err := n.writeState(); err != nil {
		return err
	}
	if err := setupNodeVeth(); err != nil {
		return err
	}
	pauseTar, busyboxTar, err := buildImages(filepath.Join(K8sBinDir(), "images"))
	if err != nil {
		return err
	}
	if err := n.startContainerd(opts); err != nil {
		return err
	}
	for _, img := range []string{pauseTar, busyboxTar} {
		if _, err := n.Ctr("images", "import", "--local", img); err != nil {
			return fmt.Errorf("import %s: %w", img, err)
		}
	}
	return n.startKubelet()
}

// Ctr runs ctr against the node's containerd in namespace k8s.io and
// returns its standard output; the error carries its standard error.
func (n *Node) Ctr(args ...string) ([]byte, error) {
	bin, err := k8sBin("ctr")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append([]string{"--address", n.ContainerdSocket, "-n", "k8s.io"}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

func (n *Node) startContainerd(opts NodeOptions) error {
	bin, _ := k8sBin("containerd")
	runc, _ := k8sBin("runc")
	cdir := filepath.Join(n.Dir, "containerd")
	if err := os.MkdirAll(cdir, 0o755); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`version = 4
root = %[1]q
state = %[2]q
imports = []
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs", "io.containerd.snapshotter.v1.blockfile", "io.containerd.differ.v1.erofs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[plugins]
  [plugins.'io.containerd.server.v1.grpc']
    address = %[3]q
  [plugins.'io.containerd.server.v1.ttrpc']
    address = %[4]q
  [plugins.'io.containerd.shim.v1.manager']
    socket_dir = %[11]q
  [plugins.'io.containerd.internal.v1.opt']
    path = %[5]q
  [plugins.'io.containerd.nri.v1.nri']
    disable = true
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = %[6]q
  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = true
    enable_selinux = false
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = %[7]q
          Root = %[8]q
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [%[9]q]
      conf_dir = %[10]q
      max_conf_num = 1
  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
`, filepath.Join(cdir, "root"), filepath.Join(cdir, "state"), n.ContainerdSocket, n.ContainerdSocket+".ttrpc",
		filepath.Join(cdir, "opt"), PauseImage, runc, filepath.Join(cdir, "runc"), opts.CNIBinDir, opts.CNIConfDir, filepath.Join(cdir, "s"))
	cfgFile := filepath.Join(cdir, "config.toml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return err
	}
	env := []string{"PATH=" + K8sBinDir() + ":" + os.Getenv("PATH")}
	p, err := startProcess("containerd", bin, []string{"--config", cfgFile, "--log-level", "info"}, filepath.Join(n.Dir, "containerd.log"), env)
	if err != nil {
		return err
	}
	n.state.Processes = append(n.state.Processes, p)
	if err := n.writeState(); err != nil {
		return err
	}
	return waitFor("containerd", 60*time.Second, 50*time.Millisecond, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("containerd exited")
		}
		if _, err := n.Ctr("version"); err != nil {
			return false, err
		}
		return true, nil
	})
}

func (n *Node) startKubelet() error {
	bin, _ := k8sBin("kubelet")
	kdir := n.KubeletRootDir
	for _, d := range []string{"pki", "manifests"} {
		if err := os.MkdirAll(filepath.Join(kdir, d), 0o755); err != nil {
			return err
		}
	}
	p := pkiPaths(filepath.Join(n.cp.Dir, "pki"))
	clientCert, clientKey := filepath.Join(kdir, "pki", "client.crt"), filepath.Join(kdir, "pki", "client.key")
	if err := p.issue(clientCert, clientKey, pkix.Name{CommonName: "system:node:" + n.Name, Organization: []string{"system:nodes"}},
		nil, nil, x509.ExtKeyUsageClientAuth); err != nil {
		return err
	}
	servingCert, servingKey := filepath.Join(kdir, "pki", "kubelet.crt"), filepath.Join(kdir, "pki", "kubelet.key")
	if err := p.issue(servingCert, servingKey, pkix.Name{CommonName: n.Name}, []string{n.Name, "localhost"},
		[]net.IP{net.ParseIP(NodeIP), net.ParseIP("127.0.0.1")}, x509.ExtKeyUsageServerAuth); err != nil {
		return err
	}
	kubeconfig := filepath.Join(kdir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, n.cp.Server, n.cp.CACertFile, "system:node:"+n.Name, "", clientCert, clientKey); err != nil {
		return err
	}
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: %[2]d
readOnlyPort: 0
healthzPort: 0
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%[3]s
resolvConf: ""
tlsCertFile: %[4]s
tlsPrivateKeyFile: %[5]s
podLogsDir: %[6]s
staticPodPath: %[8]s
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
  x509:
    clientCAFile: %[7]s
authorization:
  mode: AlwaysAllow
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "0%%"
  nodefs.inodesFree: "0%%"
  imagefs.available: "0%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 87600h
nodeStatusUpdateFrequency: 2s
syncFrequency: 10s
fileCheckFrequency: 10s
shutdownGracePeriod: 0s
serializeImagePulls: false
registerNode: true
maxPods: 64
`, NodeIP, ports[0], n.ContainerdSocket, servingCert, servingKey, filepath.Join(n.Dir, "pod-logs"), n.cp.CACertFile, filepath.Join(kdir, "manifests"))
	cfgFile := filepath.Join(kdir, "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return err
	}
	env := []string{"PATH=" + K8sBinDir() + ":" + os.Getenv("PATH")}
	proc, err := startProcess("kubelet", bin, []string{
		"--config=" + cfgFile, "--kubeconfig=" + kubeconfig, "--root-dir=" + kdir,
		"--cert-dir=" + filepath.Join(kdir, "pki"),
		"--node-ip=" + NodeIP, "--hostname-override=" + n.Name, "--v=2",
	}, filepath.Join(n.Dir, "kubelet.log"), env)
	if err != nil {
		return err
	}
	n.state.Processes = append(n.state.Processes, proc)
	if err := n.writeState(); err != nil {
		return err
	}
	cs, err := n.cp.Clientset()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeReadyTimeout)
	defer cancel()
	// Without a CNI config the runtime's network is not ready, and neither is
	// the node: then only wait for it to register.
	confs, _ := filepath.Glob(filepath.Join(n.cniConfDir, "*.conf*"))
	wantReady := len(confs) > 0
	what := "node " + n.Name + " Ready"
	if !wantReady {
		what = "node " + n.Name + " registered (no CNI config in " + n.cniConfDir + ")"
	}
	return waitFor(what, nodeReadyTimeout, 100*time.Millisecond, func() (bool, error) {
		if proc.exited() {
			return false, fmt.Errorf("kubelet exited")
		}
		node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if !wantReady {
			return true, nil
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, fmt.Errorf("Ready=%s: %s", c.Status, c.Message)
			}
		}
		return false, nil
	})
}

// LogTails returns the last lines of containerd's and kubelet's logs.
func (n *Node) LogTails() string {
	var b strings.Builder
	for _, f := range []string{"containerd.log", "kubelet.log"} {
		if p := filepath.Join(n.Dir, f); exists(p) {
			b.WriteString(tail(p, 40))
			b.WriteString("\n")
		}
	}
	return b.String()
}

// Stop deletes the node's pods through the API (so that the runtime tears
// their sandboxes and networks down), stops kubelet then containerd, kills
// leftover shims and containers, unmounts and removes the node's directories,
// the veth and any pod netns left, deletes the Node object, and releases the
// one-node-per-machine lock.
func (n *Node) Stop() error {
	if n == nil || n.stopped {
		return nil
	}
	n.stopped = true
	var errs []error
	if n.cp != nil {
		if err := n.drainPods(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := n.recordNetns(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, n.state.teardown()...)
	if n.cp != nil {
		if cs, err := n.cp.Clientset(); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := cs.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{})
			cancel()
			if err != nil && !apierrors.IsNotFound(err) && !isConnRefused(err) {
				errs = append(errs, fmt.Errorf("delete node %s: %w", n.Name, err))
			}
		}
	}
	if n.lock != nil {
		releaseNode(n.lock)
		n.lock = nil
	}
	return errors.Join(errs...)
}

func isConnRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// drainPods deletes every pod bound to the node and waits for them to be
// gone (kubelet removes them once their containers and sandboxes stopped).
func (n *Node) drainPods() error {
	cs, err := n.cp.Clientset()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), podDrainTimeout)
	defer cancel()
	sel := fields.OneTermEqualSelector("spec.nodeName", n.Name).String()
	list, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		if isConnRefused(err) {
			return nil // API server gone: nothing to drain through it
		}
		return fmt.Errorf("list pods of node %s: %w", n.Name, err)
	}
	grace := int64(1)
	kubeletAlive := false
	for _, p := range n.state.Processes {
		if p.Name == "kubelet" && !p.exited() {
			kubeletAlive = true
		}
	}
	if !kubeletAlive {
		grace = 0 // nobody would confirm the termination: remove the objects
	}
	for _, p := range list.Items {
		err := cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	if len(list.Items) == 0 || !kubeletAlive {
		return nil
	}
	return waitFor("pods of node "+n.Name+" deleted", podDrainTimeout, 200*time.Millisecond, func() (bool, error) {
		l, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			return false, err
		}
		return len(l.Items) == 0, nil
	})
}

// recordNetns remembers the network namespaces of the sandboxes containerd
// still has, so that teardown can remove them if the runtime could not.
func (n *Node) recordNetns() error {
	out, err := n.Ctr("containers", "ls", "-q")
	if err != nil {
		return nil // containerd not running
	}
	for _, id := range strings.Fields(string(out)) {
		info, err := n.Ctr("containers", "info", id)
		if err != nil {
			continue
		}
		var c struct {
			Spec struct {
				Linux struct {
					Namespaces []struct{ Type, Path string }
				}
			}
		}
		if json.Unmarshal(info, &c) != nil {
			continue
		}
		for _, ns := range c.Spec.Linux.Namespaces {
			if ns.Type == "network" && strings.HasPrefix(ns.Path, "/var/run/netns/") {
				n.state.Netns = append(n.state.Netns, ns.Path)
			}
		}
	}
	return n.writeState()
}

// teardown stops the node's processes (kubelet, then containerd), then
// cleans what they may have left. It works from the persisted state alone.
func (s *nodeState) teardown() []error {
	var errs []error
	procs := append([]*process(nil), s.Processes...)
	for i := len(procs) - 1; i >= 0; i-- { // kubelet before containerd
		if err := procs[i].stop(stopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	cdir := filepath.Join(s.Dir, "containerd")
	killShims(filepath.Join(s.Dir, "containerd.sock"))
	if runc, err := k8sBin("runc"); err == nil {
		killRuncContainers(runc, filepath.Join(cdir, "runc"))
	}
	for _, ns := range s.Netns {
		_ = syscall.Unmount(ns, syscall.MNT_DETACH)
		if err := os.Remove(ns); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	if err := unmountUnder(s.Dir); err != nil {
		errs = append(errs, err)
	}
	keepLogs(s.Dir)
	if err := os.RemoveAll(s.Dir); err != nil {
		errs = append(errs, err)
	}
	_ = os.Remove(filepath.Join(DevicePluginDir, "kubelet.sock"))
	_ = os.Remove(filepath.Join(DevicePluginDir, "kubelet_internal_checkpoint"))
	if s.CreatedVarLibKubel {
		_ = unmountUnder("/var/lib/kubelet")
		_ = os.RemoveAll("/var/lib/kubelet")
	}
	if s.CreatedRunDir {
		_ = unmountUnder("/run/containerd")
		_ = os.RemoveAll("/run/containerd")
	}
	removeKubepodsCgroups()
	if l, err := netlinksafe.LinkByName(nodeVeth); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete veth %s: %w", nodeVeth, err))
		}
	}
	_ = os.Remove(nodeStateFile)
	return errs
}

func (n *Node) writeState() error {
	b, err := json.MarshalIndent(n.state, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(nodeStateFile, b, 0o600)
}

// setupNodeVeth creates the veth pair carrying the node IP.
func setupNodeVeth() error {
	if l, err := netlinksafe.LinkByName(nodeVeth); err == nil {
		_ = netlink.LinkDel(l)
	}
	la := netlink.NewLinkAttrs()
	la.Name = nodeVeth
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: nodeVethPeer}); err != nil {
		return fmt.Errorf("veth %s: %w", nodeVeth, err)
	}
	for _, name := range []string{nodeVeth, nodeVethPeer} {
		l, err := netlinksafe.LinkByName(name)
		if err != nil {
			return fmt.Errorf("veth %s: %w", name, err)
		}
		if name == nodeVeth {
			addr, _ := netlink.ParseAddr(NodeIP + "/32")
			if err := netlink.AddrAdd(l, addr); err != nil {
				return fmt.Errorf("veth %s: address %s: %w", name, NodeIP, err)
			}
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("veth %s: up: %w", name, err)
		}
	}
	return nil
}

// killShims kills containerd-shim-runc-v2 processes serving our containerd.
func killShims(address string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || !strings.HasSuffix(args[0], "containerd-shim-runc-v2") {
			continue
		}
		for i, a := range args {
			if a == "-address" && i+1 < len(args) && args[i+1] == address {
				var pid int
				fmt.Sscanf(filepath.Base(filepath.Dir(f)), "%d", &pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// killRuncContainers kills and deletes the containers under runc root dirs
// below root (one per containerd namespace).
func killRuncContainers(runc, root string) {
	roots, _ := filepath.Glob(filepath.Join(root, "*"))
	for _, r := range roots {
		out, err := exec.Command(runc, "--root", r, "list", "-q").Output()
		if err != nil {
			continue
		}
		for _, id := range strings.Fields(string(out)) {
			_ = exec.Command(runc, "--root", r, "kill", id, "KILL").Run()
			_ = exec.Command(runc, "--root", r, "delete", "--force", id).Run()
		}
	}
}

// unmountUnder lazily unmounts every mount point at or below dir, deepest
// first.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 {
			continue
		}
		mp := unescapeMount(fs[4])
		if mp == dir || strings.HasPrefix(mp, strings.TrimSuffix(dir, "/")+"/") {
			mps = append(mps, mp)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	var errs []error
	for _, mp := range mps {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && err != syscall.EINVAL && err != syscall.ENOENT {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// removeKubepodsCgroups removes the (empty) cgroups kubelet created.
func removeKubepodsCgroups() {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods*")
	if d, err := filepath.Glob("/sys/fs/cgroup/kubepods*"); err == nil {
		roots = append(roots, d...)
	}
	for _, r := range roots {
		var dirs []string
		_ = filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = syscall.Rmdir(dirs[i])
		}
	}
}

// acquireNode takes the process's and the machine's node locks.
func acquireNode() (*os.File, error) {
	if !localNode.TryLock() {
		return nil, fmt.Errorf("node: this process already runs a node (one per machine); stop it first")
	}
	f, err := lockNode()
	if err != nil {
		localNode.Unlock()
		return nil, err
	}
	return f, nil
}

func releaseNode(f *os.File) {
	unlockNode(f)
	localNode.Unlock()
}

// lockNode takes the machine-wide node lock, waiting (bounded) for another
// test binary's node to stop.
func lockNode() (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(nodeLockFile), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(nodeLockFile, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(nodeLockTimeout)
	warned := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if err != syscall.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", nodeLockFile, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("another test node holds %s for more than %s", nodeLockFile, nodeLockTimeout)
		}
		if !warned {
			fmt.Fprintf(os.Stderr, "cluster: waiting for another test binary's node to stop (%s)\n", nodeLockFile)
			warned = true
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func unlockNode(f *os.File) {
	if f != nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}
}

// reapStaleNode, called with the node lock held, tears down a node whose
// owner died without stopping it, and refuses to start next to a node of
// `make cluster-up`.
func reapStaleNode() error {
	b, err := os.ReadFile(nodeStateFile)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var s nodeState
	if err := json.Unmarshal(b, &s); err != nil {
		_ = os.Remove(nodeStateFile)
		return nil
	}
	if s.Detached {
		for _, p := range s.Processes {
			if !p.exited() {
				return fmt.Errorf("a node started by `make cluster-up` is running (state %s): run `make cluster-down` first", nodeStateFile)
			}
		}
	} else if s.Owner != 0 && s.Owner != os.Getpid() && pidIsRunning(s.Owner, "") {
		return fmt.Errorf("node state %s is owned by running pid %d but the node lock is free", nodeStateFile, s.Owner)
	}
	fmt.Fprintf(os.Stderr, "cluster: removing the stale node left by pid %d\n", s.Owner)
	return errors.Join(s.teardown()...)
}

// AttachNode re-attaches to the node described by the machine's node state
// (a detached node started by localcluster up), so that it can be stopped.
func AttachNode(cp *ControlPlane) (*Node, error) {
	b, err := os.ReadFile(nodeStateFile)
	if err != nil {
		return nil, fmt.Errorf("no node state: %w", err)
	}
	var s nodeState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("node state %s: %w", nodeStateFile, err)
	}
	if !s.Detached && s.Owner != os.Getpid() && pidIsRunning(s.Owner, "") {
		return nil, fmt.Errorf("the node in %s belongs to running test process %d, not to `make cluster-up`", nodeStateFile, s.Owner)
	}
	lock, err := acquireNode()
	if err != nil {
		return nil, err
	}
	n := &Node{Name: s.Name, IP: NodeIP, Dir: s.Dir, DevicePluginDir: DevicePluginDir, cp: cp, lock: lock, state: s,
		KubeletRootDir: filepath.Join(s.Dir, "kubelet"), ContainerdSocket: filepath.Join(s.Dir, "containerd.sock")}
	n.PodResourcesSocket = filepath.Join(n.KubeletRootDir, "pod-resources", "kubelet.sock")
	return n, nil
}

// Detach releases the node locks of a detached node (localcluster up) so
// that it outlives this process; its state file keeps tests away from it.
func (n *Node) Detach() {
	if n.lock != nil {
		releaseNode(n.lock)
		n.lock = nil
	}
}
