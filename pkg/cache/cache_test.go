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

// A lock file a killed holder left with a longer PID names the new holder
// alone: the holder record is rewritten whole, not only overwritten.
func TestLockPodStaleHolderRewritten(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(s.Dir, "locks"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "locks", "gc.lock"), []byte("99999999999"), 0o600); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.LockGC(0)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	got, _ := os.ReadFile(filepath.Join(s.Dir, "locks", "gc.lock"))
	if want := fmt.Sprint(os.Getpid()); string(got) != want {
		t.Fatalf("holder record %q, want %q", got, want)
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

// round1Entry is a cache entry as plexus v0.1.0 wrote it: no "version",
// every field of its Entry and Attachment.
const round1Entry = `{"containerID":"c1","netns":"/var/run/netns/cni-1","podNamespace":"default","podName":"web","podUID":"uid-1",` +
	`"cniVersion":"1.0.0","attachments":[` +
	`{"network":"default/br","ifName":"eth0","primary":true,"confList":{"cniVersion":"1.0.0","name":"br","plugins":[{"type":"bridge"}]},` +
	`"cniArgs":[["K8S_POD_NAME","web"]],"added":true,"result":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.5/24"}]}},` +
	`{"network":"default/sriov-a","ifName":"net1","confList":{"cniVersion":"1.0.0","name":"sriov-a","plugins":[{"type":"sriov"}]},` +
	`"capabilityArgs":{"ips":["10.1.0.5/24"]},"resourceName":"intel.com/sriov","deviceID":"0000:3b:02.0",` +
	`"deviceInfoFile":"/var/run/k8s.cni.cncf.io/devinfo/dp/intel.com-sriov-0000:3b:02.0-device.json","gateways":["10.1.0.1"],"added":true}]}`

func writeEntry(t *testing.T, s Store, id, data string) string {
	t.Helper()
	p := filepath.Join(s.ContainerDir(id), intentFile)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadRound1Entry(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	writeEntry(t, s, "c1", round1Entry)
	e, err := s.Load("c1")
	if err != nil {
		t.Fatalf("round-1 entry refused: %v", err)
	}
	if e.Version != 0 || e.ContainerID != "c1" || e.NetNS != "/var/run/netns/cni-1" || e.PodNamespace != "default" ||
		e.PodName != "web" || e.PodUID != "uid-1" || e.CNIVersion != "1.0.0" || len(e.Attachments) != 2 {
		t.Fatalf("round-1 entry read as %+v", e)
	}
	a0, a1 := e.Attachments[0], e.Attachments[1]
	if a0.Network != "default/br" || a0.IfName != "eth0" || !a0.Primary || !a0.Added ||
		len(a0.CNIArgs) != 1 || a0.CNIArgs[0] != [2]string{"K8S_POD_NAME", "web"} ||
		!strings.Contains(string(a0.ConfList), `"type":"bridge"`) || !strings.Contains(string(a0.Result), "10.0.0.5/24") {
		t.Errorf("attachment 0 read as %+v", a0)
	}
	if a1.Network != "default/sriov-a" || a1.IfName != "net1" || a1.Primary || a1.ResourceName != "intel.com/sriov" ||
		a1.DeviceID != "0000:3b:02.0" || !strings.HasSuffix(a1.DeviceInfoFile, "-device.json") ||
		len(a1.Gateways) != 1 || a1.Gateways[0] != "10.1.0.1" || fmt.Sprint(a1.CapabilityArgs["ips"]) != "[10.1.0.5/24]" {
		t.Errorf("attachment 1 read as %+v", a1)
	}
	if a0.Origin != "" || a1.Origin != "" {
		t.Errorf("origins %q, %q in an entry that records none", a0.Origin, a1.Origin)
	}
	// Saved again (a DEL updating it), it carries the current version.
	if err := s.Save(e); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(s.ContainerDir("c1"), intentFile))
	if !strings.Contains(string(b), fmt.Sprintf(`"version":%d`, EntryVersion)) {
		t.Errorf("saved entry has no version %d: %s", EntryVersion, b)
	}
	if e2, err := s.Load("c1"); err != nil || e2.Version != EntryVersion || len(e2.Attachments) != 2 {
		t.Errorf("reloaded: %+v %v", e2, err)
	}
}

func TestLoadVersions(t *testing.T) {
	for _, tc := range []struct {
		version int
		wantErr bool
	}{{0, false}, {1, false}, {EntryVersion, false}, {EntryVersion + 1, true}, {99, true}} {
		t.Run(fmt.Sprint(tc.version), func(t *testing.T) {
			s := Store{Dir: t.TempDir()}
			p := writeEntry(t, s, "c1", fmt.Sprintf(`{"version":%d,"containerID":"c1","netns":"/x","cniVersion":"1.0.0","attachments":[]}`, tc.version))
			e, err := s.Load("c1")
			if !tc.wantErr {
				if err != nil || e == nil || e.ContainerID != "c1" {
					t.Fatalf("version %d: %+v %v", tc.version, e, err)
				}
				return
			}
			want := fmt.Sprintf(`cache entry of container c1: %s: "version" %d is newer than this plexus's %d`, p, tc.version, EntryVersion)
			if e != nil || err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("version %d: entry %+v, error %v, want %q", tc.version, e, err, want)
			}
		})
	}
}

// Origins (hot-plug's classification, docs/hotplug.md) are an optional
// field of version 1: they survive a save and load, and an entry carrying
// them is still version 1, readable by plexus v0.2 (a downgrade's DEL).
func TestOriginsRoundTrip(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	e := &podnet.Entry{ContainerID: "c1", NetNS: "/x", CNIVersion: "1.0.0", Attachments: []podnet.Attachment{
		{Network: "p", IfName: "eth0", Primary: true, Origin: podnet.OriginPrimary},
		{Network: "kube-system/dn", IfName: "net1", Origin: podnet.OriginDefaultNetworks},
		{Network: "default/a", IfName: "net2", Origin: podnet.OriginAnnotation},
	}}
	if err := s.Save(e); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load("c1")
	if err != nil || got.Version != 1 {
		t.Fatalf("%+v %v", got, err)
	}
	for i, a := range got.Attachments {
		if a.Origin != e.Attachments[i].Origin {
			t.Errorf("attachment %d: origin %q, want %q", i, a.Origin, e.Attachments[i].Origin)
		}
	}
}

// BenchmarkLockPod: take and release a pod's lock (and the shared GC lock),
// as every ADD does once (docs/observability.md).
func BenchmarkLockPod(b *testing.B) {
	s := Store{Dir: b.TempDir()}
	for b.Loop() {
		unlock, err := s.LockPod("ns/p", 0)
		if err != nil {
			b.Fatal(err)
		}
		unlock()
	}
}
