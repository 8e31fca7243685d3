package inspect

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/podnet"
	sriovcni "github.com/plexus-cni/plexus/pkg/sriov/cni"
)

// now is the fixture's clock.
var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	idWeb     = "0123456789abcdef0123456789abcdef"
	idGone    = "1111111111111111aaaa"
	idIncompl = "2222222222222222bbbb"
	idBoth    = "3333333333333333cccc"
	idMultus  = "4444444444444444dddd"
	idLeaked  = "5555555555555555eeee"
)

const (
	priConf   = `{"cniVersion":"1.0.0","name":"kindnet","plugins":[{"type":"ptp"}]}`
	sriovConf = `{"cniVersion":"1.0.0","name":"sriov-a","plugins":[{"type":"sriov"}]}`
)

// fixture is a node: plexus's cache with four containers, Multus's cache
// with one, the sriov plugin's state of one VF, sriov-cni's of another, a
// leak record, and netns paths of which some exist (plain files: no root
// needed).
type fixture struct {
	dir   string
	node  *Node
	netns func(name string) string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: dir, node: &Node{Paths: Paths{
		CNIDir:         filepath.Join(dir, "plexus"),
		SriovStateDir:  filepath.Join(dir, "sriov"),
		MultusCacheDir: filepath.Join(dir, "multus"),
		DeviceInfoDir:  filepath.Join(dir, "devinfo"),
		BinDir:         filepath.Join(dir, "bin"),
	}, Now: func() time.Time { return now }}}
	f.netns = func(name string) string { return filepath.Join(dir, "netns", name) }
	mustWrite(t, f.netns("web"), "")
	mustWrite(t, f.netns("incompl"), "")

	store := cache.Store{Dir: f.node.CNIDir}
	save := func(e *podnet.Entry, age time.Duration) {
		t.Helper()
		if err := store.Save(e); err != nil {
			t.Fatal(err)
		}
		mt := now.Add(-age)
		if err := os.Chtimes(filepath.Join(store.ContainerDir(e.ContainerID), "intent.json"), mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	save(&podnet.Entry{ContainerID: idWeb, NetNS: f.netns("web"), PodNamespace: "default", PodName: "web-1", PodUID: "uid-web",
		CNIVersion: "1.0.0", Attachments: []podnet.Attachment{
			{Network: "kindnet", IfName: "eth0", Primary: true, ConfList: json.RawMessage(priConf), Added: true,
				Result: json.RawMessage(`{"cniVersion":"1.0.0","interfaces":[{"name":"veth1","mac":"ee:ee:ee:ee:ee:01"},{"name":"eth0","mac":"0a:58:0a:f4:00:05","sandbox":"/x"}],"ips":[{"address":"10.244.0.5/24","interface":1},{"address":"fd00::5/64","interface":1}]}`)},
			{Network: "default/sriov-a", IfName: "net1", ConfList: json.RawMessage(sriovConf), Added: true,
				ResourceName: "plexus.io/sriov_a", DeviceID: "0000:3b:02.1",
				// An older result version: converted.
				Result: json.RawMessage(`{"cniVersion":"0.3.1","interfaces":[{"name":"net1","mac":"02:00:00:00:00:21","sandbox":"/x"}],"ips":[{"version":"4","address":"192.168.1.10/24","interface":0}]}`)},
		}}, 90*time.Second)
	save(&podnet.Entry{ContainerID: idGone, NetNS: f.netns("gone"), PodNamespace: "default", PodName: "old-1",
		CNIVersion: "1.0.0", Attachments: []podnet.Attachment{
			{Network: "kindnet", IfName: "eth0", Primary: true, ConfList: json.RawMessage(priConf), Added: true},
		}}, 3*time.Hour)
	save(&podnet.Entry{ContainerID: idIncompl, NetNS: f.netns("incompl"), PodNamespace: "kube-system", PodName: "dns",
		CNIVersion: "1.0.0", Incomplete: true, DelAttempts: 1, LastDelError: "plugin \"ptp\": boom",
		Attachments: []podnet.Attachment{{Network: "kindnet", IfName: "eth0", Primary: true, ConfList: json.RawMessage(priConf), Added: true}},
	}, 26*time.Hour)
	save(&podnet.Entry{ContainerID: idBoth, NetNS: "", PodNamespace: "default", PodName: "batch",
		CNIVersion: "1.0.0", Incomplete: true, DelAttempts: 2, LastDelError: "timeout",
		Attachments: []podnet.Attachment{{Network: "kindnet", IfName: "eth0", Primary: true, ConfList: json.RawMessage(priConf), Added: true}},
	}, 10*24*time.Hour)

	// Multus's cache of a pod it attached before the switch.
	mpath := filepath.Join(f.node.MultusCacheDir, idMultus)
	mustWrite(t, mpath, `[{"Name":"kindnet","Bytes":"e30="},{"Name":"default/sriov-b","ifnameRequest":"net1","deviceID":"0000:3b:02.2","Bytes":"e30="}]`)
	mt := now.Add(-40 * 24 * time.Hour)
	if err := os.Chtimes(mpath, mt, mt); err != nil {
		t.Fatal(err)
	}

	// The sriov plugin's state of the VF the web pod holds, with its lock.
	sriov := sriovcni.Store{Dir: f.node.SriovStateDir}
	if err := sriov.Save(&sriovcni.State{DeviceID: "0000:3b:02.1", ContainerID: idWeb, IfName: "net1", NetNS: f.netns("web"),
		PFName: "ens1f0", VFIndex: 1, MAC: "02:00:00:00:00:21"}); err != nil {
		t.Fatal(err)
	}
	unlock, err := sriov.Lock("0000:3b:02.1")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	// sriov-cni's state of the VF Multus's pod holds (its format:
	// pkg/sriov/cni/upstream.go).
	mustWrite(t, filepath.Join(f.node.SriovStateDir, idMultus+"-net1"),
		`{"cniVersion":"0.3.1","name":"sriov-b","type":"sriov","deviceID":"0000:3b:02.2","Master":"ens1f1","VFID":2,"OrigVfState":{"HostIFName":"ens1f1v2","EffectiveMAC":"02:aa:00:00:00:02"}}`)
	mustWrite(t, filepath.Join(f.node.SriovStateDir, "pci", "0000:3b:02.2"), "/var/run/netns/cni-old")
	// Not state: ignored.
	mustWrite(t, filepath.Join(f.node.SriovStateDir, "notes.txt"), "hello")

	// A leak record as pkg/attach writes it when DEL gives up.
	b, _ := json.Marshal(&podnet.Entry{ContainerID: idLeaked, NetNS: f.netns("leak"), PodNamespace: "default", PodName: "leaky",
		Incomplete: true, DelAttempts: 3, LastDelError: "plugin \"sriov\": PF gone",
		Attachments: []podnet.Attachment{{Network: "default/sriov-a", IfName: "net1"}}})
	mustWrite(t, filepath.Join(f.node.CNIDir, "leaked", idLeaked+".json"), string(b))
	return f
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// run runs plexusctl against the fixture's paths.
func (f *fixture) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	n := *f.node
	code := MainContext(t.Context(), args, &out, &errb, &n)
	return out.String(), errb.String(), code
}

// expand replaces @DIR@ with the fixture's directory.
func (f *fixture) expand(s string) string { return strings.ReplaceAll(s, "@DIR@", f.dir) }

// update rewrites the golden files from the output (review the diff).
var update = flag.Bool("update", false, "rewrite testdata/*.json")

// assertGolden compares got with testdata/name, in which the fixture's
// directory is written @DIR@.
func (f *fixture) assertGolden(t *testing.T, got, name string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(got, f.dir, "@DIR@")), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	assertOutput(t, got, f.expand(string(b)))
}

