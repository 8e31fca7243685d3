package install

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"
)

// host is a temp stand-in for a node: CNI bin and conf dirs, plexus's cache
// dir, and a service-account volume laid out as kubelet projects it.
type host struct {
	t                               testing.TB
	root, src, bin, conf, cache, sa string
	saGen                           int
}

func newHost(t testing.TB) *host {
	t.Helper()
	root := t.TempDir()
	h := &host{t: t, root: root, src: filepath.Join(root, "src"), bin: filepath.Join(root, "opt/cni/bin"),
		conf: filepath.Join(root, "etc/cni/net.d"), cache: filepath.Join(root, "var/lib/cni/plexus"),
		sa: filepath.Join(root, "sa")}
	for _, d := range []string{h.src, h.conf, h.sa} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"plexus", "plexus-thin", "sriov", "passthru"} {
		h.write(filepath.Join(h.src, n), "#!/bin/sh\necho "+n+"\n")
	}
	h.rotateServiceAccount("token-1", newCA(t))
	return h
}

func (h *host) write(path, data string) {
	h.t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// rotateServiceAccount swaps the projected volume's ..data symlink to a new
// timestamped dir holding token and ca.crt, as kubelet does.
func (h *host) rotateServiceAccount(token string, ca []byte) {
	h.t.Helper()
	h.saGen++
	gen := fmt.Sprintf("..gen_%d", h.saGen)
	dir := filepath.Join(h.sa, gen)
	if err := os.Mkdir(dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	h.write(filepath.Join(dir, "token"), token)
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o644); err != nil {
		h.t.Fatal(err)
	}
	tmp := filepath.Join(h.sa, "..data_tmp")
	if err := os.Symlink(gen, tmp); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(h.sa, "..data")); err != nil {
		h.t.Fatal(err)
	}
	for _, f := range []string{"token", "ca.crt"} {
		if _, err := os.Lstat(filepath.Join(h.sa, f)); err != nil {
			if err := os.Symlink(filepath.Join("..data", f), filepath.Join(h.sa, f)); err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

func (h *host) config() Config {
	return Config{
		SourceDir: h.src, Binaries: []string{"plexus", "sriov"},
		CNIBinDir: h.bin, CNIConfDir: h.conf, CNIDir: h.cache, ConfName: DefaultConfName,
		Kubeconfig:        filepath.Join(h.conf, "plexus.d", "plexus.kubeconfig"),
		ServiceAccountDir: h.sa, APIServer: "https://10.96.0.1:443",
		WaitTimeout: 10 * time.Second, PollInterval: 10 * time.Millisecond,
	}
}

func (h *host) confPath() string { return filepath.Join(h.conf, DefaultConfName) }

// plexusConf reads and decodes plexus's config, or returns nil when absent.
func (h *host) plexusConf() map[string]any {
	h.t.Helper()
	b, err := os.ReadFile(h.confPath())
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		h.t.Fatalf("plexus config is not JSON: %v\n%s", err, b)
	}
	return m
}

func pluginOf(conf map[string]any) map[string]any {
	return conf["plugins"].([]any)[0].(map[string]any)
}

// running is an Installer running in the background.
type running struct {
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1), logs: &syncBuffer{}}
	in := New(cfg, slog.New(slog.NewTextHandler(r.logs, nil)))
	go func() { r.done <- in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Error("installer did not stop")
		}
	})
	return r
}

// stop cancels the installer and returns Run's error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for Cleanup
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("installer did not stop")
		return nil
	}
}

// eventually waits for cond, failing the test after a deadline generous
// enough for a loaded 2-core machine (the installer polls every 10ms here).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out waiting for %s: %v", what, err)
	}
}

