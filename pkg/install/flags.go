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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plexus-cni/plexus/pkg/apiendpoint"
)

// Defaults a kubeadm or kind node expects.
const (
	DefaultCNIBinDir         = "/opt/cni/bin"
	DefaultCNIConfDir        = "/etc/cni/net.d"
	DefaultCNIDir            = "/var/lib/cni/plexus"
	DefaultConfName          = "00-plexus.conflist"
	DefaultKubeconfig        = "/etc/cni/net.d/plexus.d/plexus.kubeconfig"
	DefaultServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	// DefaultBinaries: the plexus shim, the thin plugin it execs whenever
	// plexusd does not answer (or no daemonSocket is configured), the
	// sriov CNI plugin and passthru (auxiliary chains).
	DefaultBinaries    = "plexus,plexus-thin,sriov,passthru"
	DefaultWaitTimeout = 10 * time.Minute
)

// ParseFlags parses plexus-install's command line into a Config and the
// log level. Every value has a flag; see docs/configuration.md. The Multus
// installer's flags (thin_entrypoint, install_multus) are accepted with
// their meaning where plexus has one (docs/migrating-from-multus.md, "plexus-install flags"); the others are
// refused, naming what to use instead.
func ParseFlags(args []string, stderr io.Writer) (Config, slog.Level, error) {
	cfg, level, _, err := parseFlags(args, stderr)
	return cfg, level, err
}

// multusConfigKeyFlags are thin_entrypoint flags that set a key of the
// generated config; plexus-install sets the same plexus key.
var multusConfigKeyFlags = []struct{ flag, key, usage string }{
	{"namespace-isolation", "namespaceIsolation", "plexus's namespaceIsolation (bool)"},
	{"global-namespaces", "globalNamespaces", "plexus's globalNamespaces (comma-separated)"},
	{"multus-log-to-stderr", "logToStderr", "plexus's logToStderr (bool; default true, as Multus)"},
	{"multus-log-level", "logLevel", "plexus's logLevel"},
	{"multus-log-file", "logFile", "plexus's logFile"},
}

// action is what plexus-install was asked to do besides installing.
type action int

const (
	actInstall action = iota
	actVersion        // --version: print it and exit
	actCheck          // --check: the readiness probe (Check)
)

