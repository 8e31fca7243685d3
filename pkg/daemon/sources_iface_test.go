package daemon

import (
	"testing"

	"github.com/plexus-cni/plexus/pkg/resolve"
)

// plexusd's NAD source serves everything the thin path's does: NADs,
// ResourceClaims and DRA pool attributes (resolve finds the last two on the
// NAD source).
func TestNADSourceServesDRA(t *testing.T) {
	var s any = &NADSource{}
	if _, ok := s.(resolve.NADSource); !ok {
		t.Error("not a resolve.NADSource")
	}
	if _, ok := s.(resolve.ClaimSource); !ok {
		t.Error("not a resolve.ClaimSource: pods with DRA claims would not get their VFs through plexusd")
	}
	if _, ok := s.(resolve.DeviceAttributes); !ok {
		t.Error("not a resolve.DeviceAttributes: VFs of other DRA drivers would not be found through plexusd")
	}
}
