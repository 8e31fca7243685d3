package cni

import (
	"context"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/plexus-cni/plexus/pkg/sriov/pf"
	"github.com/plexus-cni/plexus/pkg/sriov/sysfs"
)

// TEST-ONLY hooks read from the environment (see docs/sriov-cni.md).
const (
	// EnvSysfsRoot names the directory that plays "/" for sysfs (default "/").
	EnvSysfsRoot = "PLEXUS_SYSFS_ROOT"
	// EnvFakePF, when it names an existing regular file, replaces PF netlink
	// with pf.FileFake on that file.
	EnvFakePF = "PLEXUS_SRIOV_FAKE_PF"
)

// FromEnv builds the plugin the binary runs: real netlink and /sys unless
// the test-only hooks say otherwise.
func FromEnv() (*Plugin, error) {
	root := os.Getenv(EnvSysfsRoot)
	if root == "" {
		root = "/"
	}
	p := &Plugin{PF: pf.Netlink{}, Sysfs: sysfs.Reader{Root: root}}
	if path := os.Getenv(EnvFakePF); path != "" {
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s=%s: not an existing regular file (test-only hook)", EnvFakePF, path)
		}
		p.PF = pf.FileFake{Path: path}
	}
	return p, nil
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

// Main is the sriov binary.
func Main() {
	p, err := FromEnv()
	if err != nil {
		_ = types.NewError(types.ErrInternal, "sriov", err.Error()).Print()
		os.Exit(1)
	}
	skel.PluginMainFuncs(skel.CNIFuncs{Add: p.CmdAdd, Del: p.Del, Check: p.Check, Status: p.CmdStatus, GC: p.CmdGC},
		version.PluginSupports(SupportedVersions...), "sriov: SR-IOV VF CNI plugin (plexus)")
}