// parseFlags is ParseFlags that also reports --version and --check.
func parseFlags(args []string, stderr io.Writer) (Config, slog.Level, action, error) {
	fs := flag.NewFlagSet("plexus-install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg                                          Config
		binaries, caps, overrides, level, kube       string
		noKube, version, cleanup, skipCopy, skipTLS  bool
		check                                        bool
		installerType, multusConfFile, multusBinFile string
		multusCNIConfDir                             string
	)
	fs.StringVar(&cfg.SourceDir, "source-dir", executableDir(), "directory holding the binaries to install")
	fs.StringVar(&binaries, "binaries", DefaultBinaries, "comma-separated binaries to copy from --source-dir into --cni-bin-dir (empty: none)")
	fs.BoolVar(&cfg.ForceBinaries, "force-binaries", false, "replace binaries in the bin dirs that plexus-install did not install (e.g. upstream sriov-cni's sriov)")
	fs.StringVar(&cfg.CNIBinDir, "cni-bin-dir", DefaultCNIBinDir, "host CNI bin dir: where binaries go; plexus's binDir unless --additional-bin-dir")
	fs.StringVar(&cfg.AdditionalBinDir, "additional-bin-dir", "", "plexus's binDir (where it looks for delegate plugins first), and a second directory the binaries are installed into")
	fs.StringVar(&cfg.CNIConfDir, "cni-conf-dir", DefaultCNIConfDir, "host CNI conf dir: where plexus's config is written; plexus's confDir")
	fs.StringVar(&cfg.PrimaryConfigDir, "primary-config-dir", "", "where the primary network config is looked for (default --cni-conf-dir)")
	fs.StringVar(&cfg.CNIDir, "cni-dir", DefaultCNIDir, "plexus's cache dir (cniDir)")
	fs.StringVar(&cfg.ConfName, "config-name", DefaultConfName, "file name of plexus's own config in --cni-conf-dir (must sort first)")
	fs.StringVar(&cfg.PrimaryConfig, "primary-config", "", "primary network config: a file name in --primary-config-dir or an absolute path (default: the lexically first .conflist/.conf/.json that is not plexus's own)")
	fs.StringVar(&cfg.CNIVersion, "cni-version", "", "cniVersion of plexus's config; must equal the primary's unless --force-cni-version (default: the primary's)")
	fs.BoolVar(&cfg.ForceCNIVersion, "force-cni-version", false, "write --cni-version even when the primary's differs (the primary's file is not changed)")
	fs.BoolVar(&cfg.RenameConfFile, "rename-conf-file", false, "rename the primary's config file to <name>.old so the runtime cannot load it; restored on exit unless --keep-config")
	fs.BoolVar(&cfg.OverrideNetworkName, "override-network-name", false, "name plexus's config after the primary's network instead of "+NetworkName)
	fs.StringVar(&cfg.DaemonSocket, "daemon-socket", "", "plexusd's unix socket, written as plexus's \"daemonSocket\" (the daemon deployment); empty: the thin deployment, no daemon")
	fs.IntVar(&cfg.DaemonTimeout, "daemon-timeout", 0, "milliseconds the plexus shim waits for plexusd before it runs the thin path itself, written as \"daemonTimeout\" (0: plexus's default, 2000; needs --daemon-socket)")
	fs.StringVar(&kube, "kubeconfig", DefaultKubeconfig, "kubeconfig to write for plexus from the service account")
	fs.BoolVar(&noKube, "clusterless", false, "write no kubeconfig: plexus runs without the Kubernetes API (set networksDir with --config-overrides)")
	fs.StringVar(&cfg.ServiceAccountDir, "service-account-dir", DefaultServiceAccountDir, "directory holding the service account's token and ca.crt")
	fs.StringVar(&cfg.APIServer, "api-server", APIServerFromEnv(), "API server URL https://<host>:<port> written into the kubeconfig (default from KUBERNETES_SERVICE_HOST/PORT; set it where those name an address nothing routes, e.g. without kube-proxy)")
	fs.StringVar(&cfg.ReadinessIndicatorFile, "readiness-indicator-file", "", "wait for this file before writing plexus's config; plexus waits for it too (readinessindicatorfile)")
	fs.StringVar(&caps, "capabilities", "", "comma-separated capabilities plexus declares besides the primary's")
	fs.StringVar(&overrides, "config-overrides", "", `JSON object of further plexus config keys, e.g. '{"namespaceIsolation":true}'`)
	fs.DurationVar(&cfg.WaitTimeout, "wait-timeout", DefaultWaitTimeout, "give up (exit 1) when no usable primary config appears within this time (0: wait forever)")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", time.Second, "how often to check the primary config and the service account for changes")
	fs.BoolVar(&cfg.KeepConfig, "keep-config", true, "leave plexus's config in place on exit, so a rolling update has no window without plexus (pods wait for the new pod instead); false removes it on exit, as an uninstall needs (docs/configuration.md)")
	fs.StringVar(&cfg.ReadyFile, "ready-file", DefaultReadyFile, "readiness marker: written once plexus's config is in place and valid, removed when it goes; read by --check (empty: none)")
	fs.BoolVar(&check, "check", false, "readiness probe: exit 0 when plexus's config that this plexus-install wrote (--ready-file) is on the host, unchanged, valid and loaded first; else print why and exit 1")
	fs.BoolVar(&cfg.Once, "once", false, "install, write the config, and exit instead of watching")
	fs.BoolVar(&cfg.SkipWatch, "skip-config-watch", false, "write the config once, then wait for SIGTERM without refreshing kubeconfig or config")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&version, "version", false, "print the version and exit")

	// Multus installer names of the flags above.
	aliases := [][2]string{
		{"primary-config-dir", "multus-autoconfig-dir"},
		{"primary-config", "multus-master-cni-file-name"},
		{"kubeconfig", "multus-kubeconfig-file-host"},
		{"cni-bin-dir", "dest-dir"},
		{"cni-bin-dir", "d"},
	}
	for _, a := range aliases {
		fs.Var(fs.Lookup(a[0]).Value, a[1], "Multus installer name of --"+a[0])
	}
	fs.BoolVar(&cleanup, "cleanup-config-on-exit", false, "Multus installer flag: true is --keep-config=false")
	fs.BoolVar(&skipCopy, "skip-multus-binary-copy", false, "Multus installer flag: install no binaries (--binaries=)")
	fs.StringVar(&installerType, "type", "", "install_multus flag: thin installs the binaries and exits; thick is not supported")
	fs.Var(fs.Lookup("type").Value, "t", "install_multus name of --type")
	fs.StringVar(&multusConfFile, "multus-conf-file", "auto", "Multus installer flag: only auto (plexus-install always generates plexus's config)")
	fs.StringVar(&multusBinFile, "multus-bin-file", "", "Multus installer flag: not supported (use --source-dir and --binaries)")
	fs.StringVar(&multusCNIConfDir, "multus-cni-conf-dir", "", "Multus installer flag: accepted, no effect (Multus writes it as a key its plugin does not read)")
	fs.BoolVar(&skipTLS, "skip-tls-verify", false, "Multus installer flag: not supported (the kubeconfig always trusts the service account's CA)")
	keyFlags := map[string]*string{}
	for _, k := range multusConfigKeyFlags {
		v := new(string)
		keyFlags[k.flag] = v
		if k.key == "namespaceIsolation" || k.key == "logToStderr" {
			fs.Var(boolString{v}, k.flag, "Multus installer flag: "+k.usage)
		} else {
			fs.StringVar(v, k.flag, "", "Multus installer flag: "+k.usage)
		}
	}

	if err := fs.Parse(args); err != nil {
		return Config{}, 0, actInstall, err
	}
	if version {
		return Config{}, 0, actVersion, nil
	}
	if fs.NArg() > 0 {
		return Config{}, 0, actInstall, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, a := range aliases {
		if set[a[0]] && set[a[1]] {
			return Config{}, 0, actInstall, fmt.Errorf("--%s and --%s are the same flag: give one", a[0], a[1])
		}
	}
	if set["type"] && set["t"] {
		return Config{}, 0, actInstall, fmt.Errorf("--type and -t are the same flag: give one")
	}
	switch installerType {
	case "":
	case "thin":
		cfg.BinariesOnly = true
	case "thick":
		// Multus thick runs delegates inside its daemon; plexusd never
		// does (the shim runs them), and plexus-install, not the daemon,
		// writes the config that names plexusd's socket.
		return Config{}, 0, actInstall, fmt.Errorf("--type %q: not supported: plexus's daemon deployment runs plexus-install without --type and with --daemon-socket (deployments/plexus.yaml), and plexusd beside it", installerType)
	default:
		return Config{}, 0, actInstall, fmt.Errorf("--type %q: want thin", installerType)
	}
	if multusConfFile != "auto" {
		return Config{}, 0, actInstall, fmt.Errorf("--multus-conf-file %q: not supported; plexus-install always generates plexus's config (name it with --config-name, add keys with --config-overrides)", multusConfFile)
	}
	if set["multus-bin-file"] {
		return Config{}, 0, actInstall, fmt.Errorf("--multus-bin-file: not supported; use --source-dir and --binaries")
	}
	if skipTLS {
		return Config{}, 0, actInstall, fmt.Errorf("--skip-tls-verify: not supported; the kubeconfig always trusts the service account's ca.crt")
	}
	if set["cleanup-config-on-exit"] {
		if set["keep-config"] && cleanup == cfg.KeepConfig {
			return Config{}, 0, actInstall, fmt.Errorf("--cleanup-config-on-exit and --keep-config contradict: give one")
		}
		cfg.KeepConfig = !cleanup
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return Config{}, 0, actInstall, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	cfg.Binaries = splitList(binaries)
	if slices.Contains(cfg.Binaries, "plexus") && !slices.Contains(cfg.Binaries, "plexus-thin") {
		return Config{}, 0, actInstall, fmt.Errorf("--binaries=%s: lists plexus but not plexus-thin; the plexus shim execs plexus-thin beside it whenever plexusd does not answer (always without --daemon-socket)", binaries)
	}
	if skipCopy {
		if set["binaries"] && len(cfg.Binaries) > 0 {
			return Config{}, 0, actInstall, fmt.Errorf("--skip-multus-binary-copy and --binaries=%s contradict: give one", binaries)
		}
		cfg.Binaries = nil
	}
	cfg.Capabilities = splitList(caps)
	if !noKube {
		cfg.Kubeconfig = kube
	}
	if cfg.PrimaryConfigDir == "" {
		cfg.PrimaryConfigDir = cfg.CNIConfDir
	}
	var err error
	if cfg.Overrides, err = parseOverridesJSON(overrides); err != nil {
		return Config{}, 0, actInstall, err
	}
	for _, k := range multusConfigKeyFlags {
		if !set[k.flag] {
			continue
		}
		if _, dup := cfg.Overrides[k.key]; dup {
			return Config{}, 0, actInstall, fmt.Errorf("--%s and --config-overrides both set key %q: give one", k.flag, k.key)
		}
		var v any = *keyFlags[k.flag]
		if b, ok := parseBoolString(*keyFlags[k.flag]); ok {
			v = b
		}
		if err := CheckOverrides(map[string]any{k.key: v}); err != nil {
			return Config{}, 0, actInstall, fmt.Errorf("--%s: %w", k.flag, err)
		}
		if cfg.Overrides == nil {
			cfg.Overrides = map[string]any{}
		}
		cfg.Overrides[k.key] = v
	}
	if err := CheckOverrides(cfg.Overrides); err != nil {
		return Config{}, 0, actInstall, fmt.Errorf("--config-overrides: %w", err)
	}
	act := actInstall
	if check {
		act = actCheck
	}
	return cfg, lv, act, cfg.Validate()
}

// boolString is a boolean flag kept as "true"/"false" text, so that a
// flag's being unset and false are told apart.
type boolString struct{ p *string }

func (b boolString) String() string {
	if b.p == nil {
		return ""
	}
	return *b.p
}
func (b boolString) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*b.p = strconv.FormatBool(v)
	return nil
}
func (b boolString) IsBoolFlag() bool { return true }

