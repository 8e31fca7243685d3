//go:build plexus_testseams

// Command sriov is the sriov CNI plugin with its test seams, for tests only
// (see package sriovseams): the same plugin as cmd/sriov, with sysfs, the
// PF and the device-info directory taken from the environment.
package main

import (
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/plexus-cni/plexus/pkg/sriov/cni"
	"github.com/plexus-cni/plexus/pkg/sriov/pf"
	"github.com/plexus-cni/plexus/pkg/sriov/sysfs"
	"github.com/plexus-cni/plexus/pkg/testutil/sriovseams"
)

func main() {
	p := cni.New()
	if err := wire(p); err != nil {
		_ = types.NewError(types.ErrInternal, "sriov (test binary)", err.Error()).Print()
		os.Exit(1)
	}
	cni.Run(p, "test")
}

func wire(p *cni.Plugin) error {
	if root := os.Getenv(sriovseams.EnvSysfsRoot); root != "" {
		p.Sysfs = sysfs.Reader{Root: root}
	}
	if d := os.Getenv(sriovseams.EnvDeviceInfoDir); d != "" {
		p.DeviceInfoDir = d
	}
	if path := os.Getenv(sriovseams.EnvFakePF); path != "" {
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("%s=%s: not an existing regular file", sriovseams.EnvFakePF, path)
		}
		p.PF = pf.FileFake{Path: path}
	}
	return nil
}
