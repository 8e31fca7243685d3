package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"

	"github.com/plexus-cni/plexus/pkg/sriov/pf"
	"github.com/plexus-cni/plexus/pkg/sriov/sysfs"
)

// Attachments made by k8snetworkplumbingwg/sriov-cni before the node
// switched to plexus. sriov-cni's ADD saves the NetConf it ran with — its
// pkg/types NetConf: the keys of the CNI NetConf and its own merged, the
// VF's state before ADD in OrigVfState — as JSON at
// <dir>/<containerID>-<ifname>, and marks the VF allocated in
// <dir>/pci/<pci-address> (holding the netns path). dir is
// /var/lib/cni/sriov, fixed in sriov-cni (no config key changes it) and
// the default of plexus's dataDir, so plexus looks in its dataDir.

// upstreamVfState is sriov-cni's types.VfState (field names as Go encodes
// them, no JSON tags).
type upstreamVfState struct {
	HostIFName   string // VF netdev name in the host; "" for a userspace-driver VF
	SpoofChk     bool
	Trust        bool // saved since v2.8; older versions restored trust off, as false does
	AdminMAC     string
	EffectiveMAC string
	Vlan         int
	VlanQoS      int
	VlanProto    int // since v2.8; 0 means 802.1Q, as in sriov-cni
	MinTxRate    int
	MaxTxRate    int
	LinkState    uint32
	MTU          int // since v2.9; 0 leaves the MTU alone
}

// upstreamConf is the part of sriov-cni's cached NetConf its DEL uses. The
// setting keys are kept only to know which PF-side settings its ADD made:
// like sriov-cni's ResetVFConfig, DEL restores those (and the admin MAC),
// nothing else — some drivers refuse link state or rates.
type upstreamConf struct {
	OrigVfState upstreamVfState
	DPDKMode    bool   // saved before v2.8 only
	Master      string // PF netdev name at ADD
	DeviceID    string `json:"deviceID"`
	VFID        int
	Vlan        *int    `json:"vlan"`
	VlanQoS     *int    `json:"vlanQoS"`
	MinTxRate   *int    `json:"min_tx_rate"`
	MaxTxRate   *int    `json:"max_tx_rate"`
	SpoofChk    string  `json:"spoofchk"`
	Trust       string  `json:"trust"`
	LinkState   string  `json:"link_state"`
	VlanProto   *string `json:"vlanProto"`
}

// upstreamCachePath is where sriov-cni kept this attachment's NetConf, or
// "" when the runtime's container ID or ifname cannot be a file name.
func upstreamCachePath(dir, containerID, ifName string) string {
	name := containerID + "-" + ifName
	if containerID == "" || ifName == "" || filepath.Base(name) != name || name == ".." {
		return ""
	}
	return filepath.Join(dir, name)
}

// loadUpstream reads a sriov-cni cache file; nil when there is none.
func loadUpstream(path string) (*upstreamConf, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sriov-cni state %s: %w", path, err)
	}
	var uc upstreamConf
	if err := json.Unmarshal(b, &uc); err != nil {
		return nil, fmt.Errorf("sriov-cni state %s: %w", path, describeJSONError(err))
	}
	if !sysfs.ValidPCIAddr(uc.DeviceID) {
		return nil, fmt.Errorf("sriov-cni state %s: key \"deviceID\": %q is not a PCI address", path, uc.DeviceID)
	}
	return &uc, nil
}

// releaseUpstream gives back a VF that sriov-cni attached to this container
// and ifname, from its cache file: PF-side settings restored on the PF as it
// is named now, the netdev moved home under its original name with its MAC
// and MTU, then the cache and allocation files removed. Without a cache
// file it does nothing. If plexus has attached the VF since, only the files
// go: sriov-cni's attachment of it is over.
func (p *Plugin) releaseUpstream(args *skel.CmdArgs, store Store, log *logger) error {
	path := upstreamCachePath(store.Dir, args.ContainerID, args.IfName)
	if path == "" {
		return nil
	}
	uc, err := loadUpstream(path)
	if err != nil || uc == nil {
		return err
	}
	unlock, err := store.Lock(uc.DeviceID)
	if err != nil {
		return err
	}
	defer unlock()
	held, err := store.Load(uc.DeviceID)
	if err != nil {
		return err
	}
	if held != nil {
		log.Infof("sriov-cni state %s: VF %s is now attached by plexus to container %s ifname %s: VF left alone, file removed",
			path, uc.DeviceID, held.ContainerID, held.IfName)
		return removeUpstream(store.Dir, path, uc.DeviceID)
	}
	log.Infof("VF %s: attached by sriov-cni (%s): restoring it from that state", uc.DeviceID, path)
	if err := p.restoreUpstreamPF(uc, log); err != nil {
		return fmt.Errorf("sriov-cni state %s: %w", path, err)
	}
	o := uc.OrigVfState
	if o.HostIFName != "" && !uc.DPDKMode {
		orig := netdevInfo{Name: o.HostIFName, MAC: o.EffectiveMAC, MTU: o.MTU}
		find := func() (netlink.Link, error) { return netlinksafe.LinkByName(args.IfName) }
		if err := p.bringHome(args.Netns, find, uc.DeviceID, orig); err != nil {
			return fmt.Errorf("sriov-cni state %s: %w", path, err)
		}
	}
	return removeUpstream(store.Dir, path, uc.DeviceID)
}

// restoreUpstreamPF is sriov-cni's ResetVFConfig: each PF-side setting its
// ADD made goes back to the saved value, in its order.
func (p *Plugin) restoreUpstreamPF(uc *upstreamConf, log *logger) error {
	name := p.pfNetdev("", uc.DeviceID, uc.Master, log)
	o, vf := uc.OrigVfState, uc.VFID
	var errs []error
	try := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("PF %s VF %d: restore %s: %w", name, vf, what, err))
		}
	}
	if uc.Vlan != nil {
		proto := o.VlanProto
		if proto == 0 {
			proto = pf.VlanProto8021Q
		}
		try("vlan", p.PF.LinkSetVfVlanQosProto(name, vf, o.Vlan, o.VlanQoS, proto))
	}
	if uc.SpoofChk != "" {
		try("spoofchk", p.PF.LinkSetVfSpoofchk(name, vf, o.SpoofChk))
	}
	if o.AdminMAC != "" {
		mac, err := net.ParseMAC(o.AdminMAC)
		if err == nil {
			err = p.PF.LinkSetVfHardwareAddr(name, vf, mac)
		}
		try("admin MAC "+o.AdminMAC, err)
	}
	if uc.Trust != "" {
		try("trust", p.PF.LinkSetVfTrust(name, vf, o.Trust))
	}
	if uc.MinTxRate != nil || uc.MaxTxRate != nil {
		try("rate", p.PF.LinkSetVfRate(name, vf, o.MinTxRate, o.MaxTxRate))
	}
	if uc.LinkState != "" {
		try("link_state", p.PF.LinkSetVfState(name, vf, o.LinkState))
	}
	return errors.Join(errs...)
}

// removeUpstream removes sriov-cni's allocation mark for the VF and the
// attachment's cache file (last, so a failed DEL is retried from it).
func removeUpstream(dir, cache, deviceID string) error {
	for _, f := range []string{filepath.Join(dir, "pci", deviceID), cache} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sriov-cni state: %w", err)
		}
	}
	return nil
}
