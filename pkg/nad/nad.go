// Package nad resolves NetworkAttachmentDefinitions: from a directory of
// YAML files (clusterless mode) and into the delegate CNI config a NAD
// stands for (its spec.config, or the file in confDir of the same name).
package nad

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// ResourceNameAnnot names the device-plugin resource a NAD's devices come from.
const ResourceNameAnnot = "k8s.v1.cni.cncf.io/resourceName"

// ConfList turns a CNI config (a conflist, or a single plugin conf) into a
// conflist. A missing name becomes fallbackName, a missing cniVersion
// fallbackVersion.
func ConfList(raw []byte, fallbackName, fallbackVersion string) (*libcni.NetworkConfigList, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("CNI config is not a JSON object: %v", err)
	}
	changed := false
	if n, _ := m["name"].(string); n == "" {
		m["name"] = fallbackName
		changed = true
	}
	if v, _ := m["cniVersion"].(string); v == "" {
		m["cniVersion"] = fallbackVersion
		changed = true
	}
	if changed {
		raw, _ = json.Marshal(m)
	}
	if _, ok := m["plugins"]; ok {
		l, err := libcni.NetworkConfFromBytes(raw)
		if err != nil {
			return nil, fmt.Errorf("CNI conflist: %v", err)
		}
		if len(l.Plugins) == 0 {
			return nil, fmt.Errorf("CNI conflist %q has no plugins", l.Name)
		}
		return l, nil
	}
	if t, _ := m["type"].(string); t == "" {
		return nil, fmt.Errorf("CNI config has neither \"type\" nor \"plugins\"")
	}
	c, err := libcni.NetworkPluginConfFromBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("CNI config: %v", err)
	}
	l, err := libcni.ConfListFromConf(c)
	if err != nil {
		return nil, fmt.Errorf("CNI config: %v", err)
	}
	return l, nil
}

// DelegateConf returns the delegate conflist a NAD stands for: its
// spec.config, or when that is empty the config in confDir whose network
// name is the NAD's name.
func DelegateConf(n *nadv1.NetworkAttachmentDefinition, confDir, fallbackVersion string) (*libcni.NetworkConfigList, error) {
	if strings.TrimSpace(n.Spec.Config) == "" {
		l, err := ConfByName(confDir, n.Name)
		if err != nil {
			return nil, fmt.Errorf("field \"spec.config\" is empty and %v", err)
		}
		return l, nil
	}
	l, err := ConfList([]byte(n.Spec.Config), n.Name, fallbackVersion)
	if err != nil {
		return nil, fmt.Errorf("field \"spec.config\": %v", err)
	}
	return l, nil
}

// ConfByName finds the conf or conflist in dir whose network name is name.
func ConfByName(dir, name string) (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(dir, []string{".conflist", ".conf", ".json"})
	if err != nil {
		return nil, fmt.Errorf("no CNI config named %q: reading %s: %v", name, dir, err)
	}
	sort.Strings(files)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var probe struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(raw, &probe) != nil || probe.Name != name {
			continue
		}
		l, err := ConfList(raw, name, "")
		if err != nil {
			return nil, fmt.Errorf("%s: %v", f, err)
		}
		return l, nil
	}
	return nil, fmt.Errorf("no CNI config named %q in %s", name, dir)
}

// FirstConf returns the lexically first conf or conflist in dir that is not
// a plexus config itself.
func FirstConf(dir string) (*libcni.NetworkConfigList, string, error) {
	files, err := libcni.ConfFiles(dir, []string{".conflist", ".conf", ".json"})
	if err != nil {
		return nil, "", fmt.Errorf("reading %s: %v", dir, err)
	}
	sort.Strings(files)
	for _, f := range files {
		l, err := ConfFile(f)
		if err != nil {
			return nil, f, err
		}
		if IsPlexus(l) {
			continue
		}
		return l, f, nil
	}
	return nil, "", fmt.Errorf("no CNI config in %s", dir)
}

// ConfFile loads a conf or conflist file.
func ConfFile(path string) (*libcni.NetworkConfigList, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	l, err := ConfList(raw, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), "")
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return l, nil
}

// IsPlexus reports whether a conflist runs plexus itself (or Multus).
func IsPlexus(l *libcni.NetworkConfigList) bool {
	for _, p := range l.Plugins {
		if p.Network.Type == "plexus" || p.Network.Type == "multus" || p.Network.Type == "multus-shim" {
			return true
		}
	}
	return false
}

// DirSource serves NADs from a directory of YAML files (clusterless mode):
// apiVersion k8s.cni.cncf.io/v1, kind NetworkAttachmentDefinition, several
// per file separated by "---", namespace from metadata (default "default").
type DirSource struct {
	Dir string

	loaded bool
	nads   map[string]*nadv1.NetworkAttachmentDefinition
	dups   map[string][]string
	errs   []error
}

// ErrNotFound is returned (wrapped) for a NAD that does not exist.
var ErrNotFound = podnet.ErrNADNotFound

// Lookup returns the NAD namespace/name.
func (d *DirSource) Lookup(namespace, name string) (*nadv1.NetworkAttachmentDefinition, error) {
	if !d.loaded {
		d.load()
	}
	key := namespace + "/" + name
	if files := d.dups[key]; len(files) > 1 {
		return nil, fmt.Errorf("network-attachment-definition is defined more than once in %s: %s", d.Dir, strings.Join(files, ", "))
	}
	if n, ok := d.nads[key]; ok {
		return n, nil
	}
	err := fmt.Errorf("%w in %s", ErrNotFound, d.Dir)
	if len(d.errs) > 0 {
		return nil, fmt.Errorf("%w (files that did not parse: %v)", err, errors.Join(d.errs...))
	}
	return nil, err
}

func (d *DirSource) load() {
	d.loaded = true
	d.nads = map[string]*nadv1.NetworkAttachmentDefinition{}
	d.dups = map[string][]string{}
	ents, err := os.ReadDir(d.Dir)
	if err != nil {
		d.errs = append(d.errs, fmt.Errorf("networksDir: %v", err))
		return
	}
	for _, e := range ents {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		path := filepath.Join(d.Dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			d.errs = append(d.errs, err)
			continue
		}
		nads, err := ParseYAML(data)
		if err != nil {
			d.errs = append(d.errs, fmt.Errorf("%s: %v", path, err))
		}
		for _, n := range nads {
			key := n.Namespace + "/" + n.Name
			d.nads[key] = n
			d.dups[key] = append(d.dups[key], path)
		}
	}
}
