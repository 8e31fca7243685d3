package cni_test

// Trust boundaries and state safety (docs/architecture.md, "Trust model"): a NAD is
// tenant input, and plexus's own bookkeeping never frees what a live pod
// uses nor wedges a sandbox. Each test here failed on the code before the
// fix it covers.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/testutil"
	"github.com/plexus-cni/plexus/pkg/testutil/cnienv"
)

// testPlugin builds pkg/testutil/testplugin next to plexus (so it is in the
// runtime's CNI_PATH) and returns its type name.
func testPlugin(t *testing.T) string {
	testutil.BuildPackage(t, "testplugin", "./pkg/testutil/testplugin")
	return "testplugin"
}

// Keys the runtime owns never reach a delegate from a NAD: plexus removes
// them (with a warning naming the field) before libcni runs the plugin.
func TestNADRuntimeOwnedKeysRemoved(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	victim := filepath.Join(e.Dir, "host-file")
	e.WriteFile(victim, "precious")
	conf := strings.Replace(e.BridgeConf("evil", e.Name("be"), 1), `"type":"bridge",`,
		fmt.Sprintf(`"type":"bridge","runtimeConfig":{"CNIDeviceInfoFile":%q},"prevResult":{"cniVersion":"1.1.0"},"cni.dev/valid-attachments":[],`, victim), 1)
	e.WriteNAD("default", "evil", conf)
	p := e.NewPod("pod", "evil")
	if _, err := e.Add(p); err != nil {
		t.Fatalf("ADD: %v\n%s", err, e.Log())
	}
	// libcni keeps the config each delegate ran with in plexus's results cache.
	ran, _ := filepath.Glob(filepath.Join(e.CNIDir, "results", "results", "*"))
	seen := false
	for _, f := range ran {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), `evil`) {
			seen = true
			for _, k := range []string{"CNIDeviceInfoFile", "cni.dev/valid-attachments", victim} {
				if strings.Contains(string(b), k) {
					t.Errorf("delegate config carried %q from the NAD: %s", k, b)
				}
			}
		}
	}
	if !seen {
		t.Fatalf("no cached config of network evil in %v", ran)
	}
	// (slog's text format quotes the message: \" in the log)
	for _, k := range []string{`field \"runtimeConfig\" in spec.config`, `field \"prevResult\" in spec.config`, `field \"cni.dev/valid-attachments\" in spec.config`} {
		if !strings.Contains(e.Log(), k) {
			t.Errorf("log does not warn about %s:\n%s", k, e.Log())
		}
	}
	if err := e.Del(p); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "precious" {
		t.Errorf("host file touched: %q %v", b, err)
	}
	e.AssertClean(p)
}

// A NAD that nests a meta-plugin (any plugin of a conflist) is refused,
// naming the network and the type, and nothing is left.
func TestNADMetaPluginRefused(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	e.WriteNAD("default", "good", e.BridgeConf("good", e.Name("bg"), 1))
	e.WriteNAD("default", "nest", e.BridgeConf("nest", e.Name("bn"), 2, `{"type":"multus","binDir":"/tmp"}`))
	e.WriteNAD("default", "self", `{"cniVersion":"1.1.0","name":"self","type":"plexus","clusterNetwork":"/etc/cni/net.d"}`)
	for _, tc := range []struct{ net, want string }{
		{"good,nest", `pod default/pod: network "default/nest" (interface net2): field "type": plugin type "multus" is a meta-plugin`},
		{"self", `pod default/pod: network "default/self" (interface net1): field "type": plugin type "plexus" is a meta-plugin`},
	} {
		p := e.NewPod("pod", tc.net)
		_, err := e.Add(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("ADD: %v, want %q", err, tc.want)
		}
		e.AssertClean(p)
	}
}

