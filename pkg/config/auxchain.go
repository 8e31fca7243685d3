package config

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"

	"github.com/containernetworking/cni/libcni"
)

var (
	// cniNetworkName is the CNI spec's network name, which Multus requires
	// of auxiliaryCNIChainName (it names a directory).
	cniNetworkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
)

// AuxiliaryChainPassthru is the plugin type that heads the auxiliary chain
// (Multus ships a "passthru" plugin that returns an empty result, so that
// the chained plugins from disk get a prevResult).
const AuxiliaryChainPassthru = "passthru"

func (c *Conf) validateAuxiliaryChain() error {
	n := c.AuxiliaryCNIChainName
	if n == "" {
		return nil
	}
	if !cniNetworkName.MatchString(n) {
		return fmt.Errorf("plexus config: key \"auxiliaryCNIChainName\": %q is not a CNI network name (letters, digits, '_', '.', '-'; a letter or digit first)", n)
	}
	if !filepath.IsAbs(c.ClusterNetwork) {
		return fmt.Errorf("plexus config: key \"auxiliaryCNIChainName\": needs key \"clusterNetwork\" to be a file path (the chain is read beside it), got %q", c.ClusterNetwork)
	}
	return nil
}

// AuxiliaryChainDir is the directory whose *.conf files make the auxiliary
// chain: <directory of clusterNetwork>/<auxiliaryCNIChainName>, as Multus.
// Empty when auxiliaryCNIChainName is not set.
func (c *Conf) AuxiliaryChainDir() string {
	if c.AuxiliaryCNIChainName == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(c.ClusterNetwork), c.AuxiliaryCNIChainName)
}

// AuxiliaryChain builds Multus's auxiliary chain: a conflist named
// auxiliaryCNIChainName, in plexus's cniVersion, whose first plugin is
// passthru, followed by each *.conf file of AuxiliaryChainDir in lexical
// order. Multus runs it after every other attachment, with the next netN
// interface name. It returns nil, nil when the key is unset or the
// directory holds no .conf file (Multus then adds no chain); an unreadable
// or invalid file is an error naming it (Multus logs and skips the chain).
func (c *Conf) AuxiliaryChain() (*libcni.NetworkConfigList, error) {
	dir := c.AuxiliaryChainDir()
	if dir == "" {
		return nil, nil
	}
	plugins, err := libcni.NetworkPluginConfsFromFiles(filepath.Dir(dir), c.AuxiliaryCNIChainName)
	if err != nil {
		// Wrapped: a directory plexusd cannot read is "unavailable"
		// (podnet.Unavailable), not a final error.
		return nil, fmt.Errorf("plexus config: key \"auxiliaryCNIChainName\": %w", err)
	}
	if len(plugins) == 0 {
		return nil, nil
	}
	list := []json.RawMessage{json.RawMessage(`{"type":"` + AuxiliaryChainPassthru + `","name":"passthru-cni"}`)}
	for _, p := range plugins {
		list = append(list, p.Bytes)
	}
	b, err := json.Marshal(map[string]any{"cniVersion": c.CNIVersion, "name": c.AuxiliaryCNIChainName, "plugins": list})
	if err != nil {
		return nil, fmt.Errorf("plexus config: key \"auxiliaryCNIChainName\": %v", err)
	}
	l, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("plexus config: key \"auxiliaryCNIChainName\": chain in %s: %v", dir, err)
	}
	return l, nil
}
