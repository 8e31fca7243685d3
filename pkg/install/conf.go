package install

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// NetworkName is the name of the network in plexus's own conflist.
const NetworkName = "plexus-cni-network"

// ConfOptions are the values plexus-install writes into plexus's config
// besides what it takes from the primary.
type ConfOptions struct {
	Kubeconfig             string // "" = clusterless (no kubeconfig key)
	ConfDir                string
	CNIDir                 string
	BinDir                 string
	ReadinessIndicatorFile string
	Capabilities           []string       // plexus's own, added to the primary's
	Overrides              map[string]any // further plexus keys (--config-overrides)
}

// overridableKeys are the plexus config keys --config-overrides may set;
// the rest are managed by plexus-install (DESIGN.md, Configuration).
var overridableKeys = map[string]bool{
	"defaultNetworks": true, "namespaceIsolation": true, "globalNamespaces": true,
	"systemNamespaces": true, "multusNamespace": true, "logFile": true, "logLevel": true,
	"logToStderr": true, "runtimeConfig": true, "networksDir": true,
}

// managedKeys are written by plexus-install itself; overriding them is
// refused so the config cannot point elsewhere than the flags say.
var managedKeys = map[string]string{
	"type": "", "name": "", "cniVersion": "", "capabilities": "--capabilities",
	"kubeconfig": "--kubeconfig", "confDir": "--cni-conf-dir", "cniDir": "--cni-dir",
	"binDir": "--cni-bin-dir", "delegates": "", "clusterNetwork": "--primary-config",
	"readinessindicatorfile": "--readiness-indicator-file",
}

// ParseOverrides parses the --config-overrides JSON object, refusing keys
// plexus does not know and keys plexus-install manages.
func ParseOverrides(s string) (map[string]any, error) {
	if s == "" {
		return nil, nil
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("--config-overrides: not a JSON object: %w", err)
	}
	for k := range m {
		if flag, ok := managedKeys[k]; ok {
			if flag == "" {
				return nil, fmt.Errorf("--config-overrides: key %q is set by plexus-install and cannot be overridden", k)
			}
			return nil, fmt.Errorf("--config-overrides: key %q is set by plexus-install; use %s", k, flag)
		}
		if !overridableKeys[k] {
			return nil, fmt.Errorf("--config-overrides: unknown key %q (allowed: %s)", k, allowedOverrides())
		}
	}
	return m, nil
}

func allowedOverrides() string {
	keys := make([]string, 0, len(overridableKeys))
	for k := range overridableKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b, _ := json.Marshal(keys)
	return string(b)
}

// BuildConf returns plexus's own conflist around primary: same cniVersion,
// clusterNetwork pointing at the primary's file, and the union of the
// primary's capabilities and plexus's, so the runtime passes plexus every
// runtime config the primary understands.
func BuildConf(primary *Primary, o ConfOptions) ([]byte, error) {
	plugin := map[string]any{
		"type":           "plexus",
		"clusterNetwork": primary.Path,
		"confDir":        o.ConfDir,
		"cniDir":         o.CNIDir,
		"binDir":         o.BinDir,
	}
	if o.Kubeconfig != "" {
		plugin["kubeconfig"] = o.Kubeconfig
	}
	if o.ReadinessIndicatorFile != "" {
		plugin["readinessindicatorfile"] = o.ReadinessIndicatorFile
	}
	caps := map[string]bool{}
	for _, c := range primary.Capabilities {
		caps[c] = true
	}
	for _, c := range o.Capabilities {
		caps[c] = true
	}
	if len(caps) > 0 {
		plugin["capabilities"] = caps
	}
	for k, v := range o.Overrides {
		plugin[k] = v
	}
	conf := struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}{primary.CNIVersion, NetworkName, []map[string]any{plugin}}
	out, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("plexus config: %w", err)
	}
	return append(out, '\n'), nil
}
