package plexus

import "github.com/plexus-cni/plexus/pkg/config"

// typeAllowed applies the delegatePolicy config key (wired once pkg/config has it).
func typeAllowed(c *config.Conf, namespace, pluginType string) error { return nil }

// strictAnnotations is the strictAnnotations config key (wired once pkg/config has it).
func strictAnnotations(c *config.Conf) bool { return false }