// logged waits until the installer has logged a line containing every one
// of parts: the observable sign that it looked and decided, after which an
// absence (no config written, config unchanged) can be asserted.
func (r *running) logged(t *testing.T, parts ...string) {
	t.Helper()
	eventually(t, fmt.Sprintf("a log line with %q", parts), func() bool {
		for _, line := range strings.Split(r.logs.String(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return true
			}
		}
		return false
	})
}

const bridgePrimary = `{"cniVersion":"1.0.0","name":"kindnet","plugins":[
 {"type":"ptp","ipam":{"type":"host-local"}},
 {"type":"portmap","capabilities":{"portMappings":true}},
 {"type":"bandwidth","capabilities":{"bandwidth":true,"ips":false}}]}`

func TestFreshInstall(t *testing.T) {
	h := newHost(t)
	h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
	cfg := h.config()
	cfg.Once = true
	cfg.Capabilities = []string{"io.kubernetes.cri.pod-annotations"}
	if err := New(cfg, discard).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"plexus", "sriov"} {
		if _, err := os.Stat(filepath.Join(h.bin, n)); err != nil {
			t.Errorf("binary %s not installed: %v", n, err)
		}
	}
	conf := h.plexusConf()
	if conf == nil {
		t.Fatal("no plexus config written")
	}
	if conf["cniVersion"] != "1.0.0" || conf["name"] != NetworkName {
		t.Errorf("cniVersion/name = %v/%v, want 1.0.0/%s", conf["cniVersion"], conf["name"], NetworkName)
	}
	p := pluginOf(conf)
	want := map[string]any{
		"type": "plexus", "clusterNetwork": filepath.Join(h.conf, "10-kindnet.conflist"),
		"confDir": h.conf, "cniDir": h.cache, "binDir": h.bin, "kubeconfig": cfg.Kubeconfig,
		"capabilities": map[string]any{"portMappings": true, "bandwidth": true, "io.kubernetes.cri.pod-annotations": true},
	}
	gotJSON, _ := json.Marshal(p)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("plexus plugin config\n got %s\nwant %s", gotJSON, wantJSON)
	}
	// Kubeconfig: 0600, token and CA of the service account, the server.
	fi, err := os.Stat(cfg.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v, want 0600", fi.Mode().Perm())
	}
	server, token, ca := readKubeconfig(t, cfg.Kubeconfig)
	if server != "https://10.96.0.1:443" || token != "token-1" {
		t.Errorf("kubeconfig server %q token %q", server, token)
	}
	if _, err := x509.ParseCertificate(ca.Raw); err != nil {
		t.Errorf("kubeconfig CA: %v", err)
	}
	assertNoTempFiles(t, h.conf)
	assertNoTempFiles(t, h.bin)
}

func TestPrimaryAppearsLateAndChanges(t *testing.T) {
	h := newHost(t)
	r := start(t, h.config())
	r.logged(t, "waiting for the primary network config", "no primary network config in "+h.conf)
	if h.plexusConf() != nil {
		t.Fatal("plexus config written before any primary exists")
	}
	// A conf (not conflist) primary; a file plexus must ignore.
	h.write(filepath.Join(h.conf, "README"), "not a config")
	h.write(filepath.Join(h.conf, "20-bridge.conf"), `{"cniVersion":"0.4.0","name":"br","type":"bridge"}`)
	eventually(t, "plexus config for 20-bridge.conf", func() bool {
		c := h.plexusConf()
		return c != nil && pluginOf(c)["clusterNetwork"] == filepath.Join(h.conf, "20-bridge.conf")
	})
	if c := h.plexusConf(); c["cniVersion"] != "0.4.0" || pluginOf(c)["capabilities"] != nil {
		t.Errorf("config for 20-bridge.conf: %v", c)
	}
	// The primary's content changes: cniVersion and capabilities follow.
	h.write(filepath.Join(h.conf, "20-bridge.conf"), `{"cniVersion":"1.0.0","name":"br","type":"bridge","capabilities":{"mac":true}}`)
	eventually(t, "cniVersion 1.0.0", func() bool {
		c := h.plexusConf()
		caps, _ := pluginOf(c)["capabilities"].(map[string]any)
		return c["cniVersion"] == "1.0.0" && caps["mac"] == true
	})
	// A lexically earlier config becomes the primary.
	h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
	eventually(t, "switch to 10-kindnet.conflist", func() bool {
		return pluginOf(h.plexusConf())["clusterNetwork"] == filepath.Join(h.conf, "10-kindnet.conflist")
	})
	// Primary gone: plexus's config goes too; back: it returns.
	os.Remove(filepath.Join(h.conf, "10-kindnet.conflist"))
	os.Remove(filepath.Join(h.conf, "20-bridge.conf"))
	eventually(t, "plexus config removed with the primary", func() bool { return h.plexusConf() == nil })
	h.write(filepath.Join(h.conf, "30-other.conflist"), bridgePrimary)
	eventually(t, "plexus config back", func() bool { return h.plexusConf() != nil })
	// Shutdown removes plexus's config.
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if h.plexusConf() != nil {
		t.Error("plexus config left after shutdown")
	}
	if !strings.Contains(r.logs.String(), "wrote plexus config") {
		t.Errorf("logs do not say what was written:\n%s", r.logs)
	}
}

