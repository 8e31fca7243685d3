// Package config loads and validates plexus's own CNI configuration: the
// Multus-compatible keys, with an error naming the key for anything unknown,
// mistyped or missing.
package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// Defaults.
const (
	DefaultCNIDir             = "/var/lib/cni/plexus"
	DefaultConfDir            = "/etc/cni/net.d"
	DefaultBinDir             = "/opt/cni/bin"
	DefaultNamespace          = "kube-system"
	DefaultPodResourcesSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"
	DefaultReadinessTimeout   = 30 // seconds
)

// Conf is plexus's configuration (the plugin entry of its conflist, as the
// runtime passes it on stdin).
type Conf struct {
	CNIVersion   string          `json:"cniVersion"`
	Name         string          `json:"name"`
	Type         string          `json:"type"`
	Capabilities map[string]bool `json:"capabilities,omitempty"`

	Kubeconfig      string            `json:"kubeconfig,omitempty"`
	ClusterNetwork  string            `json:"clusterNetwork,omitempty"`
	Delegates       []json.RawMessage `json:"delegates,omitempty"`
	DefaultNetworks []string          `json:"defaultNetworks,omitempty"`

	ConfDir string `json:"confDir,omitempty"`
	CNIDir  string `json:"cniDir,omitempty"`
	BinDir  string `json:"binDir,omitempty"`

	ReadinessIndicatorFile string `json:"readinessindicatorfile,omitempty"`
	ReadinessTimeout       int    `json:"readinessTimeout,omitempty"` // seconds

	NamespaceIsolation bool     `json:"namespaceIsolation,omitempty"`
	GlobalNamespaces   string   `json:"globalNamespaces,omitempty"` // comma-separated, as Multus
	SystemNamespaces   []string `json:"systemNamespaces,omitempty"`
	MultusNamespace    string   `json:"multusNamespace,omitempty"`

	NetworksDir        string `json:"networksDir,omitempty"`
	DeviceInfoDir      string `json:"deviceInfoDir,omitempty"`
	PodResourcesSocket string `json:"podResourcesSocket,omitempty"`

	LogFile     string `json:"logFile,omitempty"`
	LogLevel    string `json:"logLevel,omitempty"`
	LogToStderr bool   `json:"logToStderr,omitempty"`

	// Set by the runtime.
	RuntimeConfig    map[string]json.RawMessage `json:"runtimeConfig,omitempty"`
	PrevResult       json.RawMessage            `json:"prevResult,omitempty"`
	Args             json.RawMessage            `json:"args,omitempty"`
	ValidAttachments []types.GCAttachment       `json:"cni.dev/valid-attachments,omitempty"`
}

// aliases maps accepted alternative key names to the canonical ones.
var aliases = map[string]string{
	"plexusNamespace":        "multusNamespace",
	"readinessIndicatorFile": "readinessindicatorfile",
}

// ignoredKeys are keys the runtime or libcni may add that plexus does not use.
var ignoredKeys = map[string]bool{
	"dns": true, "ipam": true, "cni.dev/attachments": true, "logOptions": true,
}

// knownKeys are the keys of Conf.
var knownKeys = map[string]bool{
	"cniVersion": true, "name": true, "type": true, "capabilities": true, "kubeconfig": true,
	"clusterNetwork": true, "delegates": true, "defaultNetworks": true, "confDir": true, "cniDir": true,
	"binDir": true, "readinessindicatorfile": true, "readinessTimeout": true, "namespaceIsolation": true,
	"globalNamespaces": true, "systemNamespaces": true, "multusNamespace": true, "networksDir": true,
	"podResourcesSocket": true, "deviceInfoDir": true, "logFile": true, "logLevel": true, "logToStderr": true,
	"runtimeConfig": true, "prevResult": true, "args": true, "cni.dev/valid-attachments": true,
}

