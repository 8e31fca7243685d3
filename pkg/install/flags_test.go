package install

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsDefaults(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	cfg, level, err := ParseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CNIBinDir != "/opt/cni/bin" || cfg.CNIConfDir != "/etc/cni/net.d" || cfg.CNIDir != "/var/lib/cni/plexus" ||
		cfg.ConfName != "00-plexus.conflist" || cfg.Kubeconfig != "/etc/cni/net.d/plexus.d/plexus.kubeconfig" ||
		cfg.ServiceAccountDir != "/var/run/secrets/kubernetes.io/serviceaccount" || cfg.APIServer != "https://[fd00::1]:443" ||
		strings.Join(cfg.Binaries, ",") != "plexus,sriov" || cfg.WaitTimeout != 10*time.Minute || cfg.PollInterval != time.Second ||
		cfg.KeepConfig || cfg.Once || level.String() != "INFO" {
		t.Errorf("defaults: %+v level %v", cfg, level)
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		check   func(Config) bool
		wantErr string
	}{
		{"clusterless", []string{"--clusterless"}, func(c Config) bool { return c.Kubeconfig == "" }, ""},
		{"lists", []string{"--binaries=plexus", "--capabilities=mac, ips"}, func(c Config) bool {
			return strings.Join(c.Binaries, ",") == "plexus" && strings.Join(c.Capabilities, ",") == "mac,ips"
		}, ""},
		{"no binaries", []string{"--binaries="}, func(c Config) bool { return len(c.Binaries) == 0 }, ""},
		{"overrides", []string{`--config-overrides={"multusNamespace":"net"}`}, func(c Config) bool { return c.Overrides["multusNamespace"] == "net" }, ""},
		{"relative dir", []string{"--cni-conf-dir=etc"}, nil, `--cni-conf-dir "etc": must be an absolute path`},
		{"relative kubeconfig", []string{"--kubeconfig=k"}, nil, `--kubeconfig "k": must be an absolute path`},
		{"relative readiness", []string{"--readiness-indicator-file=r"}, nil, `--readiness-indicator-file "r": must be an absolute path`},
		{"bad config name", []string{"--config-name=plexus"}, nil, `--config-name "plexus"`},
		{"binary path", []string{"--binaries=../x"}, nil, `--binaries: "../x" is not a file name`},
		{"bad level", []string{"--log-level=loud"}, nil, `--log-level "loud"`},
		{"bad poll", []string{"--poll-interval=0s"}, nil, "--poll-interval 0s: must be positive"},
		{"negative timeout", []string{"--wait-timeout=-1s"}, nil, "--wait-timeout -1s"},
		{"stray arg", []string{"extra"}, nil, `unexpected argument "extra"`},
		{"unknown flag", []string{"--nope"}, nil, "flag provided but not defined: -nope"},
		{"override unknown", []string{`--config-overrides={"namespaceIsolaton":true}`}, nil, `--config-overrides: plexus config: unknown key "namespaceIsolaton"`},
		{"override wrong type", []string{`--config-overrides={"globalNamespaces":["a"]}`}, nil, `--config-overrides: plexus config: key "globalNamespaces": want`},
		{"override bad value", []string{`--config-overrides={"logLevel":"loud"}`}, nil, `key "logLevel": "loud" is not one of`},
		{"override alias of managed", []string{`--config-overrides={"readinessIndicatorFile":"/r"}`}, nil, `use --readiness-indicator-file`},
		{"override managed", []string{`--config-overrides={"binDir":"/x"}`}, nil, `key "binDir" is set by plexus-install; use --cni-bin-dir`},
		{"override type", []string{`--config-overrides={"type":"multus"}`}, nil, `key "type" is set by plexus-install and cannot be overridden`},
		{"override not object", []string{`--config-overrides=[1]`}, nil, "--config-overrides: not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := ParseFlags(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(cfg) {
				t.Errorf("config %+v", cfg)
			}
		})
	}
}

func TestRenderKubeconfigNeedsServer(t *testing.T) {
	_, err := RenderKubeconfig("", ServiceAccount{Token: []byte("t"), CA: []byte("c")})
	if err == nil || !strings.Contains(err.Error(), "--api-server") {
		t.Fatalf("error %v, want it to name --api-server", err)
	}
}
