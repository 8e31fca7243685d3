package shim

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/outbox"
	"github.com/plexus-cni/plexus/pkg/podnet"
	tu "github.com/plexus-cni/plexus/pkg/testutil"
)

// The shim's DEL in this process, over a real cache and outbox, with
// pkg/testutil/testplugin as the delegate. No plexusd answers: the cache
// entry tells DEL what to delete, so it never needs one (nor falls back).

type delEnv struct {
	t     *testing.T
	args  *skel.CmdArgs
	box   outbox.Box
	store cache.Store
	hold  string // testplugin's holdDel directory
}

func newDelEnv(t *testing.T, plugin string, delAttempts int) *delEnv {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	hold := filepath.Join(dir, "hold")
	for _, d := range []string{bin, hold} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(tu.BuildPackage(t, "testplugin", "./pkg/testutil/testplugin"), filepath.Join(bin, "testplugin")); err != nil {
		t.Fatal(err)
	}
	cniDir := filepath.Join(dir, "cni")
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "plexus-net", "type": "plexus",
		"clusterNetwork": "/nonexistent/primary.conflist", "kubeconfig": "/nonexistent/kubeconfig",
		"daemonSocket": filepath.Join(dir, "plexusd.sock"), "cniDir": cniDir, "binDir": bin,
		"deviceInfoDir": filepath.Join(dir, "devinfo"), "logFile": filepath.Join(dir, "plexus.log"), "logToStderr": false})
	e := &delEnv{t: t, box: outbox.Box{Dir: outbox.Dir(cniDir)}, store: cache.Store{Dir: cniDir}, hold: hold,
		args: &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Args: "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u1", Path: bin, StdinData: conf}}
	plugin = `{"cniVersion":"1.0.0","name":"held","plugins":[{"type":"testplugin","holdDel":"` + hold + `"` + plugin + `}]}`
	if err := e.store.Save(&podnet.Entry{ContainerID: "c1", PodNamespace: "ns", PodName: "p", PodUID: "u1", CNIVersion: "1.0.0", DelAttempts: delAttempts,
		Attachments: []podnet.Attachment{{Network: "ns/held", IfName: "net1", ConfList: json.RawMessage(plugin), Added: true,
			Result: json.RawMessage(`{"cniVersion":"1.0.0"}`)}}}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *delEnv) write(kind, cid string) {
	e.t.Helper()
	if err := e.box.Write(&outbox.Record{Kind: kind, ContainerID: cid, Pod: podnet.PodRef{Namespace: "ns", Name: "p", UID: "u1"},
		Entry: &podnet.Entry{}, Warnings: []string{kind + " " + cid}}); err != nil {
		e.t.Fatal(err)
	}
}

// del runs the shim's DEL; during the delegate's DEL (the pod's lock held)
// it runs during.
func (e *delEnv) del(during func()) error {
	e.t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- cmdDel(e.args) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(e.hold, "held")); err == nil {
			break
		}
		select {
		case err := <-errc:
			e.t.Fatalf("DEL returned before its delegate ran: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatal("the delegate's DEL never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	during()
	if err := os.WriteFile(filepath.Join(e.hold, "release"), nil, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return <-errc
}

func (e *delEnv) kinds(cid string) []string {
	var out []string
	for _, k := range []string{outbox.KindAttached, outbox.KindFailed, outbox.KindWarned} {
		if e.box.Pending(cid, k) {
			out = append(out, k)
		}
	}
	return out
}

// DEL drops its container's outbox records under the pod's lock, after
// the delegates' DEL: a record written meanwhile (a hot-plug pass that
// held the lock before the DEL got it writes its status then) does not
// outlive the DEL, so nothing is published for the sandbox that is gone.
// Another container's records stay.
func TestDelDropsRecordsWrittenDuringIt(t *testing.T) {
	e := newDelEnv(t, "", 0)
	e.write(outbox.KindAttached, "c1") // its ADD's
	e.write(outbox.KindAttached, "c2")
	err := e.del(func() {
		e.write(outbox.KindAttached, "c1")
		e.write(outbox.KindWarned, "c1")
	})
	if err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if k := e.kinds("c1"); len(k) != 0 {
		t.Errorf("records of the deleted container survive its DEL: %v", k)
	}
	if k := e.kinds("c2"); len(k) != 1 {
		t.Errorf("records of another container: %v, want its attached record", k)
	}
	if entry, _ := e.store.Load("c1"); entry != nil {
		t.Errorf("cache entry left: %+v", entry)
	}
}

// A DEL that gives up (the delegate's DEL failed MaxDelAttempts times)
// says so in a Warning: that record is written after the container's
// records are dropped, so it stays to be published.
func TestDelGiveUpWarningSurvives(t *testing.T) {
	e := newDelEnv(t, `,"failDel":true`, 2)
	e.write(outbox.KindAttached, "c1")
	if err := e.del(func() {}); err != nil {
		t.Fatalf("DEL that gives up: %v, want success", err)
	}
	if k := e.kinds("c1"); len(k) != 1 || k[0] != outbox.KindWarned {
		t.Fatalf("records after a DEL that gave up: %v, want only its warning", k)
	}
	recs, _ := e.box.List()
	if len(recs) != 1 || len(recs[0].Warnings) != 1 || recs[0].Pod.Name != "p" {
		t.Errorf("warning record: %+v", recs)
	}
}
