package scenarios

// Multus's own e2e scenarios (k8snetworkplumbingwg/multus-cni, e2e/:
// test-simple-pod.sh, test-simple-macvlan1.sh, test-default-route1.sh,
// test-static-pod.sh), with their NADs and annotations as Multus writes
// them (cniVersion 0.4.0 as Multus's generate_yamls.sh renders them; the
// macvlan master is the Env's), checked more closely than Multus's
// scripts do: network-status, addresses and routes inside the pod, and
// what the deleted pods leave on the node.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// MultusSimplePod (simple-pod.yml): a pod without the networks annotation
// runs with lo and eth0 only, and network-status lists just the default
// network.
func MultusSimplePod(ctx context.Context, e *Env) error {
	const name = "simple-centos1"
	p, err := e.startPods(ctx, map[string]string{name: ""})
	if err != nil {
		return err
	}
	v, err := e.look(ctx, name)
	if err != nil {
		return err
	}
	if err := CheckAttachments(v.status, v.ifs, v.macs, nil); err != nil {
		return fmt.Errorf("pod %s: %w", name, err)
	}
	if got := names(v.ifs); got != "eth0,lo" {
		return fmt.Errorf("pod %s has interfaces %s, want eth0,lo", name, got)
	}
	return e.deleteAndCheck(ctx, p[name].Spec.NodeName, []string{name}, nil, nil)
}

// MultusSimpleMacvlan1 (simple-macvlan1.yml): two pods on a macvlan+tuning
// conflist with static IPAM and the ips capability get the addresses of
// their annotations on net1, and reach each other over the macvlan.
func MultusSimpleMacvlan1(ctx context.Context, e *Env) error {
	conf := fmt.Sprintf(`{ "cniVersion": "0.4.0", "plugins": [ { "type": "macvlan", "capabilities": { "ips": true },
 "master": %q, "mode": "bridge", "ipam": { "type": "static" } }, { "type": "tuning" } ] }`, e.MacvlanMaster)
	if err := e.apply(ctx, nad("macvlan1-config", conf, nil)); err != nil {
		return err
	}
	pods := map[string]string{
		"macvlan1-worker1": `[ { "name": "macvlan1-config", "ips": [ "10.1.1.11/24" ] } ]`,
		"macvlan1-worker2": `[ { "name": "macvlan1-config", "ips": [ "10.1.1.12/24" ] } ]`,
	}
	ips := map[string]string{"macvlan1-worker1": "10.1.1.11/24", "macvlan1-worker2": "10.1.1.12/24"}
	started, err := e.startPods(ctx, pods)
	if err != nil {
		return err
	}
	for name, ip := range ips {
		v, err := e.look(ctx, name)
		if err != nil {
			return err
		}
		want := Want{Network: e.Namespace + "/macvlan1-config", Interface: "net1", IPs: []string{ip}}
		if err := CheckAttachments(v.status, v.ifs, v.macs, []Want{want}); err != nil {
			return fmt.Errorf("pod %s: %w", name, err)
		}
	}
	if out, err := e.exec(ctx, "macvlan1-worker1", "ping", "-c", "1", "-W", "5", "10.1.1.12"); err != nil {
		return fmt.Errorf("macvlan1-worker1 cannot reach macvlan1-worker2 (10.1.1.12) over net1: %w\n%s", err, out)
	}
	return e.deleteAndCheck(ctx, started["macvlan1-worker1"].Spec.NodeName, keys(pods), nil, nil)
}

// MultusDefaultRoute1 (default-route1.yml.j2): a macvlan conflist with
// static IPAM and NO capabilities; the annotation's ips reach static IPAM
// as Multus passes them (legacy CNI_ARGS IP=…), and "default-route" moves
// the pod's default route to net1 via the requested gateway. The second
// pod, without default-route, keeps its default route on eth0.
func MultusDefaultRoute1(ctx context.Context, e *Env) error {
	conf := fmt.Sprintf(`{ "cniVersion": "0.4.0", "plugins": [ { "type": "macvlan", "master": %q, "mode": "bridge",
 "ipam": { "type": "static" } } ] }`, e.MacvlanMaster)
	if err := e.apply(ctx, nad("default-route-config", conf, nil)); err != nil {
		return err
	}
	pods := map[string]string{
		"default-route-worker1": `[ { "name": "default-route-config", "ips": [ "10.1.1.21/24" ] , "default-route": [ "10.1.1.254" ] } ]`,
		"default-route-worker2": `[ { "name": "default-route-config", "ips": [ "10.1.1.22/24" ] } ]`,
	}
	started, err := e.startPods(ctx, pods)
	if err != nil {
		return err
	}
	for name, ip := range map[string]string{"default-route-worker1": "10.1.1.21/24", "default-route-worker2": "10.1.1.22/24"} {
		v, err := e.look(ctx, name)
		if err != nil {
			return err
		}
		want := Want{Network: e.Namespace + "/default-route-config", Interface: "net1", IPs: []string{ip}}
		if err := CheckAttachments(v.status, v.ifs, v.macs, []Want{want}); err != nil {
			return fmt.Errorf("pod %s: %w\nip addr:\n%s", name, err, v.addrOut)
		}
		d := DefaultRoutes(v.routes)
		switch {
		case name == "default-route-worker1" && (len(d) != 1 || d[0].Via != "10.1.1.254" || d[0].Dev != "net1"):
			return fmt.Errorf("pod %s: default routes %+v, want exactly one, via 10.1.1.254 dev net1\nip route:\n%s", name, d, v.routeOut)
		case name == "default-route-worker2" && (len(d) != 1 || d[0].Dev != "eth0"):
			return fmt.Errorf("pod %s: default routes %+v, want exactly one, on eth0\nip route:\n%s", name, d, v.routeOut)
		}
	}
	return e.deleteAndCheck(ctx, started["default-route-worker1"].Spec.NodeName, keys(pods), nil, nil)
}

