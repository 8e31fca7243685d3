// Package outbox is the daemon deployment's hand-off of what to publish:
// the plexus shim writes a record under cniDir/outbox/ before its ADD
// returns, and plexusd publishes it (network-status, Events) to the API,
// retrying with backoff, coalescing per pod and replaying the directory
// after a restart. A record is removed once published, or by the DEL of
// its container (a sandbox that is gone has no status to publish).
//
// plexusd claims a record before it publishes it: it renames the file to
// the record's claim name, which no writer uses, so a newer record the
// shim or a hot-plug pass writes meanwhile takes the original name and is
// never the one removed after the publication. A claimed record that
// could not be published yet stays claimed and is retried from there.
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

// ErrNewerVersion marks a record of a newer schema than this binary's (a
// newer shim wrote it during an upgrade): it is left in place for the
// plexusd that understands it.
var ErrNewerVersion = errors.New("schema version newer than this plexusd's")

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
	// Claimed says Path is the record's claim name (Claim).
	Claimed bool `json:"-"`
}

// claimedSuffix ends a claimed record's file name: "<container>.<kind>"
// then this (unclaimed: "<container>.<kind>.json").
const claimedSuffix = ".claimed.json"

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

// RemoveContainer drops every pending record of a container (its DEL),
// claimed or not. The unclaimed name goes first: a claim racing with it
// then either fails (nothing to rename) or has made the claimed file,
// which goes next.
func (b Box) RemoveContainer(containerID string) error {
	var errs []error
	for _, k := range []string{KindAttached, KindFailed, KindWarned} {
		base := filepath.Join(b.Dir, filepath.Base(containerID)+"."+k)
		for _, p := range []string{base + ".json", base + claimedSuffix} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Pending says whether a record of a container and kind waits, claimed or
// not.
func (b Box) Pending(containerID, kind string) bool {
	base := filepath.Join(b.Dir, filepath.Base(containerID)+"."+kind)
	for _, p := range []string{base + ".json", base + claimedSuffix} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// ClaimPath is the file r has once claimed ("" for a fallback record,
// which is never claimed: its name is unique and never rewritten).
func (b Box) ClaimPath(r *Record) string {
	if r.Kind == KindFallback || r.ContainerID == "" {
		return ""
	}
	return filepath.Join(b.Dir, filepath.Base(r.ContainerID)+"."+r.Kind+claimedSuffix)
}

// Claim takes a listed record for publication: it renames the file to the
// record's claim name and returns the record as read from there — the
// listed one, or a newer one written to the same name since. Later writes
// of the container and kind take the unclaimed name again. A claimed
// record is returned as it is. One claimer at a time (plexusd), which
// never claims a record whose claim name it is still publishing: a claim
// replaces an earlier claimed record of the same container and kind, as a
// write replaces an earlier record. The error is os.ErrNotExist when the
// record is gone (its DEL, or another claim).
func (b Box) Claim(r *Record) (*Record, error) {
	if r.Claimed {
		return r, nil
	}
	cp := b.ClaimPath(r)
	if cp == "" {
		return nil, fmt.Errorf("outbox: a %s record is not claimed", r.Kind)
	}
	if err := os.Rename(r.Path, cp); err != nil {
		return nil, err
	}
	c, err := readRecord(cp)
	if err != nil {
		return nil, fmt.Errorf("outbox record %s: %w", cp, err)
	}
	return c, nil
}

// Remove deletes a record read by List, unless it was replaced since (a
// newer record of the same container and kind stays). A claimed record is
// deleted as it is (no one else writes its name); an unclaimed one is
// claimed first, so the file deleted is the one read: a newer record
// claimed instead stays claimed, published by the next scan.
func (b Box) Remove(r *Record) error {
	if r.Claimed || r.Kind == KindFallback {
		return removeFile(r.Path)
	}
	c, err := b.Claim(r)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if errors.Is(err, ErrNewerVersion) {
			return nil
		}
		// Unreadable: nothing to keep.
		return removeFile(b.ClaimPath(r))
	}
	if !c.Created.Equal(r.Created) {
		return nil
	}
	return removeFile(c.Path)
}

func removeFile(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// List returns every record, claimed or not, oldest first. Unreadable
// files are returned in bad and removed, except records of a newer schema
// version (ErrNewerVersion), which stay for the plexusd that reads them;
// temporary files of writers that died are removed when older than a
// minute.
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
				if !errors.Is(err, ErrNewerVersion) {
					os.Remove(p)
				}
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
		return nil, fmt.Errorf("%w: schema version %d is newer than this plexusd's %d", ErrNewerVersion, r.Version, RecordVersion)
	}
	r.Path = p
	r.Claimed = strings.HasSuffix(p, claimedSuffix)
	return &r, nil
}
