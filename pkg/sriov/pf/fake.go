package pf

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Recorder is an in-memory Interface for tests: it keeps each VF's state
// (DefaultVFState until seeded or set) and records every call in order.
type Recorder struct {
	// Fail, when set, is asked before each operation (Op "VF" for reads);
	// a non-nil error is returned and the call is not applied.
	Fail func(c Call) error

	mu     sync.Mutex
	states map[string]VFState
	calls  []Call
}

var _ Interface = (*Recorder)(nil)

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{states: map[string]VFState{}} }

// Seed sets a VF's state without recording a call.
func (r *Recorder) Seed(pf string, vf int, s VFState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states[key(pf, vf)] = s
}

// State returns a VF's current state.
func (r *Recorder) State(pf string, vf int) VFState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state(pf, vf)
}

func (r *Recorder) state(pf string, vf int) VFState {
	if s, ok := r.states[key(pf, vf)]; ok {
		return s
	}
	return DefaultVFState()
}

// Calls returns a copy of the recorded calls.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Reset forgets the recorded calls (states stay).
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
}

func (r *Recorder) do(c Call) error {
	if r.Fail != nil {
		if err := r.Fail(c); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.state(c.PF, c.VF)
	c.apply(&s)
	r.states[key(c.PF, c.VF)] = s
	r.calls = append(r.calls, c)
	return nil
}

func (r *Recorder) LinkSetVfHardwareAddr(pf string, vf int, mac net.HardwareAddr) error {
	return r.do(macCall(pf, vf, mac))
}
func (r *Recorder) LinkSetVfVlanQosProto(pf string, vf, vlan, qos, proto int) error {
	return r.do(vlanCall(pf, vf, vlan, qos, proto))
}
func (r *Recorder) LinkSetVfSpoofchk(pf string, vf int, on bool) error {
	return r.do(spoofCall(pf, vf, on))
}
func (r *Recorder) LinkSetVfTrust(pf string, vf int, on bool) error {
	return r.do(trustCall(pf, vf, on))
}
func (r *Recorder) LinkSetVfState(pf string, vf int, state uint32) error {
	return r.do(stateCall(pf, vf, state))
}
func (r *Recorder) LinkSetVfRate(pf string, vf, minRate, maxRate int) error {
	return r.do(rateCall(pf, vf, minRate, maxRate))
}

// VF returns the VF's current state.
func (r *Recorder) VF(pf string, vf int) (VFState, error) {
	if r.Fail != nil {
		if err := r.Fail(Call{Op: "VF", PF: pf, VF: vf}); err != nil {
			return VFState{}, err
		}
	}
	return r.State(pf, vf), nil
}

// FileFake is a file-backed Interface for tests that exec the sriov binary
// (the test binary of pkg/testutil/sriovseams selects it). The file holds
// JSON lines, one Call each; a VF's state is DefaultVFState followed by
// every "Init" and setter line for it, in order. Every access holds an flock on the file, so
// concurrent plugin processes and the test see a consistent history.
type FileFake struct {
	Path string
}

var _ Interface = FileFake{}

// ReadCalls returns every line of a FileFake file ("Init" lines included).
func ReadCalls(path string) ([]Call, error) {
	var calls []Call
	err := withFlock(path, unix.LOCK_SH, func(f *os.File) error {
		var err error
		calls, err = readCalls(f)
		return err
	})
	return calls, err
}

// StateOf folds calls into the state of one VF.
func StateOf(calls []Call, pf string, vf int) VFState {
	s := DefaultVFState()
	for _, c := range calls {
		if c.PF == pf && c.VF == vf {
			c.apply(&s)
		}
	}
	return s
}

// SeedFile appends an "Init" line setting a VF's state in a FileFake file.
func SeedFile(path, pf string, vf int, s VFState) error {
	return FileFake{Path: path}.append(Call{Op: "Init", PF: pf, VF: vf, Init: &s})
}

func readCalls(f *os.File) ([]Call, error) {
	if _, err := f.Seek(0, 0); err != nil {
		return nil, err
	}
	var calls []Call
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var c Call
		if err := json.Unmarshal(line, &c); err != nil {
			return nil, fmt.Errorf("fake PF file %s line %d: %w", f.Name(), n, err)
		}
		calls = append(calls, c)
	}
	return calls, sc.Err()
}

func withFlock(path string, how int, fn func(f *os.File) error) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("fake PF file: %w", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		return fmt.Errorf("fake PF file %s: lock: %w", path, err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN) //nolint:errcheck
	return fn(f)
}

func (ff FileFake) append(c Call) error {
	line, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return withFlock(ff.Path, unix.LOCK_EX, func(f *os.File) error {
		_, err := f.Write(append(line, '\n'))
		return err
	})
}

func (ff FileFake) LinkSetVfHardwareAddr(pf string, vf int, mac net.HardwareAddr) error {
	return ff.append(macCall(pf, vf, mac))
}
func (ff FileFake) LinkSetVfVlanQosProto(pf string, vf, vlan, qos, proto int) error {
	return ff.append(vlanCall(pf, vf, vlan, qos, proto))
}
func (ff FileFake) LinkSetVfSpoofchk(pf string, vf int, on bool) error {
	return ff.append(spoofCall(pf, vf, on))
}
func (ff FileFake) LinkSetVfTrust(pf string, vf int, on bool) error {
	return ff.append(trustCall(pf, vf, on))
}
func (ff FileFake) LinkSetVfState(pf string, vf int, state uint32) error {
	return ff.append(stateCall(pf, vf, state))
}
func (ff FileFake) LinkSetVfRate(pf string, vf, minRate, maxRate int) error {
	return ff.append(rateCall(pf, vf, minRate, maxRate))
}

// VF replays the file for one VF.
func (ff FileFake) VF(pf string, vf int) (VFState, error) {
	calls, err := ReadCalls(ff.Path)
	if err != nil {
		return VFState{}, err
	}
	return StateOf(calls, pf, vf), nil
}