// Load parses and validates plexus's config and fills in defaults.
func Load(data []byte) (*Conf, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("plexus config: not a JSON object: %v", err)
	}
	for alias, canon := range aliases {
		if v, ok := raw[alias]; ok {
			if _, both := raw[canon]; both {
				return nil, fmt.Errorf("plexus config: keys %q and %q are the same setting; give one", alias, canon)
			}
			raw[canon] = v
			delete(raw, alias)
		}
	}
	var unknown []string
	for k := range raw {
		if !knownKeys[k] && !ignoredKeys[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("plexus config: unknown key %q (known keys: %s)", unknown[0], strings.Join(knownKeyList(), ", "))
	}
	for k := range ignoredKeys {
		delete(raw, k)
	}
	norm, _ := json.Marshal(raw)
	c := &Conf{}
	dec := json.NewDecoder(bytes.NewReader(norm))
	if err := dec.Decode(c); err != nil {
		if te, ok := err.(*json.UnmarshalTypeError); ok {
			return nil, fmt.Errorf("plexus config: key %q: want %s, got JSON %s", te.Field, jsonKind(te.Type.String()), te.Value)
		}
		return nil, fmt.Errorf("plexus config: %v", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	c.defaults()
	return c, nil
}

func (c *Conf) validate() error {
	if c.CNIVersion == "" {
		return fmt.Errorf("plexus config: key \"cniVersion\": missing")
	}
	if !supportedVersion(c.CNIVersion) {
		return fmt.Errorf("plexus config: key \"cniVersion\": %q is not supported (want one of %s)", c.CNIVersion, strings.Join(Versions.SupportedVersions(), ", "))
	}
	if c.Name == "" {
		return fmt.Errorf("plexus config: key \"name\": missing")
	}
	if c.ClusterNetwork == "" && len(c.Delegates) == 0 {
		return fmt.Errorf("plexus config: no primary network: set key \"clusterNetwork\" (a NAD name, a conf name in confDir, a directory or a file) or key \"delegates\"")
	}
	if c.ClusterNetwork != "" && len(c.Delegates) > 0 {
		return fmt.Errorf("plexus config: keys \"clusterNetwork\" and \"delegates\" both set; give one primary network")
	}
	for i, d := range c.Delegates {
		var probe struct {
			Type    string            `json:"type"`
			Plugins []json.RawMessage `json:"plugins"`
		}
		if err := json.Unmarshal(d, &probe); err != nil {
			return fmt.Errorf("plexus config: key \"delegates\"[%d]: not a JSON object: %v", i, err)
		}
		if probe.Type == "" && len(probe.Plugins) == 0 {
			return fmt.Errorf("plexus config: key \"delegates\"[%d]: neither \"type\" nor \"plugins\" set", i)
		}
	}
	for _, k := range []struct{ key, val string }{{"confDir", c.ConfDir}, {"cniDir", c.CNIDir}, {"binDir", c.BinDir}, {"networksDir", c.NetworksDir}, {"kubeconfig", c.Kubeconfig}, {"logFile", c.LogFile}, {"readinessindicatorfile", c.ReadinessIndicatorFile}, {"podResourcesSocket", c.PodResourcesSocket}, {"deviceInfoDir", c.DeviceInfoDir}} {
		if k.val != "" && !filepath.IsAbs(k.val) {
			return fmt.Errorf("plexus config: key %q: %q is not an absolute path", k.key, k.val)
		}
	}
	switch strings.ToLower(c.LogLevel) {
	case "", "debug", "verbose", "info", "warn", "warning", "error", "panic":
	default:
		return fmt.Errorf("plexus config: key \"logLevel\": %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.ReadinessTimeout < 0 {
		return fmt.Errorf("plexus config: key \"readinessTimeout\": must not be negative")
	}
	for _, ns := range append(c.SystemNamespaces, c.GlobalNamespaceList()...) {
		if ns == "" || strings.ContainsAny(ns, " /") {
			return fmt.Errorf("plexus config: namespace %q in \"systemNamespaces\"/\"globalNamespaces\" is not a namespace name", ns)
		}
	}
	return nil
}

func (c *Conf) defaults() {
	if c.CNIDir == "" {
		c.CNIDir = DefaultCNIDir
	}
	if c.ConfDir == "" {
		c.ConfDir = DefaultConfDir
	}
	if c.BinDir == "" {
		c.BinDir = DefaultBinDir
	}
	if c.MultusNamespace == "" {
		c.MultusNamespace = DefaultNamespace
	}
	if c.SystemNamespaces == nil {
		c.SystemNamespaces = []string{"kube-system"}
	}
	if c.ReadinessTimeout == 0 {
		c.ReadinessTimeout = DefaultReadinessTimeout
	}
	if c.PodResourcesSocket == "" {
		c.PodResourcesSocket = DefaultPodResourcesSocket
	}
}

// Clusterless reports whether plexus runs without the Kubernetes API.
func (c *Conf) Clusterless() bool { return c.Kubeconfig == "" }

// GlobalNamespaceList splits globalNamespaces.
func (c *Conf) GlobalNamespaceList() []string {
	var out []string
	for _, s := range strings.Split(c.GlobalNamespaces, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// IsSystemNamespace reports whether ns is one of systemNamespaces.
func (c *Conf) IsSystemNamespace(ns string) bool {
	for _, s := range c.SystemNamespaces {
		if s == ns {
			return true
		}
	}
	return false
}

// MayReference reports whether a pod in podNS may use a NAD in nadNS under
// namespaceIsolation.
func (c *Conf) MayReference(podNS, nadNS string) bool {
	if !c.NamespaceIsolation || podNS == nadNS {
		return true
	}
	for _, g := range c.GlobalNamespaceList() {
		if g == nadNS {
			return true
		}
	}
	return false
}

// Versions are the CNI spec versions plexus accepts in its config (and
// returns results in).
var Versions = version.PluginSupports("0.3.1", "0.4.0", "1.0.0", "1.1.0")

func supportedVersion(v string) bool {
	for _, s := range Versions.SupportedVersions() {
		if s == v {
			return true
		}
	}
	return false
}

func knownKeyList() []string {
	var ks []string
	for k := range knownKeys {
		if k != "prevResult" && k != "cni.dev/valid-attachments" && k != "runtimeConfig" && k != "args" {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

func jsonKind(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "a boolean"
	case goType == "int":
		return "a number"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map"):
		return "an object"
	}
	return goType
}
