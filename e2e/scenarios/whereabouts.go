package scenarios

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// ErrSkipped: a scenario cannot run on this cluster (e.g. whereabouts is
// not installed there); RunAll reports it as a skipped subtest.
var ErrSkipped = errors.New("scenario skipped")

// WhereaboutsEnv is how the cluster's whereabouts is set up; the zero value
// is whereabouts' own DaemonSet install (its flat file
// /etc/cni/net.d/whereabouts.d/whereabouts.conf on each node, pools in
// kube-system).
type WhereaboutsEnv struct {
	// ConfigPath is the flat file on the nodes (whereabouts'
	// "configuration_path": datastore, kubernetes.kubeconfig, logging).
	ConfigPath string
	// Namespace holds the IPPools: the namespace of the kubeconfig's
	// context ("" = kube-system, whereabouts' default).
	Namespace string
}

// GCNode is a Node that can run plexus's CNI GC the way a runtime does.
type GCNode interface {
	// PlexusGC runs a CNI GC of plexus's network on node with every
	// attachment of the live pods (names in namespace) as valid, and of
	// every container plexus holds for another namespace.
	PlexusGC(ctx context.Context, node, namespace string, livePods []string) error
}

const whereaboutsPools = "ippools.whereabouts.cni.cncf.io"

// whereaboutsNetwork is the CNI network name of the scenario: whereabouts
// names its IPPool "<network_name>-<range>", so a pool is this run's only.
func (e *Env) whereaboutsNetwork() string { return e.netName("wb") }

// Whereabouts: a macvlan network with whereabouts, the cluster-wide IPAM
// keeping its allocations in IPPool objects. Three pods on the node get
// three distinct addresses of the one range (network-status and their
// interfaces agree), the IPPool lists one allocation per pod, a plexus CNI
// GC with the live pods as valid leaves every allocation (and the pods'
// addresses) in place, and deleting the pods frees every address: no
// allocation is left in the IPPool. Skipped when the cluster has no
// whereabouts (its IPPool CRD).
func Whereabouts(ctx context.Context, e *Env) error {
	if _, err := e.kubectl(ctx, "", "get", "crd", whereaboutsPools); err != nil {
		if strings.Contains(err.Error(), "NotFound") {
			return fmt.Errorf("%w: whereabouts is not installed (no CRD %s)", ErrSkipped, whereaboutsPools)
		}
		return err
	}
	const subnet, count = "10.141.0.0/24", 3
	ns := e.Whereabouts.Namespace
	if ns == "" {
		ns = "kube-system"
	}
	netName := e.whereaboutsNetwork()
	pool := netName + "-" + strings.ReplaceAll(subnet, "/", "-")
	ipam := map[string]any{"type": "whereabouts", "range": subnet, "network_name": netName}
	if p := e.Whereabouts.ConfigPath; p != "" {
		ipam["configuration_path"] = p
	}
	ipamJSON, _ := json.Marshal(ipam)
	// CNI 1.1.0: plexus passes a GC on to the delegate (macvlan v1.9.1
	// does not pass it on to its IPAM; whereabouts v0.9.2 has no GC).
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":"macvlan","master":%q,"mode":"bridge","ipam":%s}`,
		netName, e.MacvlanMaster, ipamJSON)
	if err := e.apply(ctx, nad("wb-e2e", conf, nil)); err != nil {
		return err
	}
	// whereabouts never deletes a pool: this run's goes with the scenario.
	defer func() {
		if _, err := e.kubectl(context.WithoutCancel(ctx), "", "-n", ns, "delete", whereaboutsPools, pool, "--ignore-not-found"); err != nil {
			e.logf("deleting IPPool %s/%s: %v", ns, pool, err)
		}
	}()

	var names []string
	for i := 1; i <= count; i++ {
		names = append(names, fmt.Sprintf("wb-%d", i))
	}
	start := time.Now()
	for _, n := range names {
		if err := e.apply(ctx, e.pod(n, "wb-e2e")); err != nil {
			return err
		}
	}
	defer func() {
		for _, n := range names {
			_ = e.deletePod(context.WithoutCancel(ctx), n)
		}
	}()
	ips := map[string]string{} // pod -> address
	var node string
	for _, n := range names {
		p, err := e.waitRunning(ctx, n)
		if err != nil {
			return err
		}
		node = p.Spec.NodeName
		if ev := e.events(ctx, n); strings.Contains(ev, "FailedCreatePodSandBox") {
			return fmt.Errorf("pod %s: ran only after a failed attempt; events:\n%s", n, ev)
		}
		ip, err := e.checkWhereaboutsPod(ctx, n, subnet)
		if err != nil {
			return err
		}
		for other, oip := range ips {
			if oip == ip {
				return fmt.Errorf("pods %s and %s both got %s from whereabouts", other, n, ip)
			}
		}
		ips[n] = ip
	}
	e.logf("%d pods Running after %s with addresses %v", count, time.Since(start).Round(time.Millisecond), ips)

	// The IPPool lists exactly these pods at these addresses.
	want := map[string]string{}
	for n, ip := range ips {
		want[e.Namespace+"/"+n] = ip
	}
	got, err := e.poolAllocations(ctx, ns, pool, subnet)
	if err != nil {
		return err
	}
	if !equalMaps(got, want) {
		return fmt.Errorf("IPPool %s/%s allocations %v, want %v", ns, pool, got, want)
	}

	// plexus's GC with the live pods as valid must leave whereabouts'
	// allocations alone (whereabouts' own ip-reconciler is a separate
	// CronJob; plexus frees only what its cache holds for containers that
	// are gone).
	if g, ok := e.Node.(GCNode); ok && node != "" {
		if err := g.PlexusGC(ctx, node, e.Namespace, names); err != nil {
			return fmt.Errorf("plexus GC: %w", err)
		}
		got, err := e.poolAllocations(ctx, ns, pool, subnet)
		if err != nil {
			return err
		}
		if !equalMaps(got, want) {
			return fmt.Errorf("after a plexus GC with the live pods valid: IPPool %s/%s allocations %v, want %v", ns, pool, got, want)
		}
		for n, ip := range ips {
			if got, err := e.checkWhereaboutsPod(ctx, n, subnet); err != nil || got != ip {
				return fmt.Errorf("after a plexus GC: pod %s has %q (%v), want %s", n, got, err, ip)
			}
		}
		e.logf("plexus GC with the %d live pods valid kept every whereabouts allocation", count)
		// The same GC with the last pod left out of the valid list does
		// reach the delegates: plexus DELs that container's attachments,
		// whereabouts frees its address, and only its.
		gone := names[count-1]
		if err := g.PlexusGC(ctx, node, e.Namespace, names[:count-1]); err != nil {
			return fmt.Errorf("plexus GC without %s: %w", gone, err)
		}
		delete(want, e.Namespace+"/"+gone)
		if got, err = e.poolAllocations(ctx, ns, pool, subnet); err != nil {
			return err
		}
		if !equalMaps(got, want) {
			return fmt.Errorf("after a plexus GC with %s not valid: IPPool %s/%s allocations %v, want %v", gone, ns, pool, got, want)
		}
		e.logf("plexus GC without %s freed its address %s and kept the others", gone, ips[gone])
	} else {
		e.logf("no node access: not running plexus's GC")
	}

	start = time.Now()
	for _, n := range names {
		if err := e.deletePod(ctx, n); err != nil {
			return err
		}
	}
	// Freed on DEL; poll, for a cluster where the pod object goes first.
	var left map[string]string
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, e.timeout(), true, func(ctx context.Context) (bool, error) {
		left, err = e.poolAllocations(ctx, ns, pool, subnet)
		return err == nil && len(left) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("IPPool %s/%s still allocates %v %s after its pods were deleted: %w", ns, pool, left, e.timeout(), err)
	}
	e.logf("%d pods deleted and their addresses freed in %s", count, time.Since(start).Round(time.Millisecond))
	// Overlapping-range reservations are named <network_name>-<ip>.
	out, err := e.kubectl(ctx, "", "-n", ns, "get", "overlappingrangeipreservations.whereabouts.cni.cncf.io", "-o", "name")
	if err != nil {
		return err
	}
	for _, l := range strings.Fields(string(out)) {
		if strings.Contains(l, "/"+netName+"-") {
			return fmt.Errorf("whereabouts reservation %s left after its pods were deleted", l)
		}
	}
	return e.checkLeftovers(ctx, node, names, nil, nil)
}

