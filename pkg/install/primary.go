package install

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Primary is the node's primary network config: the one plexus's
// clusterNetwork points at.
type Primary struct {
	Path         string
	Name         string
	CNIVersion   string
	Capabilities []string // every capability a plugin of it declares true
	Raw          []byte
}

// ErrNoPrimary means the conf dir holds no candidate config (yet).
var ErrNoPrimary = errors.New("no primary network config")

// configExtensions are the extensions CNI runtimes (libcni.ConfFiles) load.
var configExtensions = []string{".conflist", ".conf", ".json"}

func isConfigFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	for _, ext := range configExtensions {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// FindPrimary returns the path of the primary config in confDir. With a
// non-empty want (a file name in confDir or an absolute path) that file is
// the primary; otherwise it is the lexically first config file that is not
// plexus's own (ownName), as a runtime would pick it without plexus.
// It returns ErrNoPrimary when there is none.
func FindPrimary(confDir, ownName, want string) (string, error) {
	if want != "" {
		p := want
		if !filepath.IsAbs(p) {
			p = filepath.Join(confDir, want)
		}
		if filepath.Clean(p) == filepath.Join(confDir, ownName) {
			return "", fmt.Errorf("--primary-config %q is plexus's own config", want)
		}
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%w: %s does not exist", ErrNoPrimary, p)
		}
		if err != nil {
			return "", err
		}
		if !fi.Mode().IsRegular() {
			return "", fmt.Errorf("--primary-config %s is not a regular file", p)
		}
		return p, nil
	}
	entries, err := os.ReadDir(confDir)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w: %s does not exist", ErrNoPrimary, confDir)
	}
	if err != nil {
		return "", fmt.Errorf("CNI conf dir: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() == ownName || !isConfigFile(e.Name()) {
			continue
		}
		// Follow symlinks: only regular files count.
		if fi, err := os.Stat(filepath.Join(confDir, e.Name())); err == nil && fi.Mode().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if t := metaPluginType(filepath.Join(confDir, n)); t != "" {
			continue // a meta-plugin (Multus, another plexus) is not a primary
		}
		return filepath.Join(confDir, n), nil
	}
	return "", fmt.Errorf("%w in %s", ErrNoPrimary, confDir)
}

// metaPlugins are plugin types that wrap a primary rather than being one.
var metaPlugins = map[string]bool{"plexus": true, "multus": true, "multus-shim": true}

// metaPluginType returns the type of the config at path when its (first)
// plugin is a meta-plugin, else "".
func metaPluginType(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var probe struct {
		Type    string `json:"type"`
		Plugins []struct {
			Type string `json:"type"`
		} `json:"plugins"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return ""
	}
	t := probe.Type
	if len(probe.Plugins) > 0 {
		t = probe.Plugins[0].Type
	}
	if metaPlugins[t] {
		return t
	}
	return ""
}

// ShadowingConfigs lists the config files in confDir that sort before
// ownName: the runtime loads the first one, so plexus is not used while
// any exists (e.g. Multus's 00-multus.conf left behind).
func ShadowingConfigs(confDir, ownName string) []string {
	entries, err := os.ReadDir(confDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if isConfigFile(e.Name()) && e.Name() < ownName {
			out = append(out, filepath.Join(confDir, e.Name()))
		}
	}
	return out
}

// rawPlugin is the part of a plugin config plexus-install reads.
type rawPlugin struct {
	Type         string          `json:"type"`
	Capabilities map[string]bool `json:"capabilities"`
}

// ReadPrimary reads and checks the config at path: a conflist (name,
// cniVersion, non-empty plugins each with a type) or a single-plugin conf
// (cniVersion, type); errors name the file and the field.
func ReadPrimary(path string) (*Primary, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("primary config: %w", err)
	}
	return ParsePrimary(path, raw)
}

// ParsePrimary is ReadPrimary on bytes already read.
func ParsePrimary(path string, raw []byte) (*Primary, error) {
	var doc struct {
		CNIVersion string          `json:"cniVersion"`
		Name       string          `json:"name"`
		Plugins    json.RawMessage `json:"plugins"`
		rawPlugin
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("primary config %s: invalid JSON: %w", path, err)
	}
	if doc.CNIVersion == "" {
		return nil, fmt.Errorf("primary config %s: field \"cniVersion\" is missing", path)
	}
	p := &Primary{Path: path, Name: doc.Name, CNIVersion: doc.CNIVersion, Raw: raw}
	caps := map[string]bool{}
	isList := doc.Plugins != nil || strings.HasSuffix(path, ".conflist")
	if isList {
		var plugins []rawPlugin
		if doc.Plugins == nil {
			return nil, fmt.Errorf("primary config %s: field \"plugins\" is missing", path)
		}
		if err := json.Unmarshal(doc.Plugins, &plugins); err != nil {
			return nil, fmt.Errorf("primary config %s: field \"plugins\": %w", path, err)
		}
		if len(plugins) == 0 {
			return nil, fmt.Errorf("primary config %s: field \"plugins\" is empty", path)
		}
		for i, pl := range plugins {
			if pl.Type == "" {
				return nil, fmt.Errorf("primary config %s: plugins[%d]: field \"type\" is missing", path, i)
			}
			addCaps(caps, pl.Capabilities)
		}
	} else {
		if doc.Type == "" {
			return nil, fmt.Errorf("primary config %s: field \"type\" is missing", path)
		}
		addCaps(caps, doc.Capabilities)
	}
	if p.Name == "" {
		return nil, fmt.Errorf("primary config %s: field \"name\" is missing", path)
	}
	for c := range caps {
		p.Capabilities = append(p.Capabilities, c)
	}
	sort.Strings(p.Capabilities)
	return p, nil
}

func addCaps(dst, src map[string]bool) {
	for k, v := range src {
		if v {
			dst[k] = true
		}
	}
}
