package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

// The built binary, run as the DaemonSet runs it: exit codes and messages.
func TestExitCodes(t *testing.T) {
	bin := testutil.Binary(t, "plexus-install")
	root := t.TempDir()
	conf := filepath.Join(root, "net.d")
	os.MkdirAll(conf, 0o755)
	base := []string{"--binaries=", "--clusterless", "--cni-bin-dir=" + filepath.Join(root, "bin"),
		"--cni-conf-dir=" + conf, "--cni-dir=" + filepath.Join(root, "cache"), "--poll-interval=10ms"}
	for _, tc := range []struct {
		name     string
		args     []string
		setup    func()
		wantCode int
		wantErr  string
	}{
		{"bad flag", []string{"--cni-dir=rel"}, nil, 2, `plexus-install: --cni-dir "rel": must be an absolute path`},
		{"nothing appears", []string{"--wait-timeout=200ms"}, nil, 1, "nothing usable appeared in " + conf + " within 200ms: no primary network config in " + conf},
		{"check, not installed", []string{"--check", "--ready-file=" + filepath.Join(root, "ready")}, nil, 1, "not ready: plexus-install has not installed plexus's config (yet): no readiness marker " + filepath.Join(root, "ready")},
		{"once", []string{"--once"}, func() {
			os.WriteFile(filepath.Join(conf, "10-br.conf"), []byte(`{"cniVersion":"1.0.0","name":"br","type":"bridge"}`), 0o644)
		}, 0, "wrote plexus config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			cmd := exec.Command(bin, append(base, tc.args...)...)
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || !strings.Contains(string(out), tc.wantErr) {
				t.Fatalf("exit %d, output:\n%s\nwant exit %d and %q", code, out, tc.wantCode, tc.wantErr)
			}
		})
	}
}
