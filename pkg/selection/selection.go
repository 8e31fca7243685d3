// Package selection parses the networks a pod asks for: the
// k8s.v1.cni.cncf.io/networks annotation in its short form
// ("[ns/]name[@ifname],...") and its JSON list form, into the NAD client's
// NetworkSelectionElement type, and validates every field.
package selection

import (
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/containernetworking/cni/pkg/utils"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

var ()

// knownKeys are the JSON keys of a selection element (NetworkSelectionElement).
var knownKeys = map[string]bool{
	"name": true, "namespace": true, "ips": true, "mac": true, "infiniband-guid": true,
	"interface": true, "portMappings": true, "bandwidth": true, "cni-args": true,
	"default-route": true, "ipam-claim-reference": true,
}

// Keys of Multus's own NetworkSelectionElement that the NPWG type lacks.
const (
	// multusIfKey is Multus's pre-3.2 name of "interface"; Multus still
	// reads it when "interface" is absent, and so does plexus (with a
	// warning) unless strict.
	multusIfKey = "interfaceRequest"
	// multusDeviceIDKey lets a pod pick a device under Multus; plexus never
	// takes a device ID from a pod (trust model), so it is ignored.
	multusDeviceIDKey = "deviceID"
)

// Parse parses an annotation value in either form, strictly: an unknown
// field in the JSON form is an error. Elements without a namespace get
// defaultNamespace. An empty value yields no elements.
func Parse(value, defaultNamespace string) ([]*nadv1.NetworkSelectionElement, error) {
	elems, _, err := ParseWithWarnings(value, defaultNamespace, true)
	return elems, err
}

// ParseWithWarnings parses an annotation value in either form. Unless
// strict, a field of the JSON form that plexus does not know is ignored, as
// Multus ignores it, and reported in warnings, one per field, each naming
// the network and the field (`network "ns/x": unknown field "interfce"
// ignored`), for a Warning event and the log. A field whose name differs
// from a known one only in case is read as that field (encoding/json does so
// under Multus), and Multus's deprecated "interfaceRequest" as "interface",
// each with a warning. With strict every such field is an error. Malformed
// values of known fields are errors either way.
func ParseWithWarnings(value, defaultNamespace string, strict bool) ([]*nadv1.NetworkSelectionElement, []string, error) {
	v := strings.TrimSpace(value)
	if v == "" {
		return nil, nil, nil
	}
	var elems []*nadv1.NetworkSelectionElement
	var warnings []string
	var err error
	if strings.HasPrefix(v, "[") || strings.HasPrefix(v, "{") {
		elems, warnings, err = parseJSON([]byte(v), defaultNamespace, strict)
	} else {
		elems, err = parseShort(v)
	}
	if err != nil {
		return nil, nil, err
	}
	for _, e := range elems {
		if e.Namespace == "" {
			e.Namespace = defaultNamespace
		}
	}
	if err := Validate(elems); err != nil {
		return nil, nil, err
	}
	return elems, warnings, nil
}

// ParseShort parses only the short form; it is what clusterless mode reads
// from K8S_POD_NETWORKS in CNI_ARGS.
func ParseShort(value, defaultNamespace string) ([]*nadv1.NetworkSelectionElement, error) {
	v := strings.TrimSpace(value)
	if v == "" {
		return nil, nil
	}
	elems, err := parseShort(v)
	if err != nil {
		return nil, err
	}
	for _, e := range elems {
		if e.Namespace == "" {
			e.Namespace = defaultNamespace
		}
	}
	return elems, Validate(elems)
}

func parseShort(v string) ([]*nadv1.NetworkSelectionElement, error) {
	var out []*nadv1.NetworkSelectionElement
	for i, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("network selection element %d: empty element (stray comma?) in %q", i+1, v)
		}
		e := &nadv1.NetworkSelectionElement{}
		rest := item
		if at := strings.Index(rest, "@"); at >= 0 {
			e.InterfaceRequest = rest[at+1:]
			rest = rest[:at]
			if e.InterfaceRequest == "" {
				return nil, fmt.Errorf("network selection element %d (%q): field \"interface\": empty after '@'", i+1, item)
			}
			if strings.Contains(e.InterfaceRequest, "@") {
				return nil, fmt.Errorf("network selection element %d (%q): field \"interface\": %q contains a second '@'", i+1, item, e.InterfaceRequest)
			}
		}
		if slash := strings.Index(rest, "/"); slash >= 0 {
			e.Namespace, e.Name = rest[:slash], rest[slash+1:]
			if e.Namespace == "" {
				return nil, fmt.Errorf("network selection element %d (%q): field \"namespace\": empty before '/'", i+1, item)
			}
		} else {
			e.Name = rest
		}
		if strings.ContainsAny(e.Name, "/@ \t") {
			return nil, fmt.Errorf("network selection element %d (%q): field \"name\": %q is not of the form [namespace/]name[@interface]", i+1, item, e.Name)
		}
		out = append(out, e)
	}
	return out, nil
}

