package install

import (
	"bytes"
	"context"
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
	got, _, err := InstallBinaries(discard, src, dst, []string{"plexus", "sriov"}, false)
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
	got, _, err = InstallBinaries(discard, src, dst, []string{"plexus", "sriov"}, false)
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
			_, _, err := InstallBinaries(discard, src, tc.dst, tc.bins, false)
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
	if _, _, err := InstallBinaries(discard, oldDir, dst, []string{"plexus"}, false); err != nil {
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
		if _, _, err := InstallBinaries(discard, src, dst, []string{"plexus"}, false); err != nil {
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
		if strings.HasPrefix(e.Name(), ".") && e.Name() != ManifestName {
			t.Errorf("temp file %s left behind in %s", e.Name(), dir)
		}
	}
}

func writeExec(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// linesWith returns the log lines containing every part.
func linesWith(logs string, parts ...string) []string {
	var out []string
	for _, line := range strings.Split(logs, "\n") {
		all := line != ""
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// A binary plexus-install did not put there (upstream sriov-cni's
// /opt/cni/bin/sriov) is left, with one log line naming it and the flag
// that overrides; one it did put there is upgraded; one it put there and
// someone replaced since is not its own any more; --force-binaries takes
// any.
func TestForeignBinaryLeft(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "bin")
	writeExec(t, src, "plexus", "#!/bin/sh\necho plexus v1\n")
	writeExec(t, src, "sriov", "#!/bin/sh\necho plexus sriov v1\n")
	const upstream = "#!/bin/sh\necho upstream sriov-cni\n"
	writeExec(t, dst, "sriov", upstream)
	sriov := filepath.Join(dst, "sriov")
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	install := func(force bool) (string, string) {
		t.Helper()
		installed, left, err := InstallBinaries(log, src, dst, []string{"plexus", "sriov"}, force)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(installed, ","), strings.Join(left, ",")
	}

	for run := 1; run <= 2; run++ {
		if in, left := install(false); in != map[int]string{1: "plexus", 2: ""}[run] || left != "sriov" {
			t.Fatalf("run %d: installed %q left %q, want sriov left", run, in, left)
		}
		if got := readString(t, sriov); got != upstream {
			t.Fatalf("run %d: upstream sriov overwritten with %q", run, got)
		}
	}
	if l := linesWith(logs.String(), "path="+sriov, "--force-binaries"); len(l) != 2 {
		t.Fatalf("want one line per run naming %s and --force-binaries, got %d:\n%s", sriov, len(l), logs.String())
	}
	if l := linesWith(logs.String(), "path="+filepath.Join(dst, "plexus"), "--force-binaries"); len(l) != 0 {
		t.Fatalf("plexus's own binary reported as left: %v", l)
	}

	// --force-binaries replaces it; from then on it is plexus-install's.
	if in, left := install(true); in != "sriov" || left != "" {
		t.Fatalf("forced: installed %q left %q", in, left)
	}
	if l := linesWith(logs.String(), "path="+sriov, "--force-binaries", "replac"); len(l) != 1 {
		t.Fatalf("forced replacement not logged:\n%s", logs.String())
	}
	writeExec(t, src, "sriov", "#!/bin/sh\necho plexus sriov v2\n")
	writeExec(t, src, "plexus", "#!/bin/sh\necho plexus v2\n")
	if in, left := install(false); in != "plexus,sriov" || left != "" {
		t.Fatalf("upgrade of its own binaries: installed %q left %q", in, left)
	}
	if got := readString(t, sriov); got != "#!/bin/sh\necho plexus sriov v2\n" {
		t.Fatalf("sriov after upgrade: %q", got)
	}

	// Upstream's DaemonSet writes its sriov over plexus's: not ours any more.
	writeExec(t, dst, "sriov", upstream)
	writeExec(t, src, "sriov", "#!/bin/sh\necho plexus sriov v3\n")
	if in, left := install(false); in != "" || left != "sriov" {
		t.Fatalf("after upstream took sriov back: installed %q left %q", in, left)
	}
	if got := readString(t, sriov); got != upstream {
		t.Fatalf("upstream sriov overwritten with %q", got)
	}
	// A file identical to what plexus-install would write counts as its own.
	writeExec(t, dst, "sriov", readString(t, filepath.Join(src, "sriov")))
	if in, left := install(false); in != "" || left != "" {
		t.Fatalf("identical file: installed %q left %q", in, left)
	}
	writeExec(t, src, "sriov", "#!/bin/sh\necho plexus sriov v4\n")
	if in, left := install(false); in != "sriov" || left != "" {
		t.Fatalf("identical file then upgrade: installed %q left %q", in, left)
	}
}

// A node upgraded from a plexus-install that kept no record: a plexus
// binary (the same Go main package as the one to install) is upgraded; a
// different Go program under the same name is left.
func TestUpgradeWithoutRecord(t *testing.T) {
	oldDir, newDir, dst := t.TempDir(), t.TempDir(), t.TempDir()
	buildFakePlugin(t, oldDir, "plexus", "old")
	buildFakePlugin(t, newDir, "plexus", "new")
	old, err := os.ReadFile(filepath.Join(oldDir, "plexus"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "plexus"), old, 0o755); err != nil {
		t.Fatal(err)
	}
	// This test binary is a Go program of another main package.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "sriov"), other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(newDir, "sriov"), old, 0o755); err != nil {
		t.Fatal(err)
	}
	installed, left, err := InstallBinaries(discard, newDir, dst, []string{"plexus", "sriov"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(installed, ",") != "plexus" || strings.Join(left, ",") != "sriov" {
		t.Fatalf("installed %v left %v, want plexus upgraded and sriov left", installed, left)
	}
	if out, err := exec.Command(filepath.Join(dst, "plexus")).Output(); err != nil || string(out) != "new" {
		t.Fatalf("plexus prints %q (%v), want new", out, err)
	}
}

// plexus-install itself: a foreign sriov leaves plexus working (config
// written) and is reported; with ForceBinaries it is replaced.
func TestInstallerLeavesForeignBinary(t *testing.T) {
	h := newHost(t)
	h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
	const upstream = "#!/bin/sh\necho upstream sriov-cni\n"
	writeExec(t, h.bin, "sriov", upstream)
	cfg := h.config()
	cfg.Once = true
	var logs syncBuffer
	if err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil))).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, filepath.Join(h.bin, "sriov")); got != upstream || h.plexusConf() == nil {
		t.Fatalf("sriov %q, plexus config %v", got, h.plexusConf())
	}
	if l := linesWith(logs.String(), filepath.Join(h.bin, "sriov"), "--force-binaries"); len(l) != 1 {
		t.Fatalf("want one line naming the left binary and --force-binaries:\n%s", logs.String())
	}
	cfg.ForceBinaries = true
	if err := New(cfg, discard).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, filepath.Join(h.bin, "sriov")); got != readString(t, filepath.Join(h.src, "sriov")) {
		t.Fatalf("--force-binaries: sriov is %q", got)
	}
}
