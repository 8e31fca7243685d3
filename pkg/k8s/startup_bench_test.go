package k8s_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkExecStartup execs a program that only imports pkg/k8s (and
// pkg/podresources), against one importing nothing: the difference is the
// start-up (loading + package init) every plexus exec pays for Kubernetes
// mode.
func BenchmarkExecStartup(b *testing.B) {
	for _, v := range []struct{ name, tags string }{
		{"baseline", "baseline"},
		{"k8s", ""},
		{"k8s+podresources", "podresources"},
	} {
		bin := filepath.Join(b.TempDir(), "initcost")
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-tags="+v.tags, "-o", bin, "./testdata/initcost")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", v.name, err, out)
		}
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				if err := exec.Command(bin).Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
