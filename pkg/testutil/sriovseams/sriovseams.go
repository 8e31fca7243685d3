// Package sriovseams names the test seams of the sriov CNI plugin's test
// binary: a main (./sriov, built only with the plexus_testseams tag) that
// wires a fake sysfs root, the file-backed fake PF (pf.FileFake) and a
// device-info directory from its environment. The shipped binary
// (cmd/sriov) reads none of these; tests that exec the plugin — directly,
// through plexus or through a container runtime — build this one instead
// (testutil.SriovTestBinary) and pass Seams.Env().
package sriovseams

const (
	// EnvSysfsRoot names the directory that plays "/" for sysfs reads.
	EnvSysfsRoot = "PLEXUS_SYSFS_ROOT"
	// EnvFakePF names an existing regular file: PF operations go to
	// pf.FileFake on it instead of netlink.
	EnvFakePF = "PLEXUS_SRIOV_FAKE_PF"
	// EnvDeviceInfoDir is the device-info base directory (cni/ below it
	// holds the CNIDeviceInfoFile paths the plugin accepts).
	EnvDeviceInfoDir = "PLEXUS_SRIOV_DEVINFO_DIR"

	// Package and Tag build the test binary.
	Package = "./pkg/testutil/sriovseams/sriov"
	Tag     = "plexus_testseams"
)

// Seams are the test binary's stand-ins; empty fields keep the production
// value (real sysfs, netlink, /var/run/k8s.cni.cncf.io/devinfo).
type Seams struct {
	SysfsRoot     string
	FakePF        string
	DeviceInfoDir string
}

// Env returns the seams as environment variables for the test binary.
func (s Seams) Env() []string {
	var env []string
	for _, kv := range [][2]string{{EnvSysfsRoot, s.SysfsRoot}, {EnvFakePF, s.FakePF}, {EnvDeviceInfoDir, s.DeviceInfoDir}} {
		if kv[1] != "" {
			env = append(env, kv[0]+"="+kv[1])
		}
	}
	return env
}