func TestKeepConfigOnExit(t *testing.T) {
	h := newHost(t)
	h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
	cfg := h.config()
	cfg.KeepConfig = true
	r := start(t, cfg)
	eventually(t, "plexus config", func() bool { return h.plexusConf() != nil })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if h.plexusConf() == nil {
		t.Error("--keep-config: plexus config removed on exit")
	}
}

func TestTokenRotates(t *testing.T) {
	h := newHost(t)
	h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
	cfg := h.config()
	r := start(t, cfg)
	eventually(t, "kubeconfig with token-1", func() bool {
		_, tok, _ := tryReadKubeconfig(cfg.Kubeconfig)
		return tok == "token-1"
	})
	h.rotateServiceAccount("token-2", readCA(t, h))
	eventually(t, "kubeconfig with token-2", func() bool {
		_, tok, _ := tryReadKubeconfig(cfg.Kubeconfig)
		return tok == "token-2"
	})
	ca2 := newCA(t)
	h.rotateServiceAccount("token-2", ca2)
	eventually(t, "kubeconfig with the new CA", func() bool {
		_, _, ca, err := tryReadKubeconfigCA(cfg.Kubeconfig)
		return err == nil && bytes.Equal(ca, ca2)
	})
	// A deleted kubeconfig is restored.
	os.Remove(cfg.Kubeconfig)
	eventually(t, "kubeconfig restored", func() bool { _, err := os.Stat(cfg.Kubeconfig); return err == nil })
	if fi, _ := os.Stat(cfg.Kubeconfig); fi.Mode().Perm() != 0o600 {
		t.Errorf("rewritten kubeconfig mode %v", fi.Mode().Perm())
	}
	r.stop(t)
	for _, reason := range []string{"reason=initial", `reason="token rotated"`, `reason="CA changed"`, `reason="file was missing"`} {
		if !strings.Contains(r.logs.String(), reason) {
			t.Errorf("logs lack %s:\n%s", reason, r.logs)
		}
	}
}

func TestBadPrimaryJSON(t *testing.T) {
	h := newHost(t)
	primary := filepath.Join(h.conf, "10-kindnet.conflist")
	h.write(primary, `{"cniVersion":"1.0.0","name":"kindnet","plugins":[{"type":"ptp"}`)
	r := start(t, h.config())
	eventually(t, "a log naming the bad file", func() bool {
		return strings.Contains(r.logs.String(), "primary config "+primary+": invalid JSON")
	})
	if h.plexusConf() != nil {
		t.Fatal("plexus config written for an unparsable primary")
	}
	h.write(primary, bridgePrimary)
	eventually(t, "plexus config once the primary is fixed", func() bool { return h.plexusConf() != nil })
	// Broken again while running: the last good config stays.
	good, _ := os.ReadFile(h.confPath())
	h.write(primary, `{"cniVersion":`)
	r.logged(t, "plexus config not refreshed", "primary config "+primary+": invalid JSON")
	if now, _ := os.ReadFile(h.confPath()); !bytes.Equal(now, good) {
		t.Errorf("plexus config changed after the primary broke:\n%s", now)
	}
}

