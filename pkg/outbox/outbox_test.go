package outbox

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

func newBox(t *testing.T) Box {
	t.Helper()
	return Box{Dir: filepath.Join(t.TempDir(), "outbox")}
}

func rec(kind, cid string, created time.Time) *Record {
	return &Record{Kind: kind, ContainerID: cid, Pod: podnet.PodRef{Namespace: "ns", Name: "p-" + cid}, Created: created}
}

func mustWrite(t *testing.T, b Box, r *Record) {
	t.Helper()
	if err := b.Write(r); err != nil {
		t.Fatalf("Write(%s %s): %v", r.Kind, r.ContainerID, err)
	}
}

func mustList(t *testing.T, b Box) []*Record {
	t.Helper()
	recs, bad := b.List()
	if len(bad) > 0 {
		t.Fatalf("List: bad records %v", bad)
	}
	return recs
}

// files are the names in the box's directory, sorted.
func files(t *testing.T, b Box) []string {
	t.Helper()
	ents, err := os.ReadDir(b.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func keys(recs []*Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ContainerID+"."+r.Kind)
	}
	return out
}

func TestListEmptyOrMissingDir(t *testing.T) {
	recs, bad := newBox(t).List()
	if recs != nil || bad != nil {
		t.Errorf("List of a missing directory: %v, %v", recs, bad)
	}
}

// List returns records oldest first by Created, whatever the order they
// were written in and whatever their file names sort as.
func TestListOldestFirst(t *testing.T) {
	b := newBox(t)
	t0 := time.Now().Add(-time.Hour)
	// File names sort a < b < c; Created sorts c < a < b.
	mustWrite(t, b, rec(KindAttached, "bbb", t0.Add(2*time.Second)))
	mustWrite(t, b, rec(KindFailed, "aaa", t0.Add(1*time.Second)))
	mustWrite(t, b, rec(KindWarned, "ccc", t0))
	got := strings.Join(keys(mustList(t, b)), " ")
	if want := "ccc.warned aaa.failed bbb.attached"; got != want {
		t.Errorf("List order %q, want %q", got, want)
	}
}

// Write stamps the version and, when unset, Created; the record read back
// is the one written.
func TestWriteRoundTrip(t *testing.T) {
	b := newBox(t)
	r := &Record{Kind: KindAttached, ContainerID: "c1", Pod: podnet.PodRef{Namespace: "ns", Name: "p", UID: "u"},
		Warnings: []string{"w1"}, Entry: &podnet.Entry{}}
	before := time.Now()
	mustWrite(t, b, r)
	if r.Version != RecordVersion || r.Created.Before(before) || r.Created.After(time.Now()) {
		t.Errorf("Write stamped version %d, created %v", r.Version, r.Created)
	}
	if r.Path != filepath.Join(b.Dir, "c1.attached.json") {
		t.Errorf("Path %q", r.Path)
	}
	recs := mustList(t, b)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	got := recs[0]
	if got.Pod != r.Pod || !got.Created.Equal(r.Created) || len(got.Warnings) != 1 || got.Warnings[0] != "w1" || got.Entry == nil || got.Path != r.Path {
		t.Errorf("read back %+v, wrote %+v", got, r)
	}
	if fi, err := os.Stat(r.Path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("record file mode: %v %v", fi, err)
	}
}

// A later record of the same container and kind replaces the earlier one;
// another kind of the same container is a record of its own.
func TestWriteReplacesSameContainerAndKind(t *testing.T) {
	b := newBox(t)
	t0 := time.Now()
	first := rec(KindAttached, "c1", t0)
	first.Warnings = []string{"first"}
	mustWrite(t, b, first)
	second := rec(KindAttached, "c1", t0.Add(time.Second))
	second.Warnings = []string{"second"}
	mustWrite(t, b, second)
	mustWrite(t, b, rec(KindFailed, "c1", t0))
	recs := mustList(t, b)
	if got := strings.Join(keys(recs), " "); got != "c1.failed c1.attached" {
		t.Fatalf("records %q, want the failed one and one attached", got)
	}
	if w := recs[1].Warnings; len(w) != 1 || w[0] != "second" {
		t.Errorf("attached record holds %v, want the second write", w)
	}
	if f := files(t, b); len(f) != 2 {
		t.Errorf("files %v: a replaced record or a temporary file is left", f)
	}
}

