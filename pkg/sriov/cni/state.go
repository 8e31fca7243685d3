package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/plexus-cni/plexus/pkg/atomicfile"
	"github.com/plexus-cni/plexus/pkg/sriov/pf"
)

// StateVersion is the schema version Save writes into every state file. A
// file without "version" (0) was written before the field existed and has
// the same layout as version 1 (without pfAddr).
const StateVersion = 1

// State is what ADD saved about one VF, kept as <dataDir>/<pci-address>.json
// for as long as a pod holds the VF.
type State struct {
	Version     int    `json:"version"`
	DeviceID    string `json:"deviceID"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	NetNS       string `json:"netns"`
	PFName      string `json:"pfName"`
	PFAddr      string `json:"pfAddr,omitempty"` // PF PCI address: finds the PF again if renamed
	VFIndex     int    `json:"vfIndex"`
	Userspace   bool   `json:"userspace"`

	// PF-side settings before ADD, and which of them ADD changed.
	OrigPF  pf.VFState `json:"origPF"`
	Applied []string   `json:"applied,omitempty"`

	// The VF netdev before ADD (empty for userspace drivers).
	OrigName string `json:"origName,omitempty"`
	OrigMAC  string `json:"origMAC,omitempty"`
	OrigMTU  int    `json:"origMTU,omitempty"`
	OrigUp   bool   `json:"origUp,omitempty"`

	// What the pod got.
	MAC            string `json:"mac,omitempty"`
	PodIndex       int    `json:"podIndex,omitempty"` // ifindex in the pod netns
	DeviceInfoFile string `json:"deviceInfoFile,omitempty"`
}

// Store keeps State files and per-VF locks under Dir.
type Store struct {
	Dir string
}

func (s Store) path(addr string) string { return filepath.Join(s.Dir, addr+".json") }

// Lock takes an exclusive lock on the VF's PCI address (an flock on
// <dir>/<addr>.lock) and returns the function that releases it.
func (s Store) Lock(addr string) (func(), error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", s.Dir, err)
	}
	f, err := os.OpenFile(filepath.Join(s.Dir, addr+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("VF %s: lock: %w", addr, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("VF %s: lock: %w", addr, err)
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		_ = f.Close()
	}, nil
}

// Load returns the VF's state, or nil when none is saved.
func (s Store) Load(addr string) (*State, error) {
	b, err := os.ReadFile(s.path(addr))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("VF %s: read state: %w", addr, err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("VF %s: state file %s: %w", addr, s.path(addr), err)
	}
	if st.Version > StateVersion {
		return nil, fmt.Errorf("VF %s: state file %s: \"version\" %d is newer than this plugin's %d (written by a newer plexus)",
			addr, s.path(addr), st.Version, StateVersion)
	}
	return &st, nil
}

// Save writes the state crash-safely (atomicfile: unique temp, fsync,
// rename, fsync dir), stamped with StateVersion.
func (s Store) Save(st *State) error {
	st.Version = StateVersion
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(s.path(st.DeviceID), b, 0o600); err != nil {
		return fmt.Errorf("VF %s: save state: %w", st.DeviceID, err)
	}
	return nil
}

// Remove deletes the VF's state (absent is fine).
func (s Store) Remove(addr string) error {
	if err := os.Remove(s.path(addr)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("VF %s: remove state: %w", addr, err)
	}
	return nil
}

// FindByAttachment returns the PCI address whose state belongs to this
// container and interface, or "" (used by DEL when no deviceID is passed).
func (s Store) FindByAttachment(containerID, ifName string) (string, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("data dir %s: %w", s.Dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		st, err := s.Load(strings.TrimSuffix(name, ".json"))
		if err != nil || st == nil {
			continue
		}
		if st.ContainerID == containerID && st.IfName == ifName {
			return st.DeviceID, nil
		}
	}
	return "", nil
}

// Live reports whether the pod holding this state still exists, judged by
// its network namespace still being openable.
func (st *State) Live() bool {
	if st.NetNS == "" {
		return false
	}
	n, err := ns.GetNS(st.NetNS)
	if err != nil {
		return false
	}
	_ = n.Close()
	return true
}

// Owns reports whether the state belongs to this attachment.
func (st *State) Owns(containerID, ifName string) bool {
	return st.ContainerID == containerID && st.IfName == ifName
}
