package seams

import "os"

// Test helpers may read the variables the tests set.
func Root() string { return os.Getenv("PLEXUS_SYSFS_ROOT") }
