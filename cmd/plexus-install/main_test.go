package main

import (
	"encoding/json"
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

// The daemon deployment's flags, as deployments/plexus.yaml passes them:
// the written config names plexusd's socket; a deadline without a socket
// is a usage error (exit 2).
func TestDaemonSocketFlag(t *testing.T) {
	bin := testutil.Binary(t, "plexus-install")
	root := t.TempDir()
	conf := filepath.Join(root, "net.d")
	os.MkdirAll(conf, 0o755)
	os.WriteFile(filepath.Join(conf, "10-br.conf"), []byte(`{"cniVersion":"1.0.0","name":"br","type":"bridge"}`), 0o644)
	base := []string{"--binaries=", "--clusterless", "--once", "--cni-bin-dir=" + filepath.Join(root, "bin"),
		"--cni-conf-dir=" + conf, "--cni-dir=" + filepath.Join(root, "cache")}

	out, err := exec.Command(bin, append(base, "--daemon-timeout=300")...).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--daemon-timeout needs --daemon-socket") {
		t.Fatalf("--daemon-timeout alone: %v\n%s\nwant exit 2 naming --daemon-socket", err, out)
	}
	if _, err := os.Stat(filepath.Join(conf, "00-plexus.conflist")); !os.IsNotExist(err) {
		t.Fatalf("a refused command line wrote a config: %v", err)
	}

	if out, err := exec.Command(bin, append(base, "--daemon-socket=/run/plexus/plexusd.sock", "--daemon-timeout=300")...).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(conf, "00-plexus.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Plugins []struct {
			DaemonSocket  string `json:"daemonSocket"`
			DaemonTimeout int    `json:"daemonTimeout"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &list); err != nil || len(list.Plugins) != 1 {
		t.Fatalf("config %s: %v", b, err)
	}
	if p := list.Plugins[0]; p.DaemonSocket != "/run/plexus/plexusd.sock" || p.DaemonTimeout != 300 {
		t.Errorf("config %s: want daemonSocket /run/plexus/plexusd.sock and daemonTimeout 300", b)
	}
}
