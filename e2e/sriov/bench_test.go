package sriov_test

import (
	"fmt"
	"sort"
	"testing"
	"time"
)

// BenchmarkChainAddDel times plexus ADD and DEL, exec'd through libcni as a
// runtime does, for a pod with the primary network and 0 or 2 SR-IOV
// attachments (device IDs from the test kubelet's pod-resources, VFs moved
// by the sriov plugin). ns/op is ADD+DEL; add-ms and del-ms are medians.
// The VFs=0 case is the baseline: the difference is the SR-IOV chain's cost.
func BenchmarkChainAddDel(b *testing.B) {
	for _, n := range []int{0, 2} {
		b.Run(fmt.Sprintf("VFs=%d", n), func(b *testing.B) {
			w := newWorld(b)
			w.writeSRIOVNAD("sriov-a", resA, 100, 1)
			w.writeSRIOVNAD("sriov-b", resA, 200, 2)
			nets, res := "", map[string]int{}
			if n == 2 {
				nets, res = "sriov-a@data0,sriov-b@data1", map[string]int{resA: 2}
			}
			_, kp := w.admit("bench", "", res)
			var adds, dels []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				p := w.E.NewPod("bench", nets)
				p.UID = kp.UID
				b.StartTimer()
				start := time.Now()
				if _, err := w.E.Add(p); err != nil {
					b.Fatalf("ADD: %v\n%s", err, w.E.Log())
				}
				mid := time.Now()
				if err := w.E.Del(p); err != nil {
					b.Fatalf("DEL: %v\n%s", err, w.E.Log())
				}
				adds, dels = append(adds, mid.Sub(start)), append(dels, time.Since(mid))
			}
			b.StopTimer()
			b.ReportMetric(median(adds), "add-ms")
			b.ReportMetric(median(dels), "del-ms")
		})
	}
}

func median(ds []time.Duration) float64 {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[len(s)/2]) / float64(time.Millisecond)
}
