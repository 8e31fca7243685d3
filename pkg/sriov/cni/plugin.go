package cni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/ipam"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/plexus-cni/plexus/pkg/sriov/pf"
	"github.com/plexus-cni/plexus/pkg/sriov/sysfs"
)

// Plugin is the sriov CNI plugin with its outside dependencies: the PF
// interface, the sysfs reader and the device-info directory.
type Plugin struct {
	PF    pf.Interface
	Sysfs sysfs.Reader
	// DeviceInfoDir is the device-info base directory ("" means
	// DefaultDeviceInfoDir); CNIDeviceInfoFile must lie under its cni/.
	DeviceInfoDir string

	hooks hooks // nil outside in-package tests
}

// PF-side operations in the order ADD applies them; DEL restores in reverse.
const (
	opVlan      = "vlan"
	opMAC       = "mac"
	opSpoofchk  = "spoofchk"
	opTrust     = "trust"
	opLinkState = "link_state"
	opRate      = "rate"
)

func (p *Plugin) step(name string) error {
	if err := p.h().before(name); err != nil {
		return fmt.Errorf("step %s: %w", name, err)
	}
	return nil
}

func (p *Plugin) timed(name string, start time.Time) {
	p.h().took(name, time.Since(start))
}

// undoStack runs compensating actions in reverse order.
type undoStack []func() error

func (u *undoStack) push(f func() error) { *u = append(*u, f) }

func (u undoStack) run(log *logger) {
	for i := len(u) - 1; i >= 0; i-- {
		if err := u[i](); err != nil {
			log.Errorf("undo: %v", err)
		}
	}
}

// plannedOps lists the PF-side operations the config asks for.
func plannedOps(c *Config) []string {
	ops := []string{opVlan}
	if c.MAC != nil {
		ops = append(ops, opMAC)
	}
	if c.Spoofchk != nil {
		ops = append(ops, opSpoofchk)
	}
	if c.Trust != nil {
		ops = append(ops, opTrust)
	}
	if c.LinkState != nil {
		ops = append(ops, opLinkState)
	}
	if c.Rate != nil {
		ops = append(ops, opRate)
	}
	return ops
}

// setPF applies one operation with the config's value (want) or, with
// want nil, the saved original value.
func (p *Plugin) setPF(op string, st *State, want *Config) error {
	o, name, vf := st.OrigPF, st.PFName, st.VFIndex
	switch op {
	case opVlan:
		if want != nil {
			return p.PF.LinkSetVfVlanQosProto(name, vf, want.Vlan, want.Qos, want.VlanProto)
		}
		proto := o.VlanProto
		if proto == 0 {
			proto = pf.VlanProto8021Q
		}
		return p.PF.LinkSetVfVlanQosProto(name, vf, o.Vlan, o.Qos, proto)
	case opMAC:
		if want != nil {
			return p.PF.LinkSetVfHardwareAddr(name, vf, want.MAC)
		}
		mac, err := net.ParseMAC(o.MAC)
		if err != nil {
			return fmt.Errorf("saved MAC %q: %w", o.MAC, err)
		}
		return p.PF.LinkSetVfHardwareAddr(name, vf, mac)
	case opSpoofchk:
		if want != nil {
			return p.PF.LinkSetVfSpoofchk(name, vf, *want.Spoofchk)
		}
		return p.PF.LinkSetVfSpoofchk(name, vf, o.Spoofchk)
	case opTrust:
		if want != nil {
			return p.PF.LinkSetVfTrust(name, vf, *want.Trust)
		}
		return p.PF.LinkSetVfTrust(name, vf, o.Trust)
	case opLinkState:
		if want != nil {
			return p.PF.LinkSetVfState(name, vf, *want.LinkState)
		}
		return p.PF.LinkSetVfState(name, vf, o.LinkState)
	case opRate:
		if want != nil {
			return p.PF.LinkSetVfRate(name, vf, want.Rate[0], want.Rate[1])
		}
		return p.PF.LinkSetVfRate(name, vf, o.MinTxRate, o.MaxTxRate)
	}
	return fmt.Errorf("unknown PF operation %q", op)
}

// restorePF puts back every saved PF-side setting, last applied first.
func (p *Plugin) restorePF(st *State) error {
	var errs []error
	for i := len(st.Applied) - 1; i >= 0; i-- {
		if err := p.setPF(st.Applied[i], st, nil); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", st.Applied[i], err))
		}
	}
	return errors.Join(errs...)
}

