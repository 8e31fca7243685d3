// Package inspect is plexusctl: node-local, read-only views of the state
// plexus keeps on a node — its cache under cniDir (one entry per container:
// pod, netns, every attachment with its recorded CNI result), the sriov
// plugin's per-VF state files, state sriov-cni and Multus left from before
// the node switched to plexus, and leak records — and a GC that frees what
// sandboxes that are gone still hold, by running the delegates' DEL through
// pkg/attach exactly as the runtime's DEL would.
//
// Nothing here writes anything except GC without its dry run.
package inspect

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"

	"github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/podnet"
	sriovcni "github.com/plexus-cni/plexus/pkg/sriov/cni"
)

// Paths are where the node's state is.
type Paths struct {
	// CNIDir is plexus's cniDir (its cache, locks, leak records).
	CNIDir string
	// SriovStateDir is the sriov plugin's dataDir: its per-VF state files,
	// and sriov-cni's from before the switch.
	SriovStateDir string
	// MultusCacheDir is where Multus kept its per-container cache.
	MultusCacheDir string
	// DeviceInfoDir is the base of the NPWG device-info files.
	DeviceInfoDir string
	// BinDir holds the delegate plugins (GC runs their DEL).
	BinDir string
}

// DefaultPaths are the paths of a node installed with the defaults.
func DefaultPaths() Paths {
	return Paths{
		CNIDir:         "/var/lib/cni/plexus",
		SriovStateDir:  sriovcni.DefaultDataDir,
		MultusCacheDir: "/var/lib/cni/multus",
		DeviceInfoDir:  devinfo.DefaultDir,
		BinDir:         "/opt/cni/bin",
	}
}

// Node reads the state of one node.
type Node struct {
	Paths
	// Now is the clock ages are measured against (time.Now when nil).
	Now func() time.Time
}

func (n *Node) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

func (n *Node) store() cache.Store { return cache.Store{Dir: n.CNIDir} }

// Pod names a pod; fields are empty when unknown.
type Pod struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
}

func (p Pod) String() string {
	if p.Name == "" {
		return "-"
	}
	return p.Namespace + "/" + p.Name
}

func podOf(e *podnet.Entry) Pod {
	return Pod{Namespace: e.PodNamespace, Name: e.PodName, UID: e.PodUID}
}

// Sources of a container's state.
const (
	SourcePlexus = "plexus" // plexus's cache (or, for a VF, the sriov plugin's state)
	SourceMultus = "multus" // Multus's cache, from before the switch
)

// Container is one container with network state on the node.
type Container struct {
	ContainerID string `json:"containerID"`
	// Source is "plexus" (plexus's cache) or "multus" (attached by Multus
	// before the switch: no pod, netns or IPs are known).
	Source string `json:"source"`
	Pod    Pod    `json:"pod"`
	NetNS  string `json:"netns"`
	// Modified is when the entry was last written (the end of ADD, or a
	// failed DEL); AgeSeconds is the time since.
	Modified   time.Time `json:"modified"`
	AgeSeconds int64     `json:"ageSeconds"`
	// Incomplete: a DEL or rollback left something behind.
	Incomplete   bool   `json:"incomplete"`
	DelAttempts  int    `json:"delAttempts"`
	LastDelError string `json:"lastDelError"`
	// File is the cache file read; Error says why it could not be read.
	File        string       `json:"file"`
	Error       string       `json:"error"`
	Attachments []Attachment `json:"attachments"`
}

// Attachment is one interface of a container.
type Attachment struct {
	Network      string   `json:"network"`
	Interface    string   `json:"interface"`
	Primary      bool     `json:"primary"`
	Added        bool     `json:"added"`
	IPs          []string `json:"ips"`
	MAC          string   `json:"mac"`
	DeviceID     string   `json:"deviceID"`
	ResourceName string   `json:"resourceName"`
}

// Containers lists every container in plexus's cache, then those Multus
// attached before the switch, each ordered by container ID. Entries that
// cannot be read are listed with Error set.
func (n *Node) Containers() ([]Container, error) {
	cs, err := n.cacheContainers()
	if err != nil {
		return nil, err
	}
	ms, err := n.multusContainers(cs)
	if err != nil {
		return nil, err
	}
	return append(cs, ms...), nil
}

