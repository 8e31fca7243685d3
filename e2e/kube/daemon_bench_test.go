package kube_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

// BenchmarkDaemonAdd: the daemon deployment's ADD against a real
// kube-apiserver with N secondary attachments, side by side in one run
// (each iteration times every variant once, interleaved and in a rotating
// order, so that the machine's drift cancels out) with:
//   - hello: one exec of a hello-world Go program (the unit of the targets);
//   - floor: the same program doing one 2 KiB crash-safe write (temp, fsync,
//     rename, fsync of the directory) in the cache's directory: the
//     physical floor of an ADD through a shim that keeps its intent durable;
//   - direct: the same N+1 delegates run directly;
//   - thin: plexus-thin, the thin deployment (today's design);
//   - daemon: the plexus shim with plexusd running;
//   - fallback: the plexus shim with plexusd configured but not running.
//
// Overheads are medians of per-iteration differences. API requests per ADD
// are plexusd's own count (its metrics) over the run.
func BenchmarkDaemonAdd(b *testing.B) {
	hello := testutil.BuildPackage(b, "hello", "./e2e/cmd/hello")
	for _, n := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			k := newKubeEnvB(b)
			d := k.startPlexusd()
			thinBin := testutil.BuildBinary(b, "plexus-thin")
			var names []string
			lists := []*libcni.NetworkConfigList{mustList(b, k.BridgeConf("primary", k.Bridge, 0))}
			for i := 1; i <= n; i++ {
				name := fmt.Sprintf("db-%d", i)
				k.bridgeNAD("default", name, i)
				names = append(names, name)
				lists = append(lists, mustList(b, k.BridgeConf(name, k.Name(fmt.Sprintf("b%d", i)), i)))
			}
			daemonConf := k.PluginStdin()
			sock := k.Extra["daemonSocket"]
			k.Extra["daemonSocket"] = nil
			thinConf := k.PluginStdin()
			k.Extra["daemonSocket"] = k.Dir + "/no-plexusd/plexusd.sock"
			fallbackConf := k.PluginStdin()
			k.Extra["daemonSocket"] = sock
			direct := libcni.NewCNIConfigWithCacheDir([]string{k.BinDir}, b.TempDir(), nil)
			floorDir := filepath.Join(k.CNIDir, "floor")
			if err := os.MkdirAll(floorDir, 0o700); err != nil {
				b.Fatal(err)
			}
			var floorT []time.Duration
			var helloT, directT, thinT, daemonT, fbT, daemonOver, thinOver, fbOverThin []time.Duration
			apiBefore := d.Metric("plexus_api_requests_total", `verb="GET"`) + d.Metric("plexus_api_requests_total", `verb="LIST"`)
			patchBefore := d.Metric("plexus_api_requests_total", `verb="PATCH"`)
			evBefore := d.Metric("plexus_api_requests_total", `verb="POST"`, `resource="events"`)
			pods := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				pd := k.createPod(fmt.Sprintf("bd%d-%d", n, i), strings.Join(names, ","))
				pt := k.createPod(fmt.Sprintf("bt%d-%d", n, i), strings.Join(names, ","))
				pf := k.createPod(fmt.Sprintf("bf%d-%d", n, i), strings.Join(names, ","))
				// The informer delivers the pods; this wait is not timed.
				time.Sleep(100 * time.Millisecond)
				b.StartTimer()
				// The variants run in an order that rotates with i, so that
				// none always runs in the wake of another (plexusd publishing
				// the daemon ADD's status, the thin path's API requests).
				var h, fl, dd, td, fd, dir time.Duration
				rt := k.RT(k.NewPod("direct", ""))
				timed := func(f func() error) time.Duration {
					start := time.Now()
					if err := f(); err != nil {
						b.Fatal(err)
					}
					return time.Since(start)
				}
				variants := []func(){
					func() {
						h = timed(func() error { return execQuiet(hello) })
						fl = timed(func() error { return execQuiet(hello, filepath.Join(floorDir, fmt.Sprintf("%d.json", i))) })
					},
					func() {
						var err error
						if dd, _, err = k.ExecPlexus("ADD", pd, daemonConf); err != nil {
							b.Fatal(err)
						}
						pods++
					},
					func() {
						var err error
						if td, _, err = k.ExecBinary(thinBin, "ADD", pt, thinConf); err != nil {
							b.Fatal(err)
						}
					},
					func() {
						var err error
						if fd, _, err = k.ExecPlexus("ADD", pf, fallbackConf); err != nil {
							b.Fatal(err)
						}
					},
					func() {
						dir = timed(func() error {
							for j, l := range lists {
								rt.IfName = "eth0"
								if j > 0 {
									rt.IfName = fmt.Sprintf("net%d", j)
								}
								if _, err := direct.AddNetworkList(context.Background(), l, rt); err != nil {
									return err
								}
							}
							return nil
						})
					},
				}
				for v := range variants {
					variants[(v+i)%len(variants)]()
				}
				floorT = append(floorT, fl)
				b.StopTimer()
				for j := len(lists) - 1; j >= 0; j-- {
					rt.IfName = "eth0"
					if j > 0 {
						rt.IfName = fmt.Sprintf("net%d", j)
					}
					direct.DelNetworkList(context.Background(), lists[j], rt)
				}
				if _, _, err := k.ExecPlexus("DEL", pd, daemonConf); err != nil {
					b.Fatal(err)
				}
				if _, _, err := k.ExecBinary(thinBin, "DEL", pt, thinConf); err != nil {
					b.Fatal(err)
				}
				if _, _, err := k.ExecPlexus("DEL", pf, fallbackConf); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				helloT, directT, thinT, daemonT, fbT = append(helloT, h), append(directT, dir), append(thinT, td), append(daemonT, dd), append(fbT, fd)
				daemonOver, thinOver, fbOverThin = append(daemonOver, dd-dir), append(thinOver, td-dir), append(fbOverThin, fd-td)
			}
			b.StopTimer()
			api := d.Metric("plexus_api_requests_total", `verb="GET"`) + d.Metric("plexus_api_requests_total", `verb="LIST"`) - apiBefore
			b.ReportMetric(ms(median(helloT)), "ms/hello")
			b.ReportMetric(ms(median(floorT)), "ms/floor")
			b.ReportMetric(ms(median(directT)), "ms/direct-add")
			b.ReportMetric(ms(median(daemonT)), "ms/daemon-add")
			b.ReportMetric(ms(median(thinT)), "ms/thin-add")
			b.ReportMetric(ms(median(fbT)), "ms/fallback-add")
			b.ReportMetric(ms(median(daemonOver)), "ms/daemon-overhead")
			b.ReportMetric(ms(median(thinOver)), "ms/thin-overhead")
			b.ReportMetric(ms(median(fbOverThin)), "ms/fallback-minus-thin")
			b.ReportMetric(float64(median(daemonOver))/float64(median(helloT)), "daemon-overhead/hello")
			b.ReportMetric(float64(median(thinOver))/float64(median(helloT)), "thin-overhead/hello")
			// The issue-23 target: the daemon's ADD overhead against the
			// floor (≤ 1.3).
			b.ReportMetric(float64(median(daemonOver))/float64(median(floorT)), "daemon-overhead/floor")
			b.ReportMetric(float64(median(thinOver))/float64(median(floorT)), "thin-overhead/floor")
			b.ReportMetric(api/float64(pods), "api-get-list/daemon-add")
			b.ReportMetric((d.Metric("plexus_api_requests_total", `verb="PATCH"`)-patchBefore)/float64(pods), "status-patches/daemon-add")
			b.ReportMetric((d.Metric("plexus_api_requests_total", `verb="POST"`, `resource="events"`)-evBefore)/float64(pods), "events/daemon-add")
		})
	}
}

