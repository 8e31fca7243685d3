// Node integration tests of the plexus binary: real network namespaces, the
// reference CNI plugins, plexus exec'd through libcni as a runtime does.
package cni_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"github.com/vishvananda/netlink"

	"github.com/plexus-cni/plexus/pkg/testutil/cnienv"
)

// bridgeNADs writes n NADs net-1..net-n, each a bridge on its own subnet.
func bridgeNADs(e *cnienv.Env, n int) string {
	var names []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("net-%d", i)
		e.WriteNAD("default", name, e.BridgeConf(name, e.Name(fmt.Sprintf("b%d", i)), i))
		names = append(names, name)
	}
	return strings.Join(names, ",")
}

func readStatus(t *testing.T, e *cnienv.Env, p *cnienv.Pod) []nadv1.NetworkStatus {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.CNIDir, "containers", p.ContainerID, "network-status.json"))
	if err != nil {
		t.Fatalf("network-status: %v", err)
	}
	var st []nadv1.NetworkStatus
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAttachments(t *testing.T) {
	for _, n := range []int{1, 3, 8} {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			e := cnienv.New(t)
			e.WritePrimary()
			p := e.NewPod("pod", bridgeNADs(e, n))
			res, err := e.Add(p)
			if err != nil {
				t.Fatalf("ADD: %v\n%s", err, e.Log())
			}
			if len(res.IPs) == 0 || !strings.HasPrefix(res.IPs[0].Address.String(), strings.TrimSuffix(e.Subnet, "0/24")) {
				t.Errorf("result is not the primary's: %+v", res.IPs)
			}
			links := e.Links(p)
			if len(links) != n+1 {
				t.Errorf("want %d interfaces, got %v", n+1, len(links))
			}
			st := readStatus(t, e, p)
			if len(st) != n+1 || !st[0].Default || st[0].Interface != "eth0" || st[0].Name != "primary" {
				t.Fatalf("network-status: %+v", st)
			}
			for i := 1; i <= n; i++ {
				ifn := fmt.Sprintf("net%d", i)
				if _, ok := links[ifn]; !ok {
					t.Errorf("%s missing", ifn)
					continue
				}
				addrs := e.Addrs(p, ifn)
				want := e.IPN(i, 0)
				want = want[:strings.LastIndex(want, ".")+1]
				if len(addrs) != 1 || !strings.HasPrefix(addrs[0], want) {
					t.Errorf("%s addresses %v, want one in %s", ifn, addrs, e.SubnetN(i))
				}
				if st[i].Interface != ifn || st[i].Name != fmt.Sprintf("default/net-%d", i) || len(st[i].IPs) != 1 || !strings.HasPrefix(addrs[0], st[i].IPs[0]+"/") || st[i].Mac != links[ifn].Attrs().HardwareAddr.String() {
					t.Errorf("status[%d] %+v does not match interface %s (%v, %s)", i, st[i], ifn, addrs, links[ifn].Attrs().HardwareAddr)
				}
			}
			if err := e.Check(p); err != nil {
				t.Errorf("CHECK: %v", err)
			}
			if err := e.Del(p); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			e.AssertClean(p)
		})
	}
}

func TestRequestedNameStaticIPsAndMAC(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	e.WriteNAD("default", "signal", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"signal","plugins":[{"type":"bridge","bridge":%q,"capabilities":{"ips":true},"ipam":{"type":"static"}},{"type":"tuning","capabilities":{"mac":true}}]}`, e.Name("bs")))
	sel := fmt.Sprintf(`[{"name":"signal","interface":"sig0","ips":["%s/24"],"mac":"02:11:22:33:44:55"}]`, e.IPN(5, 9))
	p := e.NewPod("pod", sel)
	if _, err := e.Add(p); err != nil {
		t.Fatalf("ADD: %v\n%s", err, e.Log())
	}
	l, ok := e.Links(p)["sig0"]
	if !ok {
		t.Fatalf("sig0 missing: %v", e.Links(p))
	}
	if mac := l.Attrs().HardwareAddr.String(); mac != "02:11:22:33:44:55" {
		t.Errorf("mac %s", mac)
	}
	if a := e.Addrs(p, "sig0"); len(a) != 1 || a[0] != e.IPN(5, 9)+"/24" {
		t.Errorf("addresses %v", a)
	}
	st := readStatus(t, e, p)
	if st[1].Interface != "sig0" || st[1].Mac != "02:11:22:33:44:55" || st[1].IPs[0] != e.IPN(5, 9) {
		t.Errorf("status %+v", st[1])
	}
	if err := e.Del(p); err != nil {
		t.Fatal(err)
	}
	e.AssertClean(p)
}

// A delegate that fails at position k: everything before it is undone.
func TestFailingDelegateLeavesNothing(t *testing.T) {
	for _, k := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("k=%d", k), func(t *testing.T) {
			e := cnienv.New(t)
			e.WritePrimary()
			var names []string
			for i := 1; i <= 3; i++ {
				name := fmt.Sprintf("net-%d", i)
				if i == k {
					e.WriteNAD("default", name, fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"macvlan","master":"nosuch%s","ipam":{"type":"host-local","dataDir":%q,"subnet":%q}}`, name, e.Suffix, e.IPAMDir, e.SubnetN(i)))
				} else {
					e.WriteNAD("default", name, e.BridgeConf(name, e.Name(fmt.Sprintf("b%d", i)), i))
				}
				names = append(names, name)
			}
			p := e.NewPod("pod", strings.Join(names, ","))
			_, err := e.Add(p)
			if err == nil {
				t.Fatal("ADD succeeded with a broken delegate")
			}
			want := fmt.Sprintf(`pod default/pod: network "default/net-%d" (interface net%d): delegate macvlan`, k, k)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
			e.AssertClean(p)
		})
	}
}

