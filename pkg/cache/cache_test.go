package cache

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestSaveLoadRemove(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	if e, err := s.Load("nope"); e != nil || err != nil {
		t.Fatalf("Load of missing entry: %v %v", e, err)
	}
	e := &Entry{ContainerID: "c1", NetNS: "/run/netns/x", CNIVersion: "1.1.0",
		Attachments: []Attachment{{Network: "default/a", IfName: "net1", ConfList: []byte(`{"name":"a"}`)}}}
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
			unlock, err := s.LockPod("default/pod-a")
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
