package fakesysfs

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
)

// AddVethPF adds a PF whose VF netdevs are real veth interfaces in the
// caller's network namespace (needs root), so code that moves, renames and
// addresses "VFs" does it for real. VF netdev names are unique per call
// ("x<6 hex>v<i>"); each veth's peer is "x<6 hex>p<i>" and stays where it
// was created, set up (so the VF end gets carrier once it is up).
// pf.VFNetdev is ignored; userspace VF drivers get no veth.
// The veths are deleted when the test ends (wherever they still are in the
// caller's netns).
func (t *Tree) AddVethPF(tb testing.TB, pf PF) ([]VF, error) {
	tb.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	base := "x" + hex.EncodeToString(b[:])
	pf.VFNetdev = func(i int) string { return fmt.Sprintf("%sv%d", base, i) }
	vfs, err := t.AddPF(pf)
	if err != nil {
		return nil, err
	}
	for _, vf := range vfs {
		if vf.Netdev == "" {
			continue
		}
		peer := fmt.Sprintf("%sp%d", base, vf.Index)
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: vf.Netdev}, PeerName: peer}
		if err := netlink.LinkAdd(veth); err != nil {
			return nil, fmt.Errorf("fakesysfs: veth %s/%s for VF %s: %w", vf.Netdev, peer, vf.Addr, err)
		}
		if l, err := netlinksafe.LinkByName(peer); err == nil {
			_ = netlink.LinkSetUp(l)
		}
		tb.Cleanup(func() {
			for _, n := range []string{vf.Netdev, peer} {
				if l, err := netlinksafe.LinkByName(n); err == nil {
					_ = netlink.LinkDel(l)
				}
			}
		})
	}
	return vfs, nil
}