func TestDel(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	nets := bridgeNADs(e, 2)

	t.Run("twice", func(t *testing.T) {
		p := e.NewPod("a", nets)
		if _, err := e.Add(p); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if err := e.Del(p); err != nil {
				t.Fatalf("DEL %d: %v", i+1, err)
			}
		}
		e.AssertClean(p)
	})
	t.Run("never added", func(t *testing.T) {
		p := e.NewPod("b", "")
		if err := e.Del(p); err != nil {
			t.Fatalf("DEL of a pod never added: %v", err)
		}
	})
	t.Run("without cache", func(t *testing.T) {
		p := e.NewPod("c", nets)
		if _, err := e.Add(p); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(filepath.Join(e.CNIDir, "containers"))
		if err := e.Del(p); err != nil {
			t.Fatalf("DEL without cache: %v", err)
		}
		e.AssertClean(p) // rebuilt from the pod's networks: leases released
	})
	t.Run("netns gone", func(t *testing.T) {
		p := e.NewPod("d", nets)
		if _, err := e.Add(p); err != nil {
			t.Fatal(err)
		}
		p.NS.Close()
		testutils.UnmountNS(p.NS)
		if err := e.Del(p); err != nil {
			t.Fatalf("DEL after the netns is gone: %v\n%s", err, e.Log())
		}
		if l := e.Leases(); len(l) != 0 {
			t.Errorf("leases left: %v", l)
		}
		if c := e.CacheEntries(); len(c) != 0 {
			t.Errorf("cache left: %v", c)
		}
	})
	t.Run("netns gone and no cache", func(t *testing.T) {
		p := e.NewPod("e", "")
		p.NS.Close()
		testutils.UnmountNS(p.NS)
		if err := e.Del(p); err != nil {
			t.Fatalf("DEL: %v", err)
		}
	})
}

func TestCheckReportsDeletedInterface(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	uplink, peer := e.Name("up"), e.Name("uq")
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: uplink}, PeerName: peer}); err != nil {
		t.Fatal(err)
	}
	e.WriteNAD("default", "mv", fmt.Sprintf(`{"cniVersion":"1.1.0","name":"mv","type":"macvlan","master":%q,"mode":"bridge","ipam":{"type":"host-local","dataDir":%q,"subnet":%q}}`, uplink, e.IPAMDir, e.SubnetN(7)))
	p := e.NewPod("pod", "mv")
	if _, err := e.Add(p); err != nil {
		t.Fatalf("ADD: %v\n%s", err, e.Log())
	}
	if err := e.Check(p); err != nil {
		t.Fatalf("CHECK of a healthy pod: %v", err)
	}
	p.NS.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName("net1")
		if err == nil {
			err = netlink.LinkDel(l)
		}
		return err
	})
	err := e.Check(p)
	if err == nil || !strings.Contains(err.Error(), `network "default/mv" (interface net1)`) {
		t.Fatalf("CHECK after deleting net1: %v", err)
	}
	if err := e.Del(p); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	e.AssertClean(p)
}