func assertOutput(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}

// relative rewrites the fixture's directory to "/run" so that table
// columns line up the same in every run.
func (f *fixture) relative(s string) string { return strings.ReplaceAll(s, f.dir, "/run") }

func TestContainersTable(t *testing.T) {
	f := newFixture(t)
	cs, err := f.node.Containers()
	if err != nil {
		t.Fatal(err)
	}
	for i := range cs {
		cs[i].NetNS = f.relative(cs[i].NetNS)
	}
	var out bytes.Buffer
	if err := WriteContainersTable(&out, cs); err != nil {
		t.Fatal(err)
	}
	assertOutput(t, out.String(), `CONTAINER     POD              NETNS               AGE  STATE       NETWORK          INTERFACE  IPS                       MAC                DEVICE
0123456789ab  default/web-1    /run/netns/web      90s  attached    kindnet          eth0       10.244.0.5/24,fd00::5/64  0a:58:0a:f4:00:05  -
                                                                    default/sriov-a  net1       192.168.1.10/24           02:00:00:00:00:21  0000:3b:02.1
111111111111  default/old-1    /run/netns/gone     3h   attached    kindnet          eth0       -                         -                  -
222222222222  kube-system/dns  /run/netns/incompl  26h  incomplete  kindnet          eth0       -                         -                  -
333333333333  default/batch    -                   10d  incomplete  kindnet          eth0       -                         -                  -
444444444444  -                -                   40d  multus      kindnet          eth0       -                         -                  -
                                                                    default/sriov-b  net1       -                         -                  0000:3b:02.2
`)
}

