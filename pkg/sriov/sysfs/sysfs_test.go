package sysfs

import (
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/testutil/fakesysfs"
)

func TestVF(t *testing.T) {
	tr := fakesysfs.New(t)
	vfs, err := tr.AddPF(fakesysfs.PF{Addr: "0000:3b:00.0", Netdev: "ens1f0", NumVFs: 3})
	if err != nil {
		t.Fatal(err)
	}
	dvfs, err := tr.AddPF(fakesysfs.PF{Addr: "0000:5e:00.0", Netdev: "ens2f0", NumVFs: 2, VFDriver: "vfio-pci"})
	if err != nil {
		t.Fatal(err)
	}
	r := Reader{Root: tr.Root}
	tests := []struct {
		name, addr string
		want       VF
		userspace  bool
		err        string
	}{
		{name: "netdev VF", addr: vfs[2].Addr, want: VF{Addr: vfs[2].Addr, PFAddr: "0000:3b:00.0", PFName: "ens1f0", Index: 2, Driver: "iavf", Netdevs: []string{"ens1f0v2"}}},
		{name: "vfio VF", addr: dvfs[1].Addr, userspace: true, want: VF{Addr: dvfs[1].Addr, PFAddr: "0000:5e:00.0", PFName: "ens2f0", Index: 1, Driver: "vfio-pci"}},
		{name: "bad address", addr: "3b:00.1", err: "not a PCI address"},
		{name: "missing device", addr: "0000:99:00.1", err: "no such PCI device"},
		{name: "PF is no VF", addr: "0000:3b:00.0", err: "not a virtual function"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.VF(tc.addr)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Addr != tc.want.Addr || got.PFAddr != tc.want.PFAddr || got.PFName != tc.want.PFName ||
				got.Index != tc.want.Index || got.Driver != tc.want.Driver || strings.Join(got.Netdevs, ",") != strings.Join(tc.want.Netdevs, ",") {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if got.Userspace() != tc.userspace {
				t.Fatalf("Userspace() = %v", got.Userspace())
			}
		})
	}
}

func TestVFPFWithoutNetdev(t *testing.T) {
	tr := fakesysfs.New(t)
	vfs, err := tr.AddPF(fakesysfs.PF{Addr: "0000:3b:00.0", NumVFs: 1, VFNetdev: func(int) string { return "vfx" }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Reader{Root: tr.Root}.VF(vfs[0].Addr)
	if err == nil || !strings.Contains(err.Error(), "has no netdev") {
		t.Fatalf("err = %v", err)
	}
}

func TestPhysFn(t *testing.T) {
	tr := fakesysfs.New(t)
	vfs, err := tr.AddPF(fakesysfs.PF{Addr: "0000:3b:00.0", Netdev: "ens1f0", NumVFs: 1})
	if err != nil {
		t.Fatal(err)
	}
	r := Reader{Root: tr.Root}
	if got, err := r.PhysFn(vfs[0].Addr); err != nil || got != "0000:3b:00.0" {
		t.Errorf("PhysFn(VF) = %q %v", got, err)
	}
	if _, err := r.PhysFn("0000:3b:00.0"); err == nil || !strings.Contains(err.Error(), "not a virtual function") {
		t.Errorf("PhysFn(PF) error %v", err)
	}
	if err := tr.RenameNetdev("0000:3b:00.0", "ens1f0", "eth7"); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Netdevs("0000:3b:00.0"); err != nil || len(got) != 1 || got[0] != "eth7" {
		t.Errorf("PF netdevs after rename %v %v", got, err)
	}
}
