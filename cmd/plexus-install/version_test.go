package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// --version prints the version stamped at build time with
// -ldflags "-X main.version=...", "dev" without, and exits 0.
func TestVersion(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ ldflags, want string }{
		{"-X main.version=v9.8.7-test", "plexus-install v9.8.7-test\n"},
		{"", "plexus-install dev\n"},
	} {
		bin := filepath.Join(dir, "plexus-install")
		build := exec.Command("go", "build", "-trimpath", "-ldflags", tc.ldflags, "-o", bin, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
		out, err := exec.Command(bin, "--version").Output()
		if err != nil || string(out) != tc.want {
			t.Fatalf("ldflags %q: --version printed %q (%v), want %q", tc.ldflags, out, err, tc.want)
		}
	}
}