// checkWhereaboutsPod checks a pod's whereabouts attachment: net1 with one
// address of subnet, as network-status and the pod's interfaces say, and
// returns the address.
func (e *Env) checkWhereaboutsPod(ctx context.Context, name, subnet string) (string, error) {
	p, err := e.getPod(ctx, name)
	if err != nil {
		return "", err
	}
	st, err := ParseNetworkStatus(p.Annotations)
	if err != nil {
		return "", fmt.Errorf("pod %s: %w", name, err)
	}
	addrs, err := e.exec(ctx, name, "ip", "-o", "addr", "show")
	if err != nil {
		return "", err
	}
	links, err := e.exec(ctx, name, "ip", "-o", "link", "show")
	if err != nil {
		return "", err
	}
	w := Want{Network: e.Namespace + "/wb-e2e", Interface: "net1", Subnet: subnet}
	if err := CheckAttachments(st, ParseIPAddr(addrs), ParseIPLink(links), []Want{w}); err != nil {
		return "", fmt.Errorf("pod %s: %w\nip addr:\n%s", name, err, addrs)
	}
	for _, s := range st {
		if s.Name == w.Network && len(s.IPs) == 1 {
			return s.IPs[0], nil
		}
	}
	return "", fmt.Errorf("pod %s: network-status has no single address on net1: %+v", name, st)
}

// poolAllocations reads an IPPool's allocations as podRef -> address (an
// allocation is keyed by its offset in the range). A pool not created yet
// has none.
func (e *Env) poolAllocations(ctx context.Context, ns, pool, subnet string) (map[string]string, error) {
	out, err := e.kubectl(ctx, "", "-n", ns, "get", whereaboutsPools, pool, "-o", "json", "--ignore-not-found")
	if err != nil {
		return nil, err
	}
	got := map[string]string{}
	if len(strings.TrimSpace(string(out))) == 0 {
		return got, nil
	}
	var p struct {
		Spec struct {
			Range       string `json:"range"`
			Allocations map[string]struct {
				ID     string `json:"id"`
				PodRef string `json:"podref"`
				IfName string `json:"ifname"`
			} `json:"allocations"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		return nil, fmt.Errorf("IPPool %s/%s: %w", ns, pool, err)
	}
	_, ipnet, err := net.ParseCIDR(subnet)
	if err != nil {
		return nil, err
	}
	base := ipnet.IP.To4()
	offsets := make([]string, 0, len(p.Spec.Allocations))
	for k := range p.Spec.Allocations {
		offsets = append(offsets, k)
	}
	sort.Strings(offsets)
	for _, k := range offsets {
		a := p.Spec.Allocations[k]
		var off uint32
		if _, err := fmt.Sscan(k, &off); err != nil || base == nil {
			return nil, fmt.Errorf("IPPool %s/%s: allocation key %q is not an offset in %s", ns, pool, k, subnet)
		}
		v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3]) + off
		got[a.PodRef] = net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).String()
	}
	return got, nil
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
