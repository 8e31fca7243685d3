package cni

import (
	"fmt"
	"testing"

	"github.com/plexus-cni/plexus/pkg/sriov/pf"
	"github.com/plexus-cni/plexus/pkg/testutil"
)

// The PF netdev is renamed (udev, reboot) between ADD and DEL: DEL finds it
// by PCI address in sysfs and restores the VF there.
func TestDelAfterPFRename(t *testing.T) {
	for _, netnsGone := range []bool{false, true} {
		t.Run(fmt.Sprintf("netnsGone=%v", netnsGone), func(t *testing.T) {
			f := newFixture(t, 2, "")
			vf := f.vfs[1]
			podNS := testutil.NewNS(t)
			a := args(podNS, "c1", "net1", f.conf("1.0.0", vf.Addr, fullSettings))
			if _, err := f.p.Add(a); err != nil {
				t.Fatal(err)
			}
			renamed := "rn" + f.pfName
			if err := f.tree.RenameNetdev(pfAddr, f.pfName, renamed); err != nil {
				t.Fatal(err)
			}
			// The kernel now knows the PF (and its VFs' settings) only by the new name.
			for _, v := range f.vfs {
				f.rec.Seed(renamed, v.Index, f.rec.State(f.pfName, v.Index))
			}
			old := f.pfName
			f.rec.Fail = func(c pf.Call) error {
				if c.PF == old {
					return fmt.Errorf("link %s not found", c.PF)
				}
				return nil
			}
			f.rec.Reset()
			if netnsGone {
				a.Netns = ""
			}
			if err := f.p.Del(a); err != nil {
				t.Fatalf("DEL after PF rename: %v", err)
			}
			if n := len(f.rec.Calls()); n != 6 {
				t.Errorf("%d PF calls, want 6 restores: %v", n, f.rec.Calls())
			}
			for _, c := range f.rec.Calls() {
				if c.PF != renamed {
					t.Errorf("restore went to PF %q, want %q: %v", c.PF, renamed, c)
				}
			}
			f.pfName = renamed
			f.rec.Fail = nil
			if netnsGone {
				return // the veth stand-in stays in the (still existing) netns
			}
			f.assertVFHome(t, vf)
		})
	}
}
