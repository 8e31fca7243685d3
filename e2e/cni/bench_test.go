package cni_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/plexus-cni/plexus/pkg/testutil/cnienv"
)

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func runPlexus(b *testing.B, e *cnienv.Env, cmd string, p *cnienv.Pod, conf []byte) (time.Duration, int64) {
	d, rss, err := e.ExecPlexus(cmd, p, conf)
	if err != nil {
		b.Fatal(err)
	}
	return d, rss
}

// BenchmarkAddDel compares plexus ADD+DEL with N secondary attachments to
// running the same N+1 delegates directly through libcni, in the same run.
func BenchmarkAddDel(b *testing.B) {
	for _, n := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			e := cnienv.New(b)
			e.WritePrimary()
			nets := bridgeNADs(e, n)
			conf := e.PluginStdin()
			// The same delegates, direct.
			lists := []*libcni.NetworkConfigList{mustList(b, e.BridgeConf("primary", e.Bridge, 0))}
			for i := 1; i <= n; i++ {
				lists = append(lists, mustList(b, e.BridgeConf(fmt.Sprintf("net-%d", i), e.Name(fmt.Sprintf("b%d", i)), i)))
			}
			direct := libcni.NewCNIConfigWithCacheDir([]string{e.BinDir}, b.TempDir(), nil)
			var plexAdd, plexDel, dirAdd, dirDel, baseAdd []time.Duration
			var rss int64
			// PLEXUS_BENCH_BASELINE names another plexus binary (e.g. the
			// previous design, built from an older commit) timed in the
			// same run, for a ratio that does not depend on the machine.
			baseline := os.Getenv("PLEXUS_BENCH_BASELINE")
			current := e.PlexusBin
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p := e.NewPod(fmt.Sprintf("p%d", i), nets)
				d, r := runPlexus(b, e, "ADD", p, conf)
				plexAdd = append(plexAdd, d)
				if r > rss {
					rss = r
				}
				d, _ = runPlexus(b, e, "DEL", p, conf)
				plexDel = append(plexDel, d)
				if baseline != "" {
					q := e.NewPod(fmt.Sprintf("q%d", i), nets)
					e.PlexusBin = baseline
					d, _ = runPlexus(b, e, "ADD", q, conf)
					baseAdd = append(baseAdd, d)
					runPlexus(b, e, "DEL", q, conf)
					e.PlexusBin = current
				}

				rt := e.RT(p)
				start := time.Now()
				for k, l := range lists {
					rt.IfName = "eth0"
					if k > 0 {
						rt.IfName = fmt.Sprintf("net%d", k)
					}
					if _, err := direct.AddNetworkList(context.Background(), l, rt); err != nil {
						b.Fatal(err)
					}
				}
				dirAdd = append(dirAdd, time.Since(start))
				start = time.Now()
				for k := len(lists) - 1; k >= 0; k-- {
					rt.IfName = "eth0"
					if k > 0 {
						rt.IfName = fmt.Sprintf("net%d", k)
					}
					if err := direct.DelNetworkList(context.Background(), lists[k], rt); err != nil {
						b.Fatal(err)
					}
				}
				dirDel = append(dirDel, time.Since(start))
			}
			b.StopTimer()
			b.ReportMetric(ms(median(plexAdd)), "ms/plexus-add")
			b.ReportMetric(ms(median(dirAdd)), "ms/direct-add")
			b.ReportMetric(ms(median(plexAdd)-median(dirAdd)), "ms/add-overhead")
			b.ReportMetric(ms(median(plexDel)-median(dirDel)), "ms/del-overhead")
			b.ReportMetric(float64(rss)/1024, "MiB/peak-rss-with-delegates")
			if len(baseAdd) > 0 {
				b.ReportMetric(ms(median(baseAdd)), "ms/baseline-add")
				b.ReportMetric(float64(median(plexAdd))/float64(median(baseAdd)), "plexus/baseline-add")
			}
		})
	}
}

// BenchmarkVersion is the start-up floor: CNI_COMMAND=VERSION.
func BenchmarkVersion(b *testing.B) {
	e := cnienv.New(b)
	var ds []time.Duration
	var rss int64
	for i := 0; i < b.N; i++ {
		c := exec.Command(e.PlexusBin)
		c.Env = append(os.Environ(), "CNI_COMMAND=VERSION")
		c.Stdin = strings.NewReader(`{"cniVersion":"1.1.0"}`)
		start := time.Now()
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		ds = append(ds, time.Since(start))
		if r := c.ProcessState.SysUsage().(*syscall.Rusage).Maxrss; r > rss {
			rss = r
		}
	}
	b.ReportMetric(ms(median(ds)), "ms/version-median")
	b.ReportMetric(float64(rss)/1024, "MiB/peak-rss")
}

func mustList(b *testing.B, s string) *libcni.NetworkConfigList {
	l, err := libcni.NetworkConfFromBytes([]byte(s))
	if err != nil {
		b.Fatal(err)
	}
	return l
}
