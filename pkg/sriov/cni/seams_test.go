package cni

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

// The shipped binary has no test seams: environment variables naming a fake
// sysfs root or a fake PF change nothing (it reads "/" and would use netlink).
func TestProductionBinaryIgnoresTestEnv(t *testing.T) {
	f := newFixture(t, 1, "")
	bin := productionBinary(t)
	fakePF := filepath.Join(t.TempDir(), "pf.jsonl")
	if err := os.WriteFile(fakePF, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	podNS := testutil.NewNS(t)
	rt := runtimeCall{bin: bin, env: []string{"PLEXUS_SYSFS_ROOT=" + f.tree.Root, "PLEXUS_SRIOV_FAKE_PF=" + fakePF}}
	// A VF address that exists only in the fake tree.
	out, err := rt.run("ADD", "c1", podNS.Path(), "net1", f.conf("1.0.0", f.vfs[0].Addr, ""))
	if err == nil || !strings.Contains(string(out), "no such PCI device") {
		t.Fatalf("production binary used the fake sysfs tree: %s %v", out, err)
	}
	if b, _ := os.ReadFile(fakePF); len(b) != 0 {
		t.Errorf("production binary wrote to the fake PF: %s", b)
	}
}

// No production source in the sriov packages reads a PLEXUS_* variable.
func TestNoTestEnvInProductionSource(t *testing.T) {
	root := testutil.RepoRoot()
	for _, dir := range []string{"pkg/sriov", "cmd/sriov"} {
		err := filepath.Walk(filepath.Join(root, dir), func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			if err == nil && strings.Contains(string(b), `"PLEXUS_`) {
				t.Errorf("%s names a PLEXUS_ environment variable", p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
