package deviceplugin

import (
	"context"
	"os"
	"testing"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// tmpfsDir is a temporary directory on tmpfs when /dev/shm is one, as the
// device-info directory (/var/run, i.e. /run) is on a node; else "".
func tmpfsDir(b *testing.B) string {
	d, err := os.MkdirTemp("/dev/shm", "plexus-devinfo")
	if err != nil {
		return ""
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// BenchmarkAllocate4 is kubelet's Allocate of 4 VFs over the plugin's unix
// socket, device-info files included (target < 1 ms/op).
func BenchmarkAllocate4(b *testing.B) {
	e := newTestEnvIn(b, twoPools, nil, tmpfsDir(b))
	p := e.kubelet.WaitPlugin(b, "plexus.io/sriov_net", 1, 5*time.Second)
	ids := []string{"0000:3c:00.0", "0000:3c:00.1", "0000:3d:00.2", "0000:3d:00.3"}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := p.Allocate(ctx, ids)
		if err != nil || len(resp.ContainerResponses) != 1 {
			b.Fatal(err)
		}
	}
}

// BenchmarkAllocate4NewFiles is the same with the device-info files removed
// before each call, so that every call creates its four files.
func BenchmarkAllocate4NewFiles(b *testing.B) {
	e := newTestEnvIn(b, twoPools, nil, tmpfsDir(b))
	p := e.kubelet.WaitPlugin(b, "plexus.io/sriov_net", 1, 5*time.Second)
	ids := []string{"0000:3c:00.0", "0000:3c:00.1", "0000:3d:00.2", "0000:3d:00.3"}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for _, id := range ids {
			_ = os.Remove(DevInfoPath(e.devinfo, "plexus.io/sriov_net", id))
		}
		b.StartTimer()
		resp, err := p.Allocate(ctx, ids)
		if err != nil || len(resp.ContainerResponses) != 1 {
			b.Fatal(err)
		}
	}
}

// BenchmarkPreferredAllocation is GetPreferredAllocation of 4 out of 10.
func BenchmarkPreferredAllocation(b *testing.B) {
	e := newTestEnv(b, twoPools, nil)
	p := e.kubelet.WaitPlugin(b, "plexus.io/sriov_net", 1, 5*time.Second)
	avail := []string{"0000:3c:00.0", "0000:3c:00.1", "0000:3c:00.2", "0000:3c:00.3", "0000:3d:00.0", "0000:3d:00.1", "0000:3d:00.2", "0000:3d:00.3"}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.Prefer(ctx, avail, nil, 4); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHealthUpdate measures the time from a PF link going down (a veth
// standing in for the PF, in a test netns) to the Unhealthy list on the
// ListAndWatch stream (target < 1 s; reported as ms/health-update).
func BenchmarkHealthUpdate(b *testing.B) {
	n := pfVeth(b, "ens1f0")
	e := newTestEnv(b, twoPools, NetlinkMonitor{NetNS: n.Path()})
	p := e.kubelet.WaitPlugin(b, "plexus.io/sriov_net", 1, 5*time.Second)
	healthy := func(want bool) func([]*pluginapi.Device) bool {
		return func(d []*pluginapi.Device) bool {
			h, u := healthOf(d, "3c")
			if want {
				return h == 4 && u == 0
			}
			return h == 0 && u == 4
		}
	}
	p.WaitDevices(b, 5*time.Second, healthy(true))
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		setLinkIn(b, n, "ens1f0", false)
		p.WaitDevices(b, 5*time.Second, healthy(false))
		total += time.Since(start)
		b.StopTimer()
		setLinkIn(b, n, "ens1f0", true)
		p.WaitDevices(b, 5*time.Second, healthy(true))
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/health-update")
}