// MultusStaticPod (static-pod-nad.yml, simple-static-pod.yml): the 0.3.1
// bridge NAD with host-local's legacy "subnet", first for a pod created
// through the API, then for a static pod on the same node (kubelet's
// manifest; its mirror pod in the API has another UID than the one the
// runtime passes). The static half needs Env.Node and a kubelet with a
// staticPodPath; without them it is reported and left out.
func MultusStaticPod(ctx context.Context, e *Env) error {
	network, bridge := e.netName("testnet"), bridgeName(e.Namespace+"t")
	conf := fmt.Sprintf(`{ "cniVersion": "0.3.1", "name": %q, "type": "bridge", "bridge": %q,
 "ipam": { "type": "host-local", "subnet": "10.10.0.0/16" } }`, network, bridge)
	if err := e.apply(ctx, nad("bridge-nad", conf, nil)); err != nil {
		return err
	}
	want := Want{Network: e.Namespace + "/bridge-nad", Interface: "net1", Subnet: "10.10.0.0/16"}
	const apiPod = "static-web-api"
	started, err := e.startPods(ctx, map[string]string{apiPod: "bridge-nad"})
	if err != nil {
		return err
	}
	node := started[apiPod].Spec.NodeName
	if err := e.checkPod(ctx, apiPod, want); err != nil {
		return err
	}
	// Positive control of the leftover probe: while the pod runs, it sees
	// the pod's lease, its veth on the bridge and its plexus cache entry.
	if e.Node != nil {
		present, err := e.Node.Leftovers(ctx, node, e.Namespace, []string{apiPod}, []string{network}, []string{bridge})
		if err != nil {
			return err
		}
		all := strings.Join(present, "; ")
		for _, kind := range []string{"IPAM lease", "on bridge " + bridge, "plexus cache entry"} {
			if !strings.Contains(all, kind) {
				return fmt.Errorf("pod %s runs, but the node probe does not see its %s (sees: %s)", apiPod, kind, all)
			}
		}
	}
	if err := e.deleteAndCheck(ctx, node, []string{apiPod}, []string{network}, []string{bridge}); err != nil {
		return err
	}

	if e.Node == nil {
		e.logf("static pod half of %s left out: no node access (Env.Node)", "MultusStaticPod")
		return nil
	}
	const file = "static-web.yaml"
	mirror := "static-web-" + node
	err = e.Node.PutStaticPod(ctx, node, file, []byte(e.staticPod("static-web", "bridge-nad")))
	if errors.Is(err, ErrNoStaticPods) {
		e.logf("static pod half of MultusStaticPod left out: %v", err)
		return nil
	}
	if err != nil {
		return err
	}
	removed := false
	defer func() {
		if !removed {
			_ = e.Node.RemoveStaticPod(context.Background(), node, file)
		}
	}()
	p, err := e.waitRunning(ctx, mirror)
	if err != nil {
		return err
	}
	if _, ok := p.Annotations["kubernetes.io/config.mirror"]; !ok {
		return fmt.Errorf("pod %s/%s is not a mirror pod (annotations %v)", e.Namespace, mirror, p.Annotations)
	}
	if err := e.checkFirstSandbox(ctx, mirror); err != nil {
		return err
	}
	if err := e.checkPod(ctx, mirror, want); err != nil {
		return err
	}
	if err := e.Node.RemoveStaticPod(ctx, node, file); err != nil {
		return err
	}
	removed = true
	if err := e.waitGone(ctx, mirror); err != nil {
		return err
	}
	return e.checkLeftoversEventually(ctx, node, []string{mirror}, []string{network}, []string{bridge})
}

// podView is what a scenario sees of a running pod.
type podView struct {
	status            []nadv1.NetworkStatus
	ifs               map[string]*Iface
	macs              map[string]string
	routes            []Route
	addrOut, routeOut string
}

