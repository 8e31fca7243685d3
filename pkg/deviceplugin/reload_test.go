package deviceplugin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHotReload(t *testing.T) {
	e := newTestEnv(t, twoPools, nil)
	net := e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 1, 5*time.Second)
	e.kubelet.WaitPlugin(t, "plexus.io/sriov_dpdk", 1, 5*time.Second)
	net.WaitDevices(t, 5*time.Second, func(d []*pluginapi.Device) bool { return len(d) == 8 })
	if _, err := net.Allocate(context.Background(), []string{"0000:3c:00.1"}); err != nil {
		t.Fatal(err)
	}
	allocated := DevInfoPath(e.devinfo, "plexus.io/sriov_net", "0000:3c:00.1")
	moved := DevInfoPath(e.devinfo, "plexus.io/sriov_net", "0000:3d:00.0")
	if _, err := net.Allocate(context.Background(), []string{"0000:3d:00.0"}); err != nil {
		t.Fatal(err)
	}

	// sriov_net shrinks to ens1f0, sriov_dpdk goes, sriov_extra takes ens1f1.
	e.writeConfig(t, `{"resourceList":[
	 {"resourceName":"sriov_net","selectors":[{"pfNames":["ens1f0"]}]},
	 {"resourceName":"sriov_extra","selectors":[{"pfNames":["ens1f1#0-1"]}]}]}`)
	extra := e.kubelet.WaitPlugin(t, "plexus.io/sriov_extra", 1, 5*time.Second)
	got := describe(extra.WaitDevices(t, 5*time.Second, func(d []*pluginapi.Device) bool { return len(d) == 2 }))
	if got != "0000:3d:00.0/Healthy/0 0000:3d:00.1/Healthy/0" {
		t.Fatalf("extra: %s", got)
	}
	net.WaitDevices(t, 5*time.Second, func(d []*pluginapi.Device) bool { return len(d) == 4 })
	waitFor(t, 5*time.Second, "dpdk socket removal", func() bool {
		_, err := os.Stat(filepath.Join(e.dir, "plexus.io_sriov_dpdk.sock"))
		return os.IsNotExist(err)
	})
	// The pool that stayed kept its server, stream and registration.
	if net.Ended() || countRegs(e, "plexus.io/sriov_net") != 1 {
		t.Fatalf("sriov_net disturbed: ended=%v registrations=%d", net.Ended(), countRegs(e, "plexus.io/sriov_net"))
	}
	if _, err := os.Stat(allocated); err != nil {
		t.Fatalf("device-info of a device that stayed was removed: %v", err)
	}
	if _, err := os.Stat(moved); !os.IsNotExist(err) {
		t.Fatalf("device-info of a device that left the pool is still there: %v", err)
	}
	// The counter moves when the reload returns, just after its effects.
	waitFor(t, 5*time.Second, "reload ok count 1", func() bool {
		return counterValue(t, e.metrics.reloads.WithLabelValues("ok")) == 1
	})

	// A bad config is rejected; the last good one keeps running.
	_, updates := net.Devices()
	e.writeConfig(t, `{"resourceList":[{"resourceName":"-bad","selectors":[{}]}]}`)
	waitFor(t, 5*time.Second, "rejected reload", func() bool {
		return counterValue(t, e.metrics.reloads.WithLabelValues("error")) == 1
	})
	if _, err := os.Stat(filepath.Join(e.dir, "plexus.io_sriov_extra.sock")); err != nil {
		t.Fatalf("pool gone after a bad config: %v", err)
	}
	if devs, n := net.Devices(); n != updates || len(devs) != 4 {
		t.Fatalf("bad config changed the device list: %d updates (was %d), %d devices", n, updates, len(devs))
	}
	if _, err := extra.Allocate(context.Background(), []string{"0000:3d:00.1"}); err != nil {
		t.Fatalf("allocate after bad config: %v", err)
	}

	// Fixing it applies again.
	e.writeConfig(t, twoPools)
	e.kubelet.WaitPlugin(t, "plexus.io/sriov_dpdk", 2, 5*time.Second)
	net.WaitDevices(t, 5*time.Second, func(d []*pluginapi.Device) bool { return len(d) == 8 })
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func countRegs(e *testEnv, res string) int {
	n := 0
	for _, r := range e.kubelet.Registrations() {
		if r.ResourceName == res {
			n++
		}
	}
	return n
}

// A ConfigMap volume swaps a "..data" symlink; the file name is a symlink.
func TestReloadConfigMapSwap(t *testing.T) {
	e := newTestEnv(t, twoPools, nil)
	e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 1, 5*time.Second)
	dir := filepath.Dir(e.cfgPath)
	write := func(ts, cfg string) {
		d := filepath.Join(dir, ts)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "sriov-dp.json"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		_ = os.Remove(tmp)
		if err := os.Symlink(ts, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	write("..v1", twoPools)
	if err := os.Remove(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/sriov-dp.json", e.cfgPath); err != nil {
		t.Fatal(err)
	}
	write("..v2", `{"resourceList":[{"resourceName":"swapped","selectors":[{}]}]}`)
	e.kubelet.WaitPlugin(t, "plexus.io/swapped", 1, 5*time.Second)
}

func TestMetricsEndpoint(t *testing.T) {
	e := newTestEnv(t, twoPools, nil)
	net := e.kubelet.WaitPlugin(t, "plexus.io/sriov_net", 1, 5*time.Second)
	if _, err := net.Allocate(context.Background(), []string{"0000:3c:00.0", "0000:3c:00.1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Allocate(context.Background(), []string{"0000:99:00.0"}); err == nil {
		t.Fatal("unknown device allocated")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, _, err := e.metrics.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/metrics", addr))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`plexus_sriov_devices{health="Healthy",resource="plexus.io/sriov_net"} 8`,
		`plexus_sriov_devices{health="Unhealthy",resource="plexus.io/sriov_net"} 0`,
		`plexus_sriov_devices{health="Healthy",resource="plexus.io/sriov_dpdk"} 2`,
		`plexus_sriov_allocations_total{resource="plexus.io/sriov_net"} 1`,
		`plexus_sriov_allocated_devices_total{resource="plexus.io/sriov_net"} 2`,
		`plexus_sriov_allocation_errors_total{resource="plexus.io/sriov_net"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	if _, _, err := e.metrics.Serve(ctx, "256.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "metrics address") {
		t.Fatalf("bad address: %v", err)
	}
}
