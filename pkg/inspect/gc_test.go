package inspect

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/testutils"

	"github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/delegate"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/testutil"
	"github.com/plexus-cni/plexus/pkg/testutil/cnienv"
)

// snapshot is every file under dir with its mode, size, mtime and content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		s := fmt.Sprintf("%v %d %v", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			s += " " + string(b)
		}
		out[path] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGCDryRunChangesNothing(t *testing.T) {
	f := newFixture(t)
	before := snapshot(t, f.dir)
	out, errOut, code := f.run(t, "gc", "--dry-run")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	assertOutput(t, out, `would delete container 1111111111111111aaaa (pod default/old-1): DEL of kindnet (eth0)
would delete container 3333333333333333cccc (pod default/batch): DEL of kindnet (eth0)
`)
	if after := snapshot(t, f.dir); !reflect.DeepEqual(before, after) {
		t.Errorf("gc --dry-run changed the node:\nbefore %v\nafter  %v", before, after)
	}
	j, _, code := f.run(t, "-o", "json", "gc", "--dry-run") // flags before the command too
	if code != 0 || !strings.Contains(j, `"outcome": "would-delete"`) || strings.Count(j, `"containerID"`) != 2 {
		t.Errorf("exit %d, JSON:\n%s", code, j)
	}
}

