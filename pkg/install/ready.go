package install

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultReadyFile is where plexus-install keeps its readiness marker: a
// path inside the container (an emptyDir in deployments/plexus.yaml), so a
// new pod starts not ready whatever an earlier pod left on the host.
const DefaultReadyFile = "/run/plexus-install/ready"

// readyMarker is the readiness marker's content: which config this
// plexus-install wrote (or took over) and what it held. The marker alone
// says only what the installer believed; Check compares it with the host.
type readyMarker struct {
	Config string `json:"config"` // plexus's config on the host
	SHA256 string `json:"sha256"` // of the config's bytes as written
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// markReady records that data, a config plexus's own loader accepted, is in
// place at ConfPath. It writes the marker only when it would change: after
// the first sync, after a rewrite, or when the marker went missing.
func (in *Installer) markReady(data []byte) {
	if in.cfg.ReadyFile == "" || in.cfg.Once {
		return // --once exits at once: nothing would keep the marker true
	}
	m := readyMarker{Config: in.ConfPath(), SHA256: sha256Hex(data)}
	b, _ := json.Marshal(m)
	b = append(b, '\n')
	if sameContent(in.cfg.ReadyFile, b) {
		return
	}
	err := os.MkdirAll(filepath.Dir(in.cfg.ReadyFile), 0o755)
	if err == nil {
		err = writeFileAtomic(in.cfg.ReadyFile, b, 0o644)
	}
	if err != nil {
		// Installing worked; only the probe will say not ready. Not fatal:
		// pods attach whether or not the marker exists.
		in.logOnce("readiness marker not written: the readiness probe (plexus-install --check) fails until it is", fmt.Errorf("--ready-file %s: %w", in.cfg.ReadyFile, err))
		return
	}
	in.log.Debug("marked ready", "path", in.cfg.ReadyFile, "config", m.Config)
}

// markNotReady removes the readiness marker, before plexus's config is
// removed (the probe must never see ready without a config).
func (in *Installer) markNotReady(why string) {
	if in.cfg.ReadyFile == "" {
		return
	}
	if err := os.Remove(in.cfg.ReadyFile); err == nil {
		in.log.Info("marked not ready", "path", in.cfg.ReadyFile, "reason", why)
	} else if !errors.Is(err, os.ErrNotExist) {
		in.log.Warn("readiness marker not removed", "path", in.cfg.ReadyFile, "error", err.Error())
	}
}

// Check is plexus-install --check, the DaemonSet's readiness probe. It
// returns nil when plexus is installed on the host as this pod's
// plexus-install left it: the marker in readyFile exists (this pod's
// installer wrote or took over the config), the config on the host is
// byte-for-byte what it wrote, plexus's own loader accepts it, the primary
// it names is there and valid, and no other config sorts before it (the
// runtime loads the first one). It reads three small files and a
// directory listing, and talks to nothing.
func Check(readyFile string) (string, error) {
	if readyFile == "" {
		return "", fmt.Errorf("--check needs --ready-file")
	}
	raw, err := os.ReadFile(readyFile)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("plexus-install has not installed plexus's config (yet): no readiness marker %s", readyFile)
	}
	if err != nil {
		return "", fmt.Errorf("readiness marker: %w", err)
	}
	var m readyMarker
	if err := json.Unmarshal(raw, &m); err != nil || m.Config == "" || m.SHA256 == "" {
		return "", fmt.Errorf("readiness marker %s: not plexus-install's (want {\"config\":...,\"sha256\":...})", readyFile)
	}
	conf, err := os.ReadFile(m.Config)
	if err != nil {
		return "", fmt.Errorf("plexus config: %w", err)
	}
	if sha256Hex(conf) != m.SHA256 {
		return "", fmt.Errorf("plexus config %s: not what plexus-install wrote (changed on the host; plexus-install rewrites it at its next poll)", m.Config)
	}
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(conf, &list); err != nil || len(list.Plugins) != 1 {
		return "", fmt.Errorf("plexus config %s: not a conflist with one plugin", m.Config)
	}
	plugin := map[string]any{"cniVersion": list.CNIVersion, "name": list.Name}
	for k, v := range list.Plugins[0] {
		plugin[k] = v
	}
	if err := checkWithPlexus(plugin); err != nil {
		return "", fmt.Errorf("plexus config %s: %w", m.Config, err)
	}
	primary, _ := plugin["clusterNetwork"].(string)
	if !filepath.IsAbs(primary) {
		return "", fmt.Errorf("plexus config %s: clusterNetwork %q is not the path plexus-install writes", m.Config, primary)
	}
	if _, err := ReadPrimary(primary); err != nil {
		return "", fmt.Errorf("plexus config %s: clusterNetwork: %w", m.Config, err)
	}
	if sh := ShadowingConfigs(filepath.Dir(m.Config), filepath.Base(m.Config)); len(sh) > 0 {
		return "", fmt.Errorf("plexus config %s: the runtime loads %s instead (it sorts first); remove it", m.Config, strings.Join(sh, ", "))
	}
	msg := fmt.Sprintf("plexus config %s installed, primary %s", m.Config, primary)
	// The daemon deployment: plexusd's own readinessProbe (/readyz) says
	// whether it answers; plexus works either way (the shim falls back to
	// plexus-thin), so the socket is reported, not probed.
	if sock, _ := plugin["daemonSocket"].(string); sock != "" {
		msg += ", plexusd socket " + sock
	}
	return msg, nil
}
