// Package install is plexus-install, the DaemonSet entrypoint that puts
// plexus on a node and keeps it working: it installs the CNI binaries (the
// plexus shim, plexus-thin, sriov, passthru) into the host's CNI bin dir, writes a kubeconfig from the pod's
// service account (rewritten when the token rotates), and writes plexus's
// own conflist around the node's primary network config (rewritten when the
// primary changes, removed on exit).
package install

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/plexus-cni/plexus/pkg/atomicfile"
)

// Config is every value plexus-install acts on; Flags fills it.
type Config struct {
	SourceDir              string   // where the binaries to install are
	Binaries               []string // names to install from SourceDir
	ForceBinaries          bool     // replace binaries plexus-install did not install
	CNIBinDir              string   // host CNI bin dir (also plexus's binDir)
	CNIConfDir             string   // host CNI conf dir (also plexus's confDir)
	CNIDir                 string   // plexus's cache dir (cniDir)
	ConfName               string   // plexus's own config file name
	PrimaryConfig          string   // primary config name or path; "" = lexically first
	Kubeconfig             string   // kubeconfig to write; "" = clusterless, none
	ServiceAccountDir      string   // the pod's mounted service account
	APIServer              string   // API server URL written into the kubeconfig
	ReadinessIndicatorFile string   // wait for it; also passed to plexus
	Capabilities           []string // plexus's own capabilities
	Overrides              map[string]any
	WaitTimeout            time.Duration // 0 = wait forever
	PollInterval           time.Duration
	KeepConfig             bool   // leave plexus's config in place on exit
	ReadyFile              string // readiness marker (Check); "" = none
	DaemonSocket           string // plexusd's socket, plexus's "daemonSocket"; "" = thin deployment
	DaemonTimeout          int    // ms, plexus's "daemonTimeout"; 0 = plexus's default
	Once                   bool   // install, write, and exit instead of watching

	// Multus installer equivalents (docs/migrating-from-multus.md, "plexus-install flags").
	PrimaryConfigDir    string // where the primary is looked for; "" = CNIConfDir
	AdditionalBinDir    string // binaries go here too; plexus's binDir
	CNIVersion          string // must equal the primary's cniVersion ("" = any)
	ForceCNIVersion     bool   // write CNIVersion whatever the primary's
	RenameConfFile      bool   // rename the primary's file to <name>.old
	OverrideNetworkName bool   // plexus's conflist takes the primary's name
	SkipWatch           bool   // write once, then wait for the signal without polling
	BinariesOnly        bool   // install binaries and exit (install_multus --type=thin)
}

// Installer runs one Config; it remembers what it wrote to rewrite only on change.
type Installer struct {
	cfg     Config
	log     *slog.Logger
	sa      ServiceAccount
	lastErr string
	removed bool   // plexus's config was removed because the primary vanished
	renamed string // the primary's file as renamed by --rename-conf-file
}

// New returns an Installer for cfg logging to log.
func New(cfg Config, log *slog.Logger) *Installer {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.PrimaryConfigDir == "" {
		cfg.PrimaryConfigDir = cfg.CNIConfDir
	}
	return &Installer{cfg: cfg, log: log}
}

// ConfPath is where plexus's own config is written.
func (in *Installer) ConfPath() string { return filepath.Join(in.cfg.CNIConfDir, in.cfg.ConfName) }

// Run installs, waits for the primary config, writes plexus's config, and
// then (unless Once) keeps kubeconfig and config fresh until ctx ends, when
// it removes plexus's config unless KeepConfig. It returns an error when
// installing fails or nothing usable appears within WaitTimeout.
func (in *Installer) Run(ctx context.Context) error {
	if err := in.installBinaries(); err != nil {
		return err
	}
	if in.cfg.BinariesOnly {
		return nil
	}
	// A marker an earlier container of this pod left (an emptyDir outlives
	// a container restart) is not this run's: ready only once it has synced.
	in.markNotReady("starting")
	if err := in.syncKubeconfig(); err != nil {
		return err
	}
	in.adoptRenamed()
	if err := in.waitForPrimary(ctx); err != nil {
		return err
	}
	if in.cfg.Once {
		return nil
	}
	if in.cfg.SkipWatch {
		in.log.Info("not watching the primary config or the service account (--skip-config-watch); waiting for SIGTERM")
		<-ctx.Done()
	} else {
		in.watch(ctx)
	}
	return in.cleanup()
}

