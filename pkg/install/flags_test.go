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
		strings.Join(cfg.Binaries, ",") != "plexus,plexus-thin,sriov,passthru" || cfg.WaitTimeout != 10*time.Minute || cfg.PollInterval != time.Second ||
		!cfg.KeepConfig || cfg.ReadyFile != "/run/plexus-install/ready" || cfg.Once || level.String() != "INFO" ||
		cfg.DaemonSocket != "" || cfg.DaemonTimeout != 0 {
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
		{"lists", []string{"--binaries=plexus,plexus-thin", "--capabilities=mac, ips"}, func(c Config) bool {
			return strings.Join(c.Binaries, ",") == "plexus,plexus-thin" && strings.Join(c.Capabilities, ",") == "mac,ips"
		}, ""},
		{"plexus without plexus-thin", []string{"--binaries=plexus,sriov"}, nil, "--binaries=plexus,sriov: lists plexus but not plexus-thin"},
		{"api server", []string{"--api-server=https://192.0.2.10:6443"}, func(c Config) bool { return c.APIServer == "https://192.0.2.10:6443" }, ""},
		{"api server without scheme", []string{"--api-server=192.0.2.10:6443"}, nil, `--api-server "192.0.2.10:6443": want https://<host>:<port>`},
		{"api server over http", []string{"--api-server=http://192.0.2.10:6443"}, nil, `want https://<host>:<port>`},
		{"plexus-thin alone", []string{"--binaries=plexus-thin"}, func(c Config) bool { return strings.Join(c.Binaries, ",") == "plexus-thin" }, ""},
		{"daemon socket", []string{"--daemon-socket=/run/plexus/plexusd.sock"}, func(c Config) bool {
			return c.DaemonSocket == "/run/plexus/plexusd.sock" && c.DaemonTimeout == 0
		}, ""},
		{"daemon socket and timeout", []string{"--daemon-socket=/run/p.sock", "--daemon-timeout=500"}, func(c Config) bool {
			return c.DaemonSocket == "/run/p.sock" && c.DaemonTimeout == 500
		}, ""},
		{"relative daemon socket", []string{"--daemon-socket=plexusd.sock"}, nil, `--daemon-socket "plexusd.sock": must be an absolute path`},
		{"negative daemon timeout", []string{"--daemon-socket=/run/p.sock", "--daemon-timeout=-1"}, nil, "--daemon-timeout -1: must not be negative"},
		{"daemon timeout alone", []string{"--daemon-timeout=500"}, nil, "--daemon-timeout needs --daemon-socket"},
		{"daemon timeout not ms", []string{"--daemon-socket=/run/p.sock", "--daemon-timeout=2s"}, nil, `invalid value "2s" for flag -daemon-timeout`},
		{"override daemon socket", []string{`--config-overrides={"daemonSocket":"/run/p.sock"}`}, nil, `key "daemonSocket" is set by plexus-install; use --daemon-socket`},
		{"override daemon timeout", []string{`--config-overrides={"daemonTimeout":5}`}, nil, `key "daemonTimeout" is set by plexus-install; use --daemon-timeout`},
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
		// Multus installer flags (thin_entrypoint, install_multus).
		{"cni-version", []string{"--cni-version=0.4.0"}, func(c Config) bool { return c.CNIVersion == "0.4.0" && !c.ForceCNIVersion }, ""},
		{"cni-version unsupported", []string{"--cni-version=9.9.9"}, nil, `--cni-version "9.9.9": plexus config: key "cniVersion"`},
		{"force-cni-version alone", []string{"--force-cni-version"}, nil, "--force-cni-version needs --cni-version"},
		{"rename-conf-file", []string{"--rename-conf-file"}, func(c Config) bool { return c.RenameConfFile }, ""},
		{"autoconfig dir", []string{"--multus-autoconfig-dir=/host/etc/cni/net.d"}, func(c Config) bool { return c.PrimaryConfigDir == "/host/etc/cni/net.d" }, ""},
		{"primary config dir", []string{"--primary-config-dir=/p"}, func(c Config) bool { return c.PrimaryConfigDir == "/p" }, ""},
		{"autoconfig dir default", nil, func(c Config) bool { return c.PrimaryConfigDir == c.CNIConfDir }, ""},
		{"relative autoconfig dir", []string{"--multus-autoconfig-dir=net.d"}, nil, `--primary-config-dir "net.d": must be an absolute path`},
		{"both names of one flag", []string{"--primary-config-dir=/a", "--multus-autoconfig-dir=/b"}, nil, "--primary-config-dir and --multus-autoconfig-dir are the same flag"},
		{"master cni file name", []string{"--multus-master-cni-file-name=10-calico.conflist"}, func(c Config) bool { return c.PrimaryConfig == "10-calico.conflist" }, ""},
		{"kubeconfig file host", []string{"--multus-kubeconfig-file-host=/k/kc"}, func(c Config) bool { return c.Kubeconfig == "/k/kc" }, ""},
		{"additional-bin-dir", []string{"--additional-bin-dir=/var/lib/cni/bin"}, func(c Config) bool { return c.AdditionalBinDir == "/var/lib/cni/bin" }, ""},
		{"relative additional-bin-dir", []string{"--additional-bin-dir=bin"}, nil, `--additional-bin-dir "bin": must be an absolute path`},
		{"dest-dir", []string{"-d", "/host/opt/cni/bin"}, func(c Config) bool { return c.CNIBinDir == "/host/opt/cni/bin" }, ""},
		{"type thin", []string{"-t", "thin"}, func(c Config) bool { return c.BinariesOnly }, ""},
		{"type thick", []string{"--type=thick"}, nil, `--type "thick": not supported: plexus's daemon deployment runs plexus-install without --type and with --daemon-socket`},
		{"force-binaries", []string{"--force-binaries"}, func(c Config) bool { return c.ForceBinaries }, ""},
		{"skip binary copy", []string{"--skip-multus-binary-copy"}, func(c Config) bool { return len(c.Binaries) == 0 }, ""},
		{"cleanup on exit", []string{"--cleanup-config-on-exit"}, func(c Config) bool { return !c.KeepConfig }, ""},
		{"no cleanup on exit", []string{"--cleanup-config-on-exit=false"}, func(c Config) bool { return c.KeepConfig }, ""},
		{"keep-config opt out", []string{"--keep-config=false"}, func(c Config) bool { return !c.KeepConfig }, ""},
		{"ready file", []string{"--ready-file=/r/ready"}, func(c Config) bool { return c.ReadyFile == "/r/ready" }, ""},
		{"no ready file", []string{"--ready-file="}, func(c Config) bool { return c.ReadyFile == "" }, ""},
		{"relative ready file", []string{"--ready-file=ready"}, nil, `--ready-file "ready": must be an absolute path`},
		{"cleanup contradicts keep", []string{"--cleanup-config-on-exit", "--keep-config"}, nil, "--cleanup-config-on-exit and --keep-config contradict"},
		{"skip config watch", []string{"--skip-config-watch"}, func(c Config) bool { return c.SkipWatch }, ""},
		{"override network name", []string{"--override-network-name"}, func(c Config) bool { return c.OverrideNetworkName }, ""},
		{"multus conf file auto", []string{"--multus-conf-file=auto"}, func(c Config) bool { return true }, ""},
		{"multus conf file path", []string{"--multus-conf-file=/tmp/x.conf"}, nil, `--multus-conf-file "/tmp/x.conf": not supported`},
		{"multus bin file", []string{"--multus-bin-file=/usr/src/multus-cni/bin/multus"}, nil, "--multus-bin-file: not supported; use --source-dir"},
		{"skip tls verify", []string{"--skip-tls-verify"}, nil, "--skip-tls-verify: not supported"},
		{"config keys as flags", []string{"--namespace-isolation", "--global-namespaces=a,b", "--multus-log-level=debug", "--multus-log-file=/var/log/p.log", "--multus-log-to-stderr=false"}, func(c Config) bool {
			return c.Overrides["namespaceIsolation"] == true && c.Overrides["globalNamespaces"] == "a,b" && c.Overrides["logLevel"] == "debug" &&
				c.Overrides["logFile"] == "/var/log/p.log" && c.Overrides["logToStderr"] == false
		}, ""},
		{"config key flag and override", []string{"--namespace-isolation", `--config-overrides={"namespaceIsolation":false}`}, nil, `--namespace-isolation and --config-overrides both set key "namespaceIsolation"`},
		{"bad multus log level", []string{"--multus-log-level=loud"}, nil, `--multus-log-level: plexus config: key "logLevel": "loud"`},
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