// BenchmarkShimVersion: start-up of the plexus shim (CNI_COMMAND=VERSION)
// against a hello-world Go program and plexus-thin, interleaved.
func BenchmarkShimVersion(b *testing.B) {
	hello := testutil.BuildPackage(b, "hello", "./e2e/cmd/hello")
	shim := testutil.BuildBinary(b, "plexus")
	thin := testutil.BuildBinary(b, "plexus-thin")
	run := func(bin string) time.Duration {
		c := exec.Command(bin)
		c.Env = append(os.Environ(), "CNI_COMMAND=VERSION")
		c.Stdin = strings.NewReader(`{"cniVersion":"1.1.0"}`)
		start := time.Now()
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v: %s", bin, err, out)
		}
		return time.Since(start)
	}
	var h, s, t []time.Duration
	for i := 0; i < b.N; i++ {
		h = append(h, run(hello))
		s = append(s, run(shim))
		t = append(t, run(thin))
	}
	b.ReportMetric(ms(median(h)), "ms/hello")
	b.ReportMetric(ms(median(s)), "ms/shim-version")
	b.ReportMetric(ms(median(t)), "ms/thin-version")
	b.ReportMetric(float64(median(s))/float64(median(h)), "shim/hello")
	b.ReportMetric(float64(median(t))/float64(median(h)), "thin/hello")
}

// execQuiet runs a program, failing with its output.
func execQuiet(bin string, args ...string) error {
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", bin, err, out)
	}
	return nil
}
