package deviceplugin

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plexus-cni/plexus/pkg/sriov/discovery"
	"github.com/plexus-cni/plexus/pkg/testutil/fakesysfs"
	"github.com/plexus-cni/plexus/pkg/testutil/kubeletstub"
)

// testEnv is a fake host (two PFs), a kubelet stub and a running Manager.
//
//	ens1f0 0000:3b:00.0 NUMA 0, 4 iavf VFs 0000:3c:00.0-3
//	ens1f1 0000:3b:00.1 NUMA 0, 4 iavf VFs 0000:3d:00.0-3
//	ens2f0 0000:5e:00.0 NUMA 1, 2 vfio-pci VFs 0000:5f:00.0-1
type testEnv struct {
	tr       *fakesysfs.Tree
	vfio     []fakesysfs.VF
	dir      string // device-plugin dir
	devinfo  string
	cfgPath  string
	kubelet  *kubeletstub.Kubelet
	m        *Manager
	links    LinkMonitor
	metrics  *Metrics
	cancel   context.CancelFunc
	done     chan error
	stopOnce bool
}

const twoPools = `{"resourceList":[
 {"resourceName":"sriov_net","selectors":[{"pfNames":["ens1f0","ens1f1"]}]},
 {"resourceName":"sriov_dpdk","excludeTopology":true,"selectors":[{"drivers":["vfio-pci"]}]}]}`

func newTestEnv(t testing.TB, cfg string, links LinkMonitor) *testEnv {
	t.Helper()
	return newTestEnvIn(t, cfg, links, "")
}

// newTestEnvIn is newTestEnv with the device-info files in devinfo
// ("" for a temporary directory).
func newTestEnvIn(t testing.TB, cfg string, links LinkMonitor, devinfo string) *testEnv {
	t.Helper()
	e := &testEnv{tr: fakesysfs.New(t)}
	for _, pf := range []fakesysfs.PF{
		{Addr: "0000:3b:00.0", Netdev: "ens1f0", NumVFs: 4},
		{Addr: "0000:3b:00.1", Netdev: "ens1f1", NumVFs: 4},
	} {
		if _, err := e.tr.AddPF(pf); err != nil {
			t.Fatal(err)
		}
	}
	vfio, err := e.tr.AddPF(fakesysfs.PF{Addr: "0000:5e:00.0", Netdev: "ens2f0", NumVFs: 2, NUMA: 1, VFDriver: "vfio-pci"})
	if err != nil {
		t.Fatal(err)
	}
	e.vfio = vfio
	// unix socket paths must stay short: not under t.TempDir()'s long names.
	short, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	e.dir = filepath.Join(short, "plugins")
	e.devinfo = filepath.Join(short, "devinfo")
	if devinfo != "" {
		e.devinfo = devinfo
	}
	e.cfgPath = filepath.Join(short, "etc", "sriov-dp.json")
	if err := os.MkdirAll(filepath.Dir(e.cfgPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	e.kubelet = kubeletstub.Start(t, e.dir)
	e.metrics = NewMetrics()
	e.links = links
	e.startManager(t)
	t.Cleanup(e.stop)
	return e
}

// startManager runs a new Manager (a new plugin process, as far as the
// files on the node are concerned) on the environment's directories.
func (e *testEnv) startManager(t testing.TB) {
	t.Helper()
	var err error
	e.m, err = NewManager(Options{
		ConfigPath: e.cfgPath, Discovery: discovery.Options{Root: e.tr.Root}, PluginDir: e.dir,
		DevInfoDir: e.devinfo, Links: e.links, Metrics: e.metrics,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Resync: 500 * time.Millisecond, ReloadDelay: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done, e.stopOnce = cancel, make(chan error, 1), false
	go func() { e.done <- e.m.Run(ctx) }()
	select {
	case <-e.m.Ready():
	case err := <-e.done:
		t.Fatalf("manager: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("manager not ready in 10s")
	}
}

// restart stops the manager and starts a new one, as a restarted plugin
// process (DaemonSet pod replaced) would.
func (e *testEnv) restart(t testing.TB) {
	t.Helper()
	e.stop()
	e.startManager(t)
}

// stop ends the manager and waits for it.
func (e *testEnv) stop() {
	if e.stopOnce {
		return
	}
	e.stopOnce = true
	e.cancel()
	<-e.done
}

func (e *testEnv) writeConfig(t *testing.T, cfg string) {
	t.Helper()
	tmp := e.cfgPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, e.cfgPath); err != nil {
		t.Fatal(err)
	}
}
