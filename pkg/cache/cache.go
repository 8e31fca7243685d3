// Package cache keeps plexus's per-container state under cniDir: the intent
// of an ADD (every delegate config, interface name and runtime config),
// written atomically before the first delegate runs and updated with each
// delegate's result, so that DEL, CHECK and GC work without the API server.
package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/plexus-cni/plexus/pkg/atomicfile"
)

// Attachment is one interface of a container: the delegate plexus runs for it.
type Attachment struct {
	Network        string          `json:"network"` // "namespace/name" of the NAD, or the primary conf name
	IfName         string          `json:"ifName"`
	Primary        bool            `json:"primary,omitempty"`
	ConfList       json.RawMessage `json:"confList"` // the delegate conflist, as run
	CNIArgs        [][2]string     `json:"cniArgs,omitempty"`
	CapabilityArgs map[string]any  `json:"capabilityArgs,omitempty"`
	ResourceName   string          `json:"resourceName,omitempty"`
	DeviceID       string          `json:"deviceID,omitempty"`
	DeviceInfoFile string          `json:"deviceInfoFile,omitempty"`
	Gateways       []string        `json:"gateways,omitempty"` // default-route request
	Added          bool            `json:"added,omitempty"`
	Result         json.RawMessage `json:"result,omitempty"`
}

// Entry is the whole state of one container.
type Entry struct {
	ContainerID  string       `json:"containerID"`
	NetNS        string       `json:"netns"`
	PodNamespace string       `json:"podNamespace,omitempty"`
	PodName      string       `json:"podName,omitempty"`
	PodUID       string       `json:"podUID,omitempty"`
	CNIVersion   string       `json:"cniVersion"`
	Attachments  []Attachment `json:"attachments"`
}

// Store is the cache directory.
type Store struct{ Dir string }

const intentFile = "intent.json"

// ContainerDir is where a container's state lives.
func (s Store) ContainerDir(containerID string) string {
	return filepath.Join(s.Dir, "containers", containerID)
}

// Save writes the entry atomically (temp file + rename, mode 0600).
func (s Store) Save(e *Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(s.ContainerDir(e.ContainerID), intentFile), b)
}

// Load reads a container's entry; (nil, nil) when there is none.
func (s Store) Load(containerID string) (*Entry, error) {
	b, err := os.ReadFile(filepath.Join(s.ContainerDir(containerID), intentFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e := &Entry{}
	if err := json.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("cache entry of container %s is corrupt: %v", containerID, err)
	}
	return e, nil
}

// Remove deletes a container's state.
func (s Store) Remove(containerID string) error {
	return os.RemoveAll(s.ContainerDir(containerID))
}

// List returns the container IDs that have state.
func (s Store) List() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.Dir, "containers"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// WriteFileAtomic writes data to path crash-safely with mode 0600
// (atomicfile.WriteFile).
func WriteFileAtomic(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o600)
}

// lockBuckets bounds the number of lock files: a pod's lock is one of
// lockBuckets files chosen by hash, so two operations on one pod never
// interleave, and no lock file is ever left behind per pod.
const lockBuckets = 64

// LockPod takes an exclusive lock for the pod (namespace/name; key may be any
// stable string such as the container ID when the pod is unknown). It blocks
// until the lock is free and returns the unlock function.
func (s Store) LockPod(key string) (func(), error) {
	h := fnv.New32a()
	h.Write([]byte(key))
	dir := filepath.Join(s.Dir, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, strconv.Itoa(int(h.Sum32()%lockBuckets))+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %v", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