func parseBoolString(s string) (bool, bool) {
	switch s {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
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
	for _, d := range []struct{ flag, val string }{
		{"--primary-config-dir", c.PrimaryConfigDir}, {"--additional-bin-dir", c.AdditionalBinDir},
	} {
		if d.val != "" && !filepath.IsAbs(d.val) {
			return fmt.Errorf("%s %q: must be an absolute path", d.flag, d.val)
		}
	}
	if c.ForceCNIVersion && c.CNIVersion == "" {
		return fmt.Errorf("--force-cni-version needs --cni-version")
	}
	if c.CNIVersion != "" {
		if err := checkWithPlexus(map[string]any{"cniVersion": c.CNIVersion, "name": NetworkName, "type": "plexus", "clusterNetwork": "/etc/cni/net.d/primary.conflist"}); err != nil {
			return fmt.Errorf("--cni-version %q: %w", c.CNIVersion, err)
		}
	}
	if c.DaemonSocket != "" && !filepath.IsAbs(c.DaemonSocket) {
		return fmt.Errorf("--daemon-socket %q: must be an absolute path", c.DaemonSocket)
	}
	if c.DaemonTimeout < 0 {
		return fmt.Errorf("--daemon-timeout %d: must not be negative", c.DaemonTimeout)
	}
	if c.DaemonTimeout > 0 && c.DaemonSocket == "" {
		return fmt.Errorf("--daemon-timeout needs --daemon-socket (without a daemon there is nothing to wait for)")
	}
	if c.Kubeconfig != "" && !filepath.IsAbs(c.Kubeconfig) {
		return fmt.Errorf("--kubeconfig %q: must be an absolute path", c.Kubeconfig)
	}
	// Empty is refused when the kubeconfig is written (RenderKubeconfig),
	// naming --api-server: the flag may be left out on purpose with
	// --clusterless or --binaries-only.
	if c.Kubeconfig != "" && c.APIServer != "" {
		if err := apiendpoint.CheckURL(c.APIServer); err != nil {
			return err
		}
	}
	if c.ReadyFile != "" && !filepath.IsAbs(c.ReadyFile) {
		return fmt.Errorf("--ready-file %q: must be an absolute path", c.ReadyFile)
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
// version is the build's version (main.version, set with -ldflags -X).
func Main(ctx context.Context, version string, args []string, stdout, stderr io.Writer) int {
	cfg, level, act, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "plexus-install:", err)
		return 2
	}
	switch act {
	case actVersion:
		fmt.Fprintln(stdout, "plexus-install", version)
		return 0
	case actCheck:
		// kubelet keeps the probe's output in the pod's events.
		msg, err := Check(cfg.ReadyFile)
		if err != nil {
			fmt.Fprintln(stdout, "not ready:", err)
			return 1
		}
		fmt.Fprintln(stdout, "ready:", msg)
		return 0
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	log.Info("plexus-install starting", "version", version)
	if err := New(cfg, log).Run(ctx); err != nil {
		log.Error("plexus-install failed", "error", err.Error())
		return 1
	}
	return 0
}
