package scenarios

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Scenario is one end-to-end check; it cleans up what it creates.
type Scenario struct {
	Name string
	Run  func(ctx context.Context, e *Env) error
}

// All is every scenario, in the order e2e/kind/run.sh and the local node
// e2e run them.
var All = []Scenario{
	{"macvlan-and-bridge", MacvlanAndBridge},
	{"static-ip-and-mac", StaticIPAndMAC},
	{"unknown-network", UnknownNetwork},
	{"whereabouts", Whereabouts},
	// Multus's own e2e (multus.go).
	{"multus-simple-pod", MultusSimplePod},
	{"multus-simple-macvlan1", MultusSimpleMacvlan1},
	{"multus-static-pod", MultusStaticPod},
	{"multus-default-route1", MultusDefaultRoute1},
}

// netName makes a CNI network name unique to this run: host-local keeps
// its leases per network name on the node, so a crashed earlier run must
// not hold this run's addresses.
func (e *Env) netName(base string) string { return base + "-" + e.Namespace }

// MacvlanAndBridge: a pod asking for a macvlan network (short form) and a
// bridge network with an interface name gets eth0, net1 and br1 with the
// addresses IPAM gave, and network-status says so. Each network's range
// holds ONE address, and the pod is created and deleted three times: the
// second pod only gets its addresses if deleting the first released them.
func MacvlanAndBridge(ctx context.Context, e *Env) error {
	macvlan := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"macvlan","master":%q,"mode":"bridge",
"ipam":{"type":"host-local","ranges":[[{"subnet":"10.131.0.0/24","rangeStart":"10.131.0.10","rangeEnd":"10.131.0.10"}]]}}`,
		e.netName("macvlan"), e.MacvlanMaster)
	bridge := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"bridge","bridge":%q,"ipMasq":false,
"ipam":{"type":"host-local","ranges":[[{"subnet":"10.132.0.0/24","rangeStart":"10.132.0.10","rangeEnd":"10.132.0.10"}]]}}`,
		e.netName("bridge"), bridgeName(e.Namespace))
	if err := e.apply(ctx, nad("macvlan-e2e", macvlan, nil)); err != nil {
		return err
	}
	if err := e.apply(ctx, nad("bridge-e2e", bridge, nil)); err != nil {
		return err
	}
	wants := []Want{
		{Network: e.Namespace + "/macvlan-e2e", Interface: "net1", IPs: []string{"10.131.0.10/24"}},
		{Network: e.Namespace + "/bridge-e2e", Interface: "br1", IPs: []string{"10.132.0.10/24"}},
	}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("attach-%d", i)
		if err := e.runAndCheck(ctx, name, "macvlan-e2e,bridge-e2e@br1", wants); err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
	}
	return nil
}

// StaticIPAndMAC: the JSON form of the networks annotation with ips and
// mac reaches delegates that declare those capabilities.
func StaticIPAndMAC(ctx context.Context, e *Env) error {
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[
{"type":"bridge","bridge":%q,"ipam":{"type":"static"},"capabilities":{"ips":true}},
{"type":"tuning","capabilities":{"mac":true}}]}`, e.netName("static"), bridgeName(e.Namespace+"s"))
	if err := e.apply(ctx, nad("static-e2e", conf, nil)); err != nil {
		return err
	}
	networks := `[{"name":"static-e2e","interface":"st0","ips":["10.133.0.5/24"],"mac":"02:00:00:13:30:05"}]`
	return e.runAndCheck(ctx, "static", networks, []Want{
		{Network: e.Namespace + "/static-e2e", Interface: "st0", IPs: []string{"10.133.0.5/24"}, MAC: "02:00:00:13:30:05"},
	})
}

// UnknownNetwork: a pod asking for a network that has no NAD never runs,
// its events name the network, and deleting it works.
func UnknownNetwork(ctx context.Context, e *Env) error {
	const name, missing = "unknown", "no-such-network-e2e"
	if err := e.apply(ctx, e.pod(name, missing)); err != nil {
		return err
	}
	deadline := time.Now().Add(e.timeout())
	for {
		p, err := e.getPod(ctx, name)
		if err != nil {
			return err
		}
		if p.Status.Phase == "Running" {
			return fmt.Errorf("pod %s/%s asking for missing network %q is Running", e.Namespace, name, missing)
		}
		ev := e.events(ctx, name)
		if strings.Contains(ev, "Warning") && strings.Contains(ev, missing) {
			e.logf("unknown network reported: %s", firstLineWith(ev, missing))
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pod %s/%s: no Warning event naming %q within %s; events:\n%s", e.Namespace, name, missing, e.timeout(), ev)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return e.deletePod(ctx, name)
}

// runAndCheck creates a pod with the networks annotation, waits until it
// runs, checks its attachments from inside and from network-status, and
// deletes it.
func (e *Env) runAndCheck(ctx context.Context, name, networks string, wants []Want) error {
	start := time.Now()
	if err := e.apply(ctx, e.pod(name, networks)); err != nil {
		return err
	}
	p, err := e.waitRunning(ctx, name)
	if err != nil {
		return err
	}
	e.logf("pod %s Running after %s", name, time.Since(start).Round(time.Millisecond))
	// The first sandbox must have worked: a retry would mean state left
	// behind by the pod before (e.g. an IPAM lease not released).
	if ev := e.events(ctx, name); strings.Contains(ev, "FailedCreatePodSandBox") || strings.Contains(ev, "AttachFailed") {
		return fmt.Errorf("pod %s: ran only after a failed attempt; events:\n%s", name, ev)
	}
	st, err := ParseNetworkStatus(p.Annotations)
	if err != nil {
		return fmt.Errorf("pod %s: %w", name, err)
	}
	addrs, err := e.exec(ctx, name, "ip", "-o", "addr", "show")
	if err != nil {
		return err
	}
	links, err := e.exec(ctx, name, "ip", "-o", "link", "show")
	if err != nil {
		return err
	}
	if err := CheckAttachments(st, ParseIPAddr(addrs), ParseIPLink(links), wants); err != nil {
		return fmt.Errorf("pod %s: %w\nip addr:\n%s", name, err, addrs)
	}
	start = time.Now()
	if err := e.deletePod(ctx, name); err != nil {
		return err
	}
	e.logf("pod %s deleted in %s", name, time.Since(start).Round(time.Millisecond))
	return nil
}

// bridgeName is a Linux bridge name (at most 15 bytes) unique to s.
func bridgeName(s string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return fmt.Sprintf("pxe%08x", h)
}

func firstLineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