// installBinaries installs into the CNI bin dir and the additional one. A
// binary left in the CNI bin dir as someone else's is not put into the
// additional dir either: plexus looks there first (its binDir) and would
// run it instead of the one the node's owner installed.
func (in *Installer) installBinaries() error {
	order := installOrder(in.cfg.Binaries)
	_, left, err := InstallBinaries(in.log, in.cfg.SourceDir, in.cfg.CNIBinDir, order, in.cfg.ForceBinaries)
	if err != nil {
		return err
	}
	extra := in.cfg.AdditionalBinDir
	if extra == "" || filepath.Clean(extra) == filepath.Clean(in.cfg.CNIBinDir) {
		return nil
	}
	skip := map[string]bool{}
	for _, n := range left {
		skip[n] = true
		in.log.Warn("not installing a binary into --additional-bin-dir: it would shadow the one left in --cni-bin-dir; --force-binaries overrides",
			"path", filepath.Join(extra, n), "left", filepath.Join(in.cfg.CNIBinDir, n))
	}
	var names []string
	for _, n := range order {
		if !skip[n] {
			names = append(names, n)
		}
	}
	_, _, err = InstallBinaries(in.log, in.cfg.SourceDir, extra, names, in.cfg.ForceBinaries)
	return err
}

// installOrder puts each binary after the ones it execs: plexus-thin
// before plexus, so that no ADD finds a new shim without the thin plugin
// it falls back to (the shim execs plexus-thin from beside itself).
// Otherwise the order is the list's.
func installOrder(names []string) []string {
	p, t := slices.Index(names, "plexus"), slices.Index(names, "plexus-thin")
	if p < 0 || t < 0 || p > t {
		return names
	}
	out := slices.Delete(slices.Clone(names), p, p+1)
	return slices.Insert(out, t, "plexus") // t is now just past plexus-thin
}

// binDir is plexus's binDir: --additional-bin-dir when set (Multus's
// meaning of that flag), else --cni-bin-dir.
func (in *Installer) binDir() string {
	if in.cfg.AdditionalBinDir != "" {
		return in.cfg.AdditionalBinDir
	}
	return in.cfg.CNIBinDir
}

// waitForPrimary polls until plexus's config could be written, the
// timeout passes, or ctx ends.
func (in *Installer) waitForPrimary(ctx context.Context) error {
	start := time.Now()
	var deadline <-chan time.Time
	if in.cfg.WaitTimeout > 0 {
		t := time.NewTimer(in.cfg.WaitTimeout)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(in.cfg.PollInterval)
	defer tick.Stop()
	for {
		err := in.syncConf(true)
		if err == nil {
			in.lastErr = "" // a later failure is news, even the same one
			in.log.Info("plexus is installed", "waited", time.Since(start).Round(time.Millisecond).String())
			return nil
		}
		in.logOnce("waiting for the primary network config", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped while waiting for the primary network config: %w", err)
		case <-deadline:
			return fmt.Errorf("nothing usable appeared in %s within %s: %w", in.cfg.CNIConfDir, in.cfg.WaitTimeout, err)
		case <-tick.C:
		}
	}
}

// watch keeps kubeconfig and plexus's config in step with the service
// account and the primary config until ctx ends.
func (in *Installer) watch(ctx context.Context) {
	tick := time.NewTicker(in.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := in.syncKubeconfig(); err != nil {
			in.logOnce("kubeconfig not refreshed", err)
			continue
		}
		if err := in.syncConf(false); err != nil {
			in.logOnce("plexus config not refreshed", err)
			continue
		}
		in.lastErr = ""
	}
}

func (in *Installer) logOnce(msg string, err error) {
	if err.Error() == in.lastErr {
		return
	}
	in.lastErr = err.Error()
	in.log.Warn(msg, "error", err.Error())
}

// syncKubeconfig (re)writes the kubeconfig when the service account's token
// or CA differ from what was written, or the file is gone.
func (in *Installer) syncKubeconfig() error {
	if in.cfg.Kubeconfig == "" {
		return nil
	}
	sa, err := ReadServiceAccount(in.cfg.ServiceAccountDir)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", in.cfg.Kubeconfig, err)
	}
	if sa.Equal(in.sa) {
		if _, err := os.Stat(in.cfg.Kubeconfig); err == nil {
			return nil
		}
	}
	data, err := RenderKubeconfig(in.cfg.APIServer, sa)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(in.cfg.Kubeconfig), 0o755); err != nil {
		return fmt.Errorf("kubeconfig %s: %w", in.cfg.Kubeconfig, err)
	}
	if err := writeFileAtomic(in.cfg.Kubeconfig, data, 0o600); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	reason := "initial"
	switch {
	case in.sa.Token == nil:
	case string(sa.Token) != string(in.sa.Token) && string(sa.CA) != string(in.sa.CA):
		reason = "token and CA changed"
	case string(sa.Token) != string(in.sa.Token):
		reason = "token rotated"
	case string(sa.CA) != string(in.sa.CA):
		reason = "CA changed"
	default:
		reason = "file was missing"
	}
	in.sa = sa
	in.log.Info("wrote kubeconfig", "path", in.cfg.Kubeconfig, "server", in.cfg.APIServer, "reason", reason)
	return nil
}

