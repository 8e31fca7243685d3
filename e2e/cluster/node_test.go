package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/plexus-cni/plexus/pkg/testutil"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	smokeBridge  = "plxsmoke0"
	smokeIPAMDir = "/run/plexus-e2e-smoke-ipam"
	smokeSubnet  = "198.18.100.0/24"
)

// smokeNodeOptions: a plain bridge + host-local network (not plexus).
func smokeNodeOptions(t *testing.T) NodeOptions {
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		testutil.RefPlugin(t, p)
	}
	t.Cleanup(func() {
		if l, err := netlinksafe.LinkByName(smokeBridge); err == nil {
			_ = netlink.LinkDel(l)
		}
		_ = os.RemoveAll(smokeIPAMDir)
	})
	return NodeOptions{CNIBinDir: testutil.CNIBinDir(), CNIConfDir: filepath.Join(RepoRoot(), "e2e", "cluster", "testdata", "net.d")}
}

func busyboxPod(name string) *corev1.Pod {
	f, grace := false, int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:                      defaultNodeName,
			AutomountServiceAccountToken:  &f,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "main", Image: BusyboxImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sleep", "3600"},
			}},
		},
	}
}

// runPod creates pod and waits for it to be Running, returning the time it took.
func runPod(ctx context.Context, t *testing.T, cs kubernetes.Interface, pod *corev1.Pod) (*corev1.Pod, time.Duration) {
	t.Helper()
	start := time.Now()
	if _, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	var got *corev1.Pod
	err := waitFor("pod "+pod.Name+" Running", 90*time.Second, 50*time.Millisecond, func() (bool, error) {
		p, err := cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = p
		if p.Status.Phase == corev1.PodFailed {
			return false, fmt.Errorf("pod failed: %s", p.Status.Message)
		}
		return p.Status.Phase == corev1.PodRunning, fmt.Errorf("phase %s %v", p.Status.Phase, p.Status.ContainerStatuses)
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, time.Since(start)
}

func deletePod(ctx context.Context, t *testing.T, cs kubernetes.Interface, pod *corev1.Pod) time.Duration {
	t.Helper()
	start := time.Now()
	grace := int64(1)
	if err := cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatalf("delete pod %s: %v", pod.Name, err)
	}
	err := waitFor("pod "+pod.Name+" gone", 90*time.Second, 50*time.Millisecond, func() (bool, error) {
		_, err := cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	if err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// sandboxNetns is the network namespace containerd made for the pod.
func sandboxNetns(t *testing.T, n *Node, uid string) string {
	t.Helper()
	out, err := n.Ctr("containers", "ls", "-q", fmt.Sprintf(`labels."io.kubernetes.pod.uid"==%s,labels."io.cri-containerd.kind"==sandbox`, uid))
	if err != nil {
		t.Fatalf("ctr containers ls: %v: %s", err, out)
	}
	ids := strings.Fields(string(out))
	if len(ids) != 1 {
		t.Fatalf("pod %s: %d sandboxes (%q), want 1", uid, len(ids), ids)
	}
	info, err := n.Ctr("containers", "info", ids[0])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Spec struct {
			Linux struct{ Namespaces []struct{ Type, Path string } }
		}
	}
	if err := json.Unmarshal(info, &c); err != nil {
		t.Fatal(err)
	}
	for _, ns := range c.Spec.Linux.Namespaces {
		if ns.Type == "network" && ns.Path != "" {
			return ns.Path
		}
	}
	t.Fatalf("sandbox %s has no network namespace path", ids[0])
	return ""
}

func bridgePorts(t *testing.T) int {
	t.Helper()
	br, err := netlinksafe.LinkByName(smokeBridge)
	if err != nil {
		return 0
	}
	links, err := netlinksafe.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	c := 0
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			c++
		}
	}
	return c
}

// A busybox pod gets a bridge address from the node's CNI, runs, answers
// exec through the API server and kubelet, and leaves nothing when deleted.
func TestNodePodLifecycle(t *testing.T) {
	opts := smokeNodeOptions(t)
	start := time.Now()
	n := SharedNode(t, opts)
	t.Logf("shared node Ready after %v (includes the control plane when this test starts it)", time.Since(start).Round(time.Millisecond))
	cp := Shared(t)
	cs, err := cp.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var internal string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			internal = a.Address
		}
	}
	if internal != NodeIP {
		t.Fatalf("node InternalIP %q, want %s", internal, NodeIP)
	}

	pod, took := runPod(ctx, t, cs, busyboxPod("smoke-lifecycle"))
	t.Logf("pod create -> Running: %v", took.Round(time.Millisecond))
	_, subnet, _ := net.ParseCIDR(smokeSubnet)
	if ip := net.ParseIP(pod.Status.PodIP); ip == nil || !subnet.Contains(ip) {
		t.Fatalf("pod IP %q not in %s", pod.Status.PodIP, smokeSubnet)
	}
	out, err := cp.Kubectl("exec", "-n", pod.Namespace, pod.Name, "--", "ip", "-4", "addr", "show", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), pod.Status.PodIP+"/24") {
		t.Fatalf("eth0 in the pod lacks %s/24:\n%s", pod.Status.PodIP, out)
	}
	netnsPath := sandboxNetns(t, n, string(pod.UID))
	if _, err := os.Stat(netnsPath); err != nil {
		t.Fatalf("sandbox netns: %v", err)
	}
	if got := bridgePorts(t); got != 1 {
		t.Fatalf("%s has %d ports with one pod, want 1", smokeBridge, got)
	}
	ipFile := filepath.Join(smokeIPAMDir, "plexus-e2e-smoke", pod.Status.PodIP)
	if _, err := os.Stat(ipFile); err != nil {
		t.Fatalf("host-local reservation: %v", err)
	}

	t.Logf("pod delete -> gone: %v", deletePod(ctx, t, cs, pod).Round(time.Millisecond))
	err = waitFor("pod leftovers removed", 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		var left []string
		if _, err := os.Stat(netnsPath); err == nil {
			left = append(left, "netns "+netnsPath)
		}
		if c := bridgePorts(t); c != 0 {
			left = append(left, fmt.Sprintf("%d bridge ports", c))
		}
		if _, err := os.Stat(ipFile); err == nil {
			left = append(left, "IP reservation "+ipFile)
		}
		if out, err := n.Ctr("tasks", "ls", "-q"); err != nil || strings.TrimSpace(string(out)) != "" {
			left = append(left, fmt.Sprintf("tasks %q %v", out, err))
		}
		if len(left) > 0 {
			return false, fmt.Errorf("left: %s", strings.Join(left, ", "))
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Stop removes every trace of the node, pods included.
func TestNodeStopLeavesNothing(t *testing.T) {
	opts := smokeNodeOptions(t)
	cp := Shared(t)
	stopSharedNode()
	start := time.Now()
	n, err := StartNode(cp, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node start (warm) to Ready: %v", time.Since(start).Round(time.Millisecond))
	stopped := false
	defer func() {
		if !stopped {
			_ = n.Stop()
		}
	}()
	cs, err := cp.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	pod, _ := runPod(ctx, t, cs, busyboxPod("smoke-stop"))
	netnsPath := sandboxNetns(t, n, string(pod.UID))
	procs := append([]*process(nil), n.state.Processes...)

	stopStart := time.Now()
	stopped = true
	if err := n.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("node Stop with one pod: %v", time.Since(stopStart).Round(time.Millisecond))

	var left []string
	for _, p := range procs {
		if !p.exited() {
			left = append(left, fmt.Sprintf("%s pid %d", p.Name, p.Pid))
		}
	}
	for _, path := range []string{n.Dir, netnsPath, nodeStateFile, filepath.Join(DevicePluginDir, "kubelet.sock")} {
		if _, err := os.Stat(path); err == nil {
			left = append(left, path)
		}
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(mi), n.Dir) {
		left = append(left, "mounts under "+n.Dir)
	}
	if _, err := netlinksafe.LinkByName(nodeVeth); err == nil {
		left = append(left, "veth "+nodeVeth)
	}
	if c := bridgePorts(t); c != 0 {
		left = append(left, fmt.Sprintf("%d bridge ports", c))
	}
	if ds, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods*/pod*"); len(ds) > 0 {
		left = append(left, fmt.Sprintf("pod cgroups %v", ds))
	}
	procDirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procDirs {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), n.ContainerdSocket) {
			left = append(left, "process "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	if _, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		left = append(left, fmt.Sprintf("Node object (%v)", err))
	}
	if _, err := cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		left = append(left, fmt.Sprintf("pod object (%v)", err))
	}
	if len(left) > 0 {
		t.Fatalf("after Stop, left behind: %s", strings.Join(left, "; "))
	}
}

// BenchmarkPodCreateToRunning measures a pod's create -> Running on the
// node (bridge + host-local CNI), its deletion excluded from the timing.
func BenchmarkPodCreateToRunning(b *testing.B) {
	opts := NodeOptions{CNIBinDir: testutil.CNIBinDir(), CNIConfDir: filepath.Join(RepoRoot(), "e2e", "cluster", "testdata", "net.d")}
	n := SharedNode(b, opts)
	cs, err := Shared(b).Clientset()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pod := busyboxPod(fmt.Sprintf("bench-%d", i))
		pod.Spec.NodeName = n.Name
		start := time.Now()
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		err := waitFor("pod running", 90*time.Second, 10*time.Millisecond, func() (bool, error) {
			p, err := cs.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
			return err == nil && p.Status.Phase == corev1.PodRunning, err
		})
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		b.StopTimer()
		grace := int64(0)
		_ = cs.CoreV1().Pods("default").Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
		_ = waitFor("pod gone", 90*time.Second, 20*time.Millisecond, func() (bool, error) {
			_, err := cs.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-running/op")
}
