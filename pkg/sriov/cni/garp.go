package cni

import (
	"encoding/binary"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// announce sends one gratuitous ARP per IPv4 address and one unsolicited
// neighbour advertisement per IPv6 address out of the interface with index
// ifindex in the current netns, so switches and neighbours learn the VF's
// MAC at once. Best effort: the caller logs the error.
func announce(ifindex int, mac net.HardwareAddr, ips []net.IP) error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	defer unix.Close(fd)
	for _, ip := range ips {
		var frame []byte
		var proto uint16
		var dst net.HardwareAddr
		if ip4 := ip.To4(); ip4 != nil {
			frame, proto, dst = garpFrame(mac, ip4), unix.ETH_P_ARP, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		} else {
			frame, proto, dst = unsolicitedNAFrame(mac, ip.To16()), unix.ETH_P_IPV6, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
		}
		sa := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifindex, Halen: 6}
		copy(sa.Addr[:], dst)
		if err := unix.Sendto(fd, frame, 0, sa); err != nil {
			return fmt.Errorf("announce %s: %w", ip, err)
		}
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func ethHeader(dst, src net.HardwareAddr, ethertype uint16) []byte {
	b := make([]byte, 14)
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], ethertype)
	return b
}

// garpFrame is an ARP request for ip from ip (RFC 5227 announcement).
func garpFrame(mac net.HardwareAddr, ip net.IP) []byte {
	arp := make([]byte, 28)
	binary.BigEndian.PutUint16(arp[0:2], 1)      // Ethernet
	binary.BigEndian.PutUint16(arp[2:4], 0x0800) // IPv4
	arp[4], arp[5] = 6, 4
	binary.BigEndian.PutUint16(arp[6:8], 1) // request
	copy(arp[8:14], mac)
	copy(arp[14:18], ip)
	copy(arp[24:28], ip)
	return append(ethHeader(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, mac, unix.ETH_P_ARP), arp...)
}

// unsolicitedNAFrame is an ICMPv6 neighbour advertisement (override flag,
// target link-layer option) from ip to all-nodes (RFC 4861 7.2.6).
func unsolicitedNAFrame(mac net.HardwareAddr, ip net.IP) []byte {
	allNodes := net.ParseIP("ff02::1")
	icmp := make([]byte, 32)
	icmp[0] = 136  // neighbour advertisement
	icmp[4] = 0x20 // override
	copy(icmp[8:24], ip)
	icmp[24], icmp[25] = 2, 1 // target link-layer address, 8 octets
	copy(icmp[26:32], mac)
	binary.BigEndian.PutUint16(icmp[2:4], icmpv6Checksum(ip, allNodes, icmp))

	hdr := make([]byte, 40)
	hdr[0] = 0x60
	binary.BigEndian.PutUint16(hdr[4:6], uint16(len(icmp)))
	hdr[6], hdr[7] = 58, 255 // ICMPv6, hop limit 255
	copy(hdr[8:24], ip)
	copy(hdr[24:40], allNodes)
	frame := ethHeader(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, mac, unix.ETH_P_IPV6)
	return append(append(frame, hdr...), icmp...)
}

func icmpv6Checksum(src, dst net.IP, payload []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src.To16())
	add(dst.To16())
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(payload)))
	l[7] = 58
	add(l[:])
	add(payload)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
