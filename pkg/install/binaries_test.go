package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// buildFakePlugin builds testdata/fakeplugin printing version into dir/name.
func buildFakePlugin(t *testing.T, dir, name, version string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version="+version, "-o", out, "./testdata/fakeplugin")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build fake plugin: %v\n%s", err, b)
	}
	return out
}

func TestInstallBinariesFresh(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "opt", "cni", "bin")
	for _, n := range []string{"plexus", "sriov"} {
		if err := os.WriteFile(filepath.Join(src, n), []byte("#!/bin/sh\necho "+n+"\n"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	got, err := InstallBinaries(discard, src, dst, []string{"plexus", "sriov"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "plexus,sriov" {
		t.Fatalf("installed %v, want plexus,sriov", got)
	}
	for _, n := range []string{"plexus", "sriov"} {
		fi, err := os.Stat(filepath.Join(dst, n))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("%s mode %v, want 0755", n, fi.Mode().Perm())
		}
	}
	assertNoTempFiles(t, dst)
	// Second run: already identical, nothing replaced.
	got, err = InstallBinaries(discard, src, dst, []string{"plexus", "sriov"})
	if err != nil || len(got) != 0 {
		t.Fatalf("second install replaced %v (err %v), want nothing", got, err)
	}
}

func TestInstallBinariesErrors(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(src, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	roDst := filepath.Join(t.TempDir(), "ro")
	if err := os.WriteFile(filepath.Join(src, "plexus"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(roDst, []byte("a file, not a dir"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dst string
		bins      []string
		want      string
	}{
		{"missing source", dst, []string{"sriov"}, `binary "sriov": source ` + filepath.Join(src, "sriov")},
		{"source is a dir", dst, []string{"adir"}, `binary "adir": source ` + filepath.Join(src, "adir") + " is not a regular file"},
		{"dest not a dir", roDst, []string{"plexus"}, "CNI bin dir " + roDst},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := InstallBinaries(discard, src, tc.dst, tc.bins)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			assertNoTempFiles(t, dst)
		})
	}
}

// TestUpgradeWhileBusy replaces the installed binary over and over while one
// copy of it runs for seconds and another goroutine execs it in a loop, as a
// runtime does during a pod burst: no exec may fail (ETXTBSY, exec format
// error from a half-written file) and every run prints a whole version.
func TestUpgradeWhileBusy(t *testing.T) {
	oldDir, newDir, dst := t.TempDir(), t.TempDir(), t.TempDir()
	buildFakePlugin(t, oldDir, "plexus", "old")
	buildFakePlugin(t, newDir, "plexus", "new")
	if _, err := InstallBinaries(discard, oldDir, dst, []string{"plexus"}); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dst, "plexus")

	busy := exec.Command(bin, "sleep") // holds the old binary in execution
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}

	// The control: writing the running binary in place must hit ETXTBSY,
	// which is what this test would see if installation were not atomic.
	if f, err := os.OpenFile(bin, os.O_WRONLY|os.O_TRUNC, 0); err == nil {
		f.Close()
		t.Fatal("in-place write of a running binary succeeded; the busy process is not running the installed file")
	} else if !errors.Is(err, syscall.ETXTBSY) {
		t.Fatalf("in-place write of a running binary: %v, want ETXTBSY", err)
	}

	// The runtime: another process exec'ing the binary in a loop.
	stopFile := filepath.Join(t.TempDir(), "stop")
	var loopOut bytes.Buffer
	runtime := exec.Command(filepath.Join(oldDir, "plexus"), "loop", bin, stopFile)
	runtime.Stdout = &loopOut
	if err := runtime.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 41; i++ { // ends on new
		src := newDir
		if i%2 == 1 {
			src = oldDir
		}
		if _, err := InstallBinaries(discard, src, dst, []string{"plexus"}); err != nil {
			_ = os.WriteFile(stopFile, nil, 0o644)
			_ = runtime.Wait()
			t.Fatalf("install %d while busy: %v", i, err)
		}
	}
	if err := os.WriteFile(stopFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runtime.Wait(); err != nil {
		t.Fatalf("exec loop: %v", err)
	}
	if err := busy.Wait(); err != nil {
		t.Errorf("the process running the old binary failed: %v", err)
	}
	var sum struct {
		Outputs  map[string]int `json:"outputs"`
		Failures []string       `json:"failures"`
	}
	if err := json.Unmarshal(loopOut.Bytes(), &sum); err != nil {
		t.Fatalf("exec loop summary %q: %v", loopOut.String(), err)
	}
	seen := sum.Outputs
	if len(sum.Failures) > 0 {
		t.Fatalf("%d execs during upgrades failed, first: %s (successful: %v)", len(sum.Failures), sum.Failures[0], seen)
	}
	for out := range seen {
		if out != "old" && out != "new" {
			t.Errorf("an exec during upgrades printed %q, want old or new", out)
		}
	}
	if seen["old"]+seen["new"] == 0 {
		t.Fatal("no exec ran during the upgrades")
	}
	if out, err := exec.Command(bin).Output(); err != nil || string(out) != "new" {
		t.Fatalf("after the last install the binary prints %q (%v), want new", out, err)
	}
	t.Logf("execs during 41 upgrades: %v", seen)
	assertNoTempFiles(t, dst)
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temp file %s left behind in %s", e.Name(), dir)
		}
	}
}
