package cni_test

// Drop-in compatibility with Multus (docs/architecture.md, "Compatibility
// rule"): the NADs and annotations that work under Multus work the same
// here, and where plexus is stricter it verifies the outcome instead of
// refusing.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"

	"github.com/plexus-cni/plexus/pkg/testutil"
	"github.com/plexus-cni/plexus/pkg/testutil/cnienv"
)

// Multus's default-route1 shape: macvlan + static IPAM with no capabilities
// block, ips and default-route in the annotation. Multus passes the IPs as
// CNI_ARGS IP=…; so does plexus, and the pod gets them. A mac on a plugin
// without the capability arrives through CNI_ARGS MAC=… the same way.
func TestStaticIPsWithoutCapabilities(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	e.WriteNAD("default", "static", fmt.Sprintf(`{"cniVersion":"0.3.1","name":"static","plugins":[{"type":"bridge","bridge":%q,"ipam":{"type":"static"}}]}`, e.Name("bs")))
	ip := e.IPN(5, 9)
	gw := e.IPN(5, 1)
	sel := fmt.Sprintf(`[{"name":"static","ips":["%s/24"],"mac":"02:11:22:33:44:66","default-route":["%s"]}]`, ip, gw)
	p := e.NewPod("pod", sel)
	if _, err := e.Add(p); err != nil {
		t.Fatalf("ADD: %v\n%s", err, e.Log())
	}
	if a := e.Addrs(p, "net1"); len(a) != 1 || a[0] != ip+"/24" {
		t.Errorf("net1 addresses %v, want %s/24", a, ip)
	}
	if mac := e.Links(p)["net1"].Attrs().HardwareAddr.String(); mac != "02:11:22:33:44:66" {
		t.Errorf("net1 mac %s", mac)
	}
	st := readStatus(t, e, p)
	if len(st) != 2 || len(st[1].IPs) != 1 || st[1].IPs[0] != ip {
		t.Errorf("network-status %+v", st)
	}
	if err := e.Del(p); err != nil {
		t.Fatal(err)
	}
	e.AssertClean(p)
}

// A delegate that ignores both the capability and the legacy CNI_ARGS: the
// pod would silently run without its requested IP (Multus's outcome);
// plexus fails the ADD naming the network, the field and the capability,
// and leaves nothing.
func TestIgnoredIPRequestFailsNamingCapability(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	tp := testPlugin(t)
	e.WriteNAD("default", "deaf", fmt.Sprintf(`{"cniVersion":"1.1.0","name":"deaf","plugins":[{"type":%q,"delegate":"bridge","stripArgs":["IP","MAC"],"bridge":%q,"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}]]}}]}`, tp, e.Name("bd"), e.IPAMDir, e.SubnetN(6)))
	p := e.NewPod("pod", fmt.Sprintf(`[{"name":"deaf","ips":["%s/24"]}]`, e.IPN(6, 77)))
	_, err := e.Add(p)
	want := fmt.Sprintf(`pod default/pod: network "default/deaf" (interface net1): field "ips": requested %s/24`, e.IPN(6, 77))
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `"capabilities": {"ips": true}`) {
		t.Fatalf("ADD: %v\nwant %q", err, want)
	}
	if i := strings.Index(err.Error(), "field \"ips\""); i > 100 {
		t.Errorf("the field is named only at %d: %v", i, err)
	}
	e.AssertClean(p)
}

// Unknown fields of a JSON networks element are accepted (Multus ignores
// them) and reported; the pod gets its network.
func TestUnknownAnnotationFieldWarns(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	nets := bridgeNADs(e, 1)
	_ = nets
	p := e.NewPod("pod", `[{"name":"net-1","interfce":"x9"}]`)
	if _, err := e.Add(p); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if _, ok := e.Links(p)["net1"]; !ok {
		t.Errorf("net1 missing: %v", e.Links(p))
	}
	if !strings.Contains(e.Log(), `interfce`) {
		t.Errorf("no warning naming the unknown field:\n%s", e.Log())
	}
	if err := e.Del(p); err != nil {
		t.Fatal(err)
	}
	e.AssertClean(p)
}