// DEL of a sandbox whose ADD failed because a delegate's binary does not
// exist succeeds: a plugin that does not exist created nothing.
func TestDelAfterAddWithMissingPlugin(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	e.WriteNAD("default", "good", e.BridgeConf("good", e.Name("bg"), 1))
	e.WriteNAD("default", "ghost", `{"cniVersion":"1.1.0","name":"ghost","type":"no-such-plugin"}`)
	p := e.NewPod("pod", "good,ghost")
	if _, err := e.Add(p); err == nil {
		t.Fatal("ADD succeeded with a missing plugin")
	}
	e.AssertClean(p)
	for i := 0; i < 2; i++ {
		if err := e.Del(p); err != nil {
			t.Fatalf("DEL %d after the failed ADD: %v\n%s", i+1, err, e.Log())
		}
	}
	e.AssertClean(p)
}

// DEL runs every plugin of a chain even past one that fails, so what the
// earlier plugins made (the interface, its lease) is gone; the failing
// plugin's error is still reported, and the cache entry kept for a retry.
func TestDelRunsWholeChainAndRollbackKeepsWhatItCouldNotUndo(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	tp := testPlugin(t)
	e.WriteNAD("default", "sticky", e.BridgeConf("sticky", e.Name("bs"), 1, fmt.Sprintf(`{"type":%q,"failDel":true}`, tp)))
	e.WriteNAD("default", "broken", fmt.Sprintf(`{"cniVersion":"1.1.0","name":"broken","type":%q,"failAdd":true}`, tp))
	p := e.NewPod("pod", "sticky,broken")
	if _, err := e.Add(p); err == nil {
		t.Fatal("ADD succeeded")
	}
	// The rollback ran the bridge's DEL past the failing testplugin: net1
	// and its lease are gone. The entry stays, marked, for the runtime's DEL.
	if links := e.Links(p); len(links) != 0 {
		t.Errorf("interfaces left after rollback: %v", links)
	}
	if l := e.Leases(); len(l) != 0 {
		t.Errorf("leases left after rollback: %v", l)
	}
	if c := e.CacheEntries(); len(c) != 1 {
		t.Fatalf("cache entries after a rollback that could not undo everything: %v", c)
	}
	b, _ := os.ReadFile(filepath.Join(e.CNIDir, "containers", p.ContainerID, "intent.json"))
	if !strings.Contains(string(b), `"incomplete":true`) {
		t.Errorf("cache entry not marked incomplete: %s", b)
	}
	// The DEL that never succeeds: an error twice, then success with the
	// leak recorded (MaxDelAttempts = 3).
	for i := 1; i <= 2; i++ {
		err := e.Del(p)
		if err == nil || !strings.Contains(err.Error(), "testplugin: DEL fails as configured") || !strings.Contains(err.Error(), fmt.Sprintf("attempt %d of 3", i)) {
			t.Fatalf("DEL %d: %v", i, err)
		}
	}
	if err := e.Del(p); err != nil {
		t.Fatalf("DEL 3 (giving up): %v", err)
	}
	if c := e.CacheEntries(); len(c) != 0 {
		t.Errorf("cache entries left: %v", c)
	}
	if _, err := os.Stat(filepath.Join(e.CNIDir, "leaked", p.ContainerID+".json")); err != nil {
		t.Errorf("no leak record: %v", err)
	}
	if !strings.Contains(e.Log(), "giving up") {
		t.Errorf("log does not name the leak:\n%s", e.Log())
	}
}

