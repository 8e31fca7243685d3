// Package cmd_test checks what every command of cmd/ shares: the version
// `make build` stamps into it.
package cmd_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

// TestMakeBuildStampsVersion builds every command with `make build
// VERSION=…` into a temp dir and runs each with --version: it prints
// "<name> <version>" on stdout and exits 0 — the CNI plugins too, before
// skel sees the call.
func TestMakeBuildStampsVersion(t *testing.T) {
	const version = "v9.8.7-test.1"
	root := testutil.RepoRoot()
	bin := t.TempDir()
	mk := exec.Command("make", "-s", "build", "VERSION="+version, "BIN="+bin)
	mk.Dir = root
	mk.Env = append(os.Environ(), "MAKEFLAGS=")
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	mains, err := filepath.Glob(filepath.Join(root, "cmd", "*", "main.go"))
	if err != nil || len(mains) < 4 {
		t.Fatalf("commands under cmd/: %v %v", mains, err)
	}
	for _, m := range mains {
		name := filepath.Base(filepath.Dir(m))
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(filepath.Join(bin, name), "--version")
			cmd.Env = []string{"PATH=/usr/bin:/bin"} // no CNI_COMMAND
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s --version: %v (make build built no %s?)", name, err, name)
			}
			if want := name + " " + version + "\n"; string(out) != want {
				t.Errorf("%s --version printed %q, want %q", name, out, want)
			}
		})
	}
}
