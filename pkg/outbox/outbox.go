// Package outbox is the daemon deployment's hand-off of what to publish:
// the plexus shim writes a record under cniDir/outbox/ before its ADD
// returns, and plexusd publishes it (network-status, Events) to the API,
// retrying with backoff, coalescing per pod and replaying the directory
// after a restart. A record is removed once published, or by the DEL of
// its container (a sandbox that is gone has no status to publish).
//
// Records are written with a unique temporary file and a rename, without
// fsync: they must survive the death of a process, which the page cache
// guarantees, not of the machine — after a reboot every sandbox is created
// anew and published by its new ADD. That saves the shim two fsyncs per ADD.
package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/plexus-cni/plexus/pkg/atomicfile"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

// Kinds of record.
const (
	// KindAttached: publish the pod's network-status (and one Event).
	KindAttached = "attached"
	// KindFailed: record a Warning Event for a failed ADD.
	KindFailed = "failed"
	// KindWarned: record a Warning Event (e.g. a DEL that gave up).
	KindWarned = "warned"
	// KindFallback: the shim ran the thin path because plexusd did not
	// answer; plexusd counts these (a metric) and removes them.
	KindFallback = "fallback"
)

// RecordVersion is the schema version of a record.
const RecordVersion = 1

// Record is one thing to publish.
type Record struct {
	Version     int           `json:"version"`
	Kind        string        `json:"kind"`
	ContainerID string        `json:"containerID,omitempty"`
	Pod         podnet.PodRef `json:"pod"`
	Created     time.Time     `json:"created"`
	// Entry holds the attachments with their results (KindAttached).
	Entry *podnet.Entry `json:"entry,omitempty"`
	// Network and Error describe a failed ADD (KindFailed).
	Network string `json:"network,omitempty"`
	Error   string `json:"error,omitempty"`
	// Warnings are published in the Event (KindAttached, KindWarned).
	Warnings []string `json:"warnings,omitempty"`
	// Reason is why the shim fell back, Command what it was running
	// (KindFallback).
	Reason  string `json:"reason,omitempty"`
	Command string `json:"command,omitempty"`

	// Path is the file the record was read from.
	Path string `json:"-"`
}

// Dir is the outbox under cniDir.
func Dir(cniDir string) string { return filepath.Join(cniDir, "outbox") }

// Box is an outbox directory.
type Box struct{ Dir string }

func (b Box) name(r *Record) string {
	if r.Kind == KindFallback {
		return fmt.Sprintf("%s-%d-%d.json", KindFallback, r.Created.UnixNano(), os.Getpid())
	}
	return filepath.Base(r.ContainerID) + "." + r.Kind + ".json"
}

// Write stores r (a later record of the same container and kind replaces
// an earlier one).
func (b Box) Write(r *Record) error {
	r.Version = RecordVersion
	if r.Created.IsZero() {
		r.Created = time.Now()
	}
	if r.Kind != KindFallback && r.ContainerID == "" {
		return fmt.Errorf("outbox: a %s record needs a container ID", r.Kind)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	final := filepath.Join(b.Dir, b.name(r))
	if err := atomicfile.Replace(final, data, 0o600); err != nil {
		return err
	}
	r.Path = final
	return nil
}

// RemoveContainer drops every pending record of a container (its DEL).
func (b Box) RemoveContainer(containerID string) error {
	var errs []error
	for _, k := range []string{KindAttached, KindFailed, KindWarned} {
		err := os.Remove(filepath.Join(b.Dir, filepath.Base(containerID)+"."+k+".json"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Remove deletes a record read by List, unless it was replaced since (a
// newer record of the same container and kind stays).
func (b Box) Remove(r *Record) error {
	cur, err := readRecord(r.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return os.Remove(r.Path)
	}
	if !cur.Created.Equal(r.Created) {
		return nil
	}
	if err := os.Remove(r.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// List returns every record, oldest first. Unreadable files are returned
// in bad (they are removed by the caller after logging them); temporary
// files of writers that died are removed when older than a minute.
func (b Box) List() (recs []*Record, bad []error) {
	ents, err := os.ReadDir(b.Dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, []error{err}
	}
	for _, e := range ents {
		p := filepath.Join(b.Dir, e.Name())
		if strings.HasPrefix(e.Name(), ".") || strings.Contains(e.Name(), ".tmp") {
			// A temp file of a writer that died (atomicfile's ".<name>.tmp-*").
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Minute {
				os.Remove(p)
			}
			continue
		}
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		r, err := readRecord(p)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				bad = append(bad, fmt.Errorf("outbox record %s: %w", p, err))
				os.Remove(p)
			}
			continue
		}
		recs = append(recs, r)
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Created.Before(recs[j].Created) })
	return recs, bad
}

func readRecord(p string) (*Record, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	if r.Version > RecordVersion {
		return nil, fmt.Errorf("schema version %d is newer than this plexusd's %d", r.Version, RecordVersion)
	}
	r.Path = p
	return &r, nil
}
