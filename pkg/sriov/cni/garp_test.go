package cni

import (
	"bytes"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"golang.org/x/sys/unix"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

// capture reads frames arriving on a host interface until stop is closed.
func capture(t *testing.T, ifname string) (frames func() [][]byte) {
	t.Helper()
	l, err := netlinksafe.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: l.Attrs().Index}); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return func() [][]byte {
		var out [][]byte
		buf := make([]byte, 2048)
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				return out
			}
			out = append(out, append([]byte(nil), buf[:n]...))
		}
	}
}

// ADD announces the VF's addresses: a gratuitous ARP for the IPv4 address
// and an unsolicited NA (override flag, correct checksum) for the IPv6 one,
// seen on the veth peer of the stand-in VF.
func TestAddAnnouncesAddresses(t *testing.T) {
	f := newFixture(t, 1, "")
	f.dual = true
	vf := f.vfs[0]
	i := strings.LastIndex(vf.Netdev, "v")
	peer := vf.Netdev[:i] + "p" + vf.Netdev[i+1:]
	frames := capture(t, peer)
	podNS := testutil.NewNS(t)
	mac := net.HardwareAddr{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x07}
	if _, err := f.p.Add(args(podNS, "c1", "net1", f.conf("1.0.0", vf.Addr, `"mac":"02:aa:bb:cc:dd:07"`))); err != nil {
		t.Fatal(err)
	}
	defer f.p.Del(args(podNS, "c1", "net1", f.conf("1.0.0", vf.Addr, ""))) //nolint:errcheck
	var garp, na bool
	v6 := net.ParseIP("fd00:56:217::2")
	for _, fr := range frames() {
		if len(fr) < 14 || !bytes.Equal(fr[6:12], mac) {
			continue
		}
		switch binary.BigEndian.Uint16(fr[12:14]) {
		case unix.ETH_P_ARP:
			arp := fr[14:]
			if len(arp) >= 28 && net.IP(arp[14:18]).Equal(net.IPv4(10, 56, 217, 2)) && net.IP(arp[24:28]).Equal(net.IPv4(10, 56, 217, 2)) {
				garp = true
			}
		case unix.ETH_P_IPV6:
			ip6 := fr[14:]
			if len(ip6) < 72 || ip6[6] != 58 || ip6[40] != 136 {
				continue
			}
			icmp := ip6[40:72]
			if net.IP(icmp[8:24]).Equal(v6) && icmp[4]&0x20 != 0 && bytes.Equal(icmp[26:32], mac) &&
				icmpv6Checksum(ip6[8:24], ip6[24:40], zeroChecksum(icmp)) == binary.BigEndian.Uint16(icmp[2:4]) {
				na = true
			}
		}
	}
	if !garp {
		t.Error("no gratuitous ARP for 10.56.217.2 seen")
	}
	if !na {
		t.Error("no unsolicited neighbour advertisement for fd00:56:217::2 seen")
	}
}

func zeroChecksum(icmp []byte) []byte {
	c := append([]byte(nil), icmp...)
	c[2], c[3] = 0, 0
	return c
}
