package deviceplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/plexus-cni/plexus/pkg/sriov/discovery"
	"github.com/plexus-cni/plexus/pkg/sriov/dpconfig"
)

// dirEvents records the file-system events of a directory.
type dirEvents struct {
	w    *fsnotify.Watcher
	mu   sync.Mutex
	evs  []fsnotify.Event
	errs []error
	done chan struct{}
}

func watchDir(t *testing.T, dir string) *dirEvents {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(dir); err != nil {
		t.Fatal(err)
	}
	d := &dirEvents{w: w, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				d.mu.Lock()
				d.evs = append(d.evs, ev)
				d.mu.Unlock()
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				d.mu.Lock()
				d.errs = append(d.errs, err)
				d.mu.Unlock()
			}
		}
	}()
	t.Cleanup(d.close)
	return d
}

func (d *dirEvents) close() {
	_ = d.w.Close()
	<-d.done
}

// removals lists the Remove events on the given paths seen so far; an
// overflowed event queue is an error (events were lost).
func (d *dirEvents) removals(t *testing.T, paths ...string) []string {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.errs) > 0 {
		t.Fatalf("watching the device-info dir: %v", d.errs)
	}
	want := map[string]bool{}
	for _, p := range paths {
		want[p] = true
	}
	var out []string
	for _, ev := range d.evs {
		if want[ev.Name] && ev.Has(fsnotify.Remove) {
			out = append(out, ev.String())
		}
	}
	return out
}

