package install

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func (h *host) readyFile() string { return filepath.Join(h.root, "run", "plexus-install", "ready") }

// notReady asserts Check says not ready, with an error containing want.
func notReady(t *testing.T, h *host, want string) {
	t.Helper()
	msg, err := Check(h.readyFile())
	if err == nil {
		t.Fatalf("Check: ready (%s), want not ready: %s", msg, want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("Check: %v, want it to say %q", err, want)
	}
}

func checkReady() func(h *host) bool {
	return func(h *host) bool { _, err := Check(h.readyFile()); return err == nil }
}

// The readiness probe follows what plexus-install did on the host: not
// ready while it waits for the primary, ready once plexus's config is
// written, not ready when the config goes with the primary, ready again
// when both are back, and not ready once the installer exits (here with
// the config kept, the default).
func TestReadinessFollowsTheConfig(t *testing.T) {
	h := newHost(t)
	cfg := h.config()
	cfg.ReadyFile = h.readyFile()
	cfg.KeepConfig = true
	r := start(t, cfg)
	ready := checkReady()

	r.logged(t, "waiting for the primary network config")
	notReady(t, h, "no readiness marker")

	primary := filepath.Join(h.conf, "10-kindnet.conflist")
	h.write(primary, bridgePrimary)
	eventually(t, "ready after the config is written", func() bool { return ready(h) })
	if h.plexusConf() == nil {
		t.Fatal("ready without plexus's config on the host")
	}

	os.Remove(primary)
	r.logged(t, "primary network config vanished: removed plexus config")
	notReady(t, h, "no readiness marker")
	if h.plexusConf() != nil {
		t.Fatal("plexus config left after the primary vanished")
	}

	h.write(primary, bridgePrimary)
	eventually(t, "ready again with the primary back", func() bool { return ready(h) })

	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	notReady(t, h, "no readiness marker")
	if h.plexusConf() == nil {
		t.Fatal("default --keep-config: plexus config removed on exit")
	}
}

// A rolling update with the config kept: the old pod exits leaving the
// config (no window in which the runtime finds only the primary); the new
// pod's plexus-install starts not ready even though a marker and a valid
// config are left (an emptyDir outlives a container restart), and becomes
// ready once it has taken the config over.
func TestReadinessAfterTakeOver(t *testing.T) {
	h := newHost(t)
	h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
	cfg := h.config()
	cfg.ReadyFile = h.readyFile()
	cfg.KeepConfig = true
	old := start(t, cfg)
	eventually(t, "old installer ready", func() bool { return checkReady()(h) })
	if err := old.stop(t); err != nil {
		t.Fatal(err)
	}
	if h.plexusConf() == nil {
		t.Fatal("old installer removed the config on exit")
	}
	// A stale marker that matches the config on the host.
	New(cfg, discard).markReady(mustRead(t, h.confPath()))
	if _, err := Check(h.readyFile()); err != nil {
		t.Fatalf("stale marker set up wrong: %v", err)
	}

	// The new installer waits (here for a readiness indicator file).
	indicator := filepath.Join(h.root, "indicator")
	cfg.ReadinessIndicatorFile = indicator
	r := start(t, cfg)
	r.logged(t, "waiting for the primary network config", "readiness indicator file")
	notReady(t, h, "no readiness marker")
	if h.plexusConf() == nil {
		t.Fatal("config gone while the new installer waits")
	}
	h.write(indicator, "")
	eventually(t, "new installer ready after taking over", func() bool { return checkReady()(h) })
	if c := h.plexusConf(); c == nil || pluginOf(c)["readinessindicatorfile"] != indicator {
		t.Fatalf("new installer did not rewrite the config: %v", c)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Check reads the host, not only the marker: each way the installed
// config can stop being plexus's working config makes it not ready.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(h *host)
		want  string // "" = ready
	}{
		{"as written", func(*host) {}, ""},
		{"no marker", func(h *host) { os.Remove(h.readyFile()) }, "no readiness marker"},
		{"marker not ours", func(h *host) { h.write(h.readyFile(), "ok\n") }, "not plexus-install's"},
		{"config removed", func(h *host) { os.Remove(h.confPath()) }, "plexus config: open"},
		{"config changed on the host", func(h *host) {
			h.write(h.confPath(), strings.Replace(string(mustRead(h.t.(*testing.T), h.confPath())), "plexus-cni-network", "other", 1))
		}, "not what plexus-install wrote"},
		{"config plexus refuses", func(h *host) {
			bad := `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"plexus","clusterNetwork":"/x","namespaceIsolaton":true}]}`
			h.write(h.confPath(), bad)
			New(Config{CNIConfDir: h.conf, ConfName: DefaultConfName, ReadyFile: h.readyFile()}, discard).markReady([]byte(bad))
		}, `unknown key "namespaceIsolaton"`},
		{"primary gone", func(h *host) { os.Remove(filepath.Join(h.conf, "10-kindnet.conflist")) }, "clusterNetwork: primary config"},
		{"primary broken", func(h *host) { h.write(filepath.Join(h.conf, "10-kindnet.conflist"), "{") }, "clusterNetwork"},
		{"shadowed", func(h *host) {
			h.write(filepath.Join(h.conf, "00-multus.conf"), `{"cniVersion":"1.0.0","name":"m","type":"multus"}`)
		}, "00-multus.conf instead (it sorts first)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
			cfg := h.config()
			cfg.ReadyFile = h.readyFile()
			in := New(cfg, discard)
			if err := in.syncConf(true); err != nil {
				t.Fatal(err)
			}
			tc.spoil(h)
			if tc.want != "" {
				notReady(t, h, tc.want)
				return
			}
			msg, err := Check(h.readyFile())
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !strings.Contains(msg, h.confPath()) {
				t.Errorf("Check says %q, want it to name %s", msg, h.confPath())
			}
		})
	}
}

// --once writes no marker: nothing would keep it true after the exit.
func TestOnceWritesNoReadyFile(t *testing.T) {
	h := newHost(t)
	h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
	cfg := h.config()
	cfg.ReadyFile, cfg.Once = h.readyFile(), true
	if err := New(cfg, discard).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h.plexusConf() == nil {
		t.Fatal("no config written")
	}
	notReady(t, h, "no readiness marker")
}
