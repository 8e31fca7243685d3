package prod

import (
	"os"
	"syscall"
)

const seam = "PLEXUS_" + "SYSFS_ROOT"

func read() {
	_ = os.Getenv("PLEXUS_FAKE_PF")   // want `os.Getenv\("PLEXUS_FAKE_PF"\) in production code`
	_, _ = os.LookupEnv(seam)         // want `os.LookupEnv\("PLEXUS_SYSFS_ROOT"\)`
	_, _ = syscall.Getenv("PLEXUS_X") // want `syscall.Getenv`
	_ = os.Getenv("HOME")
	_ = os.Getenv("CNI_NETNS")
	name := "PLEXUS_NOT_CONSTANT" // a variable is not followed
	_ = os.Getenv(name)
}