func TestNothingUsableAppears(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *host, cfg *Config)
		want  string
	}{
		{"empty conf dir", func(h *host, cfg *Config) {}, "no primary network config in "},
		{"only plexus's own config", func(h *host, cfg *Config) {
			h.write(filepath.Join(h.conf, DefaultConfName), `{}`)
		}, "no primary network config in "},
		{"bad JSON", func(h *host, cfg *Config) {
			h.write(filepath.Join(h.conf, "10-x.conf"), `{`)
		}, "10-x.conf: invalid JSON"},
		{"no cniVersion", func(h *host, cfg *Config) {
			h.write(filepath.Join(h.conf, "10-x.conf"), `{"name":"x","type":"bridge"}`)
		}, `10-x.conf: field "cniVersion" is missing`},
		{"cniVersion plexus does not support", func(h *host, cfg *Config) {
			h.write(filepath.Join(h.conf, "10-x.conf"), `{"cniVersion":"9.9.9","name":"x","type":"bridge"}`)
		}, `plexus config for primary ` + "CONF" + `/10-x.conf: plexus config: key "cniVersion": "9.9.9" is not supported`},
		{"named primary missing", func(h *host, cfg *Config) {
			h.write(filepath.Join(h.conf, "10-x.conf"), `{"cniVersion":"1.0.0","name":"x","type":"bridge"}`)
			cfg.PrimaryConfig = "20-calico.conflist"
		}, "20-calico.conflist does not exist"},
		{"readiness file missing", func(h *host, cfg *Config) {
			h.write(filepath.Join(h.conf, "10-x.conf"), `{"cniVersion":"1.0.0","name":"x","type":"bridge"}`)
			cfg.ReadinessIndicatorFile = filepath.Join(h.root, "ready")
		}, "readiness indicator file: stat " + "READY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			cfg := h.config()
			cfg.WaitTimeout = 100 * time.Millisecond
			tc.setup(h, &cfg)
			err := New(cfg, discard).Run(context.Background())
			want := strings.ReplaceAll(tc.want, "READY", filepath.Join(h.root, "ready"))
			want = strings.ReplaceAll(want, "CONF", h.conf)
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "nothing usable appeared in "+h.conf+" within 100ms") {
				t.Fatalf("error %v, want it to say nothing usable appeared and %q", err, want)
			}
			if c := h.plexusConf(); c != nil && c["name"] == NetworkName {
				t.Error("plexus config written although nothing was usable")
			}
		})
	}
}

func TestReadinessIndicatorFile(t *testing.T) {
	h := newHost(t)
	h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
	cfg := h.config()
	cfg.ReadinessIndicatorFile = filepath.Join(h.root, "run", "ready")
	r := start(t, cfg)
	r.logged(t, "waiting for the primary network config", "readiness indicator file", cfg.ReadinessIndicatorFile)
	if h.plexusConf() != nil {
		t.Fatal("plexus config written before the readiness indicator file exists")
	}
	os.MkdirAll(filepath.Dir(cfg.ReadinessIndicatorFile), 0o755)
	h.write(cfg.ReadinessIndicatorFile, "")
	eventually(t, "plexus config after readiness", func() bool { return h.plexusConf() != nil })
	if got := pluginOf(h.plexusConf())["readinessindicatorfile"]; got != cfg.ReadinessIndicatorFile {
		t.Errorf("readinessindicatorfile = %v, want %s", got, cfg.ReadinessIndicatorFile)
	}
}