// syncConf writes plexus's config for the current primary when it differs
// from what is on disk. While waiting (initial) the readiness indicator
// file must exist too. Once running, a primary that vanished removes
// plexus's config (the node has no working network until one returns);
// a primary that became unreadable leaves the last good config in place.
func (in *Installer) syncConf(initial bool) error {
	if initial && in.cfg.ReadinessIndicatorFile != "" {
		if _, err := os.Stat(in.cfg.ReadinessIndicatorFile); err != nil {
			return fmt.Errorf("readiness indicator file: %w", err)
		}
	}
	path, err := in.findPrimary()
	if err != nil {
		if !initial && errors.Is(err, ErrNoPrimary) && !in.removed {
			in.removed = true
			in.markNotReady("primary network config vanished")
			if rerr := os.Remove(in.ConfPath()); rerr == nil {
				in.log.Warn("primary network config vanished: removed plexus config", "path", in.ConfPath())
			}
		}
		return err
	}
	primary, err := ReadPrimary(path)
	if err != nil {
		return err
	}
	version := ""
	if in.cfg.CNIVersion != "" {
		if !in.cfg.ForceCNIVersion && primary.CNIVersion != in.cfg.CNIVersion {
			return fmt.Errorf("--cni-version %q: primary config %s has cniVersion %q; they must match (--force-cni-version writes %q anyway)",
				in.cfg.CNIVersion, path, primary.CNIVersion, in.cfg.CNIVersion)
		}
		version = in.cfg.CNIVersion
	}
	name := ""
	if in.cfg.OverrideNetworkName {
		name = primary.Name
	}
	rename := in.cfg.RenameConfFile && path != in.renamed
	if rename {
		primary.Path = path + renamedSuffix
	}
	data, err := BuildConf(primary, ConfOptions{
		CNIVersion: version, NetworkName: name,
		Kubeconfig: in.cfg.Kubeconfig, ConfDir: in.cfg.CNIConfDir, CNIDir: in.cfg.CNIDir,
		BinDir: in.binDir(), ReadinessIndicatorFile: in.cfg.ReadinessIndicatorFile,
		DaemonSocket: in.cfg.DaemonSocket, DaemonTimeout: in.cfg.DaemonTimeout,
		Capabilities: in.cfg.Capabilities, Overrides: in.cfg.Overrides,
	})
	if err != nil {
		return err
	}
	in.removed = false
	if rename {
		// Both names hold the primary until plexus's config points at the
		// new one: no ADD finds clusterNetwork missing.
		if err := linkOver(path, primary.Path); err != nil {
			return fmt.Errorf("--rename-conf-file: %w", err)
		}
	}
	if !sameContent(in.ConfPath(), data) {
		if err := os.MkdirAll(in.cfg.CNIDir, 0o755); err != nil {
			return fmt.Errorf("cniDir %s: %w", in.cfg.CNIDir, err)
		}
		if err := writeFileAtomic(in.ConfPath(), data, 0o644); err != nil {
			return fmt.Errorf("plexus config: %w", err)
		}
		in.log.Info("wrote plexus config", "path", in.ConfPath(), "primary", primary.Path,
			"cniVersion", primary.CNIVersion, "capabilities", strings.Join(primary.Capabilities, ","))
		if sh := ShadowingConfigs(in.cfg.CNIConfDir, in.cfg.ConfName); len(sh) > 0 {
			in.log.Warn("config files sort before plexus's: the runtime loads the first of them, not plexus; remove them (e.g. Multus's 00-multus.conf)",
				"files", strings.Join(sh, ","))
		}
	}
	if rename {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--rename-conf-file: %w", err)
		}
		if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
			return fmt.Errorf("--rename-conf-file: %w", err)
		}
		in.renamed = primary.Path
		in.log.Info("renamed the primary config so the runtime cannot load it (--rename-conf-file)", "from", path, "to", primary.Path)
	}
	in.markReady(data)
	return nil
}

