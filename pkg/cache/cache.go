// Package cache keeps plexus's per-container state under cniDir: the intent
// of an ADD (every delegate config, interface name and runtime config),
// written atomically before the first delegate runs and updated with each
// delegate's result, so that DEL, CHECK and GC work without the API server.
package cache

import (
	"github.com/plexus-cni/plexus/pkg/podnet"

	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/plexus-cni/plexus/pkg/atomicfile"
)

// Store is the cache directory.
type Store struct{ Dir string }

const intentFile = "intent.json"

// ContainerDir is where a container's state lives.
func (s Store) ContainerDir(containerID string) string {
	return filepath.Join(s.Dir, "containers", containerID)
}

// EntryVersion is the schema version Save writes into every cache entry
// ("version"). An entry without it (0) was written by plexus v0.1.0, before
// the field existed; its layout is read as version 1's (the fields added
// since are optional: the attachments' "origin", which hot-plug needs and
// DEL does not, came after v0.2 without a new version, so that plexus v0.2
// still reads, and DELetes, what a newer plexus wrote). Load refuses an
// entry newer than EntryVersion.
const EntryVersion = 1

// Save writes the entry atomically (temp file + rename, mode 0600), stamped
// with EntryVersion.
func (s Store) Save(e *podnet.Entry) error {
	e.Version = EntryVersion
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(s.ContainerDir(e.ContainerID), intentFile), b)
}

// SaveResults rewrites an entry whose intent Save made durable, now with
// its delegates' results, atomically but without fsync: after a power
// failure the sandbox is gone and DEL needs only the intent (the crash
// safety of docs/security.md, "State plexus keeps", holds for the intent;
// this saves two fsyncs per ADD).
func (s Store) SaveResults(e *podnet.Entry) error {
	e.Version = EntryVersion
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return atomicfile.Replace(filepath.Join(s.ContainerDir(e.ContainerID), intentFile), b, 0o600)
}

// Load reads a container's entry; (nil, nil) when there is none.
func (s Store) Load(containerID string) (*podnet.Entry, error) {
	path := filepath.Join(s.ContainerDir(containerID), intentFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e := &podnet.Entry{}
	if err := json.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("cache entry of container %s is corrupt: %v", containerID, err)
	}
	if e.Version > EntryVersion {
		return nil, fmt.Errorf("cache entry of container %s: %s: \"version\" %d is newer than this plexus's %d (written by a newer plexus)",
			containerID, path, e.Version, EntryVersion)
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

// DefaultLockTimeout bounds how long an operation waits for another one on
// the same pod (or for a GC) before it fails with an error naming the holder.
const DefaultLockTimeout = 60 * time.Second

// LockPod takes the pod's exclusive lock (key is namespace/name, or any
// stable string such as the container ID when the pod is unknown) and a
// shared hold on the GC lock, so that no GC runs while the operation does.
// Each pod has a lock file of its own, so operations on different pods never
// wait on each other; the file is removed on unlock, so lock files never
// pile up. It waits at most timeout (DefaultLockTimeout when 0).
func (s Store) LockPod(key string, timeout time.Duration) (func(), error) {
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	deadline := time.Now().Add(timeout)
	gc, err := s.lockFile("gc.lock", syscall.LOCK_SH, deadline, false)
	if err != nil {
		return nil, fmt.Errorf("waiting for a GC to finish: %w", err)
	}
	pod, err := s.lockPod(key, deadline)
	if err != nil {
		gc()
		return nil, err
	}
	return func() { pod(); gc() }, nil
}

// LockPodInGC takes only the pod's lock, for the DELs a GC (which holds the
// GC lock exclusively) runs.
func (s Store) LockPodInGC(key string, timeout time.Duration) (func(), error) {
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	return s.lockPod(key, time.Now().Add(timeout))
}

func (s Store) lockPod(key string, deadline time.Time) (func(), error) {
	h := fnv.New64a()
	h.Write([]byte(key))
	unlock, err := s.lockFile(fmt.Sprintf("pod-%016x.lock", h.Sum64()), syscall.LOCK_EX, deadline, true)
	if err != nil {
		return nil, fmt.Errorf("another operation on pod %s: %w", key, err)
	}
	return unlock, nil
}

// LockGC takes the GC lock exclusively: it waits until no ADD, DEL or CHECK
// is running and keeps new ones waiting until unlock.
func (s Store) LockGC(timeout time.Duration) (func(), error) {
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	return s.lockFile("gc.lock", syscall.LOCK_EX, time.Now().Add(timeout), false)
}

// lockFile flocks dir/locks/name until deadline. With removeOnUnlock the
// file is unlinked while still held at unlock; a waiter that then holds a
// lock on the unlinked inode notices (the path names another inode, or
// none) and tries again, so two holders never overlap.
func (s Store) lockFile(name string, how int, deadline time.Time, removeOnUnlock bool) (func(), error) {
	dir := filepath.Join(s.Dir, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, name)
	delay := time.Millisecond
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, err
		}
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			if !removeOnUnlock || sameFile(f, path) {
				if how == syscall.LOCK_EX {
					writeHolder(f)
				}
				return func() {
					if removeOnUnlock {
						_ = os.Remove(path)
					}
					_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
					f.Close()
				}, nil
			}
			f.Close()
			continue // the holder removed the file after we opened it
		}
		holder, _ := os.ReadFile(path)
		f.Close()
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			return nil, fmt.Errorf("lock %s: %v", path, err)
		}
		if time.Now().After(deadline) {
			who := "another process"
			if len(holder) > 0 {
				who = "process " + string(holder)
			}
			return nil, fmt.Errorf("lock %s held by %s: gave up waiting", path, who)
		}
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// writeHolder records this process's PID in a lock file it holds, for the
// error of a waiter that gives up. A fresh file (the usual case: pod locks
// are removed on unlock) is not truncated: on ext4, truncating a file to
// zero makes its close start writeback of the data written after
// (auto_da_alloc), a flush no lock file needs (BenchmarkLockPod: lock
// and unlock 2-3× faster, paired, on a loaded ext4).
func writeHolder(f *os.File) {
	pid := []byte(strconv.Itoa(os.Getpid()))
	if fi, err := f.Stat(); err != nil || fi.Size() > int64(len(pid)) {
		_ = f.Truncate(int64(len(pid)))
	}
	_, _ = f.WriteAt(pid, 0)
}

// sameFile reports whether f is still the file at path.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}
