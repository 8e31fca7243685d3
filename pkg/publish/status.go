// Package publish is the third stage of an attach (docs/architecture.md,
// "Three stages"): it tells the world what was attached — the pod's
// k8s.v1.cni.cncf.io/network-status and Events — through a Sink: a file in
// the container's cache directory in clusterless mode (FileSink), the API
// in Kubernetes mode (pkg/k8s), an outbox in the daemon deployment.
package publish

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/atomicfile"
	"github.com/plexus-cni/plexus/pkg/podnet"
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

// NetworkStatus builds the network-status of an attached container: one
// entry per attachment, from its delegate's result and its device-info file.
func NetworkStatus(entry *podnet.Entry, results []types.Result) ([]nadv1.NetworkStatus, error) {
	out := make([]nadv1.NetworkStatus, 0, len(results))
	for i, res := range results {
		a := &entry.Attachments[i]
		st, err := FromResult(a.Network, a.IfName, a.Primary, res, loadDeviceInfo(a.DeviceInfoFile))
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// loadDeviceInfo reads an attachment's device-info file; nil when there is
// none or it does not parse.
func loadDeviceInfo(path string) *nadv1.DeviceInfo {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	di := &nadv1.DeviceInfo{}
	if json.Unmarshal(b, di) != nil {
		return nil
	}
	return di
}
