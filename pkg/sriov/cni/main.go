package cni

import (
	"context"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/plexus-cni/plexus/pkg/sriov/pf"
	"github.com/plexus-cni/plexus/pkg/sriov/sysfs"
)

// New returns the plugin the sriov binary runs: PF settings through
// netlink, sysfs under "/", device-info files confined to
// DefaultDeviceInfoDir. Tests that exec a binary with a fake PF or sysfs
// root build their own main (pkg/testutil/sriovseams) around a Plugin.
func New() *Plugin {
	return &Plugin{PF: pf.Netlink{}, Sysfs: sysfs.Reader{Root: "/"}, DeviceInfoDir: DefaultDeviceInfoDir}
}

// Run is the body of a sriov binary's main: skel dispatches the CNI command
// (buildVersion goes into the "about" line skel prints without one).
func Run(p *Plugin, buildVersion string) {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: p.CmdAdd, Del: p.Del, Check: p.Check, Status: p.CmdStatus, GC: p.CmdGC},
		version.PluginSupports(SupportedVersions...), "sriov: SR-IOV VF CNI plugin (plexus) "+buildVersion)
}

// CmdAdd is skel's ADD: it prints the result.
func (p *Plugin) CmdAdd(args *skel.CmdArgs) error {
	res, err := p.Add(args)
	if err != nil {
		return err
	}
	return res.Print()
}

// CmdStatus reports the IPAM plugin's status (the plugin itself keeps none).
func (p *Plugin) CmdStatus(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	if conf.IPAMType == "" {
		return nil
	}
	return invoke.DelegateStatus(context.TODO(), conf.IPAMType, conf.Raw, &ipamExec{args: args})
}

// CmdGC passes garbage collection on to the IPAM plugin.
func (p *Plugin) CmdGC(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	if conf.IPAMType == "" {
		return nil
	}
	return invoke.DelegateGC(context.TODO(), conf.IPAMType, conf.Raw, &ipamExec{args: args})
}
