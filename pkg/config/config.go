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
	// DefaultMultusCacheDir is Multus's cniDir: where it kept each
	// container's delegates; plexus's DEL reads it for pods attached by
	// Multus before the switch.
	DefaultMultusCacheDir   = "/var/lib/cni/multus"
	DefaultReadinessTimeout = 30 // seconds
	DefaultGlobalNamespaces = "default"
	// DefaultDaemonTimeout (ms) bounds the shim's wait for plexusd's
	// answer before it runs the thin path itself.
	DefaultDaemonTimeout = 2000
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
	MultusCacheDir     string `json:"multusCacheDir,omitempty"`

	LogFile     string `json:"logFile,omitempty"`
	LogLevel    string `json:"logLevel,omitempty"`
	LogToStderr bool   `json:"logToStderr"` // true unless set, as Multus
	// LogOptions rotate logFile (Multus's key; Multus's defaults after Load).
	LogOptions *LogOptions `json:"logOptions,omitempty"`
	LogFormat  string      `json:"logFormat,omitempty"` // "text" (default) or "json"

	// StrictAnnotations refuses unknown fields in a pod's networks
	// annotation instead of ignoring them with a warning.
	StrictAnnotations bool `json:"strictAnnotations,omitempty"`
	// RetryDeleteOnError (Multus): when a delegate's DEL fails, keep the
	// cache entry so that the runtime's retried DEL still finds every
	// delegate; without it the entry is removed even when DEL failed.
	RetryDeleteOnError bool `json:"retryDeleteOnError,omitempty"`
	// AuxiliaryCNIChainName (Multus): run, after every other attachment, a
	// chain named so made of the *.conf files in the subdirectory of that
	// name beside the clusterNetwork file; see AuxiliaryChain.
	AuxiliaryCNIChainName string `json:"auxiliaryCNIChainName,omitempty"`
	// DelegatePolicy limits the plugin types a NAD may use; see TypeAllowed.
	DelegatePolicy *DelegatePolicy `json:"delegatePolicy,omitempty"`

	// DaemonSocket is plexusd's unix socket (the daemon deployment). When
	// set, the plexus shim asks plexusd to resolve and publish, and runs the
	// thin path in full when plexusd does not answer within DaemonTimeout
	// milliseconds. Empty: the thin deployment.
	DaemonSocket  string `json:"daemonSocket,omitempty"`
	DaemonTimeout int    `json:"daemonTimeout,omitempty"` // milliseconds

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
	"dns": true, "ipam": true, "cni.dev/attachments": true,
}

// unsupportedKeys are keys Multus accepts (its thick daemon's and shim's
// configs) that plexus refuses, each with what to use instead.
var unsupportedKeys = map[string]string{
	"cniConfigDir":        `use plexus-install --cni-conf-dir (plexus's "confDir") instead`,
	"multusAutoconfigDir": `use plexus-install --cni-conf-dir instead`,
	"multusConfigFile":    `use plexus-install instead, which writes plexus's config (--primary-config picks the primary)`,
	"multusMasterCNI":     `use plexus-install --primary-config (or key "clusterNetwork") instead`,
	"forceCNIVersion":     `use key "cniVersion" instead (plexus-install copies the primary's)`,
	"overrideNetworkName": `use key "name" instead`,
	"daemonSocketDir":     `use key "daemonSocket" (the path of plexusd's socket) instead`,
	"socketDir":           `use plexusd --socket instead`,
	"chrootDir":           `plexus runs delegates on the host itself; remove the key`,
	"perNodeCertificate":  `use key "kubeconfig" instead (plexus-install writes it from the service account)`,
	"connectionLimit":     `plexusd has no connection limit (delegates run in the shim); remove the key`,
	"metricsPort":         `use plexusd --metrics-address instead`,
	"enablePprof":         `plexusd has no pprof endpoint; remove the key`,
}

