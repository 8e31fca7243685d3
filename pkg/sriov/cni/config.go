// Package cni is the sriov CNI plugin: it moves an SR-IOV virtual function
// into a pod's network namespace (ADD), checks it (CHECK) and gives it back
// with its original settings (DEL). PF-side settings go through pkg/sriov/pf,
// sysfs through pkg/sriov/sysfs; the VF netdev itself is real netlink.
package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/plexus-cni/plexus/pkg/sriov/pf"
	"github.com/plexus-cni/plexus/pkg/sriov/sysfs"
)

// DefaultDataDir is where per-VF state is kept unless the config says dataDir.
const DefaultDataDir = "/var/lib/cni/sriov"

// SupportedVersions are the CNI spec versions the plugin speaks.
var SupportedVersions = []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// NetConf is the plugin's configuration as it arrives on stdin; key names
// follow sriov-cni so existing NetworkAttachmentDefinitions work unchanged.
type NetConf struct {
	types.NetConf
	DeviceID      string        `json:"deviceID,omitempty"`
	Master        string        `json:"master,omitempty"`
	MTU           *int          `json:"mtu,omitempty"`
	Vlan          *int          `json:"vlan,omitempty"`
	VlanQoS       *int          `json:"vlanQoS,omitempty"`
	VlanProto     *string       `json:"vlanProto,omitempty"`
	MAC           string        `json:"mac,omitempty"`
	SpoofChk      string        `json:"spoofchk,omitempty"`
	Trust         string        `json:"trust,omitempty"`
	LinkState     string        `json:"link_state,omitempty"`
	MinTxRate     *int          `json:"min_tx_rate,omitempty"`
	MaxTxRate     *int          `json:"max_tx_rate,omitempty"`
	LogLevel      string        `json:"logLevel,omitempty"`
	LogFile       string        `json:"logFile,omitempty"`
	DataDir       string        `json:"dataDir,omitempty"`
	RuntimeConfig RuntimeConfig `json:"runtimeConfig,omitempty"`
}

// RuntimeConfig carries the capability arguments the runtime (plexus) passes.
type RuntimeConfig struct {
	DeviceID          string   `json:"deviceID,omitempty"`
	MAC               string   `json:"mac,omitempty"`
	IPs               []string `json:"ips,omitempty"`
	CNIDeviceInfoFile string   `json:"CNIDeviceInfoFile,omitempty"`
}

// Config is a validated NetConf with every setting resolved.
type Config struct {
	Raw        []byte // stdin, handed to the IPAM plugin unchanged
	Name       string
	CNIVersion string
	IPAMType   string
	PrevResult types.Result

	DeviceID  string           // VF PCI address; runtimeConfig wins over the key
	Master    string           // PF netdev the NAD names (checked, never used to find the VF)
	MTU       int              // 0: keep the VF netdev's MTU
	DNS       *types.DNS       // nil: the result carries IPAM's DNS
	Vlan      int              // always applied (0 clears the VF's VLAN)
	Qos       int              // needs Vlan > 0
	VlanProto int              // pf.VlanProto8021Q or pf.VlanProto8021AD
	MAC       net.HardwareAddr // nil: keep the VF's MAC
	macKey    string           // where MAC came from: "mac", "runtimeConfig.mac" or "CNI_ARGS MAC"
	Spoofchk  *bool            // nil: leave alone
	Trust     *bool
	LinkState *uint32
	// Rate is set when either min_tx_rate or max_tx_rate is given: [min, max] Mbps.
	Rate *[2]int

	DeviceInfoFile string
	DataDir        string
	LogLevel       string
	LogFile        string
}

// ParseConfig decodes and validates the configuration; every error names the
// key at fault.
func ParseConfig(stdin []byte) (*Config, error) {
	var n NetConf
	if err := json.Unmarshal(stdin, &n); err != nil {
		return nil, fmt.Errorf("sriov config: %w", describeJSONError(err))
	}
	c := &Config{Raw: stdin, Name: n.Name, CNIVersion: n.CNIVersion, IPAMType: n.IPAM.Type, Master: n.Master,
		LogLevel: n.LogLevel, LogFile: n.LogFile, DeviceInfoFile: n.RuntimeConfig.CNIDeviceInfoFile}
	checks := []func(*NetConf, *Config) error{
		checkVersion, checkDeviceID, checkVlan, checkMAC, checkOnOff, checkLinkState,
		checkRates, checkMTU, checkDNS, checkIPAM, checkLogging, checkDataDir, checkPrevResult,
	}
	if err := checkRefusedKeys(stdin); err != nil {
		return nil, fmt.Errorf("sriov config for network %q: %w", nameOf(&n), err)
	}
	for _, check := range checks {
		if err := check(&n, c); err != nil {
			return nil, fmt.Errorf("sriov config for network %q: %w", nameOf(&n), err)
		}
	}
	return c, nil
}

func nameOf(n *NetConf) string {
	if n.Name == "" {
		return "<unnamed>"
	}
	return n.Name
}