func parseJSON(b []byte, defaultNamespace string, strict bool) ([]*nadv1.NetworkSelectionElement, []string, error) {
	if b[0] == '{' {
		return nil, nil, fmt.Errorf("networks annotation: JSON form must be a list ([{...}]), got an object")
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, nil, fmt.Errorf("networks annotation: invalid JSON list: %v", err)
	}
	out := make([]*nadv1.NetworkSelectionElement, 0, len(raws))
	var warnings []string
	for i, raw := range raws {
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(raw, &keys); err != nil || keys == nil {
			return nil, nil, fmt.Errorf("network selection element %d: not a JSON object: %s", i+1, shorten(raw))
		}
		label := rawLabel(keys, defaultNamespace)
		ws, err := normalizeKeys(keys, strict, label)
		if err != nil {
			return nil, nil, fmt.Errorf("network selection element %d: %v", i+1, err)
		}
		warnings = append(warnings, ws...)
		if err := checkDefaultRoute(keys["default-route"]); err != nil {
			return nil, nil, fmt.Errorf("network selection element %d (%q): %v", i+1, label, err)
		}
		if len(ws) > 0 {
			raw, _ = json.Marshal(keys)
		}
		e := &nadv1.NetworkSelectionElement{}
		if err := json.Unmarshal(raw, e); err != nil {
			return nil, nil, fmt.Errorf("network selection element %d: %s", i+1, describeJSONError(err))
		}
		out = append(out, e)
	}
	return out, warnings, nil
}

// normalizeKeys leaves only known keys in keys. A key that differs from a
// known one only in case is renamed to it (encoding/json would match it
// anyway), Multus's "interfaceRequest" becomes "interface", and any other
// key is dropped; each with a warning naming the network label. With
// strict, the first such key is an error instead.
func normalizeKeys(keys map[string]json.RawMessage, strict bool, label string) ([]string, error) {
	var odd []string
	for k := range keys {
		if !knownKeys[k] {
			odd = append(odd, k)
		}
	}
	if len(odd) == 0 {
		return nil, nil
	}
	sort.Strings(odd)
	if strict {
		k := odd[0]
		switch canon := canonicalKey(k); {
		case k == multusIfKey:
			return nil, fmt.Errorf("unknown field %q (Multus's deprecated name; use \"interface\")", k)
		case k == multusDeviceIDKey:
			return nil, fmt.Errorf("unknown field %q (device IDs come from the kubelet for NADs with a resourceName)", k)
		case canon != "":
			return nil, fmt.Errorf("unknown field %q (did you mean %q?)", k, canon)
		default:
			return nil, fmt.Errorf("unknown field %q", k)
		}
	}
	var warnings []string
	for _, k := range odd {
		v := keys[k]
		delete(keys, k)
		target := canonicalKey(k)
		if k == multusIfKey {
			target = "interface"
		}
		switch {
		case k == multusDeviceIDKey:
			warnings = append(warnings, fmt.Sprintf("network %q: field %q ignored: device IDs come only from the kubelet, for NADs with a resourceName", label, k))
		case target == "":
			warnings = append(warnings, fmt.Sprintf("network %q: unknown field %q ignored", label, k))
		case hasKey(keys, target):
			warnings = append(warnings, fmt.Sprintf("network %q: field %q ignored: field %q is also given", label, k, target))
		default:
			keys[target] = v
			warnings = append(warnings, fmt.Sprintf("network %q: field %q read as %q", label, k, target))
		}
	}
	return warnings, nil
}

// canonicalKey returns the known key that k matches case-insensitively, or "".
func canonicalKey(k string) string {
	for known := range knownKeys {
		if strings.EqualFold(k, known) {
			return known
		}
	}
	return ""
}

func hasKey(keys map[string]json.RawMessage, k string) bool {
	_, ok := keys[k]
	return ok
}

// rawLabel names an element as "namespace/name" from its raw keys, before it
// is decoded, for messages.
func rawLabel(keys map[string]json.RawMessage, defaultNamespace string) string {
	var name, ns string
	_ = json.Unmarshal(keys["name"], &name)
	_ = json.Unmarshal(keys["namespace"], &ns)
	if ns == "" {
		ns = defaultNamespace
	}
	return ns + "/" + name
}

// checkDefaultRoute checks the raw "default-route" value: absent, null, or a
// list of IP address strings. nadv1's decoding (net.IP's UnmarshalText)
// turns "" and null into nil IPs without an error, so this is checked before.
func checkDefaultRoute(raw json.RawMessage) error {
	if raw == nil || string(raw) == "null" {
		return nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("field \"default-route\": want a list of IP addresses, got %s", shorten(raw))
	}
	for i, item := range list {
		var s string
		if err := json.Unmarshal(item, &s); err != nil || string(item) == "null" || net.ParseIP(s) == nil {
			return fmt.Errorf("field \"default-route\"[%d]: %s is not an IP address", i, shorten(item))
		}
	}
	return nil
}

