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

	"github.com/plexus-cni/plexus/pkg/config"
	"github.com/plexus-cni/plexus/pkg/delegate"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

// ResourceNameAnnot names the device-plugin resource a NAD's devices come from.
const ResourceNameAnnot = "k8s.v1.cni.cncf.io/resourceName"

// DelegateConf returns the delegate conflist a NAD stands for: its
// spec.config, or when that is empty the administrator's config whose
// network name is the NAD's name (byName: in confDir).
func DelegateConf(n *nadv1.NetworkAttachmentDefinition, byName func(string) (*libcni.NetworkConfigList, error), fallbackVersion string) (*libcni.NetworkConfigList, error) {
	if strings.TrimSpace(n.Spec.Config) == "" {
		l, err := byName(n.Name)
		if err != nil {
			return nil, fmt.Errorf("field \"spec.config\" is empty and %w", err)
		}
		return l, nil
	}
	l, err := delegate.ConfList([]byte(n.Spec.Config), n.Name, fallbackVersion)
	if err != nil {
		return nil, fmt.Errorf("field \"spec.config\": %v", err)
	}
	return l, nil
}

// LocalConfs reads the administrator's CNI configs on the node: confDir,
// the clusterNetwork path, the auxiliary chain (resolve.AdminConfs).
type LocalConfs struct{ Conf *config.Conf }

func (c LocalConfs) ByName(name string) (*libcni.NetworkConfigList, error) {
	return ConfByName(c.Conf.ConfDir, name)
}

func (c LocalConfs) Path(path string) (*libcni.NetworkConfigList, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		l, _, err := FirstConf(path)
		return l, err
	}
	return ConfFile(path)
}

func (c LocalConfs) Auxiliary() (*libcni.NetworkConfigList, error) { return c.Conf.AuxiliaryChain() }

// ConfByName finds the conf or conflist in dir whose network name is name.
// A dir or file it cannot read (a missing dir too) is an error wrapping the
// *fs.PathError: the config may be the one it could not read.
func ConfByName(dir, name string) (*libcni.NetworkConfigList, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no CNI config named %q: %w", name, err)
	}
	files, err := libcni.ConfFiles(dir, []string{".conflist", ".conf", ".json"})
	if err != nil {
		return nil, fmt.Errorf("no CNI config named %q: reading %s: %w", name, dir, err)
	}
	sort.Strings(files)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("looking for the CNI config named %q: %w", name, err)
		}
		var probe struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(raw, &probe) != nil || probe.Name != name {
			continue
		}
		l, err := delegate.ConfList(raw, name, "")
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
		return nil, "", fmt.Errorf("reading %s: %w", dir, err)
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
	l, err := delegate.ConfList(raw, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), "")
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