// refusedKeys are keys sriov-cni decodes (encoding/json, so in any letter
// case) that are its own per-attachment state, not configuration: it
// overwrites them from sysfs and netlink, and they appear in its cache file,
// never in a working NAD. Lower-cased key -> what to do instead.
var refusedKeys = map[string]string{
	"origvfstate": "it is sriov-cni's saved VF state, not configuration; remove it (the VF's original state is read from the PF at ADD)",
	"vfid":        "it is sriov-cni's saved VF index, not configuration; remove it (the VF and its index come from deviceID)",
}

func checkRefusedKeys(stdin []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(stdin, &top); err != nil {
		return nil // the typed decode reports it
	}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if why, ok := refusedKeys[strings.ToLower(k)]; ok {
			return keyErr(k, "not accepted: %s", why)
		}
	}
	return nil
}

func describeJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		key := te.Field
		if key == "" {
			key = "(top level)"
		}
		return fmt.Errorf("key %q: expected %s, got JSON %s", key, te.Type, te.Value)
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

func keyErr(key string, format string, args ...any) error {
	return fmt.Errorf("key %q: %s", key, fmt.Sprintf(format, args...))
}

func checkVersion(n *NetConf, c *Config) error {
	if n.CNIVersion == "" {
		return keyErr("cniVersion", "required (one of %s)", strings.Join(SupportedVersions, ", "))
	}
	for _, v := range SupportedVersions {
		if v == n.CNIVersion {
			return nil
		}
	}
	return keyErr("cniVersion", "%q not supported (one of %s)", n.CNIVersion, strings.Join(SupportedVersions, ", "))
}

func checkDeviceID(n *NetConf, c *Config) error {
	c.DeviceID = n.DeviceID
	key := "deviceID"
	if n.RuntimeConfig.DeviceID != "" {
		c.DeviceID, key = n.RuntimeConfig.DeviceID, "runtimeConfig.deviceID"
	}
	if c.DeviceID != "" && !sysfs.ValidPCIAddr(c.DeviceID) {
		return keyErr(key, "%q is not a PCI address (want dddd:bb:dd.f)", c.DeviceID)
	}
	return nil
}

func checkVlan(n *NetConf, c *Config) error {
	if n.Vlan != nil {
		if *n.Vlan < 0 || *n.Vlan > 4094 {
			return keyErr("vlan", "%d out of range 0-4094", *n.Vlan)
		}
		c.Vlan = *n.Vlan
	}
	if n.VlanQoS != nil {
		if *n.VlanQoS < 0 || *n.VlanQoS > 7 {
			return keyErr("vlanQoS", "%d out of range 0-7", *n.VlanQoS)
		}
		if *n.VlanQoS != 0 && c.Vlan == 0 {
			return keyErr("vlanQoS", "needs a non-zero \"vlan\"")
		}
		c.Qos = *n.VlanQoS
	}
	c.VlanProto = pf.VlanProto8021Q
	if n.VlanProto != nil {
		switch strings.ToLower(*n.VlanProto) {
		case "802.1q":
		case "802.1ad":
			c.VlanProto = pf.VlanProto8021AD
		default:
			return keyErr("vlanProto", "%q is neither 802.1q nor 802.1ad", *n.VlanProto)
		}
		if c.VlanProto != pf.VlanProto8021Q && c.Vlan == 0 {
			return keyErr("vlanProto", "802.1ad needs a non-zero \"vlan\"")
		}
	}
	return nil
}

func checkMAC(n *NetConf, c *Config) error {
	s, key := n.MAC, "mac"
	if n.RuntimeConfig.MAC != "" {
		s, key = n.RuntimeConfig.MAC, "runtimeConfig.mac"
	}
	if s == "" {
		return nil
	}
	mac, err := parseMAC(key, s)
	if err != nil {
		return err
	}
	c.MAC, c.macKey = mac, key
	return nil
}

func parseMAC(key, s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, keyErr(key, "%q is not an Ethernet MAC address", s)
	}
	if mac[0]&1 == 1 {
		return nil, keyErr(key, "%q is a multicast address", s)
	}
	if mac.String() == "00:00:00:00:00:00" {
		return nil, keyErr(key, "%q is the zero address", s)
	}
	return mac, nil
}

// cniArgs are the CNI_ARGS the plugin reads: like sriov-cni it takes the
// VF's MAC from MAC= (Multus passes a network selection element's "mac"
// there); runtimeConfig.mac wins over it, it wins over the "mac" key.
type cniArgs struct {
	types.CommonArgs
	MAC types.UnmarshallableString
}

// applyCNIArgs applies CNI_ARGS (ADD only). Keys meant for other plugins
// (K8S_POD_*, …) are ignored even without IgnoreUnknown.
func (c *Config) applyCNIArgs(s string) error {
	a := cniArgs{CommonArgs: types.CommonArgs{IgnoreUnknown: true}}
	if err := types.LoadArgs(s, &a); err != nil {
		return fmt.Errorf("sriov network %q: CNI_ARGS: %w", c.Name, err)
	}
	if a.MAC == "" || c.macKey == "runtimeConfig.mac" {
		return nil
	}
	mac, err := parseMAC("CNI_ARGS MAC", string(a.MAC))
	if err != nil {
		return fmt.Errorf("sriov network %q: %w", c.Name, err)
	}
	c.MAC, c.macKey = mac, "CNI_ARGS MAC"
	return nil
}