// Validate checks every element's fields, and that no two elements ask for
// the same [network, interface] pair or the same interface name.
func Validate(elems []*nadv1.NetworkSelectionElement) error {
	seenIf := map[string]int{}
	for i, e := range elems {
		where := fmt.Sprintf("network selection element %d (%q)", i+1, display(e))
		if e.Name == "" {
			return fmt.Errorf("%s: field \"name\": missing", where)
		}
		if len(validation.IsDNS1123Subdomain(e.Name)) > 0 {
			return fmt.Errorf("%s: field \"name\": %q is not a valid DNS-1123 subdomain (lower-case alphanumerics, '-', '.')", where, e.Name)
		}
		if e.Namespace != "" && len(validation.IsDNS1123Label(e.Namespace)) > 0 {
			return fmt.Errorf("%s: field \"namespace\": %q is not a valid DNS-1123 label", where, e.Namespace)
		}
		if e.InterfaceRequest != "" {
			if err := ValidateIfName(e.InterfaceRequest); err != nil {
				return fmt.Errorf("%s: field \"interface\": %v", where, err)
			}
			if j, dup := seenIf[e.InterfaceRequest]; dup {
				return fmt.Errorf("%s: field \"interface\": %q is also requested by element %d", where, e.InterfaceRequest, j)
			}
			seenIf[e.InterfaceRequest] = i + 1
		}
		for _, ip := range e.IPRequest {
			// An address with or without a prefix, as Multus accepts
			// (whether the IPAM plugin takes a bare address is its call).
			if _, _, err := net.ParseCIDR(ip); err != nil && net.ParseIP(ip) == nil {
				return fmt.Errorf("%s: field \"ips\": %q is not an IP address or CIDR (e.g. 10.1.1.11/24)", where, ip)
			}
		}
		if e.MacRequest != "" {
			if _, err := net.ParseMAC(e.MacRequest); err != nil {
				return fmt.Errorf("%s: field \"mac\": %q is not a MAC address", where, e.MacRequest)
			}
		}
		if e.InfinibandGUIDRequest != "" {
			if hw, err := net.ParseMAC(e.InfinibandGUIDRequest); err != nil || len(hw) != 8 {
				return fmt.Errorf("%s: field \"infiniband-guid\": %q is not an 8-byte GUID", where, e.InfinibandGUIDRequest)
			}
		}
		for k, pm := range e.PortMappingsRequest {
			if pm == nil {
				return fmt.Errorf("%s: field \"portMappings\"[%d]: null", where, k)
			}
			if pm.ContainerPort < 1 || pm.ContainerPort > 65535 || pm.HostPort < 0 || pm.HostPort > 65535 {
				return fmt.Errorf("%s: field \"portMappings\"[%d]: ports must be within 1-65535", where, k)
			}
			switch strings.ToLower(pm.Protocol) {
			case "", "tcp", "udp", "sctp":
			default:
				return fmt.Errorf("%s: field \"portMappings\"[%d].protocol: %q is not tcp, udp or sctp", where, k, pm.Protocol)
			}
		}
		if b := e.BandwidthRequest; b != nil && (b.IngressRate < 0 || b.EgressRate < 0 || b.IngressBurst < 0 || b.EgressBurst < 0) {
			return fmt.Errorf("%s: field \"bandwidth\": rates and bursts must not be negative", where)
		}
		v4, v6 := 0, 0
		for _, gw := range e.GatewayRequest {
			if gw.To4() != nil {
				v4++
			} else {
				v6++
			}
		}
		if v4 > 1 || v6 > 1 {
			return fmt.Errorf("%s: field \"default-route\": at most one gateway per IP family", where)
		}
	}
	return nil
}

// ValidateIfName checks a Linux interface name with libcni's rule
// (utils.ValidateInterfaceName: 1 to 15 bytes, not "." or "..", no '/',
// ':' or whitespace), quoting the name.
func ValidateIfName(name string) error {
	if err := utils.ValidateInterfaceName(name); err != nil {
		if err.Details != "" {
			return fmt.Errorf("%q: %s (%s)", name, err.Msg, err.Details)
		}
		return fmt.Errorf("%q: %s", name, err.Msg)
	}
	return nil
}

func display(e *nadv1.NetworkSelectionElement) string {
	s := e.Name
	if e.Namespace != "" {
		s = e.Namespace + "/" + s
	}
	if e.InterfaceRequest != "" {
		s += "@" + e.InterfaceRequest
	}
	return s
}

func describeJSONError(err error) string {
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		return fmt.Sprintf("field %q: want %s, got JSON %s", te.Field, te.Type, te.Value)
	}
	return err.Error()
}

func shorten(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "…"
	}
	return string(b)
}
