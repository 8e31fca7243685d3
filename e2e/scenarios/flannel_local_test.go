package scenarios

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/plexus-cni/plexus/e2e/cluster"
	"github.com/plexus-cni/plexus/pkg/testutil"
)

// Fixed names of flannel's data path on a node: flanneld's VXLAN device
// (VNI 1), the bridge and network name flannel's CNI plugin uses.
const (
	flannelVXLAN   = "flannel.1"
	flannelBridge  = "cni0"
	flannelNetName = "cbr0"
	flannelNetwork = "10.244.0.0/16"
	flannelPodCIDR = "10.244.7.0/24"
)

// TestFlannelPrimaryOnLocalNode: a real overlay as the node's primary
// network, plexus adding secondaries. flanneld v0.28.10 (built by
// hack/flannel.sh) runs on the local node with the Kubernetes subnet
// manager and the VXLAN backend over the node's uplink; its lease is the
// Node's spec.podCIDR, which the test sets. From the subnet.env it writes,
// the test generates the conflist flannel's CNI plugin would delegate to
// (flannel-io/cni-plugin is refused by the module proxy here), plexus-install
// wraps it as it wraps any primary, and a pod gets eth0 from flannel's
// network and net1 from a macvlan NAD. Deleting the pod leaves no lease and
// no port on cni0; everything flanneld made is removed at the end.
func TestFlannelPrimaryOnLocalNode(t *testing.T) {
	testutil.RequireRoot(t)
	flanneld := filepath.Join(testutil.BinDir(), "flannel", "flanneld")
	if _, err := os.Stat(flanneld); err != nil {
		t.Skipf("flanneld not built (run hack/flannel.sh bin/flannel): %v", err)
	}
	install := testutil.Binary(t, "plexus-install")
	testutil.Binary(t, "plexus")
	cp := cluster.Shared(t)
	ctx := context.Background()

	host := t.TempDir()
	binDir, confDir, cacheDir, saDir, flDir := filepath.Join(host, "bin"), filepath.Join(host, "net.d"),
		filepath.Join(host, "cache"), filepath.Join(host, "serviceaccount"), filepath.Join(host, "flannel")
	for _, d := range []string{binDir, confDir, saDir, flDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"bridge", "macvlan", "host-local", "loopback"} {
		copyFile(t, testutil.RefPlugin(t, p), filepath.Join(binDir, p), 0o755)
	}
	run := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)

	// Teardown in one place, in this order: the node (pods' DELs through
	// plexus), plexus-install, flanneld, then what flanneld and the bridge
	// plugin left on the host.
	var stops []func()
	t.Cleanup(func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	})

	// The node registers without a CNI config (NotReady); flanneld needs
	// its Node object before a primary config can exist.
	node, err := cluster.StartNode(cp, cluster.NodeOptions{CNIBinDir: binDir, CNIConfDir: confDir})
	if err != nil {
		t.Fatal(err)
	}
	// flannel's names are fixed; the node lock is held from here on, so
	// only a crashed earlier run can have left them.
	if _, err := netlinksafe.LinkByName(flannelVXLAN); err == nil {
		_ = node.Stop()
		t.Fatalf("%s exists before flanneld started (left by a crashed run or another flanneld); delete it", flannelVXLAN)
	}
	if _, err := netlinksafe.LinkByName(flannelBridge); err == nil {
		_ = node.Stop()
		t.Fatalf("%s exists before the test; delete it", flannelBridge)
	}
	leaseDir := filepath.Join("/var/lib/cni/networks", flannelNetName)
	os.RemoveAll(leaseDir)
	stops = append(stops, func() {
		deleteLinks(t, flannelVXLAN, flannelBridge)
		os.RemoveAll(leaseDir)
		// Nothing routed to the pod network may remain in the host.
		_, pn, _ := net.ParseCIDR(flannelNetwork)
		routes, _ := netlinksafe.RouteList(nil, netlink.FAMILY_V4)
		for _, r := range routes {
			if r.Dst != nil && pn.Contains(r.Dst.IP) {
				t.Errorf("route %s left in the host after flannel's teardown", r)
			}
		}
	})
	stops = append(stops, func() {
		if t.Failed() {
			t.Logf("node logs:\n%s", node.LogTails())
		}
		if err := node.Stop(); err != nil {
			t.Errorf("stop node: %v", err)
		}
	})

	// What a controller-manager with --allocate-node-cidrs would do.
	cs, err := cp.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	patch := fmt.Sprintf(`{"spec":{"podCIDR":%q,"podCIDRs":[%q]}}`, flannelPodCIDR, flannelPodCIDR)
	if _, err := cs.CoreV1().Nodes().Patch(ctx, node.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("set podCIDR of node %s: %v", node.Name, err)
	}

	// flanneld as kube-flannel.yml runs it, but: no iptables binary here,
	// so no --ip-masq and no FORWARD rules (it then adds no iptables rule).
	netConf := filepath.Join(flDir, "net-conf.json")
	writeFile(t, netConf, fmt.Sprintf(`{"Network":%q,"Backend":{"Type":"vxlan"}}`, flannelNetwork))
	subnetFile := filepath.Join(flDir, "subnet.env")
	flLog, err := os.Create(filepath.Join(host, "flanneld.log"))
	if err != nil {
		t.Fatal(err)
	}
	fl := exec.Command(flanneld, "--kube-subnet-mgr", "--kubeconfig-file="+cp.AdminKubeconfig,
		"--iface="+cluster.NodeVeth, "--net-config-path="+netConf, "--subnet-file="+subnetFile,
		"--ip-masq=false", "--iptables-forward-rules=false", "--healthz-port=0")
	fl.Env = append(os.Environ(), "NODE_NAME="+node.Name)
	fl.Stdout, fl.Stderr = flLog, flLog
	if err := fl.Start(); err != nil {
		t.Fatal(err)
	}
	flExited := make(chan error, 1)
	go func() { flExited <- fl.Wait() }()
	stops = append(stops, func() {
		_ = fl.Process.Signal(syscall.SIGTERM)
		select {
		case <-flExited:
		case <-time.After(10 * time.Second):
			_ = fl.Process.Kill()
			<-flExited
			t.Error("flanneld did not exit on SIGTERM")
		}
		if t.Failed() {
			b, _ := os.ReadFile(flLog.Name())
			t.Logf("flanneld log:\n%s", b)
		}
	})
	env := waitSubnetEnv(t, subnetFile, flExited, flLog.Name())
	t.Logf("flanneld subnet.env: %v", env)
	if env["FLANNEL_SUBNET"] != "10.244.7.1/24" || env["FLANNEL_NETWORK"] != flannelNetwork {
		t.Fatalf("subnet.env %v: want FLANNEL_SUBNET 10.244.7.1/24 (the node's podCIDR) in %s", env, flannelNetwork)
	}
	vx, err := netlinksafe.LinkByName(flannelVXLAN)
	if err != nil {
		t.Fatalf("flanneld wrote subnet.env but %s is missing: %v", flannelVXLAN, err)
	}
	if v, ok := vx.(*netlink.Vxlan); !ok || v.VxlanId != 1 {
		t.Fatalf("%s is %T %+v, want a VXLAN with VNI 1", flannelVXLAN, vx, vx)
	}

	// The primary flannel's CNI plugin would delegate to, with
	// kube-flannel.yml's delegate settings. ipMasq is flannel's rule
	// (!FLANNEL_IPMASQ) unless the delegate sets it: kube-flannel runs
	// flanneld with --ip-masq, so it is false there; here flanneld cannot
	// masquerade (no iptables) and the delegate sets it false explicitly.
	primary, err := flannelConflist(env, map[string]any{"hairpinMode": true, "isDefaultGateway": true, "ipMasq": false})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("primary conflist from subnet.env: %s", primary)
	writeFile(t, filepath.Join(confDir, "10-flannel.conflist"), primary)

	// plexus-install as the DaemonSet runs it (see TestOnLocalNode).
	exp := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts("kube-system").CreateToken(ctx, "plexus",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for kube-system/plexus: %v", err)
	}
	copyFile(t, cp.CACertFile, filepath.Join(saDir, "ca.crt"), 0o644)
	writeFile(t, filepath.Join(saDir, "token"), tr.Status.Token)
	kubeconfig := filepath.Join(confDir, "plexus.d", "plexus.kubeconfig")
	instLog, err := os.Create(filepath.Join(host, "plexus-install.log"))
	if err != nil {
		t.Fatal(err)
	}
	inst := exec.Command(install, "--source-dir="+testutil.BinDir(), "--cni-bin-dir="+binDir, "--cni-conf-dir="+confDir,
		"--cni-dir="+cacheDir, "--kubeconfig="+kubeconfig, "--service-account-dir="+saDir, "--api-server="+cp.Server,
		"--poll-interval=200ms", "--wait-timeout=1m",
		"--keep-config=false", "--ready-file="+filepath.Join(host, "plexus-install.ready"))
	inst.Stdout, inst.Stderr = instLog, instLog
	if err := inst.Start(); err != nil {
		t.Fatal(err)
	}
	instExited := make(chan error, 1)
	go func() { instExited <- inst.Wait() }()
	stopInst := func() {
		_ = inst.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-instExited:
			if err != nil {
				t.Errorf("plexus-install exited with %v", err)
			}
		case <-time.After(10 * time.Second):
			_ = inst.Process.Kill()
			t.Error("plexus-install did not exit on SIGTERM")
		}
		if t.Failed() {
			b, _ := os.ReadFile(instLog.Name())
			t.Logf("plexus-install log:\n%s", b)
		}
	}
	// stops: [host cleanup, node stop, flanneld stop] run in reverse order;
	// flanneld first (else it recreates flannel.1 while the node goes), then the node (pods' DELs), then plexus-install.
	stops = []func(){stops[0], stopInst, stops[1], stops[2]}
	waitFile(t, filepath.Join(confDir, "00-plexus.conflist"), "")

	e := &Env{
		Kubectl: filepath.Join(cluster.K8sBinDir(), "kubectl"), Kubeconfig: cp.AdminKubeconfig,
		Namespace: "plexus-e2e-fl-" + run, Image: cluster.BusyboxImage, PullPolicy: "Never",
		NodeName: node.Name, MacvlanMaster: cluster.NodeVethPeer, Timeout: 90 * time.Second, Logf: t.Logf,
	}
	e.Node = &localNode{env: e, cacheDir: cacheDir}
	if err := e.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	macvlanNet := e.netName("macvlan-fl")
	t.Cleanup(func() { os.RemoveAll(filepath.Join("/var/lib/cni/networks", macvlanNet)) })
	macvlan := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"macvlan","master":%q,"mode":"bridge",
