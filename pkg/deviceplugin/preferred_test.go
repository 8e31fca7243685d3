package deviceplugin

import (
	"fmt"
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/sriov/discovery"
	"github.com/plexus-cni/plexus/pkg/sriov/dpconfig"
)

// prefDevs: PF a (NUMA 0) VFs a0..a3, PF b (NUMA 0) b0..b1, PF c (NUMA 1)
// c0..c5; IDs sort in that order.
func prefDevs() map[string]*dpconfig.Device {
	m := map[string]*dpconfig.Device{}
	add := func(pf string, n, numa int) {
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("%s%d", pf, i)
			m[id] = &dpconfig.Device{VF: &discovery.VF{Addr: id, PFAddr: pf, NUMA: numa, Index: i}}
		}
	}
	add("a", 4, 0)
	add("b", 2, 0)
	add("c", 6, 1)
	return m
}

func TestPrefer(t *testing.T) {
	devs := prefDevs()
	all := []string{"a0", "a1", "a2", "a3", "b0", "b1", "c0", "c1", "c2", "c3", "c4", "c5"}
	for _, tc := range []struct {
		name, policy string
		avail, must  []string
		size         int
		want         string
	}{
		{"packed best-fit PF", "packed", all, nil, 2, "b0,b1"},
		{"packed one PF on best NUMA", "packed", all, nil, 4, "a0,a1,a2,a3"},
		{"packed whole NUMA node", "packed", all, nil, 6, "c0,c1,c2,c3,c4,c5"},
		{"packed spans PFs in one node", "packed", []string{"a0", "a1", "b0", "c0"}, nil, 3, "a0,a1,b0"},
		{"must-include keeps its NUMA node", "packed", all, []string{"c3"}, 3, "c3,c0,c1"},
		{"must-include keeps its PF", "packed", all, []string{"a2"}, 2, "a2,a0"},
		{"must-include only", "packed", all, []string{"b1", "a0"}, 2, "b1,a0"},
		{"must-include above size is cut", "packed", all, []string{"b1", "a0", "c0"}, 2, "b1,a0"},
		{"crosses NUMA when it must", "packed", []string{"a0", "c0", "c1"}, nil, 3, "c0,c1,a0"},
		{"spread over PFs", "spread", all, nil, 4, "a0,b0,a1,b1"},
		{"spread three", "spread", []string{"a0", "a1", "b0", "b1", "c0"}, nil, 3, "a0,b0,a1"},
		{"unknown IDs still usable", "packed", []string{"x1", "x2"}, nil, 1, "x1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Prefer(devs, tc.policy, tc.avail, tc.must, tc.size)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != tc.want {
				t.Fatalf("got %v want %s", got, tc.want)
			}
			if len(got) != tc.size {
				t.Fatalf("returned %d devices, asked %d", len(got), tc.size)
			}
			in := map[string]bool{}
			for _, id := range tc.avail {
				in[id] = true
			}
			for _, id := range got {
				if !in[id] {
					t.Fatalf("%s not available", id)
				}
			}
		})
	}
	for _, tc := range []struct {
		avail, must []string
		size        int
		want        string
	}{
		{[]string{"a0"}, nil, 2, "only 1 devices available"},
		{[]string{"a0"}, []string{"a1"}, 1, "must-include device a1 is not among the available"},
		{[]string{"a0"}, nil, 0, "must be positive"},
	} {
		if _, err := Prefer(devs, "packed", tc.avail, tc.must, tc.size); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v/%v/%d: %v, want %q", tc.avail, tc.must, tc.size, err, tc.want)
		}
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct{ in, env, sock, info string }{
		{"plexus.io/sriov_net", "PCIDEVICE_PLEXUS_IO_SRIOV_NET", "plexus.io_sriov_net.sock", "plexus.io-sriov_net-0000:3c:00.1-device.json"},
		{"intel.com/sriov-a.b", "PCIDEVICE_INTEL_COM_SRIOV_A_B", "intel.com_sriov-a.b.sock", "intel.com-sriov-a.b-0000:3c:00.1-device.json"},
	} {
		if got := EnvName(tc.in); got != tc.env {
			t.Errorf("EnvName(%s) = %s", tc.in, got)
		}
		if got := SocketName(tc.in); got != tc.sock {
			t.Errorf("SocketName(%s) = %s", tc.in, got)
		}
		if got := DevInfoPath("/d", tc.in, "0000:3c:00.1"); got != "/d/"+tc.info {
			t.Errorf("DevInfoPath(%s) = %s", tc.in, got)
		}
	}
}