// knownKeys are the keys of Conf.
var knownKeys = map[string]bool{
	"cniVersion": true, "name": true, "type": true, "capabilities": true, "kubeconfig": true,
	"clusterNetwork": true, "delegates": true, "defaultNetworks": true, "confDir": true, "cniDir": true,
	"binDir": true, "readinessindicatorfile": true, "readinessTimeout": true, "namespaceIsolation": true,
	"globalNamespaces": true, "systemNamespaces": true, "multusNamespace": true, "networksDir": true,
	"podResourcesSocket": true, "deviceInfoDir": true, "logFile": true, "logLevel": true, "logToStderr": true,
	"logOptions": true, "logFormat": true, "strictAnnotations": true, "retryDeleteOnError": true,
	"auxiliaryCNIChainName": true, "delegatePolicy": true, "multusCacheDir": true,
	"daemonSocket": true, "daemonTimeout": true,
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
		if instead, ok := unsupportedKeys[unknown[0]]; ok {
			return nil, fmt.Errorf("plexus config: key %q: plexus does not support it (a Multus thick-daemon key); %s", unknown[0], instead)
		}
		return nil, fmt.Errorf("plexus config: unknown key %q (known keys: %s)", unknown[0], strings.Join(knownKeyList(), ", "))
	}
	for _, k := range []string{"logOptions", "delegatePolicy"} {
		if err := checkNestedKeys(k, raw[k]); err != nil {
			return nil, err
		}
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
	if _, set := raw["logToStderr"]; !set {
		c.LogToStderr = true // Multus's default
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
	for _, k := range []struct{ key, val string }{{"confDir", c.ConfDir}, {"cniDir", c.CNIDir}, {"binDir", c.BinDir}, {"networksDir", c.NetworksDir}, {"kubeconfig", c.Kubeconfig}, {"logFile", c.LogFile}, {"readinessindicatorfile", c.ReadinessIndicatorFile}, {"podResourcesSocket", c.PodResourcesSocket}, {"deviceInfoDir", c.DeviceInfoDir}, {"multusCacheDir", c.MultusCacheDir}, {"daemonSocket", c.DaemonSocket}} {
		if k.val != "" && !filepath.IsAbs(k.val) {
			return fmt.Errorf("plexus config: key %q: %q is not an absolute path", k.key, k.val)
		}
	}
	switch strings.ToLower(c.LogLevel) {
	case "", "debug", "verbose", "info", "warn", "warning", "error", "panic":
	default:
		return fmt.Errorf("plexus config: key \"logLevel\": %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if err := c.LogOptions.validate(); err != nil {
		return err
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		return fmt.Errorf("plexus config: key \"logFormat\": %q is not text or json", c.LogFormat)
	}
	if err := c.validateAuxiliaryChain(); err != nil {
		return err
	}
	if err := c.DelegatePolicy.validate(); err != nil {
		return err
	}
	if c.DaemonTimeout < 0 {
		return fmt.Errorf("plexus config: key \"daemonTimeout\": must not be negative")
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
	if strings.TrimSpace(c.GlobalNamespaces) == "" {
		// Multus: NonIsolatedNamespaces is ["default"] unless
		// globalNamespaces is a non-empty string.
		c.GlobalNamespaces = DefaultGlobalNamespaces
	}
	c.LogOptions = c.LogOptions.withDefaults()
	if c.ReadinessTimeout == 0 {
		c.ReadinessTimeout = DefaultReadinessTimeout
	}
	if c.MultusCacheDir == "" {
		c.MultusCacheDir = DefaultMultusCacheDir
	}
	if c.PodResourcesSocket == "" {
		c.PodResourcesSocket = DefaultPodResourcesSocket
	}
	if c.DaemonTimeout == 0 {
		c.DaemonTimeout = DefaultDaemonTimeout
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
	case goType == "int" || goType == "*int":
		return "a number"
	case goType == "*bool":
		return "a boolean"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map"), strings.HasPrefix(goType, "*config."), strings.HasPrefix(goType, "config."):
		return "an object"
	}
	return goType
}