func TestContainersJSON(t *testing.T) {
	f := newFixture(t)
	out, errOut, code := f.run(t, "containers", "-o", "json")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	f.assertGolden(t, out, "containers.json")
}

func TestVFs(t *testing.T) {
	f := newFixture(t)
	out, errOut, code := f.run(t, "vfs")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	assertOutput(t, out, `DEVICE        PF      VF  POD            CONTAINER     INTERFACE  NETWORK          SOURCE
0000:3b:02.1  ens1f0  1   default/web-1  0123456789ab  net1       default/sriov-a  plexus
0000:3b:02.2  ens1f1  2   -              444444444444  net1       default/sriov-b  sriov-cni
`)
	out, errOut, code = f.run(t, "vfs", "-o", "json")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	f.assertGolden(t, out, "vfs.json")
}

func TestStale(t *testing.T) {
	f := newFixture(t)
	ss, err := f.node.Stale()
	if err != nil {
		t.Fatal(err)
	}
	for i := range ss {
		ss[i].NetNS = f.relative(ss[i].NetNS)
	}
	var out bytes.Buffer
	if err := WriteStaleTable(&out, ss); err != nil {
		t.Fatal(err)
	}
	assertOutput(t, out.String(), `CONTAINER     POD              KIND    NETNS               ACTION  REASON
111111111111  default/old-1    entry   /run/netns/gone     del     netns gone
222222222222  kube-system/dns  entry   /run/netns/incompl  none    incomplete after 1 failed DEL(s): plugin "ptp": boom; netns exists: left to the runtime's DEL
333333333333  default/batch    entry   -                   del     incomplete after 2 failed DEL(s): timeout; netns gone (a DEL ran after it was)
555555555555  default/leaky    leaked  /run/netns/leak     none    DEL gave up after 3 attempts: plugin "sriov": PF gone; free by hand, then remove the record
`)
	j, errOut, code := f.run(t, "stale", "-o", "json")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	f.assertGolden(t, j, "stale.json")
}

func TestNetNSState(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "netns", "cni-1"), "")
	for _, tc := range []struct {
		path, want string
	}{
		{filepath.Join(dir, "netns", "cni-1"), NetNSExists},
		{filepath.Join(dir, "netns", "cni-2"), NetNSGone},
		{"", NetNSGone}, // what a DEL after the netns was gone records
		// Its directory missing too: not the host's mounts; no judgement.
		{filepath.Join(dir, "nosuchdir", "cni-1"), NetNSUnknown},
		{"/proc/999999999/ns/net", NetNSGone},
		{"/proc/self/ns/net", NetNSExists},
	} {
		if got := netnsState(tc.path); got != tc.want {
			t.Errorf("netnsState(%q) = %s, want %s", tc.path, got, tc.want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pods"}, `unknown command "pods"`},
		{[]string{"containers", "--dry-run"}, "--dry-run is a flag of gc"},
		{[]string{"-o", "yaml"}, `-o "yaml": want table or json`},
		{[]string{"vfs", "extra"}, `unexpected argument "extra"`},
	} {
		out, errOut, code := f.run(t, tc.args...)
		if code != ExitUsage || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, out, errOut, ExitUsage, tc.want)
		}
	}
}
