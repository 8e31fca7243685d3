package testutil

import (
	"testing"

	"github.com/plexus-cni/plexus/pkg/testutil/sriovseams"
)

// SriovTestBinary builds the sriov CNI plugin with its test seams (package
// sriovseams) as "sriov" in this process's build directory, beside plexus
// when a test builds that too, so plexus finds it on CNI_PATH.
func SriovTestBinary(t testing.TB) string {
	t.Helper()
	return BuildPackageTags(t, "sriov", sriovseams.Package, sriovseams.Tag)
}