// GC keeps the cache entry of a valid container even when it cannot be
// read, and then frees none of its IPAM leases.
func TestGCKeepsUnreadableEntryOfValidContainer(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	nets := bridgeNADs(e, 1)
	a, b := e.NewPod("a", nets), e.NewPod("b", nets)
	for _, p := range []*cnienv.Pod{a, b} {
		if _, err := e.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	intent := filepath.Join(e.CNIDir, "containers", a.ContainerID, "intent.json")
	if err := os.WriteFile(intent, []byte("{trunc"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.GC(a); err != nil {
		t.Fatalf("GC: %v\n%s", err, e.Log())
	}
	if _, err := os.Stat(intent); err != nil {
		t.Errorf("GC removed the entry of valid container a: %v", err)
	}
	if l := e.Leases(); len(l) != 2 {
		t.Errorf("leases after GC: %v (want pod a's two)", l)
	}
	if len(e.Links(b)) != 0 {
		t.Errorf("pod b (not valid) still has interfaces")
	}
	if len(e.Links(a)) != 2 {
		t.Errorf("pod a lost interfaces: %v", e.Links(a))
	}
}

// The selection's cni-args and an allocated device never reach a delegate's
// GC: each network's GC runs with the NAD's conflist as resolved.
func TestGCConfigHasNoPodArgs(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	e.WriteNAD("default", "net-1", e.BridgeConf("net-1", e.Name("b1"), 1))
	a := e.NewPod("a", `[{"name":"net-1","cni-args":{"secret":"pod-a-only"}}]`)
	if _, err := e.Add(a); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(e.CNIDir, "containers", a.ContainerID, "intent.json"))
	var entry struct {
		Attachments []struct {
			Network     string          `json:"network"`
			ConfList    json.RawMessage `json:"confList"`
			CNIArgsConf map[string]any  `json:"cniArgsConf"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(b, &entry); err != nil || len(entry.Attachments) != 2 {
		t.Fatalf("cache entry: %v %s", err, b)
	}
	net1 := entry.Attachments[1]
	if net1.CNIArgsConf["secret"] != "pod-a-only" {
		t.Errorf("cni-args not recorded apart from the conflist: %s", b)
	}
	if strings.Contains(string(net1.ConfList), "pod-a-only") {
		t.Errorf("cni-args injected into the cached conflist that GC uses: %s", net1.ConfList)
	}
	// The delegate itself did get them (libcni's cache of what it ran).
	ran, _ := filepath.Glob(filepath.Join(e.CNIDir, "results", "results", "net-1-*"))
	if len(ran) != 1 {
		t.Fatalf("cached runs of net-1: %v", ran)
	}
	if r, _ := os.ReadFile(ran[0]); !strings.Contains(string(r), "pod-a-only") {
		t.Errorf("the delegate did not get the pod's cni-args: %s", r)
	}
	if err := e.Del(a); err != nil {
		t.Fatal(err)
	}
	e.AssertClean(a)
}

// STATUS asks every network every pod needs (CNI 1.1): a defaultNetwork
// whose plugin is not ready makes plexus not ready, naming the network.
func TestStatusAsksEveryNetwork(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	tp := testPlugin(t)
	e.WriteNAD("kube-system", "sick", fmt.Sprintf(`{"cniVersion":"1.1.0","name":"sick","type":%q,"failStatus":true}`, tp))
	e.WriteNAD("kube-system", "fine", fmt.Sprintf(`{"cniVersion":"1.1.0","name":"fine","type":%q}`, tp))
	e.Extra = map[string]any{"defaultNetworks": []string{"fine"}}
	if err := e.Status(); err != nil {
		t.Fatalf("STATUS with a ready defaultNetwork: %v\n%s", err, e.Log())
	}
	e.Extra = map[string]any{"defaultNetworks": []string{"fine", "sick"}}
	err := e.Status()
	if err == nil || !strings.Contains(err.Error(), `network "kube-system/sick"`) || !strings.Contains(err.Error(), "not ready as configured") {
		t.Fatalf("STATUS with a defaultNetwork not ready: %v", err)
	}
}

// A DEL without a cache entry (rebuilt from the pod's networks) that keeps
// failing has the same way out: its attempts are recorded and counted.
func TestDelWayOutWithoutCacheEntry(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	tp := testPlugin(t)
	e.WriteNAD("default", "stuck", fmt.Sprintf(`{"cniVersion":"1.1.0","name":"stuck","type":%q,"failDel":true}`, tp))
	p := e.NewPod("pod", "stuck") // never ADDed: DEL rebuilds the list
	for i := 1; i <= 2; i++ {
		err := e.Del(p)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("attempt %d of 3", i)) {
			t.Fatalf("DEL %d: %v", i, err)
		}
	}
	if err := e.Del(p); err != nil {
		t.Fatalf("DEL 3 (giving up): %v\n%s", err, e.Log())
	}
	if c := e.CacheEntries(); len(c) != 0 {
		t.Errorf("cache entries left: %v", c)
	}
	if _, err := os.Stat(filepath.Join(e.CNIDir, "leaked", p.ContainerID+".json")); err != nil {
		t.Errorf("no leak record: %v", err)
	}
}