func TestNamedPrimaryAndOverrides(t *testing.T) {
	h := newHost(t)
	h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
	h.write(filepath.Join(h.conf, "50-calico.conflist"), `{"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"calico"}]}`)
	cfg := h.config()
	cfg.Once = true
	cfg.PrimaryConfig = "50-calico.conflist"
	cfg.Kubeconfig = "" // clusterless
	var err error
	cfg.Overrides, err = ParseOverrides(`{"namespaceIsolation":true,"globalNamespaces":"default,shared","logLevel":"debug"}`)
	if err != nil {
		t.Fatal(err)
	}
	if err := New(cfg, discard).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := h.plexusConf()
	p := pluginOf(c)
	if c["cniVersion"] != "0.3.1" || p["clusterNetwork"] != filepath.Join(h.conf, "50-calico.conflist") {
		t.Errorf("config %v does not follow the named primary", c)
	}
	if p["namespaceIsolation"] != true || p["logLevel"] != "debug" {
		t.Errorf("overrides not applied: %v", p)
	}
	if _, ok := p["kubeconfig"]; ok {
		t.Error("clusterless config carries a kubeconfig")
	}
	if _, err := os.Stat(filepath.Join(h.conf, "plexus.d")); err == nil {
		t.Error("clusterless install wrote a kubeconfig")
	}
}

