package cni_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/plexus-cni/plexus/pkg/testutil/cnienv"
)

// plexus returns results in its own config's cniVersion, whatever its
// delegates speak.
func TestResultVersions(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	nets := bridgeNADs(e, 1)
	for _, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			e.CNIVersion = v
			p := e.NewPod("v", nets)
			res, err := e.AddRaw(p)
			if err != nil {
				t.Fatalf("ADD: %v\n%s", err, e.Log())
			}
			if res.Version() != v {
				t.Errorf("result version %s, want %s", res.Version(), v)
			}
			if v != "0.3.1" {
				if err := e.Check(p); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			if err := e.Del(p); err != nil {
				t.Fatal(err)
			}
			e.AssertClean(p)
		})
	}
}

func TestStatusAndReadiness(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	ready := filepath.Join(e.Dir, "primary-ready")
	e.Extra = map[string]any{"readinessindicatorfile": ready, "readinessTimeout": 2}
	err := e.Status()
	var te *types.Error
	if err == nil || !strings.Contains(err.Error(), "plexus is not ready") {
		t.Fatalf("STATUS without the readiness file: %v", err)
	}
	if e2, ok := err.(*types.Error); ok {
		te = e2
	}
	if te == nil || te.Code != 50 {
		t.Errorf("STATUS error code: %+v, want 50", err)
	}
	p := e.NewPod("r", "")
	start := time.Now()
	_, err = e.Add(p)
	if err == nil || !strings.Contains(err.Error(), `did not appear within 2s (key "readinessindicatorfile")`) {
		t.Fatalf("ADD without the readiness file: %v", err)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("ADD gave up after %v, before the readiness timeout", d)
	}
	e.AssertClean(p)
	go func() {
		time.Sleep(300 * time.Millisecond)
		os.WriteFile(ready, nil, 0o644)
	}()
	if _, err := e.Add(p); err != nil {
		t.Fatalf("ADD once the readiness file appears: %v", err)
	}
	if err := e.Status(); err != nil {
		t.Fatalf("STATUS when ready: %v", err)
	}
	if err := e.Del(p); err != nil {
		t.Fatal(err)
	}
	log := e.Log()
	want := fmt.Sprintf("container=%s pod=default/r", p.ContainerID)
	if !strings.Contains(log, want) || !strings.Contains(log, "msg=attached") {
		t.Errorf("log lines lack %q:\n%s", want, log)
	}
}

// default-route moves the pod's default route to the chosen interface.
func TestDefaultRoute(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	e.WriteNAD("default", "gw", e.BridgeConf("gw", e.Name("bg"), 3))
	gw := e.IPN(3, 1)
	p := e.NewPod("d", fmt.Sprintf(`[{"name":"gw","default-route":["%s"]}]`, gw))
	if _, err := e.Add(p); err != nil {
		t.Fatalf("ADD: %v\n%s", err, e.Log())
	}
	var defaults []string
	p.NS.Do(func(ns.NetNS) error {
		routes, _ := netlinksafe.RouteList(nil, netlink.FAMILY_V4)
		for _, r := range routes {
			if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
				l, _ := netlink.LinkByIndex(r.LinkIndex)
				defaults = append(defaults, fmt.Sprintf("%s via %s", l.Attrs().Name, r.Gw))
			}
		}
		return nil
	})
	if len(defaults) != 1 || defaults[0] != "net1 via "+gw {
		t.Errorf("default routes %v, want exactly [net1 via %s]", defaults, gw)
	}
	if err := e.Del(p); err != nil {
		t.Fatal(err)
	}
	e.AssertClean(p)

	two := e.NewPod("d2", fmt.Sprintf(`[{"name":"gw","default-route":["%s"]},{"name":"gw","interface":"x2","default-route":["%s"]}]`, gw, gw))
	_, err := e.Add(two)
	if err == nil || !strings.Contains(err.Error(), `already takes the default route for this IP family`) {
		t.Fatalf("two IPv4 default routes: %v", err)
	}
	e.AssertClean(two)
}

// Inline delegates: delegates[0] is the primary, the others are attached
// to every pod before the pod's own networks.
func TestInlineDelegates(t *testing.T) {
	e := cnienv.New(t)
	e.WriteNAD("default", "own", e.BridgeConf("own", e.Name("bo"), 2))
	var d0, d1 map[string]any
	json.Unmarshal([]byte(e.BridgeConf("d0", e.Bridge, 0)), &d0)
	json.Unmarshal([]byte(e.BridgeConf("d1", e.Name("bd"), 1)), &d1)
	e.Extra = map[string]any{"clusterNetwork": nil, "delegates": []any{d0, d1}}
	p := e.NewPod("inline", "own")
	if _, err := e.Add(p); err != nil {
		t.Fatalf("ADD: %v\n%s", err, e.Log())
	}
	st := readStatus(t, e, p)
	if len(st) != 3 || st[0].Name != "d0" || st[1].Name != "d1" || st[1].Interface != "net1" || st[2].Name != "default/own" || st[2].Interface != "net2" {
		t.Fatalf("network-status: %+v", st)
	}
	if err := e.Del(p); err != nil {
		t.Fatal(err)
	}
	e.AssertClean(p)
}
