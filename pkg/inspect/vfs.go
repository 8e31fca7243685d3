package inspect

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	sriovcni "github.com/plexus-cni/plexus/pkg/sriov/cni"
	"github.com/plexus-cni/plexus/pkg/sriov/sysfs"
)

// Source of a VF held per sriov-cni's state files (before the switch).
const SourceSriovCNI = "sriov-cni"

// VF is one VF held by a container.
type VF struct {
	// DeviceID is the VF's PCI address.
	DeviceID string `json:"deviceID"`
	// Source is "plexus" (the sriov plugin's state file) or "sriov-cni"
	// (attached by sriov-cni before the node switched to plexus).
	Source      string `json:"source"`
	ContainerID string `json:"containerID"`
	Interface   string `json:"interface"`
	NetNS       string `json:"netns"`
	// Pod and Network come from the container's cache entry (plexus's, or
	// Multus's, which knows no pod).
	Pod       Pod    `json:"pod"`
	Network   string `json:"network"`
	PFName    string `json:"pfName"`
	VFIndex   int    `json:"vfIndex"`
	Userspace bool   `json:"userspace"`
	MAC       string `json:"mac"`
	// File is the state file read; Error says why it could not be read.
	File  string `json:"file"`
	Error string `json:"error"`
}

// VFs lists the VFs held per the sriov plugin's state files and per
// sriov-cni's from before the switch, joined with the cache (container →
// pod, network), ordered by PCI address.
func (n *Node) VFs() ([]VF, error) {
	cs, err := n.Containers()
	if err != nil {
		return nil, err
	}
	byID := map[string]*Container{}
	for i := range cs {
		byID[cs[i].ContainerID] = &cs[i]
	}
	ents, err := os.ReadDir(n.SriovStateDir)
	if errors.Is(err, os.ErrNotExist) {
		return []VF{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sriov state %s: %w", n.SriovStateDir, err)
	}
	store := sriovcni.Store{Dir: n.SriovStateDir}
	out := []VF{}
	for _, ent := range ents {
		name := ent.Name()
		if !ent.Type().IsRegular() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".lock") {
			continue
		}
		var v VF
		if addr, ok := strings.CutSuffix(name, ".json"); ok && sysfs.ValidPCIAddr(addr) {
			v = plexusVF(store, addr)
		} else if v, ok = n.upstreamVF(name, byID); !ok {
			continue
		}
		if c := byID[v.ContainerID]; c != nil {
			v.Pod = c.Pod
			for _, a := range c.Attachments {
				if a.Interface == v.Interface {
					v.Network = a.Network
				}
			}
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].DeviceID < out[j].DeviceID })
	return out, nil
}

// plexusVF reads the sriov plugin's state of the VF at addr.
func plexusVF(store sriovcni.Store, addr string) VF {
	v := VF{DeviceID: addr, Source: SourcePlexus, File: filepath.Join(store.Dir, addr+".json")}
	st, err := store.Load(addr)
	if err != nil || st == nil {
		v.Error = fmt.Sprint(err)
		return v
	}
	v.ContainerID, v.Interface, v.NetNS = st.ContainerID, st.IfName, st.NetNS
	v.PFName, v.VFIndex, v.Userspace, v.MAC = st.PFName, st.VFIndex, st.Userspace, st.MAC
	return v
}

// upstreamConf is the part of sriov-cni's cached NetConf
// (<dir>/<containerID>-<ifname>) shown; pkg/sriov/cni/upstream.go reads
// the same file for DEL.
type upstreamConf struct {
	DeviceID    string `json:"deviceID"`
	Master      string
	VFID        int
	DPDKMode    bool
	MAC         string `json:"mac"`
	OrigVfState struct{ HostIFName string }
}

// upstreamVF reads a file of sriov-cni's; ok is false for a file that is
// not one (a deviceID that is no PCI address).
func (n *Node) upstreamVF(name string, byID map[string]*Container) (VF, bool) {
	path := filepath.Join(n.SriovStateDir, name)
	b, err := os.ReadFile(path)
	if err != nil {
		return VF{}, false
	}
	var uc upstreamConf
	if json.Unmarshal(b, &uc) != nil || !sysfs.ValidPCIAddr(uc.DeviceID) {
		return VF{}, false
	}
	v := VF{DeviceID: uc.DeviceID, Source: SourceSriovCNI, File: path, PFName: uc.Master, VFIndex: uc.VFID,
		Userspace: uc.DPDKMode || uc.OrigVfState.HostIFName == "", MAC: uc.MAC}
	v.ContainerID, v.Interface = splitUpstreamName(name, byID)
	// sriov-cni marks the VF allocated in pci/<address>, holding the netns.
	if ns, err := os.ReadFile(filepath.Join(n.SriovStateDir, "pci", uc.DeviceID)); err == nil {
		v.NetNS = strings.TrimSpace(string(ns))
	}
	return v, true
}

// splitUpstreamName splits "<containerID>-<ifname>": at a known container
// ID, else at the first "-" (runtimes' IDs are hex, ifnames may hold "-").
func splitUpstreamName(name string, byID map[string]*Container) (string, string) {
	best := ""
	for id := range byID {
		if strings.HasPrefix(name, id+"-") && len(name) > len(id)+1 && len(id) > len(best) {
			best = id
		}
	}
	if best != "" {
		return best, name[len(best)+1:]
	}
	id, ifName, _ := strings.Cut(name, "-")
	return id, ifName
}
