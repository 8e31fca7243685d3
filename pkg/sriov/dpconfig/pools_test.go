package dpconfig

import (
	"fmt"
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/sriov/discovery"
	"github.com/plexus-cni/plexus/pkg/testutil/fakesysfs"
)

// host builds: ens1f0 (0000:3b:00.0, Intel, 8 iavf VFs, NUMA 0, VF 1 RDMA),
// ens2f0 (0000:5e:00.0, Mellanox, 4 VFs on vfio-pci, infiniband, NUMA 1).
func host(t *testing.T) []*discovery.PF {
	t.Helper()
	tr := fakesysfs.New(t)
	vfs, err := tr.AddPF(fakesysfs.PF{Addr: "0000:3b:00.0", Netdev: "ens1f0", NumVFs: 8})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.AddRDMA(vfs[1].Addr, "irdma1", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.AddPF(fakesysfs.PF{Addr: "0000:5e:00.0", Netdev: "ens2f0", NumVFs: 4, NUMA: 1, Vendor: "15b3",
		Device: "101d", VFDevice: "101e", Driver: "mlx5_core", VFDriver: "vfio-pci", LinkType: "infiniband"}); err != nil {
		t.Fatal(err)
	}
	pfs, err := discovery.Discover(discovery.Options{Root: tr.Root})
	if err != nil {
		t.Fatal(err)
	}
	return pfs
}

func TestPools(t *testing.T) {
	pfs := host(t)
	// VF addresses: ens1f0 VF i = 0000:3c:00.i; ens2f0 VF i = 0000:5f:00.i
	for _, tc := range []struct {
		name      string
		resources string
		want      []string // per pool: "addr,addr"
	}{
		{"all", `{"resourceName":"a","selectors":[{}]}`,
			[]string{"0000:3c:00.0,0000:3c:00.1,0000:3c:00.2,0000:3c:00.3,0000:3c:00.4,0000:3c:00.5,0000:3c:00.6,0000:3c:00.7,0000:5f:00.0,0000:5f:00.1,0000:5f:00.2,0000:5f:00.3"}},
		{"vendors", `{"resourceName":"a","selectors":[{"vendors":["15B3"]}]}`,
			[]string{"0000:5f:00.0,0000:5f:00.1,0000:5f:00.2,0000:5f:00.3"}},
		{"devices", `{"resourceName":"a","selectors":[{"devices":["1889"]}]}`,
			[]string{"0000:3c:00.0,0000:3c:00.1,0000:3c:00.2,0000:3c:00.3,0000:3c:00.4,0000:3c:00.5,0000:3c:00.6,0000:3c:00.7"}},
		{"drivers", `{"resourceName":"a","selectors":[{"drivers":["vfio-pci"]}]}`,
			[]string{"0000:5f:00.0,0000:5f:00.1,0000:5f:00.2,0000:5f:00.3"}},
		{"pciAddresses", `{"resourceName":"a","selectors":[{"pciAddresses":["0000:3c:00.4","0000:5f:00.2","0000:99:00.0"]}]}`,
			[]string{"0000:3c:00.4,0000:5f:00.2"}},
		{"pfNames whole", `{"resourceName":"a","selectors":[{"pfNames":["ens2f0"]}]}`,
			[]string{"0000:5f:00.0,0000:5f:00.1,0000:5f:00.2,0000:5f:00.3"}},
		{"pfNames ranges", `{"resourceName":"a","selectors":[{"pfNames":["ens1f0#0-2,6","ens2f0#3"]}]}`,
			[]string{"0000:3c:00.0,0000:3c:00.1,0000:3c:00.2,0000:3c:00.6,0000:5f:00.3"}},
		{"rootDevices ranges", `{"resourceName":"a","selectors":[{"rootDevices":["0000:3b:00.0#4-5"]}]}`,
			[]string{"0000:3c:00.4,0000:3c:00.5"}},
		{"linkTypes", `{"resourceName":"a","selectors":[{"linkTypes":["infiniband"]}]}`,
			[]string{"0000:5f:00.0,0000:5f:00.1,0000:5f:00.2,0000:5f:00.3"}},
		{"isRdma", `{"resourceName":"a","selectors":[{"isRdma":true}]}`, []string{"0000:3c:00.1"}},
		{"isRdma false does not filter", `{"resourceName":"a","selectors":[{"isRdma":false,"pfNames":["ens1f0#0-1"]}]}`,
			[]string{"0000:3c:00.0,0000:3c:00.1"}},
		{"all criteria must match", `{"resourceName":"a","selectors":[{"vendors":["8086"],"drivers":["vfio-pci"]}]}`, []string{""}},
		{"selectors are alternatives", `{"resourceName":"a","selectors":[{"pfNames":["ens1f0#7"]},{"pfNames":["ens2f0#0"]}]}`,
			[]string{"0000:3c:00.7,0000:5f:00.0"}},
		{"first pool wins", `{"resourceName":"a","selectors":[{"pfNames":["ens1f0#0-3"]}]},{"resourceName":"b","selectors":[{"pfNames":["ens1f0#2-5"]}]}`,
			[]string{"0000:3c:00.0,0000:3c:00.1,0000:3c:00.2,0000:3c:00.3", "0000:3c:00.4,0000:3c:00.5"}},
		{"unknown PF", `{"resourceName":"a","selectors":[{"pfNames":["ens9f9"]}]}`, []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(`{"resourceList":[`+tc.resources+`]}`), "")
			if err != nil {
				t.Fatal(err)
			}
			pools := Pools(cfg, pfs)
			if len(pools) != len(tc.want) {
				t.Fatalf("pools: %d", len(pools))
			}
			for i, p := range pools {
				var got []string
				for _, d := range p.Devices {
					got = append(got, d.Addr)
				}
				if s := strings.Join(got, ","); s != tc.want[i] {
					t.Errorf("pool %d: got %s\nwant %s", i, s, tc.want[i])
				}
			}
		})
	}
}

func TestPoolsNeedVhostNet(t *testing.T) {
	pfs := host(t)
	cfg, err := Parse([]byte(`{"resourceList":[{"resourceName":"a","selectors":[{"pfNames":["ens1f0#0"],"needVhostNet":true},{"pfNames":["ens1f0#1"]}]}]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	p := Pools(cfg, pfs)[0]
	if got := fmt.Sprint(p.Devices[0].NeedVhostNet, p.Devices[1].NeedVhostNet); got != "true false" {
		t.Fatalf("needVhostNet: %s", got)
	}
}
