package install

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/plexus-cni/plexus/pkg/config"
)

// NetworkName is the name of the network in plexus's own conflist.
const NetworkName = "plexus-cni-network"

// ConfOptions are the values plexus-install writes into plexus's config
// besides what it takes from the primary.
type ConfOptions struct {
	CNIVersion             string // "" = the primary's
	NetworkName            string // "" = NetworkName
	Kubeconfig             string // "" = clusterless (no kubeconfig key)
	ConfDir                string
	CNIDir                 string
	BinDir                 string
	ReadinessIndicatorFile string
	DaemonSocket           string         // "" = the thin deployment (no daemonSocket key)
	DaemonTimeout          int            // ms; 0 = plexus's default (no daemonTimeout key)
	Capabilities           []string       // plexus's own, added to the primary's
	Overrides              map[string]any // further plexus keys (--config-overrides)
}

// managedKeys are written by plexus-install itself; overriding them is
// refused so the config cannot point elsewhere than the flags say.
var managedKeys = map[string]string{
	"type": "", "name": "", "cniVersion": "", "capabilities": "--capabilities",
	"kubeconfig": "--kubeconfig", "confDir": "--cni-conf-dir", "cniDir": "--cni-dir",
	"binDir": "--cni-bin-dir or --additional-bin-dir", "delegates": "", "clusterNetwork": "--primary-config",
	"readinessindicatorfile": "--readiness-indicator-file", "readinessIndicatorFile": "--readiness-indicator-file",
	"daemonSocket": "--daemon-socket", "daemonTimeout": "--daemon-timeout",
}

// ParseOverrides parses the --config-overrides JSON object, refusing keys
// plexus-install manages and anything plexus's own config loader
// (pkg/config) would refuse: unknown keys, wrong types, bad values.
func ParseOverrides(s string) (map[string]any, error) {
	m, err := parseOverridesJSON(s)
	if err != nil {
		return nil, err
	}
	if err := CheckOverrides(m); err != nil {
		return nil, fmt.Errorf("--config-overrides: %w", err)
	}
	return m, nil
}

func parseOverridesJSON(s string) (map[string]any, error) {
	if s == "" {
		return nil, nil
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("--config-overrides: not a JSON object: %w", err)
	}
	return m, nil
}

// CheckOverrides refuses keys plexus-install manages (naming the flag to
// use) and whatever plexus's own loader refuses.
func CheckOverrides(m map[string]any) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if flag, ok := managedKeys[k]; ok {
			if flag == "" {
				return fmt.Errorf("key %q is set by plexus-install and cannot be overridden", k)
			}
			return fmt.Errorf("key %q is set by plexus-install; use %s", k, flag)
		}
	}
	probe := map[string]any{"cniVersion": "1.0.0", "name": NetworkName, "type": "plexus", "clusterNetwork": "/etc/cni/net.d/primary.conflist"}
	for k, v := range m {
		probe[k] = v
	}
	return checkWithPlexus(probe)
}

// checkWithPlexus runs a plugin config through plexus's own loader.
func checkWithPlexus(plugin map[string]any) error {
	b, err := json.Marshal(plugin)
	if err != nil {
		return err
	}
	_, err = config.Load(b)
	return err
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
	if o.DaemonSocket != "" {
		plugin["daemonSocket"] = o.DaemonSocket
	}
	if o.DaemonTimeout > 0 {
		plugin["daemonTimeout"] = o.DaemonTimeout
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
	version, name := primary.CNIVersion, NetworkName
	if o.CNIVersion != "" {
		version = o.CNIVersion
	}
	if o.NetworkName != "" {
		name = o.NetworkName
	}
	conf := struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}{version, name, []map[string]any{plugin}}
	// What the runtime will hand plexus: the plugin entry with the list's
	// name and cniVersion. Refuse now what plexus would refuse on every ADD.
	check := map[string]any{"cniVersion": version, "name": name}
	for k, v := range plugin {
		check[k] = v
	}
	if err := checkWithPlexus(check); err != nil {
		return nil, fmt.Errorf("plexus config for primary %s: %w", primary.Path, err)
	}
	out, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("plexus config: %w", err)
	}
	return append(out, '\n'), nil
}
