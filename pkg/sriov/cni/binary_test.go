package cni

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/plexus-cni/plexus/pkg/sriov/pf"
	"github.com/plexus-cni/plexus/pkg/testutil"
	"github.com/plexus-cni/plexus/pkg/testutil/sriovseams"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// productionBinary builds cmd/sriov — the shipped binary, without test
// seams — once per test run into a temp dir, so the test never runs a stale
// bin/sriov. Tests that need a fake PF and sysfs exec
// testutil.SriovTestBinary instead.
func productionBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sriov-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "sriov")
		cmd := exec.Command("go", "build", "-o", builtBin, "./cmd/sriov")
		cmd.Dir = testutil.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/sriov: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		_ = os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// runtimeCall is one invocation of the binary the way a container runtime
// makes it: CNI_* environment, config on stdin, result or error on stdout.
type runtimeCall struct {
	bin string
	env []string // added to the CNI_* variables (e.g. the test binary's seams)
}

func (r runtimeCall) run(command, cid, netns, ifname string, conf []byte) ([]byte, error) {
	cmd := exec.Command(r.bin)
	cmd.Env = []string{
		"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + cid, "CNI_NETNS=" + netns, "CNI_IFNAME=" + ifname,
		"CNI_PATH=" + testutil.CNIBinDir(), "PATH=" + os.Getenv("PATH"),
	}
	cmd.Env = append(cmd.Env, r.env...)
	cmd.Stdin = bytes.NewReader(conf)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v: stdout %s stderr %s", r.bin, command, err, out, stderr.String())
	}
	return out, nil
}

func TestBinaryAsRuntime(t *testing.T) {
	f := newFixture(t, 2, "")
	bin := testutil.SriovTestBinary(t)
	fakePF := filepath.Join(t.TempDir(), "pf.jsonl")
	for _, vf := range f.vfs {
		s := pf.DefaultVFState()
		s.MAC = fmt.Sprintf("02:11:22:33:44:%02x", vf.Index)
		if err := pf.SeedFile(fakePF, f.pfName, vf.Index, s); err != nil {
			t.Fatal(err)
		}
	}
	seams := sriovseams.Seams{SysfsRoot: f.tree.Root, FakePF: fakePF, DeviceInfoDir: f.devinfoBase}
	rt := runtimeCall{bin: bin, env: seams.Env()}
	vf := f.vfs[0]
	podNS := testutil.NewNS(t)
	devinfo := f.devinfo("sriovnet-ctr1-net1-device.json")
	conf := f.conf("1.0.0", "", fullSettings+fmt.Sprintf(`,"runtimeConfig":{"deviceID":%q,"CNIDeviceInfoFile":%q}`, vf.Addr, devinfo))

	out, err := rt.run("ADD", "ctr1", podNS.Path(), "net1", conf)
	if err != nil {
		t.Fatal(err)
	}
	var res current.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ADD output %s: %v", out, err)
	}
	if res.CNIVersion != "1.0.0" || len(res.Interfaces) != 1 || res.Interfaces[0].Mac != "02:aa:bb:cc:dd:01" || len(res.IPs) != 1 {
		t.Errorf("ADD result %s", out)
	}
	err = podNS.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName("net1")
		if err == nil && l.Attrs().HardwareAddr.String() != "02:aa:bb:cc:dd:01" {
			err = fmt.Errorf("net1 MAC %s", l.Attrs().HardwareAddr)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(devinfo); err != nil {
		t.Errorf("device-info file: %v", err)
	}
	calls, err := pf.ReadCalls(fakePF)
	if err != nil {
		t.Fatal(err)
	}
	want := pf.VFState{MAC: "02:aa:bb:cc:dd:01", Vlan: 100, Qos: 3, VlanProto: pf.VlanProto8021AD, Trust: true,
		LinkState: pf.LinkStateEnable, MinTxRate: 10, MaxTxRate: 500}
	if got := pf.StateOf(calls, f.pfName, vf.Index); got != want {
		t.Errorf("fake PF state after ADD %+v, want %+v", got, want)
	}
	nAdd := len(calls)

	if _, err := rt.run("CHECK", "ctr1", podNS.Path(), "net1", withPrev(t, conf, &res)); err != nil {
		t.Errorf("CHECK: %v", err)
	}

	// Another pod asking for the same VF gets a CNI error naming the holder.
	other := testutil.NewNS(t)
	out, err = rt.run("ADD", "ctr2", other.Path(), "net1", conf)
	if err == nil || !strings.Contains(string(out), "in use by container ctr1") || !strings.Contains(string(out), `"code"`) {
		t.Errorf("second ADD: %v", err)
	}

	if _, err := rt.run("DEL", "ctr1", podNS.Path(), "net1", conf); err != nil {
		t.Fatal(err)
	}
	calls, _ = pf.ReadCalls(fakePF)
	seed := pf.DefaultVFState()
	seed.MAC = "02:11:22:33:44:00"
	if got := pf.StateOf(calls, f.pfName, vf.Index); got != seed {
		t.Errorf("fake PF state after DEL %+v, want %+v", got, seed)
	}
	if n := len(calls) - nAdd; n != 6 {
		t.Errorf("DEL made %d PF calls, want 6 restores: %v", n, calls[nAdd:])
	}
	f.rec = nil
	if _, err := netlinksafe.LinkByName(vf.Netdev); err != nil {
		t.Errorf("VF netdev %s not back: %v", vf.Netdev, err)
	}
	if l := f.leases(t); len(l) != 0 {
		t.Errorf("leases left %v", l)
	}
	if _, err := rt.run("DEL", "ctr1", podNS.Path(), "net1", conf); err != nil {
		t.Errorf("second DEL: %v", err)
	}

	// Bad config: CNI error naming the key, non-zero exit.
	out, err = rt.run("ADD", "ctr3", podNS.Path(), "net1", f.conf("1.0.0", vf.Addr, `"vlan":5000`))
	if err == nil || !strings.Contains(string(out), `key \"vlan\": 5000 out of range`) {
		t.Errorf("bad vlan: %v", err)
	}
	seams.FakePF += ".missing"
	out, err = (runtimeCall{bin: bin, env: seams.Env()}).run("ADD", "ctr4", podNS.Path(), "net1", conf)
	if err == nil || !strings.Contains(string(out), sriovseams.EnvFakePF) {
		t.Errorf("missing fake PF file: %v", err)
	}
	out, err = rt.run("VERSION", "", "", "", []byte(`{"cniVersion":"1.0.0"}`))
	if err != nil || !strings.Contains(string(out), `"1.1.0"`) || !strings.Contains(string(out), `"0.3.1"`) {
		t.Errorf("VERSION: %s %v", out, err)
	}
}
