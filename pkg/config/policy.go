package config

import (
	"fmt"
	"sort"
	"strings"
)

// MetaPlugins are plugin types plexus never runs as a delegate (no
// recursion), whatever delegatePolicy says.
var MetaPlugins = []string{"plexus", "multus", "multus-shim"}

// DelegatePolicy is the delegatePolicy key: which CNI plugin types the NADs
// of a namespace may use (every "type" of a NAD's conflist, IPAM types
// included). A namespace may use the types of Default plus those of its own
// entry under Namespaces (the rule of the admission policy in
// deployments/policy/); with neither, none. Without a policy, any type. "*" in a list stands for any
// type. Meta-plugins are refused everywhere.
//
//	"delegatePolicy": {
//	  "default":    {"allow": ["bridge", "macvlan", "ipvlan", "tuning", "portmap"]},
//	  "namespaces": {"sriov-tenant": {"allow": ["sriov", "host-device", "tuning"]}}
//	}
type DelegatePolicy struct {
	Default    *TypeAllowList           `json:"default,omitempty"`
	Namespaces map[string]TypeAllowList `json:"namespaces,omitempty"`
}

// TypeAllowList lists plugin types ("type" of each plugin of a NAD's
// config, chained plugins included).
type TypeAllowList struct {
	Allow []string `json:"allow"`
}

// TypeNotAllowedError is TypeAllowed's refusal.
type TypeNotAllowedError struct {
	Namespace, Type string
	Allowed         []string
	Meta            bool // a meta-plugin: refused whatever the policy
}

func (e *TypeNotAllowedError) Error() string {
	if e.Meta {
		return fmt.Sprintf("plugin type %q is a meta-plugin; a network may not nest plexus or Multus", e.Type)
	}
	allowed := "none"
	if len(e.Allowed) > 0 {
		allowed = strings.Join(e.Allowed, ", ")
	}
	return fmt.Sprintf("plugin type %q is not allowed in namespace %q (allowed there: %s; plexus config key \"delegatePolicy\")", e.Type, e.Namespace, allowed)
}

// TypeAllowed reports whether a NAD in namespace may use a plugin of
// pluginType: nil, or a *TypeNotAllowedError naming the namespace, the
// type and delegatePolicy. Without delegatePolicy every type but the
// meta-plugins is allowed. The engine checks every plugin of a NAD's
// (resolved) config; plexus's own config (clusterNetwork, delegates) is the
// administrator's and is not subject to it.
func (c *Conf) TypeAllowed(namespace, pluginType string) error {
	if contains(MetaPlugins, pluginType) {
		return &TypeNotAllowedError{Namespace: namespace, Type: pluginType, Meta: true}
	}
	p := c.DelegatePolicy
	if p == nil {
		return nil
	}
	// A namespace may use the default list and, in addition, its own (the
	// same rule as the admission policy in deployments/policy/).
	var allowed []string
	if p.Default != nil {
		allowed = append(allowed, p.Default.Allow...)
	}
	allowed = append(allowed, p.Namespaces[namespace].Allow...)
	if contains(allowed, "*") || (pluginType != "" && contains(allowed, pluginType)) {
		return nil
	}
	sort.Strings(allowed)
	return &TypeNotAllowedError{Namespace: namespace, Type: pluginType, Allowed: allowed}
}

func (p *DelegatePolicy) validate() error {
	if p == nil {
		return nil
	}
	check := func(key string, l TypeAllowList) error {
		if l.Allow == nil {
			return fmt.Errorf("plexus config: key %q: missing (a list of plugin types; [] allows none)", key+".allow")
		}
		for _, t := range l.Allow {
			switch {
			case t == "" || strings.ContainsAny(t, "/ \t\n"):
				return fmt.Errorf("plexus config: key %q: %q is not a plugin type", key+".allow", t)
			case contains(MetaPlugins, t):
				return fmt.Errorf("plexus config: key %q: %q is a meta-plugin; plexus never runs one as a delegate", key+".allow", t)
			}
		}
		return nil
	}
	if p.Default != nil {
		if err := check("delegatePolicy.default", *p.Default); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(p.Namespaces))
	for ns := range p.Namespaces {
		names = append(names, ns)
	}
	sort.Strings(names)
	for _, ns := range names {
		key := "delegatePolicy.namespaces." + ns
		if !isDNS1123Label(ns) {
			return fmt.Errorf("plexus config: key %q: %q is not a namespace name", key, ns)
		}
		if err := check(key, p.Namespaces[ns]); err != nil {
			return err
		}
	}
	return nil
}

// isDNS1123Label is Kubernetes' rule for namespace names (lower-case
// alphanumerics and '-', starting and ending alphanumeric, at most 63). It
// is written here rather than taken from apimachinery's validation package
// because pkg/config is linked into the lean CNI shim, whose import graph
// holds no k8s.io package (see cmd/plexus's deps test).
func isDNS1123Label(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}