// A pod attached by Multus before the switch: plexus has no cache entry but
// Multus left its own. plexus's DEL releases every delegate Multus ran (the
// interface, its lease) from that file, even when the pod's networks cannot
// be resolved any more, and removes the file.
func TestDelFromMultusCache(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	e.Extra = map[string]any{"multusCacheDir": filepath.Join(e.Dir, "multus")}
	primary := e.BridgeConf("primary", e.Bridge, 0)
	data := e.BridgeConf("data", e.Name("bm"), 1)
	p := e.NewPod("pod", "") // the pod's annotation is gone with the pod
	// What Multus did at ADD: run each delegate through libcni…
	cni := libcni.NewCNIConfigWithCacheDir([]string{e.BinDir}, filepath.Join(e.Dir, "multus-results"), nil)
	rt := e.RT(p)
	var ds []map[string]any
	for i, c := range []string{primary, data} {
		l, err := libcni.NetworkConfFromBytes([]byte(c))
		if err != nil {
			t.Fatal(err)
		}
		rt.IfName = "eth0"
		if i > 0 {
			rt.IfName = fmt.Sprintf("net%d", i)
		}
		if _, err := cni.AddNetworkList(context.Background(), l, rt); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, map[string]any{"Name": l.Name, "Bytes": []byte(c)})
	}
	// … and record them in its cache file.
	b, _ := json.Marshal(ds)
	os.MkdirAll(filepath.Join(e.Dir, "multus"), 0o700)
	e.WriteFile(filepath.Join(e.Dir, "multus", p.ContainerID), string(b))
	if len(e.Links(p)) != 2 || len(e.Leases()) != 2 {
		t.Fatalf("Multus-style ADD: links %v leases %v", e.Links(p), e.Leases())
	}
	if err := e.Del(p); err != nil {
		t.Fatalf("DEL: %v\n%s", err, e.Log())
	}
	e.AssertClean(p)
	if _, err := os.Stat(filepath.Join(e.Dir, "multus", p.ContainerID)); !os.IsNotExist(err) {
		t.Errorf("Multus's cache file left: %v", err)
	}
}

// Multus's auxiliaryCNIChainName: after every other attachment, a chain of
// plexus's own passthru plus the .conf files in <dir of clusterNetwork>/<name>/
// runs as the next netN (here portmap, which passes the result through).
func TestAuxiliaryChain(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	testutil.BuildBinary(t, "passthru") // next to plexus: in the runtime's CNI_PATH
	nets := bridgeNADs(e, 1)
	os.MkdirAll(filepath.Join(e.ConfDir, "aux"), 0o755)
	e.WriteFile(filepath.Join(e.ConfDir, "aux", "10-portmap.conf"), `{"cniVersion":"1.1.0","name":"pm","type":"portmap","capabilities":{"portMappings":true}}`)
	e.Extra = map[string]any{"auxiliaryCNIChainName": "aux"}
	p := e.NewPod("pod", nets)
	if _, err := e.Add(p); err != nil {
		t.Fatalf("ADD: %v\n%s", err, e.Log())
	}
	b, err := os.ReadFile(filepath.Join(e.CNIDir, "containers", p.ContainerID, "intent.json"))
	if err != nil {
		t.Fatal(err)
	}
	var entry struct {
		Attachments []struct {
			Network, IfName, Origin string
			Added                   bool
		} `json:"attachments"`
	}
	json.Unmarshal(b, &entry)
	last := entry.Attachments[len(entry.Attachments)-1]
	if len(entry.Attachments) != 3 || last.Network != "aux" || last.IfName != "net2" || !last.Added {
		t.Fatalf("attachments %+v: want the auxiliary chain \"aux\" last, as net2", entry.Attachments)
	}
	// Each records where it came from (hot-plug keeps the config's).
	for i, want := range []string{"primary", "annotation", "auxiliary"} {
		if got := entry.Attachments[i].Origin; got != want {
			t.Errorf("attachment %d (%s): origin %q, want %q", i, entry.Attachments[i].Network, got, want)
		}
	}
	if err := e.Del(p); err != nil {
		t.Fatal(err)
	}
	e.AssertClean(p)
}