// Two plugin processes writing the same device-info file (a rolling update
// of the DaemonSet: old and new pod both run as PID 1 in their containers)
// while plexus reads it: every write succeeds, a reader always finds the
// whole file, and the file is never removed before its replacement is in
// place (rename over it, atomicfile's unique temp names, nothing left).
func TestDevInfoReplacedInPlace(t *testing.T) {
	devinfo := filepath.Join(t.TempDir(), "devinfo")
	dev := &dpconfig.Device{VF: &discovery.VF{Addr: "0000:3c:00.0", PFAddr: "0000:3b:00.0", PFNetdev: "ens1f0", NUMA: 0}}
	pool := &dpconfig.Pool{Resource: &dpconfig.Resource{Name: "sriov_net", Prefix: "plexus.io"}, Devices: []*dpconfig.Device{dev}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := NewServer(pool, nil, t.TempDir(), devinfo, nil, log)
	b := NewServer(pool, nil, t.TempDir(), devinfo, nil, log)
	path := DevInfoPath(devinfo, "plexus.io/sriov_net", dev.Addr)
	info := func(writer string, i int) *nadv1.DeviceInfo {
		return &nadv1.DeviceInfo{Type: nadv1.DeviceInfoTypePCI, Version: nadv1.DeviceInfoVersion,
			Pci: &nadv1.PciDevice{PciAddress: dev.Addr, PfPciAddress: dev.PFAddr, RdmaDevice: fmt.Sprintf("%s%d", writer, i)}}
	}
	if err := a.writeDevInfo(dev.Addr, info("a", -1)); err != nil {
		t.Fatal(err)
	}
	events := watchDir(t, devinfo)

	stop := make(chan struct{})
	var readErrs []string
	reads := 0
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			reads++
			raw, err := os.ReadFile(path)
			var di nadv1.DeviceInfo
			if err == nil {
				err = json.Unmarshal(raw, &di)
			}
			if err == nil && (di.Pci == nil || di.Pci.PciAddress != dev.Addr) {
				err = fmt.Errorf("incomplete device-info %s", raw)
			}
			if err != nil && len(readErrs) < 5 {
				readErrs = append(readErrs, err.Error())
			}
		}
	}()
	const writes = 100
	var wg sync.WaitGroup
	writeErrs := make(chan error, 2*writes)
	for name, s := range map[string]*Server{"a": a, "b": b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < writes; i++ {
				if err := s.writeDevInfo(dev.Addr, info(name, i)); err != nil {
					writeErrs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-readerDone
	close(writeErrs)
	for err := range writeErrs {
		t.Errorf("concurrent write: %v", err)
	}
	if len(readErrs) > 0 {
		t.Errorf("a reader (plexus ADD) saw a missing or partial device-info file in %d reads: %v", reads, readErrs)
	}
	// Stop watching before reading the record: all events are in.
	events.close()
	if rm := events.removals(t, path); len(rm) > 0 {
		t.Errorf("device-info file removed before its replacement was in place (%d times), first: %s", len(rm), rm[0])
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o444 {
		t.Errorf("device-info mode %v, want 0444", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(devinfo)
	for _, e := range ents {
		if e.Name() != filepath.Base(path) {
			t.Errorf("left in the device-info dir: %s", e.Name())
		}
	}
}

// A plugin restart (stop + start of the process) and reloads that keep a
// pool keep the device-info files of its devices: pods holding them may run
// plexus ADD later. Only devices that leave the pool lose their files, also
// when a previous plugin process wrote them.
func TestDevInfoKeptAcrossRestartAndReload(t *testing.T) {
	e := newTestEnv(t, twoPools, nil)
	ctx := context.Background()
	net := e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 1, 5*time.Second)
	dpdk := e.kubelet.WaitPlugin(t, "plexus.io/sriov_dpdk", 1, 5*time.Second)
	if _, err := net.Allocate(ctx, []string{"0000:3c:00.1", "0000:3d:00.0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := dpdk.Allocate(ctx, []string{"0000:5f:00.0"}); err != nil {
		t.Fatal(err)
	}
	stays := DevInfoPath(e.devinfo, "plexus.io/sriov_net", "0000:3c:00.1")
	leaves := DevInfoPath(e.devinfo, "plexus.io/sriov_net", "0000:3d:00.0")
	dpdkFile := DevInfoPath(e.devinfo, "plexus.io/sriov_dpdk", "0000:5f:00.0")
	before := map[string]string{}
	for _, p := range []string{stays, leaves, dpdkFile} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		before[p] = string(b)
	}
	events := watchDir(t, e.devinfo)

	// Plain restart: a new process with the same config.
	e.restart(t)
	net = e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 2, 5*time.Second)
	e.kubelet.WaitPlugin(t, "plexus.io/sriov_dpdk", 2, 5*time.Second)
	for p, want := range before {
		if b, err := os.ReadFile(p); err != nil || string(b) != want {
			t.Fatalf("after a plugin restart %s: %q, %v; want it unchanged", filepath.Base(p), b, err)
		}
	}

	// A reload that keeps every pool (same pools, written differently).
	reloads := counterValue(t, e.metrics.reloads.WithLabelValues("ok"))
	e.writeConfig(t, strings.ReplaceAll(twoPools, "\n", " "))
	waitFor(t, 5*time.Second, "reload of an equivalent config", func() bool {
		return counterValue(t, e.metrics.reloads.WithLabelValues("ok")) > reloads
	})
	for p := range before {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("a reload that kept the pool removed %s: %v", filepath.Base(p), err)
		}
	}

	// sriov_net shrinks to ens1f0 (its VFs get vhost-net now), sriov_dpdk
	// goes: 0000:3d:00.0 and 0000:5f:00.0 leave their pools, though the
	// previous process wrote their files.
	e.writeConfig(t, `{"resourceList":[{"resourceName":"sriov_net","selectors":[{"pfNames":["ens1f0"],"needVhostNet":true}]}]}`)
	net.WaitDevices(t, 5*time.Second, func(d []*pluginapi.Device) bool { return len(d) == 4 })
	waitFor(t, 5*time.Second, "device-info files of devices that left their pool removed", func() bool {
		_, err1 := os.Stat(leaves)
		_, err2 := os.Stat(dpdkFile)
		return os.IsNotExist(err1) && os.IsNotExist(err2)
	})
	if _, err := os.Stat(stays); err != nil {
		t.Fatalf("device-info of a device that stayed in its pool: %v", err)
	}
	// Allocated again with new content: replaced in place.
	if _, err := net.Allocate(ctx, []string{"0000:3c:00.1"}); err != nil {
		t.Fatal(err)
	}
	if di := readDevInfo(t, stays); di.Pci.Vhostnet != "/dev/vhost-net" {
		t.Fatalf("device-info not replaced on a new allocation: %+v", di.Pci)
	}

	// The plugin stops (SIGTERM): files of devices in the pool stay.
	e.stop()
	if _, err := os.Stat(stays); err != nil {
		t.Fatalf("plugin stop removed the device-info of an allocated device: %v", err)
	}
	events.close()
	if rm := events.removals(t, stays); len(rm) > 0 {
		t.Fatalf("device-info of a device that never left its pool was removed: %v", rm)
	}
}