// hostLocalEntry ADDs a host-local-only network for a container through
// the delegate runner plexus uses, and records it in the cache as plexus's
// ADD does. host-local touches no netns, so no root is needed.
func hostLocalEntry(t *testing.T, f *fixture, id, netns, ipamDir string) *podnet.Entry {
	t.Helper()
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"hl","plugins":[{"type":"host-local","ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.199.0.0/24"}]]}}]}`, ipamDir)
	e := &podnet.Entry{ContainerID: id, NetNS: netns, PodNamespace: "default", PodName: "p-" + id, CNIVersion: "1.0.0",
		Attachments: []podnet.Attachment{{Network: "default/hl", IfName: "net1", ConfList: json.RawMessage(conf)}}}
	r := delegate.NewRunner([]string{f.node.BinDir}, filepath.Join(f.node.CNIDir, "results"))
	res, err := r.Add(t.Context(), e, &e.Attachments[0])
	if err != nil {
		t.Fatalf("host-local ADD: %v", err)
	}
	e.Attachments[0].Added = true
	if e.Attachments[0].Result, err = json.Marshal(res); err != nil {
		t.Fatal(err)
	}
	if err := (cache.Store{Dir: f.node.CNIDir}).Save(e); err != nil {
		t.Fatal(err)
	}
	return e
}

// leases lists host-local's reserved IPs.
func leases(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "hl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if n := e.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
			out = append(out, n)
		}
	}
	return out
}

func TestGCFreesHostLocalLease(t *testing.T) {
	testutil.RefPlugin(t, "host-local")
	dir := t.TempDir()
	f := &fixture{dir: dir, node: &Node{Paths: Paths{CNIDir: filepath.Join(dir, "plexus"), BinDir: testutil.CNIBinDir(),
		SriovStateDir: filepath.Join(dir, "sriov")}}}
	ipam := filepath.Join(dir, "ipam")
	live, gone := filepath.Join(dir, "netns", "live"), filepath.Join(dir, "netns", "gone")
	mustWrite(t, live, "")
	mustWrite(t, gone, "")
	hostLocalEntry(t, f, "live", live, ipam)
	hostLocalEntry(t, f, "gone", gone, ipam)
	if got := leases(t, ipam); !reflect.DeepEqual(got, []string{"10.199.0.2", "10.199.0.3"}) {
		t.Fatalf("leases after ADD: %v", got)
	}
	if err := os.Remove(gone); err != nil { // the sandbox goes, the runtime's DEL never comes
		t.Fatal(err)
	}

	out, errOut, code := f.run(t, "gc")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	assertOutput(t, out, "deleted container gone (pod default/p-gone): DEL of default/hl (net1)\n")
	if got := leases(t, ipam); !reflect.DeepEqual(got, []string{"10.199.0.2"}) {
		t.Errorf("leases after gc: %v, want only the live container's 10.199.0.2", got)
	}
	ids, _ := (cache.Store{Dir: f.node.CNIDir}).List()
	if !reflect.DeepEqual(ids, []string{"live"}) {
		t.Errorf("cache entries after gc: %v, want [live]", ids)
	}
	// Nothing stale is left: a second gc has nothing to do.
	if out, _, code := f.run(t, "gc"); code != 0 || out != "nothing to collect\n" {
		t.Errorf("second gc: exit %d, %q", code, out)
	}
}

func TestGCFailedDelKeepsEntry(t *testing.T) {
	dir := t.TempDir()
	f := &fixture{dir: dir, node: &Node{Paths: Paths{CNIDir: filepath.Join(dir, "plexus"), BinDir: filepath.Join(dir, "bin")}}}
	store := cache.Store{Dir: f.node.CNIDir}
	// A delegate that ran ADD but whose binary is missing now: DEL fails.
	if err := store.Save(&podnet.Entry{ContainerID: "c1", NetNS: filepath.Join(dir, "gone"), PodNamespace: "default", PodName: "p", CNIVersion: "1.0.0",
		Attachments: []podnet.Attachment{{Network: "default/x", IfName: "net1", Added: true,
			ConfList: json.RawMessage(`{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"nosuchplugin"}]}`),
			Result:   json.RawMessage(`{"cniVersion":"1.0.0"}`)}}}); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := f.run(t, "gc")
	if code != ExitError || !strings.Contains(errOut, "DEL failed for 1 container(s): c1") {
		t.Errorf("exit %d, stderr %q; want %d naming c1", code, errOut, ExitError)
	}
	if !strings.HasPrefix(out, "failed container c1 (pod default/p): DEL of default/x (net1): ") || !strings.Contains(out, "nosuchplugin") {
		t.Errorf("output %q", out)
	}
	e, err := store.Load("c1")
	if err != nil || e == nil || !e.Incomplete || e.DelAttempts != 1 {
		t.Errorf("entry after failed gc: %+v, %v; want kept, incomplete, 1 attempt", e, err)
	}
}

// TestGCBridgeNetnsGone: a pod attached by the real plexus binary with the
// bridge + host-local reference plugins; its netns goes without a DEL; gc
// frees its lease and removes its cache entry.
func TestGCBridgeNetnsGone(t *testing.T) {
	e := cnienv.New(t)
	e.WritePrimary()
	p := e.NewPod("web", "")
	if _, err := e.Add(p); err != nil {
		t.Fatalf("ADD: %v\n%s", err, e.Log())
	}
	live := e.NewPod("live", "")
	if _, err := e.Add(live); err != nil {
		t.Fatalf("ADD: %v\n%s", err, e.Log())
	}
	if _, err := os.Stat(p.NS.Path()); err != nil {
		t.Fatalf("netns before it goes: %v", err)
	}
	if n := len(e.Leases()); n != 2 {
		t.Fatalf("leases after ADD: %v", e.Leases())
	}
	p.NS.Close()
	if err := testutils.UnmountNS(p.NS); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.NS.Path()); !os.IsNotExist(err) {
		t.Fatalf("netns %s still there: %v", p.NS.Path(), err)
	}
	f := &fixture{dir: e.Dir, node: &Node{Paths: Paths{CNIDir: e.CNIDir, BinDir: e.BinDir, SriovStateDir: filepath.Join(e.Dir, "sriov")}}}
	out, errOut, code := f.run(t, "gc")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	assertOutput(t, out, fmt.Sprintf("deleted container %s (pod default/web): DEL of primary (eth0)\n", p.ContainerID))
	if got := e.CacheEntries(); !reflect.DeepEqual(got, []string{live.ContainerID}) {
		t.Errorf("cache entries after gc: %v, want only %s", got, live.ContainerID)
	}
	if n := len(e.Leases()); n != 1 {
		t.Errorf("leases after gc: %v, want only the live pod's", e.Leases())
	}
	if err := e.Del(live); err != nil {
		t.Fatal(err)
	}
}