func onOff(key, v string) (*bool, error) {
	switch v {
	case "":
		return nil, nil
	case "on":
		t := true
		return &t, nil
	case "off":
		f := false
		return &f, nil
	}
	return nil, keyErr(key, "%q is neither \"on\" nor \"off\"", v)
}

func checkOnOff(n *NetConf, c *Config) error {
	var err error
	if c.Spoofchk, err = onOff("spoofchk", n.SpoofChk); err != nil {
		return err
	}
	c.Trust, err = onOff("trust", n.Trust)
	return err
}

func checkLinkState(n *NetConf, c *Config) error {
	var st uint32
	switch n.LinkState {
	case "":
		return nil
	case "auto":
		st = pf.LinkStateAuto
	case "enable":
		st = pf.LinkStateEnable
	case "disable":
		st = pf.LinkStateDisable
	default:
		return keyErr("link_state", "%q is not one of auto, enable, disable", n.LinkState)
	}
	c.LinkState = &st
	return nil
}

func checkRates(n *NetConf, c *Config) error {
	if n.MinTxRate == nil && n.MaxTxRate == nil {
		return nil
	}
	var r [2]int
	if n.MinTxRate != nil {
		if *n.MinTxRate < 0 {
			return keyErr("min_tx_rate", "%d is negative", *n.MinTxRate)
		}
		r[0] = *n.MinTxRate
	}
	if n.MaxTxRate != nil {
		if *n.MaxTxRate < 0 {
			return keyErr("max_tx_rate", "%d is negative", *n.MaxTxRate)
		}
		r[1] = *n.MaxTxRate
	}
	if r[1] != 0 && r[0] > r[1] {
		return keyErr("min_tx_rate", "%d exceeds max_tx_rate %d", r[0], r[1])
	}
	c.Rate = &r
	return nil
}

// MTU limits of an Ethernet netdev (ETH_MIN_MTU, ETH_MAX_MTU); the VF's
// driver and its PF's MTU may allow less, which ADD reports.
const minMTU, maxMTU = 68, 65535

func checkMTU(n *NetConf, c *Config) error {
	if n.MTU == nil {
		return nil
	}
	if *n.MTU < minMTU || *n.MTU > maxMTU {
		return keyErr("mtu", "%d out of range %d-%d", *n.MTU, minMTU, maxMTU)
	}
	c.MTU = *n.MTU
	return nil
}

func checkDNS(n *NetConf, c *Config) error {
	d := n.DNS
	if len(d.Nameservers) > 0 || d.Domain != "" || len(d.Search) > 0 || len(d.Options) > 0 {
		c.DNS = &d
	}
	return nil
}

func checkIPAM(n *NetConf, c *Config) error {
	for i, s := range n.RuntimeConfig.IPs {
		if _, _, err := net.ParseCIDR(s); err != nil {
			if net.ParseIP(s) == nil {
				return keyErr(fmt.Sprintf("runtimeConfig.ips[%d]", i), "%q is neither an IP nor a CIDR", s)
			}
		}
	}
	if len(n.RuntimeConfig.IPs) > 0 && n.IPAM.Type == "" {
		return keyErr("runtimeConfig.ips", "requested but \"ipam\" names no plugin")
	}
	if n.IPAM.Type != "" && strings.ContainsAny(n.IPAM.Type, "/\\") {
		return keyErr("ipam.type", "%q must be a plugin name, not a path", n.IPAM.Type)
	}
	return nil
}

func checkLogging(n *NetConf, c *Config) error {
	switch n.LogLevel {
	case "", "panic", "error", "warning", "info", "debug":
	default:
		// sriov-cni logs at info for a level it does not know; a NAD with
		// one works there, so it works here the same way.
		n.LogLevel = "info"
		c.LogLevel = n.LogLevel
	}
	if n.LogFile != "" && !filepath.IsAbs(n.LogFile) {
		return keyErr("logFile", "%q is not an absolute path", n.LogFile)
	}
	if f := n.RuntimeConfig.CNIDeviceInfoFile; f != "" && !filepath.IsAbs(f) {
		return keyErr("runtimeConfig.CNIDeviceInfoFile", "%q is not an absolute path", f)
	}
	return nil
}

func checkDataDir(n *NetConf, c *Config) error {
	c.DataDir = DefaultDataDir
	if n.DataDir != "" {
		if !filepath.IsAbs(n.DataDir) {
			return keyErr("dataDir", "%q is not an absolute path", n.DataDir)
		}
		c.DataDir = n.DataDir
	}
	return nil
}

func checkPrevResult(n *NetConf, c *Config) error {
	if n.RawPrevResult == nil {
		return nil
	}
	raw, err := json.Marshal(n.RawPrevResult)
	if err != nil {
		return keyErr("prevResult", "%v", err)
	}
	res, err := version.NewResult(n.CNIVersion, raw)
	if err != nil {
		return keyErr("prevResult", "%v", err)
	}
	c.PrevResult = res
	return nil
}
