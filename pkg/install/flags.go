package install

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Defaults a kubeadm or kind node expects.
const (
	DefaultCNIBinDir         = "/opt/cni/bin"
	DefaultCNIConfDir        = "/etc/cni/net.d"
	DefaultCNIDir            = "/var/lib/cni/plexus"
	DefaultConfName          = "00-plexus.conflist"
	DefaultKubeconfig        = "/etc/cni/net.d/plexus.d/plexus.kubeconfig"
	DefaultServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	DefaultBinaries          = "plexus,sriov"
	DefaultWaitTimeout       = 10 * time.Minute
)

// ParseFlags parses plexus-install's command line into a Config and the
// log level. Every value has a flag; see docs/configuration.md.
func ParseFlags(args []string, stderr io.Writer) (Config, slog.Level, error) {
	fs := flag.NewFlagSet("plexus-install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg                                    Config
		binaries, caps, overrides, level, kube string
		noKube                                 bool
	)
	fs.StringVar(&cfg.SourceDir, "source-dir", executableDir(), "directory holding the binaries to install")
	fs.StringVar(&binaries, "binaries", DefaultBinaries, "comma-separated binaries to copy from --source-dir into --cni-bin-dir (empty: none)")
	fs.StringVar(&cfg.CNIBinDir, "cni-bin-dir", DefaultCNIBinDir, "host CNI bin dir: where binaries go; plexus's binDir")
	fs.StringVar(&cfg.CNIConfDir, "cni-conf-dir", DefaultCNIConfDir, "host CNI conf dir: where the primary config is found and plexus's config written; plexus's confDir")
	fs.StringVar(&cfg.CNIDir, "cni-dir", DefaultCNIDir, "plexus's cache dir (cniDir)")
	fs.StringVar(&cfg.ConfName, "config-name", DefaultConfName, "file name of plexus's own config in --cni-conf-dir (must sort first)")
	fs.StringVar(&cfg.PrimaryConfig, "primary-config", "", "primary network config: a file name in --cni-conf-dir or an absolute path (default: the lexically first .conflist/.conf/.json that is not plexus's own)")
	fs.StringVar(&kube, "kubeconfig", DefaultKubeconfig, "kubeconfig to write for plexus from the service account")
	fs.BoolVar(&noKube, "clusterless", false, "write no kubeconfig: plexus runs without the Kubernetes API (set networksDir with --config-overrides)")
	fs.StringVar(&cfg.ServiceAccountDir, "service-account-dir", DefaultServiceAccountDir, "directory holding the service account's token and ca.crt")
	fs.StringVar(&cfg.APIServer, "api-server", APIServerFromEnv(), "API server URL written into the kubeconfig (default from KUBERNETES_SERVICE_HOST/PORT)")
	fs.StringVar(&cfg.ReadinessIndicatorFile, "readiness-indicator-file", "", "wait for this file before writing plexus's config; plexus waits for it too (readinessindicatorfile)")
	fs.StringVar(&caps, "capabilities", "", "comma-separated capabilities plexus declares besides the primary's")
	fs.StringVar(&overrides, "config-overrides", "", `JSON object of further plexus config keys, e.g. '{"namespaceIsolation":true}'`)
	fs.DurationVar(&cfg.WaitTimeout, "wait-timeout", DefaultWaitTimeout, "give up (exit 1) when no usable primary config appears within this time (0: wait forever)")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", time.Second, "how often to check the primary config and the service account for changes")
	fs.BoolVar(&cfg.KeepConfig, "keep-config", false, "leave plexus's config in place on exit")
	fs.BoolVar(&cfg.Once, "once", false, "install, write the config, and exit instead of watching")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return Config{}, 0, err
	}
	if fs.NArg() > 0 {
		return Config{}, 0, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return Config{}, 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	cfg.Binaries = splitList(binaries)
	cfg.Capabilities = splitList(caps)
	if !noKube {
		cfg.Kubeconfig = kube
	}
	var err error
	if cfg.Overrides, err = ParseOverrides(overrides); err != nil {
		return Config{}, 0, err
	}
	return cfg, lv, cfg.Validate()
}

// Validate checks the values that have to be absolute paths or names.
func (c Config) Validate() error {
	for _, d := range []struct{ flag, val string }{
		{"--cni-bin-dir", c.CNIBinDir}, {"--cni-conf-dir", c.CNIConfDir}, {"--cni-dir", c.CNIDir},
	} {
		if !filepath.IsAbs(d.val) {
			return fmt.Errorf("%s %q: must be an absolute path", d.flag, d.val)
		}
	}
	if c.Kubeconfig != "" && !filepath.IsAbs(c.Kubeconfig) {
		return fmt.Errorf("--kubeconfig %q: must be an absolute path", c.Kubeconfig)
	}
	if c.ReadinessIndicatorFile != "" && !filepath.IsAbs(c.ReadinessIndicatorFile) {
		return fmt.Errorf("--readiness-indicator-file %q: must be an absolute path", c.ReadinessIndicatorFile)
	}
	if c.ConfName == "" || strings.ContainsRune(c.ConfName, '/') || !isConfigFile(c.ConfName) {
		return fmt.Errorf("--config-name %q: want a file name ending in .conflist", c.ConfName)
	}
	if len(c.Binaries) > 0 && c.SourceDir == "" {
		return fmt.Errorf("--source-dir is empty but --binaries lists %v", c.Binaries)
	}
	for _, b := range c.Binaries {
		if strings.ContainsRune(b, '/') {
			return fmt.Errorf("--binaries: %q is not a file name", b)
		}
	}
	if c.PollInterval <= 0 {
		return fmt.Errorf("--poll-interval %s: must be positive", c.PollInterval)
	}
	if c.WaitTimeout < 0 {
		return fmt.Errorf("--wait-timeout %s: must not be negative", c.WaitTimeout)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func executableDir() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Dir(exe)
}

// Main is plexus-install's main: it returns the process exit code.
func Main(ctx context.Context, args []string, stderr io.Writer) int {
	cfg, level, err := ParseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "plexus-install:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := New(cfg, log).Run(ctx); err != nil {
		log.Error("plexus-install failed", "error", err.Error())
		return 1
	}
	return 0
}
