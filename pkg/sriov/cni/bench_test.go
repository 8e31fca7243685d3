package cni

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plexus-cni/plexus/pkg/testutil"
	"github.com/plexus-cni/plexus/pkg/testutil/sriovseams"
)

// BenchmarkAddDel measures one ADD+DEL of a veth stand-in VF (PF recorder,
// real netns, real netlink) and reports the part spent moving the netdev
// between namespaces and renaming it (move-ns/op, rename-ns/op, and their
// share of the whole in move+rename-%).
func BenchmarkAddDel(b *testing.B) {
	for _, withIPAM := range []bool{false, true} {
		b.Run(fmt.Sprintf("ipam=%v", withIPAM), func(b *testing.B) {
			f := newFixture(b, 1, "")
			vf := f.vfs[0]
			podNS := testutil.NewNS(b)
			conf := f.conf("1.0.0", vf.Addr, `"vlan":100,"mac":"02:aa:bb:cc:dd:01","spoofchk":"off"`)
			if !withIPAM {
				conf = []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"bench","type":"sriov","dataDir":%q,"deviceID":%q,"vlan":100,"mac":"02:aa:bb:cc:dd:01","spoofchk":"off"}`,
					f.dataDir, vf.Addr))
			}
			var move, rename time.Duration
			f.p.hooks = testHooks{observe: func(step string, d time.Duration) {
				switch step {
				case "move":
					move += d
				case "rename":
					rename += d
				}
			}}
			a := args(podNS, "bench", "net1", conf)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if _, err := f.p.Add(a); err != nil {
					b.Fatal(err)
				}
				if err := f.p.Del(a); err != nil {
					b.Fatal(err)
				}
			}
			total := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(move.Nanoseconds())/float64(b.N), "move-ns/op")
			b.ReportMetric(float64(rename.Nanoseconds())/float64(b.N), "rename-ns/op")
			b.ReportMetric(100*float64(move+rename)/float64(total), "move+rename-%")
		})
	}
}

// BenchmarkBinaryAddDel is ADD+DEL as a runtime sees it: the built binary
// exec'd twice per op, with host-local IPAM and the file-backed fake PF.
func BenchmarkBinaryAddDel(b *testing.B) {
	f := newFixture(b, 1, "")
	bin := testutil.SriovTestBinary(b)
	fakePF := filepath.Join(b.TempDir(), "pf.jsonl")
	if err := os.WriteFile(fakePF, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	rt := runtimeCall{bin: bin, env: sriovseams.Seams{SysfsRoot: f.tree.Root, FakePF: fakePF}.Env()}
	podNS := testutil.NewNS(b)
	conf := f.conf("1.0.0", f.vfs[0].Addr, `"vlan":100,"mac":"02:aa:bb:cc:dd:01"`)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := rt.run("ADD", "bench", podNS.Path(), "net1", conf); err != nil {
			b.Fatal(err)
		}
		if _, err := rt.run("DEL", "bench", podNS.Path(), "net1", conf); err != nil {
			b.Fatal(err)
		}
	}
}