// cacheContainers reads plexus's cache.
func (n *Node) cacheContainers() ([]Container, error) {
	s := n.store()
	ids, err := s.List()
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", s.Dir, err)
	}
	sort.Strings(ids)
	out := make([]Container, 0, len(ids))
	for _, id := range ids {
		c := Container{ContainerID: id, Source: SourcePlexus, File: filepath.Join(s.ContainerDir(id), "intent.json"), Attachments: []Attachment{}}
		if fi, err := os.Stat(c.File); err == nil {
			c.Modified = fi.ModTime().UTC()
			c.AgeSeconds = int64(n.now().Sub(fi.ModTime()) / time.Second)
		}
		e, err := s.Load(id)
		switch {
		case err != nil:
			c.Error = err.Error()
		case e == nil:
			c.Error = "no intent.json in the container's cache directory"
		default:
			c.Pod, c.NetNS = podOf(e), e.NetNS
			c.Incomplete, c.DelAttempts, c.LastDelError = e.Incomplete, e.DelAttempts, e.LastDelError
			for _, a := range e.Attachments {
				c.Attachments = append(c.Attachments, attachmentOf(&a))
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func attachmentOf(a *podnet.Attachment) Attachment {
	out := Attachment{Network: a.Network, Interface: a.IfName, Primary: a.Primary, Added: a.Added,
		DeviceID: a.DeviceID, ResourceName: a.ResourceName, IPs: []string{}}
	if len(a.Result) == 0 {
		return out
	}
	res, err := create.CreateFromBytes(a.Result)
	if err != nil {
		return out
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return out
	}
	for _, ip := range r.IPs {
		out.IPs = append(out.IPs, ip.Address.String())
	}
	// The pod's side of the attachment: the interface in a sandbox with the
	// attachment's name, else any in a sandbox.
	for _, want := range []bool{true, false} {
		for _, i := range r.Interfaces {
			if i.Sandbox != "" && (!want || i.Name == a.IfName) && out.MAC == "" {
				out.MAC = i.Mac
			}
		}
	}
	return out
}

// multusDelegate is the part of a Multus cache entry shown: a JSON list of
// the delegates it ran (pkg/attach reads the same file for DEL).
type multusDelegate struct {
	Name          string `json:"Name"`
	IfnameRequest string `json:"ifnameRequest"`
	DeviceID      string `json:"deviceID"`
}

// multusContainers reads Multus's cache, skipping containers plexus's
// cache has.
func (n *Node) multusContainers(have []Container) ([]Container, error) {
	if n.MultusCacheDir == "" {
		return nil, nil
	}
	ents, err := os.ReadDir(n.MultusCacheDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("Multus cache %s: %w", n.MultusCacheDir, err)
	}
	known := map[string]bool{}
	for _, c := range have {
		known[c.ContainerID] = true
	}
	var out []Container
	for _, ent := range ents {
		id := ent.Name()
		if !ent.Type().IsRegular() || strings.HasPrefix(id, ".") || known[id] {
			continue
		}
		c := Container{ContainerID: id, Source: SourceMultus, File: filepath.Join(n.MultusCacheDir, id), Attachments: []Attachment{}}
		if fi, err := ent.Info(); err == nil {
			c.Modified = fi.ModTime().UTC()
			c.AgeSeconds = int64(n.now().Sub(fi.ModTime()) / time.Second)
		}
		var ds []multusDelegate
		b, err := os.ReadFile(c.File)
		if err == nil {
			err = json.Unmarshal(b, &ds)
		}
		if err != nil {
			c.Error = fmt.Sprintf("Multus cache file %s: %v", c.File, err)
		}
		for i, d := range ds {
			// Interface names as Multus gives them (and pkg/attach assumes).
			ifName := d.IfnameRequest
			switch {
			case ifName != "":
			case i == 0:
				ifName = "eth0"
			default:
				ifName = "net" + strconv.Itoa(i)
			}
			c.Attachments = append(c.Attachments, Attachment{Network: d.Name, Interface: ifName, Primary: i == 0,
				Added: true, DeviceID: d.DeviceID, IPs: []string{}})
		}
		out = append(out, c)
	}
	return out, nil
}