// ipamExec runs IPAM plugins with the CNI_* values of this invocation (not
// whatever the process environment holds) and finds them in args.Path.
type ipamExec struct {
	args *skel.CmdArgs
	version.PluginDecoder
}

func (e *ipamExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	set := map[string]string{
		"CNI_CONTAINERID": e.args.ContainerID, "CNI_NETNS": e.args.Netns, "CNI_IFNAME": e.args.IfName,
		"CNI_ARGS": e.args.Args, "CNI_PATH": e.args.Path,
	}
	env := make([]string, 0, len(environ)+len(set))
	for _, kv := range environ {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "CNI_") || k == "CNI_COMMAND" {
			env = append(env, kv)
		}
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return (&invoke.RawExec{Stderr: os.Stderr}).ExecPlugin(ctx, pluginPath, stdin, env)
}

func (e *ipamExec) FindInPath(plugin string, _ []string) (string, error) {
	return invoke.FindInPath(plugin, filepath.SplitList(e.args.Path))
}

func attachment(args *skel.CmdArgs, deviceID string) string {
	return fmt.Sprintf("container %s ifname %s: VF %s", args.ContainerID, args.IfName, deviceID)
}

// Add attaches the VF and returns the result in the config's cniVersion.
func (p *Plugin) Add(args *skel.CmdArgs) (types.Result, error) {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return nil, err
	}
	log := newLogger(conf.LogLevel, conf.LogFile)
	defer log.close()
	if conf.DeviceID == "" {
		return nil, fmt.Errorf("sriov config for network %q: key \"deviceID\": required (or runtimeConfig.deviceID)", conf.Name)
	}
	if err := conf.applyCNIArgs(args.Args); err != nil {
		return nil, err
	}
	if conf.DeviceInfoFile != "" {
		if conf.DeviceInfoFile, err = p.confineDeviceInfo(conf.DeviceInfoFile, true); err != nil {
			return nil, fmt.Errorf("sriov config for network %q: key %q: %w", conf.Name, deviceInfoKey, err)
		}
	}
	res, err := p.add(args, conf, log)
	if err != nil {
		err = fmt.Errorf("sriov ADD %s: %w", attachment(args, conf.DeviceID), err)
		log.Errorf("%v", err)
		return nil, err
	}
	log.Infof("ADD %s: done", attachment(args, conf.DeviceID))
	return res.GetAsVersion(conf.CNIVersion)
}

