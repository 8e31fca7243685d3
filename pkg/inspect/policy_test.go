package inspect

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/netpol"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/testutil"
)

// TestPolicyCommand: `plexusctl policy NS/POD` prints the table in the
// pod's real netns with the chain comment naming the interface, its NAD
// and the policies; a pod without one says so; usage errors exit 2.
func TestPolicyCommand(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("nft is not installed (hack/deps.sh installs nftables)")
	}
	dir := t.TempDir()
	store := cache.Store{Dir: dir}
	filtered, open := testutil.NewNS(t), testutil.NewNS(t)
	for id, e := range map[string]*podnet.Entry{
		"ctr-a": {NetNS: filtered.Path(), PodName: "a"},
		"ctr-b": {NetNS: open.Path(), PodName: "b"},
	} {
		e.Version, e.ContainerID, e.PodNamespace = cache.EntryVersion, id, "ns1"
		if err := store.Save(e); err != nil {
			t.Fatal(err)
		}
	}
	plan := netpol.Plan{Interfaces: []netpol.Interface{{Name: "net1", NAD: netpol.NAD{Namespace: "ns1", Name: "lan"},
		Ingress: &netpol.Direction{}, Policies: []string{"ns1/deny-all"}}}}
	if err := netpol.Apply(t.Context(), filtered.Path(), plan); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		n := Node{Paths: Paths{CNIDir: dir}}
		code := MainContext(t.Context(), args, &out, &errb, &n)
		return code, out.String(), errb.String()
	}
	code, out, errs := run("policy", "ns1/a", "--cni-dir", dir)
	if code != ExitOK || !strings.Contains(out, "container ctr-a") || !strings.Contains(out, `comment "net1 ns1/lan: ns1/deny-all"`) ||
		!strings.Contains(out, `iifname vmap { "net1" : jump in-0 }`) {
		t.Errorf("policy ns1/a: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = run("policy", "ns1/b")
	if code != ExitOK || !strings.Contains(out, "no MultiNetworkPolicy filters its interfaces") {
		t.Errorf("policy ns1/b: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs = run("policy", "ns1/nobody"); code != ExitError || !strings.Contains(errs, "pod ns1/nobody: plexus attached no sandbox") {
		t.Errorf("policy ns1/nobody: exit %d: %s", code, errs)
	}
	for _, args := range [][]string{{"policy"}, {"policy", "--cni-dir", dir}} {
		if code, _, _ := run(args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
	}
}
