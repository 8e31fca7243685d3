package pf

import (
	"fmt"
	"net"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
)

// Netlink is the production Interface: rtnetlink requests on the PF netdev
// in the caller's network namespace.
type Netlink struct{}

var _ Interface = Netlink{}

func pfLink(name string) (netlink.Link, error) {
	l, err := netlinksafe.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("PF %s: %w", name, err)
	}
	return l, nil
}

func wrap(err error, pf string, vf int, what string) error {
	if err != nil {
		return fmt.Errorf("PF %s VF %d: set %s: %w", pf, vf, what, err)
	}
	return nil
}

func (Netlink) LinkSetVfHardwareAddr(pf string, vf int, mac net.HardwareAddr) error {
	l, err := pfLink(pf)
	if err != nil {
		return err
	}
	return wrap(netlink.LinkSetVfHardwareAddr(l, vf, mac), pf, vf, "mac")
}

func (Netlink) LinkSetVfVlanQosProto(pf string, vf, vlan, qos, proto int) error {
	l, err := pfLink(pf)
	if err != nil {
		return err
	}
	return wrap(netlink.LinkSetVfVlanQosProto(l, vf, vlan, qos, proto), pf, vf, "vlan")
}

func (Netlink) LinkSetVfSpoofchk(pf string, vf int, on bool) error {
	l, err := pfLink(pf)
	if err != nil {
		return err
	}
	return wrap(netlink.LinkSetVfSpoofchk(l, vf, on), pf, vf, "spoofchk")
}

func (Netlink) LinkSetVfTrust(pf string, vf int, on bool) error {
	l, err := pfLink(pf)
	if err != nil {
		return err
	}
	return wrap(netlink.LinkSetVfTrust(l, vf, on), pf, vf, "trust")
}

func (Netlink) LinkSetVfState(pf string, vf int, state uint32) error {
	l, err := pfLink(pf)
	if err != nil {
		return err
	}
	return wrap(netlink.LinkSetVfState(l, vf, state), pf, vf, "link state")
}

func (Netlink) LinkSetVfRate(pf string, vf, minRate, maxRate int) error {
	l, err := pfLink(pf)
	if err != nil {
		return err
	}
	return wrap(netlink.LinkSetVfRate(l, vf, minRate, maxRate), pf, vf, "rate")
}

// VF reads the VF's settings from the PF's IFLA_VFINFO_LIST.
func (Netlink) VF(pf string, vf int) (VFState, error) {
	l, err := pfLink(pf)
	if err != nil {
		return VFState{}, err
	}
	for _, v := range l.Attrs().Vfs {
		if v.ID != vf {
			continue
		}
		s := VFState{
			MAC: v.Mac.String(), Vlan: v.Vlan, Qos: v.Qos, VlanProto: v.VlanProto,
			Spoofchk: v.Spoofchk, Trust: v.Trust != 0, LinkState: v.LinkState,
			MinTxRate: int(v.MinTxRate), MaxTxRate: int(v.MaxTxRate),
		}
		if s.VlanProto == 0 {
			s.VlanProto = VlanProto8021Q
		}
		if s.MaxTxRate == 0 && v.TxRate != 0 {
			s.MaxTxRate = v.TxRate
		}
		return s, nil
	}
	return VFState{}, fmt.Errorf("PF %s: VF %d not reported by the PF driver", pf, vf)
}