func newCA(t testing.TB) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func readCA(t *testing.T, h *host) []byte {
	b, err := os.ReadFile(filepath.Join(h.sa, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tryReadKubeconfigCA(path string) (server, token string, caPEM []byte, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", nil, err
	}
	var kc kubeconfig
	if err := yaml.UnmarshalStrict(b, &kc); err != nil {
		return "", "", nil, err
	}
	if len(kc.Clusters) != 1 || len(kc.Users) != 1 || len(kc.Contexts) != 1 || kc.CurrentContext != kc.Contexts[0].Name ||
		kc.Contexts[0].Context.Cluster != kc.Clusters[0].Name || kc.Contexts[0].Context.User != kc.Users[0].Name {
		return "", "", nil, fmt.Errorf("kubeconfig %s is not one consistent cluster/user/context: %s", path, b)
	}
	caPEM, err = base64.StdEncoding.DecodeString(kc.Clusters[0].Cluster.CertificateAuthorityData)
	return kc.Clusters[0].Cluster.Server, kc.Users[0].User.Token, caPEM, err
}

func tryReadKubeconfig(path string) (server, token string, err error) {
	server, token, _, err = tryReadKubeconfigCA(path)
	return
}

func readKubeconfig(t *testing.T, path string) (string, string, *x509.Certificate) {
	t.Helper()
	server, token, caPEM, err := tryReadKubeconfigCA(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(caPEM)
	if blk == nil {
		t.Fatalf("kubeconfig CA is not PEM: %q", caPEM)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return server, token, cert
}

func TestWarnsAboutShadowingMultusConfig(t *testing.T) {
	h := newHost(t)
	h.write(filepath.Join(h.conf, "00-multus.conf"), `{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus"}`)
	h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
	r := start(t, h.config())
	eventually(t, "plexus config", func() bool { return h.plexusConf() != nil })
	if got := pluginOf(h.plexusConf())["clusterNetwork"]; got != filepath.Join(h.conf, "10-kindnet.conflist") {
		t.Errorf("clusterNetwork %v: Multus's config taken as the primary", got)
	}
	eventually(t, "a warning naming 00-multus.conf", func() bool {
		return strings.Contains(r.logs.String(), "sort before plexus") && strings.Contains(r.logs.String(), "00-multus.conf")
	})
}

// --cni-version as in Multus's thin entrypoint: it must equal the primary's
// cniVersion (else nothing is written and the error names both); with
// --force-cni-version plexus's config gets it regardless, and the primary's
// file is left as it is.
func TestCNIVersionFlag(t *testing.T) {
	h := newHost(t)
	primary := filepath.Join(h.conf, "10-kindnet.conflist")
	h.write(primary, bridgePrimary)
	cfg := h.config()
	cfg.Once, cfg.WaitTimeout, cfg.CNIVersion = true, 300*time.Millisecond, "0.4.0"
	err := New(cfg, discard).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), `--cni-version "0.4.0": primary config `+primary+` has cniVersion "1.0.0"`) {
		t.Fatalf("mismatch: %v", err)
	}
	if h.plexusConf() != nil {
		t.Fatal("plexus config written although --cni-version does not match the primary")
	}
	cfg.CNIVersion = "1.0.0"
	if err := New(cfg, discard).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := h.plexusConf()["cniVersion"]; v != "1.0.0" {
		t.Fatalf("cniVersion %v", v)
	}
	cfg.CNIVersion, cfg.ForceCNIVersion = "0.4.0", true
	if err := New(cfg, discard).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := h.plexusConf()["cniVersion"]; v != "0.4.0" {
		t.Fatalf("forced cniVersion %v", v)
	}
	if readString(t, primary) != bridgePrimary {
		t.Fatal("--force-cni-version changed the primary's file")
	}
}

// --rename-conf-file as in Multus: the primary's file is renamed to
// <name>.old once plexus's config is written, so the runtime can no longer
// load it; plexus's clusterNetwork follows the file. A primary written
// again (its plugin restarted) is followed and renamed again. On exit the
// primary gets its name back before plexus's config goes.
func TestRenameConfFile(t *testing.T) {
	h := newHost(t)
	primary := filepath.Join(h.conf, "10-kindnet.conflist")
	h.write(primary, bridgePrimary)
	cfg := h.config()
	cfg.RenameConfFile = true
	r := start(t, cfg)
	// The config points at the new name before the old one goes.
	eventually(t, "plexus config on the renamed primary, and the primary's name gone", func() bool {
		c := h.plexusConf()
		_, err := os.Stat(primary)
		return c != nil && pluginOf(c)["clusterNetwork"] == primary+".old" && os.IsNotExist(err)
	})
	if readString(t, primary+".old") != bridgePrimary {
		t.Fatal("renamed primary has other content")
	}
	r.logged(t, "renamed the primary config", primary+".old")

	// kindnet restarts and writes its config again, with a new capability.
	again := strings.Replace(bridgePrimary, `"bandwidth":true`, `"bandwidth":true,"mac":true`, 1)
	h.write(primary, again)
	eventually(t, "plexus config following the rewritten primary", func() bool {
		c := h.plexusConf()
		if c == nil {
			return false
		}
		caps, _ := pluginOf(c)["capabilities"].(map[string]any)
		_, err := os.Stat(primary)
		return caps["mac"] == true && os.IsNotExist(err) && pluginOf(c)["clusterNetwork"] == primary+".old"
	})
	if readString(t, primary+".old") != again {
		t.Fatal("rewritten primary not renamed over the .old file")
	}
	if strings.Contains(r.logs.String(), "vanished") {
		t.Fatalf("the renamed primary was taken for a vanished one:\n%s", r.logs)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if h.plexusConf() != nil {
		t.Fatal("plexus config left after exit")
	}
	if readString(t, primary) != again {
		t.Fatal("primary not restored on exit")
	}
	if _, err := os.Stat(primary + ".old"); !os.IsNotExist(err) {
		t.Fatalf("renamed copy left after restoring: %v", err)
	}
}

// A plexus-install restarted with its config kept (--keep-config, or killed)
// finds the primary it renamed through its own config.
func TestRenameConfFileAfterRestart(t *testing.T) {
	h := newHost(t)
	primary := filepath.Join(h.conf, "10-kindnet.conflist")
	h.write(primary, bridgePrimary)
	cfg := h.config()
	cfg.RenameConfFile, cfg.KeepConfig, cfg.Once = true, true, true
	for run := 0; run < 2; run++ {
		if err := New(cfg, discard).Run(context.Background()); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if c := h.plexusConf(); c == nil || pluginOf(c)["clusterNetwork"] != primary+".old" {
			t.Fatalf("run %d: config %v", run, c)
		}
	}
}

// The primary is looked for in --primary-config-dir (Multus's
// --multus-autoconfig-dir); plexus's config still goes to --cni-conf-dir.
// With --override-network-name the conflist takes the primary's name.
func TestPrimaryConfigDir(t *testing.T) {
	h := newHost(t)
	auto := filepath.Join(h.root, "autoconf")
	os.MkdirAll(auto, 0o755)
	h.write(filepath.Join(auto, "10-kindnet.conflist"), bridgePrimary)
	h.write(filepath.Join(h.conf, "05-decoy.conf"), `{"cniVersion":"1.0.0","name":"decoy","type":"bridge"}`)
	cfg := h.config()
	cfg.Once, cfg.PrimaryConfigDir, cfg.OverrideNetworkName = true, auto, true
	if err := New(cfg, discard).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := h.plexusConf()
	if p := pluginOf(c); p["clusterNetwork"] != filepath.Join(auto, "10-kindnet.conflist") || p["confDir"] != h.conf {
		t.Fatalf("plugin %v", p)
	}
	if c["name"] != "kindnet" {
		t.Fatalf("--override-network-name: name %v", c["name"])
	}
}

// --additional-bin-dir: plexus's binDir (Multus's meaning) and a second
// place the binaries go; a binary left in --cni-bin-dir as someone else's
// is not put there either, where it would shadow that one for plexus.
func TestAdditionalBinDir(t *testing.T) {
	h := newHost(t)
	h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
	writeExec(t, h.bin, "sriov", "#!/bin/sh\necho upstream sriov-cni\n")
	extra := filepath.Join(h.root, "var/lib/cni/bin")
	cfg := h.config()
	cfg.Once, cfg.AdditionalBinDir = true, extra
	var logs syncBuffer
	if err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil))).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := pluginOf(h.plexusConf())["binDir"]; got != extra {
		t.Fatalf("binDir %v, want %s", got, extra)
	}
	if readString(t, filepath.Join(extra, "plexus")) != readString(t, filepath.Join(h.src, "plexus")) {
		t.Fatal("plexus not installed into --additional-bin-dir")
	}
	if _, err := os.Stat(filepath.Join(extra, "sriov")); !os.IsNotExist(err) {
		t.Fatalf("sriov put into --additional-bin-dir although left in --cni-bin-dir: %v", err)
	}
	if l := linesWith(logs.String(), filepath.Join(extra, "sriov"), "--force-binaries"); len(l) != 1 {
		t.Fatalf("want one line saying sriov was not put into %s:\n%s", extra, logs.String())
	}
}

// --type=thin (install_multus): install the binaries and exit.
func TestBinariesOnly(t *testing.T) {
	h := newHost(t)
	cfg := h.config()
	cfg.BinariesOnly = true
	if err := New(cfg, discard).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(h.bin, "plexus")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.Kubeconfig); !os.IsNotExist(err) {
		t.Fatalf("binaries only wrote a kubeconfig: %v", err)
	}
}

// --skip-config-watch: write once, then wait for the signal without
// polling; the config is removed on exit as usual.
func TestSkipConfigWatch(t *testing.T) {
	h := newHost(t)
	h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
	cfg := h.config()
	cfg.SkipWatch = true
	r := start(t, cfg)
	r.logged(t, "not watching")
	if h.plexusConf() == nil {
		t.Fatal("no plexus config")
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if h.plexusConf() != nil {
		t.Fatal("plexus config left after exit")
	}
}
