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
// of a namespace may use. A namespace listed under Namespaces may use
// exactly the types of its entry; any other namespace those of Default;
// without Default, any type. "*" in a list stands for any type. Meta-plugins
// are refused everywhere.
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
	Allowed         []string // nil for a meta-plugin
}

func (e *TypeNotAllowedError) Error() string {
	if e.Allowed == nil {
		return fmt.Sprintf("delegatePolicy: namespace %q may not use plugin type %q: plexus never runs a meta-plugin as a delegate", e.Namespace, e.Type)
	}
	allowed := "none"
	if len(e.Allowed) > 0 {
		allowed = strings.Join(e.Allowed, ", ")
	}
	return fmt.Sprintf("delegatePolicy: namespace %q may not use plugin type %q (allowed there: %s)", e.Namespace, e.Type, allowed)
}

// TypeAllowed reports whether a NAD in namespace may use a plugin of
// pluginType: nil, or a *TypeNotAllowedError naming the namespace, the
// type and delegatePolicy. Without delegatePolicy every type but the
// meta-plugins is allowed. The engine checks every plugin of a NAD's
// (resolved) config; plexus's own config (clusterNetwork, delegates) is the
// administrator's and is not subject to it.
func (c *Conf) TypeAllowed(namespace, pluginType string) error {
	if contains(MetaPlugins, pluginType) {
		return &TypeNotAllowedError{Namespace: namespace, Type: pluginType}
	}
	p := c.DelegatePolicy
	if p == nil {
		return nil
	}
	var list *TypeAllowList
	if l, ok := p.Namespaces[namespace]; ok {
		list = &l
	} else if p.Default != nil {
		list = p.Default
	}
	if list == nil || contains(list.Allow, "*") || (pluginType != "" && contains(list.Allow, pluginType)) {
		return nil
	}
	allowed := append([]string{}, list.Allow...)
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
		if len(ns) > 63 || !dns1123Label.MatchString(ns) {
			return fmt.Errorf("plexus config: key %q: %q is not a namespace name", key, ns)
		}
		if err := check(key, p.Namespaces[ns]); err != nil {
			return err
		}
	}
	return nil
}
