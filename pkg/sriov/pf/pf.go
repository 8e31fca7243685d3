// Package pf is the narrow PF-side interface of the sriov CNI plugin: the
// per-VF settings a PF driver keeps (admin MAC, VLAN, spoof check, trust,
// link state, rates), set and read through the PF's netdev. Netlink talks to
// real hardware; Recorder and FileFake stand in for it in tests.
package pf

import (
	"fmt"
	"net"
)

// VLAN protocols (ethertypes) as netlink carries them.
const (
	VlanProto8021Q  = 0x8100
	VlanProto8021AD = 0x88a8
)

// VF link states (IFLA_VF_LINK_STATE_*).
const (
	LinkStateAuto    uint32 = 0
	LinkStateEnable  uint32 = 1
	LinkStateDisable uint32 = 2
)

// VFState is the PF-side configuration of one VF.
type VFState struct {
	MAC       string `json:"mac"`
	Vlan      int    `json:"vlan"`
	Qos       int    `json:"qos"`
	VlanProto int    `json:"vlanProto"`
	Spoofchk  bool   `json:"spoofchk"`
	Trust     bool   `json:"trust"`
	LinkState uint32 `json:"linkState"`
	MinTxRate int    `json:"minTxRate"`
	MaxTxRate int    `json:"maxTxRate"`
}

// DefaultVFState is what a freshly created VF reports on most drivers.
func DefaultVFState() VFState {
	return VFState{MAC: "00:00:00:00:00:00", VlanProto: VlanProto8021Q, Spoofchk: true, LinkState: LinkStateAuto}
}

// Interface sets and reads the PF-side settings of VF vf on the PF whose
// netdev is named pf.
type Interface interface {
	LinkSetVfHardwareAddr(pf string, vf int, mac net.HardwareAddr) error
	LinkSetVfVlanQosProto(pf string, vf, vlan, qos, proto int) error
	LinkSetVfSpoofchk(pf string, vf int, on bool) error
	LinkSetVfTrust(pf string, vf int, on bool) error
	LinkSetVfState(pf string, vf int, state uint32) error
	LinkSetVfRate(pf string, vf, minRate, maxRate int) error
	VF(pf string, vf int) (VFState, error)
}

// Call is one recorded PF-side operation. Op is the Interface method name
// ("Init" for a seeded state); only the fields of that operation are set.
type Call struct {
	Op    string   `json:"op"`
	PF    string   `json:"pf"`
	VF    int      `json:"vf"`
	MAC   string   `json:"mac,omitempty"`
	Vlan  *int     `json:"vlan,omitempty"`
	Qos   *int     `json:"qos,omitempty"`
	Proto *int     `json:"proto,omitempty"`
	On    *bool    `json:"on,omitempty"`
	State *uint32  `json:"state,omitempty"`
	Min   *int     `json:"minRate,omitempty"`
	Max   *int     `json:"maxRate,omitempty"`
	Init  *VFState `json:"init,omitempty"`
}

func (c Call) String() string {
	switch c.Op {
	case "LinkSetVfHardwareAddr":
		return fmt.Sprintf("%s %s vf %d mac %s", c.Op, c.PF, c.VF, c.MAC)
	case "LinkSetVfVlanQosProto":
		return fmt.Sprintf("%s %s vf %d vlan %d qos %d proto %#x", c.Op, c.PF, c.VF, *c.Vlan, *c.Qos, *c.Proto)
	case "LinkSetVfSpoofchk", "LinkSetVfTrust":
		return fmt.Sprintf("%s %s vf %d %v", c.Op, c.PF, c.VF, *c.On)
	case "LinkSetVfState":
		return fmt.Sprintf("%s %s vf %d state %d", c.Op, c.PF, c.VF, *c.State)
	case "LinkSetVfRate":
		return fmt.Sprintf("%s %s vf %d min %d max %d", c.Op, c.PF, c.VF, *c.Min, *c.Max)
	}
	return fmt.Sprintf("%s %s vf %d", c.Op, c.PF, c.VF)
}

// apply folds a call into the VF state it changes.
func (c Call) apply(s *VFState) {
	switch c.Op {
	case "Init":
		if c.Init != nil {
			*s = *c.Init
		}
	case "LinkSetVfHardwareAddr":
		s.MAC = c.MAC
	case "LinkSetVfVlanQosProto":
		s.Vlan, s.Qos, s.VlanProto = *c.Vlan, *c.Qos, *c.Proto
	case "LinkSetVfSpoofchk":
		s.Spoofchk = *c.On
	case "LinkSetVfTrust":
		s.Trust = *c.On
	case "LinkSetVfState":
		s.LinkState = *c.State
	case "LinkSetVfRate":
		s.MinTxRate, s.MaxTxRate = *c.Min, *c.Max
	}
}

func key(pf string, vf int) string { return fmt.Sprintf("%s/%d", pf, vf) }

func intp(v int) *int          { return &v }
func boolp(v bool) *bool       { return &v }
func uint32p(v uint32) *uint32 { return &v }

// calls builds the Call for each setter, shared by Recorder and FileFake.
func macCall(pf string, vf int, mac net.HardwareAddr) Call {
	return Call{Op: "LinkSetVfHardwareAddr", PF: pf, VF: vf, MAC: mac.String()}
}
func vlanCall(pf string, vf, vlan, qos, proto int) Call {
	return Call{Op: "LinkSetVfVlanQosProto", PF: pf, VF: vf, Vlan: intp(vlan), Qos: intp(qos), Proto: intp(proto)}
}
func spoofCall(pf string, vf int, on bool) Call {
	return Call{Op: "LinkSetVfSpoofchk", PF: pf, VF: vf, On: boolp(on)}
}
func trustCall(pf string, vf int, on bool) Call {
	return Call{Op: "LinkSetVfTrust", PF: pf, VF: vf, On: boolp(on)}
}
func stateCall(pf string, vf int, st uint32) Call {
	return Call{Op: "LinkSetVfState", PF: pf, VF: vf, State: uint32p(st)}
}
func rateCall(pf string, vf, min, max int) Call {
	return Call{Op: "LinkSetVfRate", PF: pf, VF: vf, Min: intp(min), Max: intp(max)}
}
