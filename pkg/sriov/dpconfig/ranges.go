package dpconfig

import (
	"fmt"
	"strconv"
	"strings"
)

// maxVFIndex bounds VF indices (sriov_totalvfs is a 16-bit field).
const maxVFIndex = 65535

// ParseDeviceRef parses "name", or "name#ranges" where ranges is a comma
// list of indices and inclusive "first-last" ranges: "ens1f0#0-3,7".
// With pci set, name must be a PCI address (rootDevices).
func ParseDeviceRef(v string, pci bool) (DeviceRef, error) {
	name, spec, hasRanges := strings.Cut(v, "#")
	if name == "" {
		return DeviceRef{}, fmt.Errorf("missing the PF name before \"#\"")
	}
	if strings.ContainsAny(name, " \t/") {
		return DeviceRef{}, fmt.Errorf("PF name %q contains a space or \"/\"", name)
	}
	if pci {
		if err := addrCheck(name); err != nil {
			return DeviceRef{}, fmt.Errorf("root device %q: %v", name, err)
		}
		name = strings.ToLower(name)
	}
	ref := DeviceRef{Name: name}
	if !hasRanges {
		return ref, nil
	}
	if spec == "" {
		return DeviceRef{}, fmt.Errorf("empty VF range after \"#\"")
	}
	for _, part := range strings.Split(spec, ",") {
		r, err := parseRange(part)
		if err != nil {
			return DeviceRef{}, err
		}
		ref.Ranges = append(ref.Ranges, r)
	}
	return ref, nil
}

func parseRange(part string) (Range, error) {
	if part == "" {
		return Range{}, fmt.Errorf("empty element in VF range list")
	}
	first, last, isRange := strings.Cut(part, "-")
	a, err := vfIndex(first, part)
	if err != nil {
		return Range{}, err
	}
	if !isRange {
		return Range{a, a}, nil
	}
	b, err := vfIndex(last, part)
	if err != nil {
		return Range{}, err
	}
	if a > b {
		return Range{}, fmt.Errorf("VF range %q: start %d is greater than end %d", part, a, b)
	}
	return Range{a, b}, nil
}

func vfIndex(s, part string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("VF range %q: missing index", part)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("VF range %q: %q is not a VF index (0-%d)", part, s, maxVFIndex)
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > maxVFIndex {
		return 0, fmt.Errorf("VF range %q: index %s out of range 0-%d", part, s, maxVFIndex)
	}
	return n, nil
}
