package inspect

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// Kinds of stale state.
const (
	KindEntry  = "entry"  // a container's entry in plexus's cache
	KindLeaked = "leaked" // a record under <cniDir>/leaked/: DEL gave up
)

// What the state of an entry's network namespace is.
const (
	NetNSExists  = "exists"
	NetNSGone    = "gone"
	NetNSUnknown = "unknown" // its directory is missing: a mount namespace other than the host's?
)

// Actions GC takes.
const (
	ActionDel  = "del"  // GC runs the delegates' DEL and removes the entry
	ActionNone = "none" // left to the runtime (its sandbox exists) or to a human
)

// Stale is state whose sandbox is gone, or that something could not free.
type Stale struct {
	Kind        string `json:"kind"`
	ContainerID string `json:"containerID"`
	Pod         Pod    `json:"pod"`
	NetNS       string `json:"netns"`
	// NetNSState is "exists", "gone" or "unknown".
	NetNSState   string `json:"netnsState"`
	Incomplete   bool   `json:"incomplete"`
	DelAttempts  int    `json:"delAttempts"`
	LastDelError string `json:"lastDelError"`
	// Interfaces are the attachments' "network (interface)".
	Interfaces []string `json:"interfaces"`
	// Action is what gc does: "del" or "none".
	Action string `json:"action"`
	Reason string `json:"reason"`
	File   string `json:"file"`
}

// Stale lists cache entries whose netns is gone (GC DELs them), entries
// marked incomplete, entries that cannot be read, and leak records; cache
// entries first, each group ordered by container ID.
func (n *Node) Stale() ([]Stale, error) {
	cs, err := n.cacheContainers()
	if err != nil {
		return nil, err
	}
	out := []Stale{}
	for _, c := range cs {
		if s, ok := staleEntry(&c); ok {
			out = append(out, s)
		}
	}
	leaked, err := n.leaked()
	if err != nil {
		return nil, err
	}
	return append(out, leaked...), nil
}

// staleEntry judges one cache entry.
func staleEntry(c *Container) (Stale, bool) {
	s := Stale{Kind: KindEntry, ContainerID: c.ContainerID, Pod: c.Pod, NetNS: c.NetNS, Incomplete: c.Incomplete,
		DelAttempts: c.DelAttempts, LastDelError: c.LastDelError, Interfaces: interfaces(c.Attachments),
		Action: ActionNone, File: c.File}
	if c.Error != "" {
		// Without the entry plexus cannot tell its delegates what to free.
		s.NetNSState = NetNSUnknown
		s.Reason = "cache entry unreadable: " + c.Error
		return s, true
	}
	s.NetNSState = netnsState(c.NetNS)
	switch s.NetNSState {
	case NetNSGone:
		// The sandbox is gone but the delegates may still hold IPAM leases,
		// host-side interfaces, VFs: their DEL frees them.
		s.Action = ActionDel
		s.Reason = "netns gone"
		if c.NetNS == "" {
			s.Reason = "netns gone (a DEL ran after it was)"
		}
	case NetNSUnknown:
		s.Reason = fmt.Sprintf("netns directory %s missing: run plexusctl in the host's mount namespace", filepath.Dir(c.NetNS))
	case NetNSExists:
		if !c.Incomplete {
			return s, false
		}
		// The sandbox still exists: the runtime's next DEL finishes the
		// job, and deleting now would break a pod that may still run.
		s.Reason = "netns exists: left to the runtime's DEL"
	}
	if c.Incomplete {
		after := ""
		if c.DelAttempts > 0 {
			after = fmt.Sprintf(" after %d failed DEL(s)", c.DelAttempts)
		}
		s.Reason = fmt.Sprintf("incomplete%s: %s; %s", after, orDash(c.LastDelError), s.Reason)
	}
	return s, true
}

// netnsState tells whether a network namespace path still exists. An empty
// path is what a DEL that ran after the netns was gone leaves recorded.
// When the path's directory is missing too (other than under /proc, where
// a gone process takes it along), plexusctl probably does not see the
// host's mounts, and nothing can be judged.
func netnsState(path string) string {
	if path == "" {
		return NetNSGone
	}
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return NetNSExists
	case !errors.Is(err, os.ErrNotExist):
		return NetNSUnknown
	case strings.HasPrefix(path, "/proc/"):
		return NetNSGone
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return NetNSUnknown
	}
	return NetNSGone
}

// leaked reads the leak records pkg/attach writes when DEL gives up.
func (n *Node) leaked() ([]Stale, error) {
	dir := filepath.Join(n.CNIDir, "leaked")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("leak records %s: %w", dir, err)
	}
	var out []Stale
	for _, ent := range ents {
		name := ent.Name()
		id, ok := strings.CutSuffix(name, ".json")
		if !ent.Type().IsRegular() || !ok || strings.HasPrefix(name, ".") {
			continue
		}
		s := Stale{Kind: KindLeaked, ContainerID: id, NetNSState: NetNSUnknown, Interfaces: []string{},
			Action: ActionNone, File: filepath.Join(dir, name)}
		var e podnet.Entry
		b, err := os.ReadFile(s.File)
		if err == nil {
			err = json.Unmarshal(b, &e)
		}
		if err != nil {
			s.Reason = fmt.Sprintf("leak record unreadable: %v", err)
			out = append(out, s)
			continue
		}
		s.Pod, s.NetNS, s.NetNSState = podOf(&e), e.NetNS, netnsState(e.NetNS)
		s.Incomplete, s.DelAttempts, s.LastDelError = e.Incomplete, e.DelAttempts, e.LastDelError
		for _, a := range e.Attachments {
			s.Interfaces = append(s.Interfaces, fmt.Sprintf("%s (%s)", a.Network, a.IfName))
		}
		s.Reason = fmt.Sprintf("DEL gave up after %d attempts: %s; free by hand, then remove the record", e.DelAttempts, orDash(e.LastDelError))
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ContainerID < out[j].ContainerID })
	return out, nil
}

func interfaces(as []Attachment) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, fmt.Sprintf("%s (%s)", a.Network, a.Interface))
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