// RemoveContainer drops every kind of record of its container, and
// nothing of another container or of a fallback.
func TestRemoveContainer(t *testing.T) {
	b := newBox(t)
	t0 := time.Now()
	for _, k := range []string{KindAttached, KindFailed, KindWarned} {
		mustWrite(t, b, rec(k, "gone", t0))
		mustWrite(t, b, rec(k, "stays", t0.Add(time.Second)))
	}
	fb := &Record{Kind: KindFallback, Reason: "timeout", Command: "ADD", Created: t0.Add(2 * time.Second)}
	mustWrite(t, b, fb)
	if err := b.RemoveContainer("gone"); err != nil {
		t.Fatal(err)
	}
	got := keys(mustList(t, b))
	sort.Strings(got)
	want := []string{".fallback", "stays.attached", "stays.failed", "stays.warned"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("after RemoveContainer(gone): %v, want %v", got, want)
	}
	// A container with nothing pending: no error.
	if err := b.RemoveContainer("never"); err != nil {
		t.Errorf("RemoveContainer of a container without records: %v", err)
	}
}

// A container ID is a file name, never a path: "../x" stays in the box.
func TestContainerIDIsNotAPath(t *testing.T) {
	b := newBox(t)
	mustWrite(t, b, rec(KindAttached, "../escape", time.Now()))
	if _, err := os.Stat(filepath.Join(filepath.Dir(b.Dir), "escape.attached.json")); err == nil {
		t.Fatal("a container ID with ../ wrote outside the box")
	}
	if f := files(t, b); len(f) != 1 || f[0] != "escape.attached.json" {
		t.Errorf("files %v", f)
	}
}

// Remove deletes the record it was given, but not one that replaced it
// after it was listed (the newer record must still be published).
func TestRemoveKeepsReplacement(t *testing.T) {
	b := newBox(t)
	t0 := time.Now()
	mustWrite(t, b, rec(KindAttached, "c1", t0))
	listed := mustList(t, b)
	if len(listed) != 1 {
		t.Fatalf("%d records", len(listed))
	}
	// Replaced while the publisher was working on the listed one.
	newer := rec(KindAttached, "c1", t0.Add(time.Millisecond))
	mustWrite(t, b, newer)
	if err := b.Remove(listed[0]); err != nil {
		t.Fatal(err)
	}
	recs := mustList(t, b)
	if len(recs) != 1 || !recs[0].Created.Equal(newer.Created) {
		t.Fatalf("after Remove of the replaced record: %v, want the newer record to stay", keys(recs))
	}
	// The record as listed now is removed.
	if err := b.Remove(recs[0]); err != nil {
		t.Fatal(err)
	}
	if recs := mustList(t, b); len(recs) != 0 {
		t.Errorf("after Remove of the current record: %v", keys(recs))
	}
	// Removing it again (e.g. a DEL took it meanwhile) is no error.
	if err := b.Remove(newer); err != nil {
		t.Errorf("Remove of a record already gone: %v", err)
	}
}

