package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/resolve"
	"github.com/plexus-cni/plexus/pkg/wire"
)

// plexusd passes its resolutions everything the thin path's have, by
// name: NADs, devices, ResourceClaims and DRA pool attributes, and says it
// reads the node's files through mounts.
func TestDaemonSources(t *testing.T) {
	d, err := New(Options{NodeName: "n", RESTConfig: &rest.Config{Host: "https://127.0.0.1:1"}, CNIConfig: "-"})
	if err != nil {
		t.Fatal(err)
	}
	s := d.sources
	if s.NADs != resolve.NADSource(d.nadSrc) || s.Devices == nil {
		t.Errorf("sources %+v: not the informers' NADs and kubelet's devices", s)
	}
	if _, ok := s.Claims.(*DRASource); !ok {
		t.Errorf("Claims = %T: pods with DRA claims would not get their VFs through plexusd", s.Claims)
	}
	if _, ok := s.Attributes.(*DRASource); !ok {
		t.Errorf("Attributes = %T: VFs of other DRA drivers would not be found through plexusd", s.Attributes)
	}
	if !s.Mounted {
		t.Error("Mounted = false: a deviceInfoDir plexusd does not see would read as empty")
	}
}

// What plexusd answers a failed resolution: unavailable when it could not
// tell (the shim resolves in the runtime's context), final otherwise.
func TestAnswer(t *testing.T) {
	pod := podnet.PodRef{Namespace: "ns", Name: "p"}
	unreadable := &fs.PathError{Op: "stat", Path: "/etc/cni/other/primary.conflist", Err: syscall.ENOENT}
	tests := []struct {
		name        string
		err         error
		unavailable bool
		network     string
	}{
		{"API did not answer", fmt.Errorf("%w: GET pods: connection refused", errUnavailable), true, ""},
		{"clusterNetwork file plexusd cannot read", fmt.Errorf("plexus config: key \"clusterNetwork\": %w", unreadable), true, ""},
		{"device-info plexusd cannot read", podnet.AttachError("ns/hd", "net1", fmt.Errorf("field \"deviceID\": %w", unreadable)), true, "ns/hd"},
		{"NAD not there", podnet.AttachError("ns/x", "net1", fmt.Errorf("ns/x: %w", podnet.ErrNADNotFound)), false, "ns/x"},
		{"bad annotation", errors.New("annotation k8s.v1.cni.cncf.io/networks: bad"), false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := answer(pod, tc.err)
			want := &wire.Error{Message: "pod ns/p: " + tc.err.Error(), Unavailable: tc.unavailable}
			if !tc.unavailable {
				want.Network = tc.network
			}
			if *got != *want {
				t.Errorf("answer = %+v, want %+v", got, want)
			}
		})
	}
}
