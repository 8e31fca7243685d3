// Package testutil holds helpers shared by the tests of every package:
// where the repository's built binaries are, and root/netns preconditions.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
)

// RepoRoot is the directory holding go.mod.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BinDir is where `make build` puts the project's binaries.
func BinDir() string { return filepath.Join(RepoRoot(), "bin") }

// CNIBinDir is where `make cni-plugins` puts the reference plugins.
func CNIBinDir() string { return filepath.Join(RepoRoot(), "bin", "cni") }

// Binary returns the path of a built project binary, failing the test when
// it is missing (run `make build`).
func Binary(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(BinDir(), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not built (run `make build`): %v", p, err)
	}
	return p
}

// RefPlugin returns the path of a reference CNI plugin, failing the test when
// it is missing (run `make cni-plugins`).
func RefPlugin(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(CNIBinDir(), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("reference plugin %s missing (run `make cni-plugins`): %v", p, err)
	}
	return p
}

// RequireRoot skips the test when not root, unless PLEXUS_REQUIRE_ROOT is set
// (as `make test` does), in which case the test fails: CI must never silently
// skip the integration layer.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("PLEXUS_REQUIRE_ROOT") != "" {
		t.Fatal("this test needs root (PLEXUS_REQUIRE_ROOT is set)")
	}
	t.Skip("needs root")
}

// NewNS creates a fresh named network namespace (under /var/run/netns) that
// is closed and removed when the test ends.
func NewNS(t testing.TB) ns.NetNS {
	t.Helper()
	RequireRoot(t)
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() {
		_ = n.Close()
		_ = testutils.UnmountNS(n)
	})
	return n
}

var (
	buildMu   sync.Mutex
	buildDir  string
	buildDone = map[string]string{}
	buildSrc  = map[string]string{} // name -> package and tags it was built from
)

// coverBinaries are built with coverage under `make test` (GOCOVERDIR).
var coverBinaries = map[string]bool{"plexus": true, "plexus-thin": true, "plexusd": true}

// BuildBinary builds ./cmd/<name> from the current source into a temporary
// directory, once per test process, so tests never exec a stale binary.
func BuildBinary(t testing.TB, name string) string {
	t.Helper()
	return BuildPackage(t, name, "./cmd/"+name)
}

// BuildPackage builds the main package pkg (a path relative to the
// repository root) as name, once per test process.
func BuildPackage(t testing.TB, name, pkg string) string {
	t.Helper()
	return BuildPackageTags(t, name, pkg, "")
}

// BuildPackageTags is BuildPackage with build tags (comma-separated). One
// name is one binary per process: asking for it from another package or
// with other tags fails the test.
func BuildPackageTags(t testing.TB, name, pkg, tags string) string {
	t.Helper()
	if name == "plexus" {
		// The shim execs plexus-thin from beside itself.
		BuildPackageTags(t, "plexus-thin", "./cmd/plexus-thin", "")
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	src := pkg + " tags=" + tags
	if p, ok := buildDone[name]; ok {
		if buildSrc[name] != src {
			t.Fatalf("binary %s already built from %s, now asked from %s", name, buildSrc[name], src)
		}
		return p
	}
	if buildDir == "" {
		// One directory per test process, named by pid; directories of
		// processes that are gone are removed here, so none pile up.
		stale, _ := filepath.Glob(filepath.Join(os.TempDir(), "plexus-test-bin-*"))
		for _, d := range stale {
			pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "plexus-test-bin-"))
			if err != nil || syscall.Kill(pid, 0) == syscall.ESRCH {
				os.RemoveAll(d)
			}
		}
		buildDir = filepath.Join(os.TempDir(), "plexus-test-bin-"+strconv.Itoa(os.Getpid()))
		if err := os.MkdirAll(buildDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(buildDir, name)
	args := []string{"build", "-trimpath", "-ldflags", "-s -w", "-tags", tags, "-o", p}
	if coverBinaries[name] && os.Getenv("GOCOVERDIR") != "" {
		// `make test` sets GOCOVERDIR: the plexus binary the e2e suites
		// exec writes its coverage there, and make prints the figure.
		// (The main package must be among -coverpkg, or nothing is written.)
		args = []string{"build", "-cover", "-coverpkg=github.com/plexus-cni/plexus/pkg/...," + pkg, "-tags", tags, "-o", p}
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	buildDone[name], buildSrc[name] = p, src
	return p
}
