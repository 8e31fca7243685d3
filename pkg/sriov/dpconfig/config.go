// Package dpconfig parses the SR-IOV device plugin's resource configuration
// (the resourceList of sriov-network-device-plugin's config.json, same key
// names) and sorts discovered VFs into pools by its selectors.
package dpconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/plexus-cni/plexus/pkg/sriov/sysfs"
)

// DefaultPrefix is the resource prefix when neither the flag nor a
// resource's resourcePrefix gives one.
const DefaultPrefix = "plexus.io"

// Device types.
const (
	DeviceTypeNetDevice = "netDevice"
)

// Allocation policies for GetPreferredAllocation.
const (
	PolicyPacked = "packed" // fill one PF before the next (default)
	PolicySpread = "spread" // round-robin over PFs
)

// Config is a parsed configuration.
type Config struct {
	Resources []*Resource
}

// Resource is one pool's definition.
type Resource struct {
	Name             string // resourceName
	Prefix           string // resourcePrefix, or the default
	DeviceType       string
	ExcludeTopology  bool
	AllocationPolicy string
	Selectors        []*Selector
}

// FullName is the kubelet extended resource name, "prefix/name".
func (r *Resource) FullName() string { return r.Prefix + "/" + r.Name }

// Selector narrows the VFs of a pool; every field set must match.
type Selector struct {
	Vendors      []string
	Devices      []string
	Drivers      []string
	PCIAddresses []string
	PFNames      []DeviceRef
	RootDevices  []DeviceRef
	LinkTypes    []string
	IsRdma       bool
	NeedVhostNet bool
}

// DeviceRef is a PF (by netdev name or PCI address) with optional VF ranges.
type DeviceRef struct {
	Name   string
	Ranges []Range // nil: every VF
}

// Range is an inclusive VF-index range.
type Range struct{ First, Last int }

// Contains reports whether VF index i is selected.
func (d DeviceRef) Contains(i int) bool {
	if d.Ranges == nil {
		return true
	}
	for _, r := range d.Ranges {
		if i >= r.First && i <= r.Last {
			return true
		}
	}
	return false
}

// LoadFile reads and parses the config file at path.
func LoadFile(path, defaultPrefix string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	cfg, err := Parse(data, defaultPrefix)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

var (
	topKeys      = keySet("resourceList")
	resourceKeys = keySet("resourceName", "resourcePrefix", "deviceType", "excludeTopology", "selectors", "allocationPolicy")
	selectorKeys = keySet("vendors", "devices", "drivers", "pciAddresses", "pfNames", "rootDevices", "linkTypes", "isRdma", "needVhostNet")
	// Keys sriov-network-device-plugin knows that plexus does not support:
	// ignoring a narrowing selector would put the wrong devices in a pool.
	unsupportedKeys = keySet("ddpProfiles", "acpiIndexes", "auxTypes", "vdpaType", "pKeys", "additionalInfo")
)

// Parse parses and validates a configuration. defaultPrefix applies to
// resources without a resourcePrefix ("" means DefaultPrefix).
func Parse(data []byte, defaultPrefix string) (*Config, error) {
	if defaultPrefix == "" {
		defaultPrefix = DefaultPrefix
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("config is empty")
	}
	top, err := object(data, "config", topKeys)
	if err != nil {
		return nil, err
	}
	var items []json.RawMessage
	if raw, ok := top["resourceList"]; ok {
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("resourceList: must be a list of objects: %v", jsonMsg(err))
		}
	}
	cfg := &Config{}
	seen := map[string]int{}
	for i, raw := range items {
		path := fmt.Sprintf("resourceList[%d]", i)
		r, err := parseResource(raw, path, defaultPrefix)
		if err != nil {
			return nil, err
		}
		if j, dup := seen[r.FullName()]; dup {
			return nil, fmt.Errorf("%s: resourceName %q: duplicate resource %q (also resourceList[%d])", path, r.Name, r.FullName(), j)
		}
		seen[r.FullName()] = i
		cfg.Resources = append(cfg.Resources, r)
	}
	return cfg, nil
}