"ipam":{"type":"host-local","ranges":[[{"subnet":"10.139.0.0/24","rangeStart":"10.139.0.10","rangeEnd":"10.139.0.10"}]]}}`,
		macvlanNet, e.MacvlanMaster)
	if err := e.apply(ctx, nad("macvlan-fl", macvlan, nil)); err != nil {
		t.Fatal(err)
	}
	_, podCIDR, _ := net.ParseCIDR(flannelPodCIDR)
	// Twice: the second pod gets net1's only address only if the first
	// one's DEL released it.
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("flannel-%d", i)
		if err := e.apply(ctx, e.pod(name, "macvlan-fl")); err != nil {
			t.Fatal(err)
		}
		p, err := e.waitRunning(ctx, name)
		if err != nil {
			t.Fatalf("pod %s: %v; events:\n%s", name, err, e.events(ctx, name))
		}
		st, err := ParseNetworkStatus(p.Annotations)
		if err != nil {
			t.Fatal(err)
		}
		addrs, err := e.exec(ctx, name, "ip", "-o", "addr", "show")
		if err != nil {
			t.Fatal(err)
		}
		links, err := e.exec(ctx, name, "ip", "-o", "link", "show")
		if err != nil {
			t.Fatal(err)
		}
		ifs := ParseIPAddr(addrs)
		if err := CheckAttachments(st, ifs, ParseIPLink(links), []Want{
			{Network: e.Namespace + "/macvlan-fl", Interface: "net1", IPs: []string{"10.139.0.10/24"}},
		}); err != nil {
			t.Fatalf("pod %s: %v\nip addr:\n%s", name, err, addrs)
		}
		// eth0 is flannel's: one address in the node's podCIDR, the
		// default entry of network-status is cbr0 with that address,
		// and the pod routes the whole flannel network via cni0.
		var eth0IP string
		for _, a := range ifs["eth0"].Addrs {
			if ip, _, err := net.ParseCIDR(a); err == nil && ip.To4() != nil {
				if !podCIDR.Contains(ip) || eth0IP != "" {
					t.Fatalf("pod %s: eth0 has %v, want one IPv4 address in %s", name, ifs["eth0"].Addrs, flannelPodCIDR)
				}
				eth0IP = ip.String()
			}
		}
		for _, s := range st {
			if s.Default && (s.Name != flannelNetName || !contains(s.IPs, eth0IP)) {
				t.Fatalf("pod %s: default network-status entry %+v, want %s with %s", name, s, flannelNetName, eth0IP)
			}
		}
		routes, err := e.exec(ctx, name, "ip", "route", "show")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(routes, flannelNetwork+" via 10.244.7.1 dev eth0") || !strings.Contains(routes, "default via 10.244.7.1 dev eth0") {
			t.Fatalf("pod %s: routes\n%s\nwant %s and default via 10.244.7.1 on eth0", name, routes, flannelNetwork)
		}
		if out, err := e.exec(ctx, name, "cat", "/sys/class/net/eth0/mtu"); err != nil || strings.TrimSpace(out) != env["FLANNEL_MTU"] {
			t.Fatalf("pod %s: eth0 MTU %q (%v), want FLANNEL_MTU %s", name, out, err, env["FLANNEL_MTU"])
		}
		t.Logf("pod %s: eth0 %s from flannel, net1 10.139.0.10 from macvlan-fl", name, eth0IP)
		if err := e.deletePod(ctx, name); err != nil {
			t.Fatal(err)
		}
		if err := e.checkLeftovers(ctx, node.Name, []string{name}, []string{flannelNetName, macvlanNet}, []string{flannelBridge}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitSubnetEnv waits for flanneld's subnet.env and parses it.
func waitSubnetEnv(t *testing.T, path string, exited <-chan error, logPath string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if f, err := os.Open(path); err == nil {
			env := map[string]string{}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
					env[k] = v
				}
			}
			f.Close()
			if env["FLANNEL_SUBNET"] != "" && env["FLANNEL_MTU"] != "" {
				return env
			}
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("flanneld exited (%v) before writing %s:\n%s", err, path, b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("flanneld wrote no %s within 60s:\n%s", path, b)
		}
	}
}

// flannelConflist is the bridge + host-local network flannel's CNI plugin
// (flannel-io/cni-plugin, type "flannel") delegates to, as a conflist: the
// delegate's settings, then what the plugin fills in when the delegate
// lacks it: type bridge, ipMasq = !FLANNEL_IPMASQ, mtu = FLANNEL_MTU,
// isGateway true, and host-local over FLANNEL_SUBNET routing
// FLANNEL_NETWORK. The bridge is the bridge plugin's default, cni0.
func flannelConflist(env map[string]string, delegate map[string]any) (string, error) {
	_, sn, err := net.ParseCIDR(env["FLANNEL_SUBNET"])
	if err != nil {
		return "", fmt.Errorf("FLANNEL_SUBNET: %w", err)
	}
	_, nw, err := net.ParseCIDR(env["FLANNEL_NETWORK"])
	if err != nil {
		return "", fmt.Errorf("FLANNEL_NETWORK: %w", err)
	}
	mtu, err := strconv.Atoi(env["FLANNEL_MTU"])
	if err != nil {
		return "", fmt.Errorf("FLANNEL_MTU: %w", err)
	}
	d := map[string]any{"type": "bridge", "bridge": flannelBridge, "isGateway": true,
		"ipMasq": env["FLANNEL_IPMASQ"] != "true", "mtu": mtu}
	for k, v := range delegate {
		d[k] = v
	}
	d["ipam"] = map[string]any{"type": "host-local", "ranges": [][]map[string]string{{{"subnet": sn.String()}}},
		"routes": []map[string]string{{"dst": nw.String()}}}
	b, err := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": flannelNetName, "plugins": []any{d}})
	return string(b), err
}
