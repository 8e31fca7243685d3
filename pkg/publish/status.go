// Package publish is the third stage of an attach (DESIGN.md, "Three
// stages"): it tells the world what was attached — the pod's
// k8s.v1.cni.cncf.io/network-status and Events — through a Sink: a file in
// the container's cache directory in clusterless mode (FileSink), the API
// in Kubernetes mode (pkg/k8s), an outbox in the daemon deployment.
package publish

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/atomicfile"
)

// FromResult builds one network-status entry for the interface ifName.
func FromResult(network, ifName string, primary bool, res types.Result, dev *nadv1.DeviceInfo) (nadv1.NetworkStatus, error) {
	st := nadv1.NetworkStatus{Name: network, Interface: ifName, Default: primary, DeviceInfo: dev}
	if res == nil {
		return st, nil
	}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return st, fmt.Errorf("network %q: converting result: %v", network, err)
	}
	idx := -1
	for i, iface := range r.Interfaces {
		if iface.Name == ifName && iface.Sandbox != "" {
			idx = i
			st.Mac = iface.Mac
			st.Mtu = iface.Mtu
			break
		}
	}
	for _, ip := range r.IPs {
		if ip.Interface != nil && idx >= 0 && *ip.Interface != idx {
			continue
		}
		st.IPs = append(st.IPs, ip.Address.IP.String())
	}
	for _, rt := range r.Routes {
		if rt.GW == nil {
			continue
		}
		if ones, _ := rt.Dst.Mask.Size(); ones == 0 {
			st.Gateway = append(st.Gateway, rt.GW.String())
		}
	}
	st.DNS = nadv1.DNS{Nameservers: r.DNS.Nameservers, Domain: r.DNS.Domain, Search: r.DNS.Search, Options: r.DNS.Options}
	return st, nil
}

// FileName is the name of the network-status file in a container's cache
// directory (clusterless mode).
const FileName = "network-status.json"

// WriteFile writes statuses as JSON into dir/network-status.json, atomically.
func WriteFile(dir string, statuses []nadv1.NetworkStatus) error {
	b, err := json.MarshalIndent(statuses, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, FileName), b, 0o600)
}