func (p *Plugin) add(args *skel.CmdArgs, conf *Config, log *logger) (_ *current.Result, err error) {
	vf, err := p.Sysfs.VF(conf.DeviceID)
	if err != nil {
		return nil, err
	}
	if conf.Master != "" && conf.Master != vf.PFName {
		// sriov-cni ignores it the same way; the pod keeps working.
		log.Warnf("key \"master\": %q ignored: VF %s is on PF %s (%s); the PF is found from deviceID", conf.Master, vf.Addr, vf.PFName, vf.PFAddr)
	}
	podNS, err := ns.GetNS(args.Netns)
	if err != nil {
		return nil, fmt.Errorf("netns %q: %w", args.Netns, err)
	}
	defer podNS.Close()
	hostNS, err := ns.GetCurrentNS()
	if err != nil {
		return nil, fmt.Errorf("host netns: %w", err)
	}
	defer hostNS.Close()

	store := Store{Dir: conf.DataDir}
	if err := p.step("lock"); err != nil {
		return nil, err
	}
	unlock, err := store.Lock(vf.Addr)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := p.takeOver(store, vf.Addr, log); err != nil {
		return nil, err
	}
	// Read the netdev name only now: a takeover may have renamed it.
	if !vf.Userspace() {
		if vf.Netdevs, err = p.Sysfs.Netdevs(vf.Addr); err != nil {
			return nil, err
		}
		if len(vf.Netdevs) == 0 {
			return nil, fmt.Errorf("driver %q shows no netdev for the VF in this netns", vf.Driver)
		}
	}

	var undo undoStack
	defer func() {
		if err != nil {
			undo.run(log)
		}
	}()

	if err := p.step("read-state"); err != nil {
		return nil, err
	}
	origPF, err := p.PF.VF(vf.PFName, vf.Index)
	if err != nil {
		return nil, fmt.Errorf("read PF-side state: %w", err)
	}
	st := &State{DeviceID: vf.Addr, ContainerID: args.ContainerID, IfName: args.IfName, NetNS: args.Netns,
		PFName: vf.PFName, PFAddr: vf.PFAddr, VFIndex: vf.Index, Userspace: vf.Userspace(), OrigPF: origPF,
		Applied: plannedOps(conf), DeviceInfoFile: conf.DeviceInfoFile}
	var orig netdevInfo
	if !st.Userspace {
		if orig, err = readNetdev(vf.Netdevs[0]); err != nil {
			return nil, err
		}
		st.OrigName, st.OrigMAC, st.OrigMTU, st.OrigUp = orig.Name, orig.MAC, orig.MTU, orig.Up
	}
	if err := p.step("save-state"); err != nil {
		return nil, err
	}
	if err := store.Save(st); err != nil {
		return nil, err
	}
	undo.push(func() error { return store.Remove(vf.Addr) })

	for _, op := range st.Applied {
		if err := p.step("pf-" + op); err != nil {
			return nil, err
		}
		if err := p.setPF(op, st, conf); err != nil {
			return nil, fmt.Errorf("PF %s: set %s: %w", st.PFName, op, err)
		}
		undo.push(func() error { return p.setPF(op, st, nil) })
	}

	result := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	iface := &current.Interface{Name: args.IfName, Sandbox: args.Netns, PciID: vf.Addr}
	if conf.MAC != nil {
		iface.Mac = conf.MAC.String()
	}
	if !st.Userspace {
		if iface.Mac, iface.Mtu, st.PodIndex, err = p.moveIn(podNS, hostNS, orig, args.IfName, conf, &undo); err != nil {
			return nil, err
		}
	} else if conf.MTU != 0 {
		log.Warnf("key \"mtu\": VF %s is bound to %s and has no netdev: MTU %d not applied", vf.Addr, vf.Driver, conf.MTU)
	}
	st.MAC = iface.Mac
	result.Interfaces = []*current.Interface{iface}

	if conf.IPAMType != "" {
		if err := p.step("ipam"); err != nil {
			return nil, err
		}
		exec := &ipamExec{args: args}
		r, err := invoke.DelegateAdd(context.TODO(), conf.IPAMType, conf.Raw, exec)
		if err != nil {
			return nil, fmt.Errorf("IPAM %s: %w", conf.IPAMType, err)
		}
		undo.push(func() error {
			return invoke.DelegateDel(context.TODO(), conf.IPAMType, conf.Raw, exec)
		})
		ir, err := current.NewResultFromResult(r)
		if err != nil {
			return nil, fmt.Errorf("IPAM %s: result: %w", conf.IPAMType, err)
		}
		result.IPs, result.Routes, result.DNS = ir.IPs, ir.Routes, ir.DNS
		for _, ipc := range result.IPs {
			ipc.Interface = current.Int(0)
		}
		if !st.Userspace && len(result.IPs) > 0 {
			if err := p.step("configure"); err != nil {
				return nil, err
			}
			if err := podNS.Do(func(ns.NetNS) error { return configureAndAnnounce(args.IfName, result, log) }); err != nil {
				return nil, err
			}
		}
	}

	if conf.DNS != nil {
		result.DNS = *conf.DNS // the NAD's dns wins over IPAM's, as in the reference plugins
	}

	if conf.DeviceInfoFile != "" {
		if err := p.step("device-info"); err != nil {
			return nil, err
		}
		if err := writeDeviceInfo(conf.DeviceInfoFile, vf); err != nil {
			return nil, err
		}
		undo.push(func() error { return p.cleanDeviceInfo(conf.DeviceInfoFile, log) })
	}

	if err := p.step("commit"); err != nil {
		return nil, err
	}
	if err := store.Save(st); err != nil {
		return nil, err
	}
	return result, nil
}