// Files that are not records are reported in bad and removed; the good
// records around them are still listed.
func TestListReportsAndRemovesBadFiles(t *testing.T) {
	b := newBox(t)
	mustWrite(t, b, rec(KindAttached, "good", time.Now()))
	garbage := filepath.Join(b.Dir, "junk.attached.json")
	if err := os.WriteFile(garbage, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(b.Dir, "trunc.failed.json")
	if err := os.WriteFile(truncated, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Not a record at all (no .json suffix): left alone, not reported.
	other := filepath.Join(b.Dir, "README")
	if err := os.WriteFile(other, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	recs, bad := b.List()
	if len(recs) != 1 || recs[0].ContainerID != "good" {
		t.Errorf("records %v, want only good", keys(recs))
	}
	if len(bad) != 2 {
		t.Fatalf("bad = %v, want the two unreadable files", bad)
	}
	joined := bad[0].Error() + "\n" + bad[1].Error()
	for _, p := range []string{garbage, truncated} {
		if !strings.Contains(joined, p) {
			t.Errorf("bad %q does not name %s", joined, p)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s not removed: %v", p, err)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a non-record file was removed: %v", err)
	}
	// Listed again: nothing bad left.
	if _, bad := b.List(); len(bad) != 0 {
		t.Errorf("second List: bad %v", bad)
	}
}

// A record of a newer schema version (written by a newer shim during an
// upgrade) is refused, not misread, and left in place for the newer
// plexusd.
func TestListLeavesNewerVersion(t *testing.T) {
	b := newBox(t)
	data, _ := json.Marshal(map[string]any{"version": RecordVersion + 1, "kind": KindAttached, "containerID": "future",
		"pod": map[string]string{"Namespace": "ns", "Name": "p"}, "created": time.Now()})
	p := filepath.Join(b.Dir, "future.attached.json")
	os.MkdirAll(b.Dir, 0o700)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, b, rec(KindAttached, "current", time.Now()))
	recs, bad := b.List()
	if len(recs) != 1 || recs[0].ContainerID != "current" {
		t.Errorf("records %v, want only current", keys(recs))
	}
	if len(bad) != 1 || !errors.Is(bad[0], ErrNewerVersion) || !strings.Contains(bad[0].Error(), "schema version 2 is newer") || !strings.Contains(bad[0].Error(), p) {
		t.Errorf("bad = %v, want one naming the file and its newer schema version", bad)
	}
	// Unlike an unreadable record, it stays, through every scan, and a
	// Remove of a record listed before the upgrade leaves it too.
	if recs, _ := b.List(); len(recs) != 1 {
		t.Errorf("second scan: records %v, want only current", keys(recs))
	}
	before := &Record{Kind: KindAttached, ContainerID: "future", Path: p, Created: time.Now().Add(-time.Hour)}
	if err := b.Remove(before); err != nil {
		t.Errorf("Remove: %v", err)
	}
	if _, err := os.Stat(p); err != nil {
		if _, cerr := os.Stat(b.ClaimPath(before)); cerr != nil {
			t.Errorf("newer-version record removed: %v", err)
		}
	}
	if _, bad := b.List(); len(bad) != 1 {
		t.Errorf("newer-version record not listed again: bad %v", bad)
	}
}

// Temporary files of writers that died are removed once older than a
// minute; a fresh one (a writer at work) stays.
func TestListRemovesStaleTemporaries(t *testing.T) {
	b := newBox(t)
	mustWrite(t, b, rec(KindAttached, "c1", time.Now()))
	stale := filepath.Join(b.Dir, "c2.attached.json.tmp123-abc")
	fresh := filepath.Join(b.Dir, "c3.attached.json.tmp456-def")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	recs, bad := b.List()
	if len(bad) != 0 {
		t.Errorf("temporary files reported as bad: %v", bad)
	}
	if len(recs) != 1 || recs[0].ContainerID != "c1" {
		t.Errorf("records %v, want only c1 (temporaries are not records)", keys(recs))
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temporary file left: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temporary file removed: %v", err)
	}
}

// Fallback records have no container: each gets a name of its own, even
// two written in the same instant by the same process.
func TestFallbackRecordsUnique(t *testing.T) {
	b := newBox(t)
	t0 := time.Now()
	var paths []string
	for i := 0; i < 3; i++ {
		r := &Record{Kind: KindFallback, Command: "ADD", Reason: "timeout", Created: t0.Add(time.Duration(i) * time.Nanosecond)}
		mustWrite(t, b, r)
		paths = append(paths, r.Path)
	}
	if paths[0] == paths[1] || paths[1] == paths[2] {
		t.Errorf("fallback records share a file: %v", paths)
	}
	if recs := mustList(t, b); len(recs) != 3 {
		t.Errorf("%d fallback records listed, want 3", len(recs))
	}
	// Created left for Write to stamp: still unique.
	for i := 0; i < 2; i++ {
		mustWrite(t, b, &Record{Kind: KindFallback, Command: "DEL"})
	}
	if recs := mustList(t, b); len(recs) != 5 {
		t.Errorf("%d fallback records listed, want 5", len(recs))
	}
}

// A record that is not a fallback needs its container ID: without one it
// would have no name of its own and DEL could not drop it.
func TestWriteRefusesMissingContainerID(t *testing.T) {
	b := newBox(t)
	for _, k := range []string{KindAttached, KindFailed, KindWarned} {
		err := b.Write(&Record{Kind: k, Pod: podnet.PodRef{Namespace: "ns", Name: "p"}})
		if err == nil || !strings.Contains(err.Error(), "needs a container ID") {
			t.Errorf("Write(%s without container ID) = %v, want an error naming the container ID", k, err)
		}
	}
	if _, err := os.Stat(b.Dir); err == nil {
		if f := files(t, b); len(f) != 0 {
			t.Errorf("files written: %v", f)
		}
	}
}

// A record rewritten while the publisher removes the one it listed (the
// shim's ADD of a new sandbox, a hot-plug pass) survives, whatever the
// interleaving: Remove never deletes what it has not read.
func TestRemoveRacingRewrite(t *testing.T) {
	b := newBox(t)
	t0 := time.Now()
	for i := 0; i < 300; i++ {
		mustWrite(t, b, rec(KindAttached, "c1", t0.Add(time.Duration(2*i)*time.Microsecond)))
		listed := mustList(t, b)
		if len(listed) != 1 {
			t.Fatalf("round %d: %d records listed, want 1", i, len(listed))
		}
		newer := rec(KindAttached, "c1", t0.Add(time.Duration(2*i+1)*time.Microsecond))
		done := make(chan error)
		go func() { done <- b.Write(newer) }()
		if err := b.Remove(listed[0]); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		recs := mustList(t, b)
		if len(recs) != 1 || !recs[0].Created.Equal(newer.Created) {
			t.Fatalf("round %d: the record rewritten during Remove is gone: %v", i, keys(recs))
		}
		if err := b.Remove(recs[0]); err != nil {
			t.Fatal(err)
		}
	}
}

// A claimed record is published from its claim name: a record of the same
// container and kind written meanwhile takes the unclaimed name and
// survives the claimed one's removal.
func TestClaimThenRewriteSurvives(t *testing.T) {
	b := newBox(t)
	t0 := time.Now()
	mustWrite(t, b, rec(KindAttached, "c1", t0))
	listed := mustList(t, b)
	c, err := b.Claim(listed[0])
	if err != nil {
		t.Fatal(err)
	}
	if !c.Claimed || c.Path == listed[0].Path || !c.Created.Equal(t0) {
		t.Fatalf("claimed %+v", c)
	}
	newer := rec(KindAttached, "c1", t0.Add(time.Millisecond))
	mustWrite(t, b, newer)
	// Both are listed (the claimed one with its claim name).
	if recs := mustList(t, b); len(recs) != 2 || !recs[0].Claimed || recs[1].Claimed {
		t.Fatalf("after the rewrite: %+v", recs)
	}
	if err := b.Remove(c); err != nil {
		t.Fatal(err)
	}
	recs := mustList(t, b)
	if len(recs) != 1 || !recs[0].Created.Equal(newer.Created) || recs[0].Claimed {
		t.Fatalf("after Remove of the claimed record: %v, want the newer record", keys(recs))
	}
	// A claimed record claims as itself; a record gone cannot be claimed.
	if c2, err := b.Claim(c); err != nil || c2 != c {
		t.Errorf("Claim of a claimed record: %v %v", c2, err)
	}
	if _, err := b.Claim(&Record{Kind: KindAttached, ContainerID: "gone", Path: filepath.Join(b.Dir, "gone.attached.json")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Claim of a record that is gone: %v, want ErrNotExist", err)
	}
}

// DEL drops its container's claimed records too (one being retried), and
// Pending sees claimed and unclaimed records.
func TestRemoveContainerClaimed(t *testing.T) {
	b := newBox(t)
	mustWrite(t, b, rec(KindFailed, "c1", time.Now()))
	if _, err := b.Claim(mustList(t, b)[0]); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, b, rec(KindAttached, "c1", time.Now()))
	if !b.Pending("c1", KindFailed) || !b.Pending("c1", KindAttached) || b.Pending("c1", KindWarned) {
		t.Errorf("Pending: failed %v attached %v warned %v", b.Pending("c1", KindFailed), b.Pending("c1", KindAttached), b.Pending("c1", KindWarned))
	}
	if err := b.RemoveContainer("c1"); err != nil {
		t.Fatal(err)
	}
	if f := files(t, b); len(f) != 0 {
		t.Errorf("after RemoveContainer: %v", f)
	}
}