func parseResource(raw json.RawMessage, path, defaultPrefix string) (*Resource, error) {
	m, err := object(raw, path, resourceKeys)
	if err != nil {
		return nil, err
	}
	r := &Resource{Prefix: defaultPrefix, DeviceType: DeviceTypeNetDevice, AllocationPolicy: PolicyPacked}
	if err := str(m, "resourceName", path, &r.Name); err != nil {
		return nil, err
	}
	if r.Name == "" {
		return nil, fmt.Errorf("%s: resourceName: required", path)
	}
	path = fmt.Sprintf("%s (resource %q)", path, r.Name)
	if err := validateName(r.Name); err != nil {
		return nil, fmt.Errorf("%s: resourceName %q: %v", path, r.Name, err)
	}
	if _, ok := m["resourcePrefix"]; ok {
		if err := str(m, "resourcePrefix", path, &r.Prefix); err != nil {
			return nil, err
		}
	}
	if err := validatePrefix(r.Prefix); err != nil {
		return nil, fmt.Errorf("%s: resourcePrefix %q: %v", path, r.Prefix, err)
	}
	if err := str(m, "deviceType", path, &r.DeviceType); err != nil {
		return nil, err
	}
	switch r.DeviceType {
	case "", DeviceTypeNetDevice:
		r.DeviceType = DeviceTypeNetDevice
	case "accelerator", "auxNetDevice":
		return nil, fmt.Errorf("%s: deviceType %q: not supported (only %q)", path, r.DeviceType, DeviceTypeNetDevice)
	default:
		return nil, fmt.Errorf("%s: deviceType %q: unknown (want %q)", path, r.DeviceType, DeviceTypeNetDevice)
	}
	if err := boolean(m, "excludeTopology", path, &r.ExcludeTopology); err != nil {
		return nil, err
	}
	if err := str(m, "allocationPolicy", path, &r.AllocationPolicy); err != nil {
		return nil, err
	}
	switch r.AllocationPolicy {
	case "", PolicyPacked:
		r.AllocationPolicy = PolicyPacked
	case PolicySpread:
	default:
		return nil, fmt.Errorf("%s: allocationPolicy %q: want %q or %q", path, r.AllocationPolicy, PolicyPacked, PolicySpread)
	}
	sels, ok := m["selectors"]
	if !ok {
		return nil, fmt.Errorf("%s: selectors: required", path)
	}
	r.Selectors, err = parseSelectors(sels, path+".selectors")
	return r, err
}

// parseSelectors accepts a list of selector objects or, as older
// sriov-network-device-plugin configs have it, a single object.
func parseSelectors(raw json.RawMessage, path string) ([]*Selector, error) {
	var list []json.RawMessage
	trimmed := bytes.TrimSpace(raw)
	switch {
	case len(trimmed) > 0 && trimmed[0] == '{':
		list = []json.RawMessage{raw}
	case len(trimmed) > 0 && trimmed[0] == '[':
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("%s: must be a list of objects: %v", path, jsonMsg(err))
		}
		if len(list) == 0 {
			return nil, fmt.Errorf("%s: at least one selector is required", path)
		}
	default:
		return nil, fmt.Errorf("%s: must be a list of objects, got %s", path, trimmed)
	}
	out := make([]*Selector, 0, len(list))
	for i, s := range list {
		sel, err := parseSelector(s, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out = append(out, sel)
	}
	return out, nil
}

var hexID = regexp.MustCompile(`^[0-9a-fA-F]{4}$`)