// moveIn moves the VF netdev into the pod under ifName via a temporary name
// and returns its effective MAC, its MTU and its ifindex in the pod. It
// pushes the undo that brings it back.
func (p *Plugin) moveIn(podNS, hostNS ns.NetNS, orig netdevInfo, ifName string, conf *Config, undo *undoStack) (string, int, int, error) {
	if err := p.step("move"); err != nil {
		return "", 0, 0, err
	}
	start := time.Now()
	tmp, err := moveToNS(orig.Name, podNS)
	if err != nil {
		if rerr := restoreHostNetdev(orig.Name, orig); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return "", 0, 0, err
	}
	p.timed("move", start)
	// Find it again later by index: after the rename its name may be one
	// the pod had before, and the temporary name is gone.
	index := -1
	err = podNS.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(tmp)
		if err != nil {
			return fmt.Errorf("VF netdev %s in pod: %w", tmp, err)
		}
		index = l.Attrs().Index
		return nil
	})
	undo.push(func() error {
		back, err := moveOutOfNS(podNS, hostNS, func() (netlink.Link, error) {
			if index < 0 {
				return netlinksafe.LinkByName(tmp)
			}
			return netlink.LinkByIndex(index)
		})
		if err != nil {
			return err
		}
		return restoreHostNetdev(back, orig)
	})
	if err != nil {
		return "", 0, 0, err
	}
	var got netdevInfo
	start = time.Now()
	err = podNS.Do(func(ns.NetNS) error {
		var err error
		got, err = setupInNS(tmp, ifName, conf.MAC, conf.MTU, p.step)
		return err
	})
	p.timed("rename", start)
	return got.MAC, got.MTU, index, err
}

func configureAndAnnounce(ifName string, result *current.Result, log *logger) error {
	if err := ipam.ConfigureIface(ifName, result); err != nil {
		return fmt.Errorf("configure addresses on %s: %w", ifName, err)
	}
	l, err := netlinksafe.LinkByName(ifName)
	if err != nil {
		return fmt.Errorf("%s: %w", ifName, err)
	}
	ips := make([]net.IP, 0, len(result.IPs))
	for _, ipc := range result.IPs {
		ips = append(ips, ipc.Address.IP)
	}
	if err := announce(l.Attrs().Index, l.Attrs().HardwareAddr, ips); err != nil {
		log.Warnf("%s: gratuitous ARP/NA: %v", ifName, err)
	}
	return nil
}

// takeOver refuses a VF held by a live pod and cleans up after a dead one
// (restoring the VF from its saved state) so the VF can be used again.
func (p *Plugin) takeOver(store Store, addr string, log *logger) error {
	held, err := store.Load(addr)
	if err != nil || held == nil {
		return err
	}
	if held.Live() {
		return fmt.Errorf("VF is in use by container %s (ifname %s, netns %s)", held.ContainerID, held.IfName, held.NetNS)
	}
	log.Warnf("VF %s: holder container %s is gone (netns %s); restoring the VF before reuse", addr, held.ContainerID, held.NetNS)
	if err := p.release(held, "", log); err != nil {
		return fmt.Errorf("restore VF left by container %s: %w", held.ContainerID, err)
	}
	return store.Remove(addr)
}

// Del detaches the VF; it succeeds when there is nothing left to undo.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	log := newLogger(conf.LogLevel, conf.LogFile)
	defer log.close()
	if err := p.del(args, conf, log); err != nil {
		err = fmt.Errorf("sriov DEL %s: %w", attachment(args, conf.DeviceID), err)
		log.Errorf("%v", err)
		return err
	}
	log.Infof("DEL %s: done", attachment(args, conf.DeviceID))
	return nil
}

// del releases the IPAM allocation first, then the VF; a failing IPAM DEL
// does not keep the VF from going home (the error is still returned, and a
// retried DEL finds the VF part done).
func (p *Plugin) del(args *skel.CmdArgs, conf *Config, log *logger) error {
	var ipamErr error
	if conf.IPAMType != "" {
		if err := invoke.DelegateDel(context.TODO(), conf.IPAMType, conf.Raw, &ipamExec{args: args}); err != nil {
			ipamErr = fmt.Errorf("IPAM %s: %w", conf.IPAMType, err)
		}
	}
	return errors.Join(ipamErr, p.delVF(args, conf, log))
}

func (p *Plugin) delVF(args *skel.CmdArgs, conf *Config, log *logger) error {
	store := Store{Dir: conf.DataDir}
	addr := conf.DeviceID
	if addr == "" {
		var err error
		if addr, err = store.FindByAttachment(args.ContainerID, args.IfName); err != nil {
			return err
		}
	}
	held := false
	if addr != "" {
		var err error
		if held, err = p.releaseOwn(args, store, addr, log); err != nil {
			return err
		}
	}
	// sriov-cni may have made this attachment before the node switched to
	// plexus (then plexus has no state for it), or left its file behind.
	if err := p.releaseUpstream(args, store, log); err != nil {
		return err
	}
	if held {
		return nil
	}
	return p.cleanDeviceInfo(conf.DeviceInfoFile, log)
}