func TestGC(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	nets := bridgeNADs(e, 1)
	a, b := e.NewPod("a", nets), e.NewPod("b", nets)
	for _, p := range []*cnienv.Pod{a, b} {
		if _, err := e.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.GC(a); err != nil {
		t.Fatalf("GC: %v\n%s", err, e.Log())
	}
	if c := e.CacheEntries(); len(c) != 1 || c[0] != a.ContainerID {
		t.Errorf("cache after GC: %v, want only %s", c, a.ContainerID)
	}
	if l := e.Leases(); len(l) != 2 {
		t.Errorf("leases after GC: %v (want pod a's two)", l)
	}
	if len(e.Links(b)) != 0 {
		t.Errorf("pod b still has interfaces: %v", e.Links(b))
	}
	if len(e.Links(a)) != 2 {
		t.Errorf("pod a lost interfaces")
	}
	if err := e.Del(a); err != nil {
		t.Fatal(err)
	}
	e.AssertClean(a)
}

func TestConcurrentPods(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	nets := bridgeNADs(e, 1)
	pods := make([]*cnienv.Pod, 20)
	for i := range pods {
		pods[i] = e.NewPod(fmt.Sprintf("p%d", i), nets)
	}
	run := func(f func(*cnienv.Pod) error) []string {
		var mu sync.Mutex
		var errs []string
		var wg sync.WaitGroup
		for _, p := range pods {
			wg.Add(1)
			go func(p *cnienv.Pod) {
				defer wg.Done()
				if err := f(p); err != nil {
					mu.Lock()
					errs = append(errs, p.Name+": "+err.Error())
					mu.Unlock()
				}
			}(p)
		}
		wg.Wait()
		return errs
	}
	if errs := run(func(p *cnienv.Pod) error { _, err := e.Add(p); return err }); len(errs) > 0 {
		t.Fatalf("concurrent ADD: %v", errs)
	}
	ips := map[string]bool{}
	for _, p := range pods {
		for _, ifn := range []string{"eth0", "net1"} {
			for _, a := range e.Addrs(p, ifn) {
				if ips[a] {
					t.Errorf("address %s given twice", a)
				}
				ips[a] = true
			}
		}
	}
	if len(ips) != 40 {
		t.Errorf("want 40 distinct addresses, got %d", len(ips))
	}
	if errs := run(e.Del); len(errs) > 0 {
		t.Fatalf("concurrent DEL: %v", errs)
	}
	for _, p := range pods {
		e.AssertClean(p)
	}
}

func TestBadInputLeavesNothing(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	e.WriteNAD("default", "good", e.BridgeConf("good", e.Name("bg"), 1))
	e.WriteNAD("default", "nocaps", e.BridgeConf("nocaps", e.Name("bn"), 2))
	e.WriteNAD("default", "badconf", `{"cniVersion":"1.0.0","name":"badconf"`)
	e.WriteFile(filepath.Join(e.NetworksDir, "broken.yaml"), "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {name: broken}\nspec: [\n")
	tests := []struct{ name, networks, want string }{
		{"unknown network", "good,missing", `pod default/pod: network "default/missing" (interface net2): network-attachment-definition not found`},
		{"bad element", "good,Bad_Name", `field "name": "Bad_Name" is not a valid DNS-1123 subdomain`},
		{"duplicate interface", "good@x1,nocaps@x1", `field "interface": "x1" is also requested by element 1`},
		{"auto name taken", "good@net2,nocaps", `interface "net2" is also assigned to network "default/good"`},
		{"nad file does not parse", "broken", `pod default/pod: network "default/broken" (interface net1): network-attachment-definition not found in ` + e.NetworksDir + ` (files that did not parse: ` + filepath.Join(e.NetworksDir, "broken.yaml") + `: document 1`},
		{"nad config does not parse", "good,badconf", `pod default/pod: network "default/badconf" (interface net2): field "spec.config": CNI config is not a JSON object`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := e.NewPod("pod", tc.networks)
			_, err := e.Add(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ADD error %v\nwant it to contain %q", err, tc.want)
			}
			e.AssertClean(p)
		})
	}
	t.Run("interface exists", func(t *testing.T) {
		p := e.NewPod("pod", "good")
		if err := p.NS.Do(func(ns.NetNS) error {
			return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "net1"}, PeerName: "other"})
		}); err != nil {
			t.Fatal(err)
		}
		_, err := e.Add(p)
		if err == nil || !strings.Contains(err.Error(), `network "default/good": interface "net1" already exists in the pod's network namespace`) {
			t.Fatalf("ADD: %v", err)
		}
		names := []string{}
		for n := range e.Links(p) {
			names = append(names, n)
		}
		sort.Strings(names)
		if strings.Join(names, ",") != "net1,other" {
			t.Errorf("pod interfaces after failed ADD: %v", names)
		}
		if l := e.Leases(); len(l) != 0 {
			t.Errorf("leases left: %v", l)
		}
	})
}