func parseSelector(raw json.RawMessage, path string) (*Selector, error) {
	m, err := object(raw, path, selectorKeys)
	if err != nil {
		return nil, err
	}
	s := &Selector{}
	lists := []struct {
		key   string
		dst   *[]string
		check func(string) error
	}{
		{"vendors", &s.Vendors, hexCheck},
		{"devices", &s.Devices, hexCheck},
		{"drivers", &s.Drivers, nonEmpty},
		{"pciAddresses", &s.PCIAddresses, addrCheck},
		{"linkTypes", &s.LinkTypes, linkTypeCheck},
	}
	for _, l := range lists {
		if err := strList(m, l.key, path, l.dst, l.check); err != nil {
			return nil, err
		}
	}
	for i := range s.Vendors {
		s.Vendors[i] = strings.ToLower(s.Vendors[i])
	}
	for i := range s.Devices {
		s.Devices[i] = strings.ToLower(s.Devices[i])
	}
	for i := range s.PCIAddresses {
		s.PCIAddresses[i] = strings.ToLower(s.PCIAddresses[i])
	}
	var pfNames, roots []string
	if err := strList(m, "pfNames", path, &pfNames, nil); err != nil {
		return nil, err
	}
	if err := strList(m, "rootDevices", path, &roots, nil); err != nil {
		return nil, err
	}
	for i, v := range pfNames {
		ref, err := ParseDeviceRef(v, false)
		if err != nil {
			return nil, fmt.Errorf("%s.pfNames[%d] %q: %v", path, i, v, err)
		}
		s.PFNames = append(s.PFNames, ref)
	}
	for i, v := range roots {
		ref, err := ParseDeviceRef(v, true)
		if err != nil {
			return nil, fmt.Errorf("%s.rootDevices[%d] %q: %v", path, i, v, err)
		}
		s.RootDevices = append(s.RootDevices, ref)
	}
	if err := boolean(m, "isRdma", path, &s.IsRdma); err != nil {
		return nil, err
	}
	if err := boolean(m, "needVhostNet", path, &s.NeedVhostNet); err != nil {
		return nil, err
	}
	return s, nil
}

func hexCheck(v string) error {
	if !hexID.MatchString(v) {
		return fmt.Errorf("want 4 hex digits without 0x, e.g. \"8086\"")
	}
	return nil
}

func addrCheck(v string) error {
	if !sysfs.ValidPCIAddr(v) {
		return fmt.Errorf("want a PCI address like \"0000:3b:02.1\"")
	}
	return nil
}

func nonEmpty(v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("must not be empty")
	}
	return nil
}

func linkTypeCheck(v string) error {
	if v != "ether" && v != "infiniband" {
		return fmt.Errorf("want \"ether\" or \"infiniband\"")
	}
	return nil
}

// validateName applies kubelet's rule for the name part of an extended
// resource: a qualified name without prefix.
func validateName(n string) error {
	if strings.Contains(n, "/") {
		return fmt.Errorf("must not contain \"/\" (set resourcePrefix instead)")
	}
	if errs := validation.IsQualifiedName(n); len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// validatePrefix applies kubelet's rule for the domain of an extended resource.
func validatePrefix(p string) error {
	if p == "" {
		return fmt.Errorf("must not be empty")
	}
	if errs := validation.IsDNS1123Subdomain(p); len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	if p == "kubernetes.io" || strings.HasSuffix(p, ".kubernetes.io") {
		return fmt.Errorf("the kubernetes.io domain is reserved for native resources")
	}
	return nil
}

// ---- strict JSON helpers ----------------------------------------------------

func keySet(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// object decodes raw as a JSON object and rejects keys not in known.
func object(raw []byte, path string, known map[string]bool) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: must be a JSON object: %v", path, jsonMsg(err))
	}
	if m == nil {
		return nil, fmt.Errorf("%s: must be a JSON object, got null", path)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if known[k] {
			continue
		}
		if unsupportedKeys[k] {
			return nil, fmt.Errorf("%s: key %q is not supported by plexus", path, k)
		}
		return nil, fmt.Errorf("%s: unknown key %q", path, k)
	}
	return m, nil
}

func str(m map[string]json.RawMessage, key, path string, dst *string) error {
	raw, ok := m[key]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("%s: %s: want a string, got %s", path, key, raw)
	}
	return nil
}

func boolean(m map[string]json.RawMessage, key, path string, dst *bool) error {
	raw, ok := m[key]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("%s: %s: want true or false, got %s", path, key, raw)
	}
	return nil
}

func strList(m map[string]json.RawMessage, key, path string, dst *[]string, check func(string) error) error {
	raw, ok := m[key]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("%s: %s: want a list of strings, got %s", path, key, raw)
	}
	if check == nil {
		return nil
	}
	for i, v := range *dst {
		if err := check(v); err != nil {
			return fmt.Errorf("%s.%s[%d] %q: %v", path, key, i, v, err)
		}
	}
	return nil
}

func jsonMsg(err error) string {
	if se, ok := err.(*json.SyntaxError); ok {
		return fmt.Sprintf("%v (at byte %d)", se, se.Offset)
	}
	return err.Error()
}
