package resolve

import "github.com/plexus-cni/plexus/pkg/config"

// typeAllowed applies the delegatePolicy config key to one plugin type of a
// NAD (meta-plugins are refused before this, in vetTenantConf).
func typeAllowed(c *config.Conf, namespace, pluginType string) error {
	return c.TypeAllowed(namespace, pluginType)
}

// strictAnnotations is the strictAnnotations config key: unknown fields in
// the networks annotation refused instead of reported.
func strictAnnotations(c *config.Conf) bool { return c.StrictAnnotations }
