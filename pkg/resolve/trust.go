package resolve

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/containernetworking/cni/libcni"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/nad"
)

// A NAD's spec.config is tenant input (docs/architecture.md, "Trust model"): whoever
// may create a NAD in a namespace is not the node's administrator. Before
// libcni sees a tenant conflist, vetTenantConf
//   - refuses a meta-plugin (plexus, Multus) in any plugin: no recursion;
//   - refuses plugin types the delegatePolicy does not allow there;
//   - removes the keys the runtime owns (runtimeConfig, prevResult, cni.dev/*)
//     from the conflist and every plugin, with a warning naming the field:
//     Multus passes them on, so a NAD that carries them harmlessly keeps
//     working, but they never reach a plugin from a tenant;
//   - for a NAD with a resourceName, removes deviceID/pciBusID (plexus
//     injects the device kubelet allocated); without one, refuses a
//     hard-coded deviceID/pciBusID of a device that a device-plugin pool on
//     this node owns (a host-device NAD naming any other device works).

// runtimeOwned reports whether a config key is set by the runtime (plexus,
// for its delegates) and so never taken from a NAD. Keys compare as Go's
// encoding/json (which libcni and the plugins decode with) matches them to
// struct fields: case-insensitively, with Unicode folding, so that
// "RuntimeConfig" or "prevreſult" cannot slip through.
func runtimeOwned(key string) bool {
	return strings.EqualFold(key, "runtimeConfig") || strings.EqualFold(key, "prevResult") || hasPrefixFold(key, "cni.dev/")
}

// hasPrefixFold is strings.HasPrefix with Unicode case folding.
func hasPrefixFold(s, prefix string) bool {
	n := utf8.RuneCountInString(prefix)
	i := 0
	for j := range s {
		if i == n {
			return strings.EqualFold(s[:j], prefix)
		}
		i++
	}
	return i == n && strings.EqualFold(s, prefix)
}

// deviceKey reports whether key decodes as deviceID or pciBusID (which
// plexus sets for device-plugin resources), and which.
func deviceKey(key string) (string, bool) {
	for _, k := range []string{"deviceID", "pciBusID"} {
		if strings.EqualFold(key, k) {
			return k, true
		}
	}
	return "", false
}

// metaPlugins are the plugin types a NAD may not name.
var metaPlugins = map[string]bool{"plexus": true, "multus": true, "multus-shim": true}

// vetTenantConf returns the conflist to run for a NAD, and warnings about
// what it removed.
// With admin set (a NAD plexus's own config names: clusterNetwork,
// defaultNetworks) delegatePolicy does not apply: it limits tenants.
func (e *Resolver) vetTenantConf(n *nadv1.NetworkAttachmentDefinition, l *libcni.NetworkConfigList, admin bool) (*libcni.NetworkConfigList, []string, error) {
	for _, p := range l.Plugins {
		t := p.Network.Type
		if metaPlugins[t] {
			return nil, nil, fmt.Errorf("field \"type\": plugin type %q is a meta-plugin; a network may not nest plexus or Multus", t)
		}
		if admin {
			continue
		}
		if err := typeAllowed(e.Conf, n.Namespace, t); err != nil {
			return nil, nil, fmt.Errorf("field \"type\": %w", err)
		}
		if p.Network.IPAM.Type != "" {
			if err := typeAllowed(e.Conf, n.Namespace, p.Network.IPAM.Type); err != nil {
				return nil, nil, fmt.Errorf("field \"ipam.type\": %w", err)
			}
		}
	}
	var top map[string]any
	if err := json.Unmarshal(l.Bytes, &top); err != nil {
		return nil, nil, fmt.Errorf("field \"spec.config\": %v", err)
	}
	var warnings []string
	removed := map[string]bool{}
	strip := func(m map[string]any) {
		for k := range m {
			if runtimeOwned(k) {
				delete(m, k)
				removed[k] = true
			}
		}
	}
	strip(top)
	plugins, _ := top["plugins"].([]any)
	hasResource := nadAnnotation(n, nad.ResourceNameAnnot) != ""
	for _, p := range plugins {
		pm, ok := p.(map[string]any)
		if !ok {
			continue
		}
		strip(pm)
		for key, v := range pm {
			if _, ok := deviceKey(key); !ok {
				continue
			}
			if hasResource {
				delete(pm, key)
				removed[key] = true
				continue
			}
			dev, _ := v.(string)
			file, err := e.Pools.Claim(dev)
			if err != nil {
				return nil, nil, fmt.Errorf("field %q: device %s: cannot tell whether a device-plugin pool on this node owns it: %w", key, dev, err)
			}
			if file != "" {
				return nil, nil, fmt.Errorf("field %q: device %s belongs to a device-plugin pool (device-info %s); request it with the NAD annotation %s instead of naming it", key, dev, file, nad.ResourceNameAnnot)
			}
		}
	}
	if len(removed) == 0 {
		return l, nil, nil
	}
	keys := make([]string, 0, len(removed))
	for k := range removed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		why := "is set by the runtime"
		if _, dev := deviceKey(k); dev {
			why = "is set by plexus from the device kubelet allocated"
		}
		warnings = append(warnings, fmt.Sprintf("field %q in spec.config %s: ignored", k, why))
	}
	b, err := json.Marshal(top)
	if err != nil {
		return nil, nil, err
	}
	clean, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		return nil, nil, fmt.Errorf("field \"spec.config\": %v", err)
	}
	return clean, warnings, nil
}
