package daemon

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/client-go/tools/cache"

	"github.com/plexus-cni/plexus/pkg/outbox"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

// The publisher over a real outbox directory. Its informers are stand-ins
// that have synced (the records here need no API: fallback records are
// counted, records of a newer schema are left alone).

type syncedInformer struct{ cache.SharedIndexInformer }

func (syncedInformer) HasSynced() bool { return true }

func newPubDaemon(t *testing.T) *Daemon {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	dir := filepath.Join(t.TempDir(), "outbox")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return &Daemon{log: log, metrics: NewMetrics(), box: outbox.Box{Dir: dir}, kick: make(chan struct{}, 1),
		retryState: map[string]*retry{}, inFlight: map[string]bool{}, pods: syncedInformer{}, nads: syncedInformer{}}
}

// counterSum is the sum of the counter name's series whose labels include
// labels (name=value pairs).
func counterSum(t *testing.T, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, mt := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range mt.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			sum += mt.GetCounter().GetValue()
		}
	}
	return sum
}

// fileOpens counts, through inotify, the files opened in dir (not dir
// itself) from now until the returned function is called.
func fileOpens(t *testing.T, dir string) func() int {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_OPEN); err != nil {
		t.Fatal(err)
	}
	return func() int {
		n := 0
		buf := make([]byte, 64<<10)
		for {
			k, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EAGAIN) {
				return n
			}
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off+unix.SizeofInotifyEvent <= k; {
				mask := binary.NativeEndian.Uint32(buf[off+4:])
				nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
				if mask&unix.IN_Q_OVERFLOW != 0 {
					t.Fatal("inotify queue overflowed")
				}
				if nameLen > 0 { // an entry of dir, not dir itself
					n++
				}
				off += unix.SizeofInotifyEvent + nameLen
			}
		}
	}
}

// waitFor polls cond until it holds (or fails the test after timeout).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// After a long outage of plexusd the outbox holds a fallback record per
// command the shim ran meanwhile: plexusd counts them reading each once
// (the drain is linear, not a scan of the whole directory per record). A
// record of a newer schema (a newer shim, mid-upgrade) is left in place.
func TestFallbackDrainLinear(t *testing.T) {
	d := newPubDaemon(t)
	const n = 300
	for i := 0; i < n; i++ {
		cmd := "ADD"
		switch {
		case i%3 == 0:
			cmd = "DEL"
		case i == 1:
			cmd = strings.Repeat("X", 500) // not a command: "other"
		}
		if err := d.box.Write(&outbox.Record{Kind: outbox.KindFallback, Command: cmd, Reason: "timeout",
			Pod: podnet.PodRef{Namespace: "ns", Name: "p"}}); err != nil {
			t.Fatal(err)
		}
	}
	future, _ := json.Marshal(map[string]any{"version": outbox.RecordVersion + 1, "kind": "attached", "containerID": "future", "created": time.Now()})
	futurePath := filepath.Join(d.box.Dir, "future.attached.json")
	if err := os.WriteFile(futurePath, future, 0o600); err != nil {
		t.Fatal(err)
	}
	opens := fileOpens(t, d.box.Dir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.publishLoop(ctx); close(done) }()
	waitFor(t, 20*time.Second, "every fallback counted", func() bool {
		return counterSum(t, d.metrics, "plexus_shim_fallbacks_total") >= n
	})
	cancel()
	<-done
	d.wg.Wait()
	got := opens()
	if add, del := counterSum(t, d.metrics, "plexus_shim_fallbacks_total", "command", "ADD"),
		counterSum(t, d.metrics, "plexus_shim_fallbacks_total", "command", "DEL"); add != 199 || del != 100 {
		t.Errorf("fallbacks counted: ADD %v, DEL %v; want 199, 100", add, del)
	}
	if other := counterSum(t, d.metrics, "plexus_shim_fallbacks_total", "command", "other"); other != 1 {
		t.Errorf("fallbacks of an unknown command counted as \"other\": %v, want 1", other)
	}
	// Each fallback record read once, plus the newer record once per scan
	// (a handful).
	if got > n+10 {
		t.Errorf("draining %d fallback records opened %d files, want at most %d", n, got, n+10)
	}
	t.Logf("draining %d fallback records opened %d files", n, got)
	ents, _ := os.ReadDir(d.box.Dir)
	if len(ents) != 1 || ents[0].Name() != filepath.Base(futurePath) {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("outbox after the drain: %v, want only the newer-version record", names)
	}
}
