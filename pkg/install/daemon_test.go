package install

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/config"
)

// --daemon-socket and --daemon-timeout: the config plexus-install writes
// names plexusd's socket (and the shim's deadline) for the daemon
// deployment, plexus's own loader reads them back, and without the flags
// neither key is written (the thin deployment).
func TestDaemonSocketConfig(t *testing.T) {
	for _, tc := range []struct {
		name        string
		socket      string
		timeout     int
		wantTimeout int // as plexus's loader defaults it
	}{
		{"thin", "", 0, config.DefaultDaemonTimeout},
		{"daemon", "/run/plexus/plexusd.sock", 0, config.DefaultDaemonTimeout},
		{"daemon with timeout", "/run/plexus/plexusd.sock", 350, 350},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
			cfg := h.config()
			cfg.Once = true
			cfg.DaemonSocket, cfg.DaemonTimeout = tc.socket, tc.timeout
			if err := New(cfg, discard).Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			p := pluginOf(h.plexusConf())
			sock, hasSock := p["daemonSocket"]
			timeout, hasTimeout := p["daemonTimeout"]
			if tc.socket == "" && (hasSock || hasTimeout) {
				t.Fatalf("thin deployment: config has daemonSocket %v daemonTimeout %v", sock, timeout)
			}
			if tc.socket != "" && sock != tc.socket {
				t.Fatalf("daemonSocket %v, want %s", sock, tc.socket)
			}
			if hasTimeout != (tc.timeout > 0) || (hasTimeout && timeout != float64(tc.timeout)) {
				t.Fatalf("daemonTimeout %v (present %v), want %d", timeout, hasTimeout, tc.timeout)
			}
			// What the runtime hands plexus: the plugin with the list's name and version.
			c := h.plexusConf()
			p["cniVersion"], p["name"] = c["cniVersion"], c["name"]
			conf, err := config.Load(mustJSON(t, p))
			if err != nil {
				t.Fatalf("plexus refuses the config plexus-install wrote: %v", err)
			}
			if conf.DaemonSocket != tc.socket || conf.DaemonTimeout != tc.wantTimeout {
				t.Errorf("plexus reads daemonSocket %q daemonTimeout %d, want %q %d", conf.DaemonSocket, conf.DaemonTimeout, tc.socket, tc.wantTimeout)
			}
		})
	}
}

// The readiness probe accepts a config with daemonSocket (and says which
// socket), and refuses one whose daemonSocket plexus would refuse.
func TestCheckDaemonSocket(t *testing.T) {
	h := newHost(t)
	h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
	cfg := h.config()
	cfg.ReadyFile = h.readyFile()
	cfg.DaemonSocket, cfg.DaemonTimeout = "/run/plexus/plexusd.sock", 1500
	if err := New(cfg, discard).syncConf(true); err != nil {
		t.Fatal(err)
	}
	msg, err := Check(h.readyFile())
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if !strings.Contains(msg, "plexusd socket /run/plexus/plexusd.sock") {
		t.Errorf("Check says %q, want it to name the socket", msg)
	}

	bad := strings.Replace(string(mustRead(t, h.confPath())), `"/run/plexus/plexusd.sock"`, `"plexusd.sock"`, 1)
	h.write(h.confPath(), bad)
	New(cfg, discard).markReady([]byte(bad))
	notReady(t, h, `key "daemonSocket": "plexusd.sock" is not an absolute path`)
}

// plexus-thin is installed before plexus: a new shim never lands in the
// bin dir without the thin plugin it execs when plexusd does not answer.
func TestInstallOrder(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plexus,plexus-thin,sriov,passthru", "plexus-thin,plexus,sriov,passthru"},
		{"sriov,plexus,passthru,plexus-thin", "sriov,passthru,plexus-thin,plexus"},
		{"plexus-thin,plexus,sriov", "plexus-thin,plexus,sriov"},
		{"plexus-thin,sriov,plexus", "plexus-thin,sriov,plexus"},
		{"plexus,sriov", "plexus,sriov"},
		{"", ""},
	} {
		in := splitList(tc.in)
		orig := slices.Clone(in)
		if got := strings.Join(installOrder(in), ","); got != tc.want {
			t.Errorf("installOrder(%s) = %s, want %s", tc.in, got, tc.want)
		}
		if !slices.Equal(in, orig) {
			t.Errorf("installOrder(%s) changed its argument to %v", tc.in, in)
		}
	}

	// As the installer runs it, with the default list.
	h := newHost(t)
	cfg := h.config()
	cfg.Binaries, cfg.BinariesOnly = splitList(DefaultBinaries), true
	logs := &syncBuffer{}
	if err := New(cfg, slog.New(slog.NewTextHandler(logs, nil))).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "installed binary") {
			order = append(order, strings.Fields(strings.SplitN(l, "binary=", 2)[1])[0])
		}
	}
	if strings.Join(order, ",") != "plexus-thin,plexus,sriov,passthru" {
		t.Errorf("installed %v, want plexus-thin first, then plexus, sriov, passthru", order)
	}
	for _, b := range order {
		if _, err := os.Stat(filepath.Join(h.bin, b)); err != nil {
			t.Error(err)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