// releaseOwn gives back the VF at addr from plexus's state when this
// attachment holds it; held reports whether plexus had state for the VF.
func (p *Plugin) releaseOwn(args *skel.CmdArgs, store Store, addr string, log *logger) (held bool, err error) {
	unlock, err := store.Lock(addr)
	if err != nil {
		return false, err
	}
	defer unlock()
	st, err := store.Load(addr)
	if err != nil || st == nil {
		return false, err
	}
	if !st.Owns(args.ContainerID, args.IfName) {
		log.Infof("VF %s now belongs to container %s ifname %s: left alone", addr, st.ContainerID, st.IfName)
		return true, nil
	}
	if err := p.release(st, args.Netns, log); err != nil {
		return true, err
	}
	if err := p.cleanDeviceInfo(st.DeviceInfoFile, log); err != nil {
		return true, err
	}
	return true, store.Remove(addr)
}

// pfNetdev returns the PF's netdev name as it is now: looked up in sysfs
// from the PF's PCI address (saved, else through the VF's physfn link),
// since udev or a reboot may have renamed it after ADD; the saved name when
// sysfs has none.
func (p *Plugin) pfNetdev(pfAddr, vfAddr, saved string, log *logger) string {
	if pfAddr == "" {
		var err error
		if pfAddr, err = p.Sysfs.PhysFn(vfAddr); err != nil {
			log.Warnf("VF %s: %v; using the saved PF name %s", vfAddr, err, saved)
			return saved
		}
	}
	names, err := p.Sysfs.Netdevs(pfAddr)
	if err != nil || len(names) == 0 {
		log.Warnf("PF %s: no netdev in sysfs (%v); using the saved PF name %s", pfAddr, err, saved)
		return saved
	}
	if slices.Contains(names, saved) {
		return saved
	}
	log.Infof("PF %s: netdev %s was renamed to %s since ADD", pfAddr, saved, names[0])
	return names[0]
}

// release restores the PF-side settings (on the PF as it is named now),
// then brings the netdev back to the host under its original name.
// netnsPath "" means the pod netns is gone.
func (p *Plugin) release(st *State, netnsPath string, log *logger) error {
	st.PFName = p.pfNetdev(st.PFAddr, st.DeviceID, st.PFName, log)
	if err := p.restorePF(st); err != nil {
		return err
	}
	if st.Userspace {
		return nil
	}
	orig := netdevInfo{Name: st.OrigName, MAC: st.OrigMAC, MTU: st.OrigMTU, Up: st.OrigUp}
	return p.bringHome(netnsPath, func() (netlink.Link, error) { return findInPod(st) }, st.DeviceID, orig)
}

// bringHome moves the VF netdev (found by find inside the pod) back to the
// host and gives it its original name, MAC, MTU and admin state; when the
// pod netns or the netdev in it is gone, it looks for the netdev in the
// host instead.
func (p *Plugin) bringHome(netnsPath string, find func() (netlink.Link, error), vfAddr string, orig netdevInfo) error {
	if netnsPath != "" {
		podNS, err := ns.GetNS(netnsPath)
		if err == nil {
			defer podNS.Close()
			hostNS, err := ns.GetCurrentNS()
			if err != nil {
				return fmt.Errorf("host netns: %w", err)
			}
			defer hostNS.Close()
			start := time.Now()
			tmp, err := moveOutOfNS(podNS, hostNS, find)
			if err == nil {
				p.timed("move", start)
				defer p.timed("rename", time.Now())
				return restoreHostNetdev(tmp, orig)
			}
			var nf netlink.LinkNotFoundError
			if !errors.As(err, &nf) {
				return err
			}
		}
	}
	return p.recoverHostNetdev(vfAddr, orig)
}

// findInPod finds the VF netdev in the pod (current netns): by its ifname,
// or, when something inside the pod renamed it, by the ifindex it got on
// arrival as long as that link still has the MAC ADD left on it.
func findInPod(st *State) (netlink.Link, error) {
	l, err := netlinksafe.LinkByName(st.IfName)
	if err == nil || st.PodIndex <= 0 {
		return l, err
	}
	byIndex, ierr := netlink.LinkByIndex(st.PodIndex)
	if ierr == nil && st.MAC != "" && byIndex.Attrs().HardwareAddr.String() == st.MAC {
		return byIndex, nil
	}
	return nil, err
}

