package cache

import (
	"github.com/plexus-cni/plexus/pkg/podnet"

	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSaveLoadRemove(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	if e, err := s.Load("nope"); e != nil || err != nil {
		t.Fatalf("Load of missing entry: %v %v", e, err)
	}
	e := &podnet.Entry{ContainerID: "c1", NetNS: "/run/netns/x", CNIVersion: "1.1.0",
		Attachments: []podnet.Attachment{{Network: "default/a", IfName: "net1", ConfList: []byte(`{"name":"a"}`)}}}
	if err := s.Save(e); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(s.ContainerDir("c1"), intentFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("intent file: %v mode %v", err, fi.Mode())
	}
	got, err := s.Load("c1")
	if err != nil || got.Attachments[0].IfName != "net1" || string(got.Attachments[0].ConfList) != `{"name":"a"}` {
		t.Fatalf("Load: %+v %v", got, err)
	}
	ids, _ := s.List()
	if len(ids) != 1 || ids[0] != "c1" {
		t.Fatalf("List: %v", ids)
	}
	if err := s.Remove("c1"); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.List(); len(ids) != 0 {
		t.Fatalf("List after Remove: %v", ids)
	}
	// No temp files are left in the directory.
	ents, _ := os.ReadDir(filepath.Join(s.Dir, "containers"))
	if len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

func TestCorruptEntry(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	os.MkdirAll(s.ContainerDir("c"), 0o700)
	os.WriteFile(filepath.Join(s.ContainerDir("c"), intentFile), []byte("{"), 0o600)
	if _, err := s.Load("c"); err == nil {
		t.Fatal("corrupt entry loaded without error")
	}
}

func TestLockPodExcludes(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	var mu sync.Mutex
	inside := 0
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := s.LockPod("default/pod-a", 0)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			inside++
			if inside != 1 {
				t.Errorf("%d holders of one pod's lock", inside)
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
			unlock()
		}()
	}
	wg.Wait()
}

// Two pods whose keys fell into one of the 64 lock buckets of the old design
// ("default/pod-0" and the first other name that collides under FNV-32a mod
// 64) must not wait on each other: a holder of one never delays the other.
func TestLockPodDifferentPodsNeverWait(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	a, b := "default/pod-0", collidingKey("default/pod-0")
	unlockA, err := s.LockPod(a, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unlockA()
	// With a's lock held, b's must be granted without waiting: a deadline of
	// zero-ish would fail if b shared a's lock file.
	unlockB, err := s.LockPod(b, time.Nanosecond)
	if err != nil {
		t.Fatalf("pod %s waited for pod %s: %v", b, a, err)
	}
	unlockB()
}

func collidingKey(key string) string {
	bucket := func(k string) uint32 { h := fnv.New32a(); h.Write([]byte(k)); return h.Sum32() % 64 }
	want := bucket(key)
	for i := 1; ; i++ {
		k := fmt.Sprintf("default/pod-%d", i)
		if bucket(k) == want {
			return k
		}
	}
}

// A lock wait has a deadline that yields an error naming the pod and the
// holder's pid; the lock files are gone once every holder unlocked.
func TestLockPodDeadlineAndNoFilesLeft(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	unlock, err := s.LockPod("ns/p", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.LockPod("ns/p", 30*time.Millisecond)
	if err == nil {
		t.Fatal("second holder of one pod's lock")
	}
	for _, w := range []string{"ns/p", fmt.Sprintf("process %d", os.Getpid()), "gave up waiting"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
	unlock()
	ents, _ := os.ReadDir(filepath.Join(s.Dir, "locks"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "pod-") {
			t.Errorf("lock file %s left behind", e.Name())
		}
	}
}

// GC waits for running operations and keeps new ones out until it is done.
func TestLockGCExcludesOperations(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	unlock, err := s.LockPod("ns/p", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LockGC(20 * time.Millisecond); err == nil {
		t.Fatal("GC lock granted while an operation runs")
	}
	unlock()
	unlockGC, err := s.LockGC(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LockPod("ns/q", 20*time.Millisecond); err == nil {
		t.Fatal("operation started during GC")
	}
	// A GC's own DELs take only the pod lock.
	u, err := s.LockPodInGC("ns/q", 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	u()
	unlockGC()
}
