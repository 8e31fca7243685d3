package scenarios

import (
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Annotation keys of the Network Plumbing WG spec.
const (
	NetworksAnnotation      = "k8s.v1.cni.cncf.io/networks"
	NetworkStatusAnnotation = "k8s.v1.cni.cncf.io/network-status"
)

func metaType(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

// Iface is what a pod sees of one of its interfaces.
type Iface struct {
	Name  string
	MAC   string
	Addrs []string // CIDRs, IPv4 and global IPv6
}

// ParseIPAddr parses `ip -o addr show` (iproute2 or busybox) into
// interfaces by name with their addresses.
func ParseIPAddr(out string) map[string]*Iface {
	ifs := map[string]*Iface{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		// "2: eth0    inet 10.1.0.5/24 brd ... scope global eth0\ ..."
		if len(f) < 4 || !strings.HasSuffix(f[0], ":") || (f[2] != "inet" && f[2] != "inet6") {
			continue
		}
		name := strings.SplitN(f[1], "@", 2)[0]
		if ifs[name] == nil {
			ifs[name] = &Iface{Name: name}
		}
		if strings.Contains(line, "scope link") {
			continue
		}
		ifs[name].Addrs = append(ifs[name].Addrs, f[3])
	}
	return ifs
}

// ParseIPLink parses `ip -o link show` into MAC addresses by interface name.
func ParseIPLink(out string) map[string]string {
	macs := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		// "3: net1@if7: <BROADCAST,...> mtu 1500 ...\    link/ether 02:..:05 brd ..."
		if len(f) < 2 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
		for i := 2; i+1 < len(f); i++ {
			if strings.HasPrefix(f[i], "link/") {
				macs[name] = strings.ToLower(f[i+1])
			}
		}
	}
	return macs
}

// ParseNetworkStatus reads the network-status annotation of a pod.
func ParseNetworkStatus(annotations map[string]string) ([]nadv1.NetworkStatus, error) {
	raw, ok := annotations[NetworkStatusAnnotation]
	if !ok {
		return nil, fmt.Errorf("no %s annotation", NetworkStatusAnnotation)
	}
	var st []nadv1.NetworkStatus
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", NetworkStatusAnnotation, err, raw)
	}
	return st, nil
}

// Want is an attachment a scenario expects.
type Want struct {
	Network   string // namespace/name as network-status names it
	Interface string
	IPs       []string // CIDRs expected on the interface (network-status lists the IPs)
	// Subnet: the interface has exactly one IPv4 address, in this CIDR,
	// which network-status lists (for IPAM that picks the address).
	Subnet string
	MAC    string // "" = not checked
}

// CheckAttachments checks network-status and the pod's interfaces
// against the wanted attachments: exactly one default entry on eth0 with an
// address, one entry per want with its interface, IPs and MAC, and the
// interfaces really in the pod with those addresses and MACs.
func CheckAttachments(st []nadv1.NetworkStatus, ifs map[string]*Iface, macs map[string]string, wants []Want) error {
	var defaults []nadv1.NetworkStatus
	for _, s := range st {
		if s.Default {
			defaults = append(defaults, s)
		}
	}
	if len(defaults) != 1 {
		return fmt.Errorf("network-status has %d default entries, want 1: %+v", len(defaults), st)
	}
	if d := defaults[0]; d.Interface != "eth0" {
		return fmt.Errorf("network-status default entry %q is on interface %q, want eth0", d.Name, d.Interface)
	}
	if eth0 := ifs["eth0"]; eth0 == nil || len(eth0.Addrs) == 0 {
		return fmt.Errorf("pod has no eth0 with an address (interfaces %s)", names(ifs))
	}
	if len(st) != len(wants)+1 {
		return fmt.Errorf("network-status has %d entries, want %d (default + %d): %+v", len(st), len(wants)+1, len(wants), st)
	}
	for _, w := range wants {
		var got *nadv1.NetworkStatus
		for i := range st {
			if st[i].Name == w.Network && st[i].Interface == w.Interface {
				got = &st[i]
			}
		}
		if got == nil {
			return fmt.Errorf("network-status has no entry for %s on %s: %+v", w.Network, w.Interface, st)
		}
		iface := ifs[w.Interface]
		if iface == nil {
			return fmt.Errorf("network %s: interface %s not in the pod (interfaces %s)", w.Network, w.Interface, names(ifs))
		}
		for _, cidr := range w.IPs {
			ip, _, err := net.ParseCIDR(cidr)
			if err != nil {
				return fmt.Errorf("want IP %q: %w", cidr, err)
			}
			if !contains(got.IPs, ip.String()) {
				return fmt.Errorf("network %s: network-status IPs %v lack %s", w.Network, got.IPs, ip)
			}
			if !contains(iface.Addrs, cidr) {
				return fmt.Errorf("network %s: interface %s has %v, want %s", w.Network, w.Interface, iface.Addrs, cidr)
			}
		}
		if w.Subnet != "" {
			_, subnet, err := net.ParseCIDR(w.Subnet)
			if err != nil {
				return fmt.Errorf("want subnet %q: %w", w.Subnet, err)
			}
			var v4 []string
			for _, a := range iface.Addrs {
				if ip, _, err := net.ParseCIDR(a); err == nil && ip.To4() != nil {
					v4 = append(v4, a)
				}
			}
			if len(v4) != 1 {
				return fmt.Errorf("network %s: interface %s has IPv4 addresses %v, want one in %s", w.Network, w.Interface, v4, w.Subnet)
			}
			ip, _, _ := net.ParseCIDR(v4[0])
			if !subnet.Contains(ip) {
				return fmt.Errorf("network %s: interface %s has %s, want an address in %s", w.Network, w.Interface, v4[0], w.Subnet)
			}
			if !contains(got.IPs, ip.String()) {
				return fmt.Errorf("network %s: network-status IPs %v lack %s", w.Network, got.IPs, ip)
			}
		}
		if w.MAC != "" {
			if !strings.EqualFold(macs[w.Interface], w.MAC) {
				return fmt.Errorf("network %s: interface %s has MAC %q, want %s", w.Network, w.Interface, macs[w.Interface], w.MAC)
			}
		}
		if got.Mac != "" && !strings.EqualFold(got.Mac, macs[w.Interface]) {
			return fmt.Errorf("network %s: network-status MAC %s, interface %s has %s", w.Network, got.Mac, w.Interface, macs[w.Interface])
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func names(ifs map[string]*Iface) string {
	var n []string
	for k := range ifs {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, ",")
}

// Route is a route of the pod's main table.
type Route struct {
	Dst string // "default" or a CIDR
	Via string // gateway, "" when on-link
	Dev string
}

// ParseIPRoute parses `ip route show` (iproute2 or busybox).
func ParseIPRoute(out string) []Route {
	var routes []Route
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		r := Route{Dst: f[0]}
		for i := 1; i+1 < len(f); i++ {
			switch f[i] {
			case "via":
				r.Via = f[i+1]
			case "dev":
				r.Dev = f[i+1]
			}
		}
		routes = append(routes, r)
	}
	return routes
}

// DefaultRoutes returns the default routes among routes.
func DefaultRoutes(routes []Route) []Route {
	var d []Route
	for _, r := range routes {
		if r.Dst == "default" || r.Dst == "0.0.0.0/0" {
			d = append(d, r)
		}
	}
	return d
}