// recoverHostNetdev handles a netdev that is no longer in the pod (netns
// gone: the kernel returns physical netdevs to the host): find it by its
// original name or by the names sysfs lists for the VF, and restore it.
func (p *Plugin) recoverHostNetdev(vfAddr string, orig netdevInfo) error {
	names := []string{orig.Name}
	if more, err := p.Sysfs.Netdevs(vfAddr); err == nil {
		names = append(names, more...)
	}
	for _, n := range names {
		if _, err := netlinksafe.LinkByName(n); err == nil {
			return restoreHostNetdev(n, orig)
		}
	}
	return nil
}

// Check verifies the attachment against the previous result.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	log := newLogger(conf.LogLevel, conf.LogFile)
	defer log.close()
	if err := p.check(args, conf, log); err != nil {
		err = fmt.Errorf("sriov CHECK %s: %w", attachment(args, conf.DeviceID), err)
		log.Errorf("%v", err)
		return err
	}
	return nil
}

func (p *Plugin) check(args *skel.CmdArgs, conf *Config, log *logger) error {
	if conf.PrevResult == nil {
		return fmt.Errorf("key \"prevResult\": required for CHECK")
	}
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return fmt.Errorf("key \"prevResult\": %w", err)
	}
	store := Store{Dir: conf.DataDir}
	addr := conf.DeviceID
	if addr == "" {
		if addr, err = store.FindByAttachment(args.ContainerID, args.IfName); err != nil {
			return err
		}
	}
	if addr == "" {
		return fmt.Errorf("no VF attached")
	}
	st, err := store.Load(addr)
	if err != nil {
		return err
	}
	if st == nil || !st.Owns(args.ContainerID, args.IfName) {
		return fmt.Errorf("VF %s is not attached to this container/ifname", addr)
	}
	if conf.IPAMType != "" {
		if err := invoke.DelegateCheck(context.TODO(), conf.IPAMType, conf.Raw, &ipamExec{args: args}); err != nil {
			return fmt.Errorf("IPAM %s: %w", conf.IPAMType, err)
		}
	}
	st.PFName = p.pfNetdev(st.PFAddr, st.DeviceID, st.PFName, log)
	if err := p.checkPF(st, conf); err != nil {
		return err
	}
	if st.Userspace {
		return nil
	}
	var want *current.Interface
	for _, i := range prev.Interfaces {
		if i.Name == args.IfName {
			want = i
		}
	}
	if want == nil {
		return fmt.Errorf("prevResult has no interface %s", args.IfName)
	}
	podNS, err := ns.GetNS(args.Netns)
	if err != nil {
		return fmt.Errorf("netns %q: %w", args.Netns, err)
	}
	defer podNS.Close()
	return podNS.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(args.IfName)
		if err != nil {
			return fmt.Errorf("interface %s not in the pod: %w", args.IfName, err)
		}
		if got := l.Attrs().HardwareAddr.String(); want.Mac != "" && got != want.Mac {
			return fmt.Errorf("interface %s: MAC %s, want %s", args.IfName, got, want.Mac)
		}
		if got := l.Attrs().HardwareAddr.String(); st.MAC != "" && got != st.MAC {
			return fmt.Errorf("interface %s: MAC %s, want %s", args.IfName, got, st.MAC)
		}
		if conf.MTU != 0 && l.Attrs().MTU != conf.MTU {
			return fmt.Errorf("interface %s: MTU %d, want %d (key \"mtu\")", args.IfName, l.Attrs().MTU, conf.MTU)
		}
		if err := ip.ValidateExpectedInterfaceIPs(args.IfName, prev.IPs); err != nil {
			return err
		}
		return ip.ValidateExpectedRoute(prev.Routes)
	})
}

// checkPF compares the VF's PF-side settings with the config.
func (p *Plugin) checkPF(st *State, conf *Config) error {
	cur, err := p.PF.VF(st.PFName, st.VFIndex)
	if err != nil {
		return fmt.Errorf("read PF-side state: %w", err)
	}
	if cur.Vlan != conf.Vlan || cur.Qos != conf.Qos {
		return fmt.Errorf("PF %s VF %d: vlan %d qos %d, want vlan %d qos %d", st.PFName, st.VFIndex, cur.Vlan, cur.Qos, conf.Vlan, conf.Qos)
	}
	if conf.MAC != nil && !strings.EqualFold(cur.MAC, conf.MAC.String()) {
		return fmt.Errorf("PF %s VF %d: admin MAC %s, want %s", st.PFName, st.VFIndex, cur.MAC, conf.MAC)
	}
	return nil
}