// renamedSuffix is what --rename-conf-file appends, as Multus does.
const renamedSuffix = ".old"

// findPrimary finds the primary in --primary-config-dir; once the primary
// has been renamed, the renamed file stands in for it until a config
// appears under a loadable name again (its plugin rewrote it).
func (in *Installer) findPrimary() (string, error) {
	path, err := FindPrimary(in.cfg.PrimaryConfigDir, in.cfg.ConfName, in.cfg.PrimaryConfig)
	if errors.Is(err, ErrNoPrimary) && in.renamed != "" {
		if fi, serr := os.Stat(in.renamed); serr == nil && fi.Mode().IsRegular() {
			return in.renamed, nil
		}
	}
	return path, err
}

// adoptRenamed finds, with --rename-conf-file, the primary an earlier run
// renamed: plexus's config (kept, or left by a kill) points at it.
func (in *Installer) adoptRenamed() {
	if !in.cfg.RenameConfFile {
		return
	}
	raw, err := os.ReadFile(in.ConfPath())
	if err != nil {
		return
	}
	var conf struct {
		Plugins []struct {
			ClusterNetwork string `json:"clusterNetwork"`
		} `json:"plugins"`
	}
	if json.Unmarshal(raw, &conf) != nil || len(conf.Plugins) != 1 {
		return
	}
	cn := conf.Plugins[0].ClusterNetwork
	if strings.HasSuffix(cn, renamedSuffix) && filepath.IsAbs(cn) {
		if fi, err := os.Stat(cn); err == nil && fi.Mode().IsRegular() {
			in.renamed = cn
		}
	}
}

// linkOver makes dst another name of src, replacing dst atomically.
func linkOver(src, dst string) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".link-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	tmp.Close()
	if err := os.Remove(name); err != nil {
		return err
	}
	if err := os.Link(src, name); err != nil {
		return fmt.Errorf("link %s: %w", src, err)
	}
	if err := os.Rename(name, dst); err != nil {
		_ = os.Remove(name)
		return fmt.Errorf("rename to %s: %w", dst, err)
	}
	return nil
}

// restorePrimary gives the renamed primary its name back (unless its
// plugin wrote a new one meanwhile) and returns whether the renamed copy
// may go.
func (in *Installer) restorePrimary() bool {
	orig := strings.TrimSuffix(in.renamed, renamedSuffix)
	if _, err := os.Lstat(orig); err == nil {
		return true
	}
	if err := os.Link(in.renamed, orig); err != nil {
		in.log.Warn("could not restore the renamed primary config; rename it back by hand", "path", in.renamed, "to", orig, "error", err.Error())
		return false
	}
	in.log.Info("restored the primary config's name", "path", orig)
	return true
}

// cleanup removes plexus's config on exit unless KeepConfig. Binaries and
// kubeconfig stay: pods already attached still need them for DEL.
func (in *Installer) cleanup() error {
	// Not ready from here on, whether the config stays or goes: this
	// installer no longer keeps it fresh.
	in.markNotReady("exiting")
	if in.cfg.KeepConfig {
		in.log.Info("exiting; keeping plexus config", "path", in.ConfPath())
		return nil
	}
	// The primary first: the runtime must find a config at every moment.
	dropRenamed := in.renamed != "" && in.restorePrimary()
	if err := os.Remove(in.ConfPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove plexus config: %w", err)
	}
	in.log.Info("exiting; removed plexus config", "path", in.ConfPath())
	if dropRenamed {
		if err := os.Remove(in.renamed); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove renamed primary config: %w", err)
		}
	}
	return nil
}
