package pf

import (
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// exercise drives any Interface through every setter and returns the state read back.
func exercise(t *testing.T, p Interface) VFState {
	t.Helper()
	mac, _ := net.ParseMAC("02:00:00:00:00:11")
	steps := []error{
		p.LinkSetVfHardwareAddr("pf0", 3, mac),
		p.LinkSetVfVlanQosProto("pf0", 3, 100, 5, VlanProto8021AD),
		p.LinkSetVfSpoofchk("pf0", 3, false),
		p.LinkSetVfTrust("pf0", 3, true),
		p.LinkSetVfState("pf0", 3, LinkStateDisable),
		p.LinkSetVfRate("pf0", 3, 10, 200),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	s, err := p.VF("pf0", 3)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var wantExercised = VFState{MAC: "02:00:00:00:00:11", Vlan: 100, Qos: 5, VlanProto: VlanProto8021AD,
	Spoofchk: false, Trust: true, LinkState: LinkStateDisable, MinTxRate: 10, MaxTxRate: 200}

func TestRecorder(t *testing.T) {
	r := NewRecorder()
	if got := exercise(t, r); got != wantExercised {
		t.Fatalf("state %+v, want %+v", got, wantExercised)
	}
	if s, _ := r.VF("pf0", 4); s != DefaultVFState() {
		t.Fatalf("untouched VF %+v", s)
	}
	if n := len(r.Calls()); n != 6 {
		t.Fatalf("%d calls recorded, want 6", n)
	}
	boom := errors.New("boom")
	r.Fail = func(c Call) error {
		if c.Op == "LinkSetVfTrust" {
			return boom
		}
		return nil
	}
	if err := r.LinkSetVfTrust("pf0", 3, false); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if !r.State("pf0", 3).Trust {
		t.Fatal("failed call was applied")
	}
}

func TestFileFake(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pf.jsonl")
	seed := DefaultVFState()
	seed.MAC = "02:aa:00:00:00:01"
	if err := SeedFile(path, "pf0", 3, seed); err != nil {
		t.Fatal(err)
	}
	ff := FileFake{Path: path}
	if s, _ := ff.VF("pf0", 3); s != seed {
		t.Fatalf("seeded state %+v", s)
	}
	if got := exercise(t, ff); got != wantExercised {
		t.Fatalf("state %+v, want %+v", got, wantExercised)
	}
	calls, err := ReadCalls(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 7 || calls[0].Op != "Init" || calls[2].String() != "LinkSetVfVlanQosProto pf0 vf 3 vlan 100 qos 5 proto 0x88a8" {
		t.Fatalf("calls %v", calls)
	}
	// Concurrent writers never interleave lines.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_ = ff.LinkSetVfRate("pf0", i, i, 100+i)
		}(i)
	}
	wg.Wait()
	calls, err = ReadCalls(path)
	if err != nil || len(calls) != 15 {
		t.Fatalf("after concurrent writes: %d calls, %v", len(calls), err)
	}
	if s := StateOf(calls, "pf0", 5); s.MaxTxRate != 105 {
		t.Fatalf("VF 5 %+v", s)
	}
}