// look reads a running pod's network-status and, from inside, its
// addresses, links and routes.
func (e *Env) look(ctx context.Context, name string) (*podView, error) {
	p, err := e.getPod(ctx, name)
	if err != nil {
		return nil, err
	}
	v := &podView{}
	if v.status, err = ParseNetworkStatus(p.Annotations); err != nil {
		return nil, fmt.Errorf("pod %s: %w", name, err)
	}
	if v.addrOut, err = e.exec(ctx, name, "ip", "-o", "addr", "show"); err != nil {
		return nil, err
	}
	links, err := e.exec(ctx, name, "ip", "-o", "link", "show")
	if err != nil {
		return nil, err
	}
	if v.routeOut, err = e.exec(ctx, name, "ip", "route", "show"); err != nil {
		return nil, err
	}
	v.ifs, v.macs, v.routes = ParseIPAddr(v.addrOut), ParseIPLink(links), ParseIPRoute(v.routeOut)
	return v, nil
}

// checkPod checks a running pod's attachments against want.
func (e *Env) checkPod(ctx context.Context, name string, wants ...Want) error {
	v, err := e.look(ctx, name)
	if err != nil {
		return err
	}
	if err := CheckAttachments(v.status, v.ifs, v.macs, wants); err != nil {
		return fmt.Errorf("pod %s: %w\nip addr:\n%s", name, err, v.addrOut)
	}
	return nil
}

// startPods creates pods (name → networks annotation) together, as
// Multus's scripts do, and waits until all run, each on its first sandbox.
func (e *Env) startPods(ctx context.Context, pods map[string]string) (map[string]*corev1.Pod, error) {
	start := time.Now()
	for _, name := range keys(pods) {
		if err := e.apply(ctx, e.pod(name, pods[name])); err != nil {
			return nil, err
		}
	}
	out := map[string]*corev1.Pod{}
	for _, name := range keys(pods) {
		p, err := e.waitRunning(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := e.checkFirstSandbox(ctx, name); err != nil {
			return nil, err
		}
		out[name] = p
	}
	e.logf("pods %v Running after %s", keys(pods), time.Since(start).Round(time.Millisecond))
	return out, nil
}

// checkFirstSandbox fails when a pod ran only after a failed attempt (a
// retry would mean state left behind before, e.g. an IPAM lease).
func (e *Env) checkFirstSandbox(ctx context.Context, name string) error {
	if ev := e.events(ctx, name); strings.Contains(ev, "FailedCreatePodSandBox") || strings.Contains(ev, "AttachFailed") {
		return fmt.Errorf("pod %s: ran only after a failed attempt; events:\n%s", name, ev)
	}
	return nil
}

// deleteAndCheck deletes pods (waiting until they are gone) and checks
// that they left nothing on node.
func (e *Env) deleteAndCheck(ctx context.Context, node string, pods, networks, bridges []string) error {
	for _, name := range pods {
		if err := e.deletePod(ctx, name); err != nil {
			return err
		}
	}
	return e.checkLeftoversEventually(ctx, node, pods, networks, bridges)
}

// checkLeftoversEventually waits (bounded) until the deleted pods left
// nothing on node: kubelet tears a sandbox down and deletes the API object
// concurrently for some pods (mirror pods), so a leftover counts only when
// it outlasts the timeout.
func (e *Env) checkLeftoversEventually(ctx context.Context, node string, pods, networks, bridges []string) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		last = e.checkLeftovers(ctx, node, pods, networks, bridges)
		return last == nil, nil
	})
	if err != nil && last != nil {
		return last
	}
	return err
}

// waitGone waits until a pod is no longer in the API.
func (e *Env) waitGone(ctx context.Context, name string) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, e.timeout(), true, func(ctx context.Context) (bool, error) {
		out, err := e.kubectl(ctx, "", "-n", e.Namespace, "get", "pod", name, "--ignore-not-found", "-o", "name")
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = strings.TrimSpace(string(out))
		return last == "", nil
	})
	if err != nil {
		return fmt.Errorf("pod %s/%s still there after %s (%s)", e.Namespace, name, e.timeout(), last)
	}
	return nil
}

// staticPod returns a static pod manifest (kubelet's file source): no
// ServiceAccount, no nodeName; the networks annotation.
func (e *Env) staticPod(name, networks string) string {
	var p corev1.Pod
	if err := json.Unmarshal([]byte(e.pod(name, networks)), &p); err != nil {
		panic(err) // e.pod marshals a corev1.Pod
	}
	p.Namespace = e.Namespace
	p.Spec.NodeName = ""
	p.Spec.AutomountServiceAccountToken = nil
	b, _ := json.Marshal(p)
	return string(b)
}

// StaticPodPath returns the kubelet's staticPodPath on node ("" when it has
// none), from its /configz through the API server's node proxy.
func (e *Env) StaticPodPath(ctx context.Context, node string) (string, error) {
	out, err := e.kubectl(ctx, "", "get", "--raw", "/api/v1/nodes/"+node+"/proxy/configz")
	if err != nil {
		return "", err
	}
	var cfg struct {
		KubeletConfig struct {
			StaticPodPath string `json:"staticPodPath"`
		} `json:"kubeletconfig"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		return "", fmt.Errorf("node %s: configz: %w", node, err)
	}
	return cfg.KubeletConfig.StaticPodPath, nil
}

func keys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
