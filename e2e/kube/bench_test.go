package kube_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
)

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkKubeAddDel: plexus in Kubernetes mode (real kube-apiserver, the
// plexus ServiceAccount) with N secondary attachments, next to the same
// delegates run directly; API requests per ADD and per DEL as plexus counts
// them (a counting RoundTripper, logged at debug level).
func BenchmarkKubeAddDel(b *testing.B) {
	for _, n := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			k := newKubeEnvB(b)
			var names []string
			lists := []*libcni.NetworkConfigList{mustList(b, k.BridgeConf("primary", k.Bridge, 0))}
			for i := 1; i <= n; i++ {
				name := fmt.Sprintf("kb-%d", i)
				k.bridgeNAD("default", name, i)
				names = append(names, name)
				lists = append(lists, mustList(b, k.BridgeConf(name, k.Name(fmt.Sprintf("b%d", i)), i)))
			}
			conf := k.PluginStdin()
			direct := libcni.NewCNIConfigWithCacheDir([]string{k.BinDir}, b.TempDir(), nil)
			var plexAdd, dirAdd []time.Duration
			var rss int64
			addReqs, delReqs, ownRSS := 0, 0, 0
			for i := 0; i < b.N; i++ {
				p := k.createPod(fmt.Sprintf("b%d-%d", n, i), strings.Join(names, ","))
				d, r, err := k.ExecPlexus("ADD", p, conf)
				if err != nil {
					b.Fatal(err)
				}
				plexAdd = append(plexAdd, d)
				if r > rss {
					rss = r
				}
				if c := k.lastRequests(); c > addReqs {
					addReqs = c
				}
				if r := k.lastPeakRSS(); r > ownRSS {
					ownRSS = r
				}
				if _, _, err := k.ExecPlexus("DEL", p, conf); err != nil {
					b.Fatal(err)
				}
				if c := k.lastRequests(); c > delReqs {
					delReqs = c
				}
				rt := k.RT(p)
				start := time.Now()
				for j, l := range lists {
					rt.IfName = "eth0"
					if j > 0 {
						rt.IfName = fmt.Sprintf("net%d", j)
					}
					if _, err := direct.AddNetworkList(context.Background(), l, rt); err != nil {
						b.Fatal(err)
					}
				}
				dirAdd = append(dirAdd, time.Since(start))
				for j := len(lists) - 1; j >= 0; j-- {
					rt.IfName = "eth0"
					if j > 0 {
						rt.IfName = fmt.Sprintf("net%d", j)
					}
					direct.DelNetworkList(context.Background(), lists[j], rt)
				}
			}
			b.ReportMetric(float64(addReqs), "api-requests/add")
			b.ReportMetric(float64(delReqs), "api-requests/del")
			b.ReportMetric(ms(median(plexAdd)), "ms/plexus-add")
			b.ReportMetric(ms(median(plexAdd)-median(dirAdd)), "ms/add-overhead")
			b.ReportMetric(float64(rss)/1024, "MiB/peak-rss-with-delegates")
			b.ReportMetric(float64(ownRSS)/1024, "MiB/peak-rss-plexus")
		})
	}
}

func mustList(b *testing.B, s string) *libcni.NetworkConfigList {
	l, err := libcni.NetworkConfFromBytes([]byte(s))
	if err != nil {
		b.Fatal(err)
	}
	return l
}
