package kube_test

// The daemon deployment against a real kube-apiserver: plexusd (the built
// binary) with the plexus ServiceAccount's token, the plexus shim exec'd as
// a runtime would, with "daemonSocket" in its config. plexusd reaches the
// API through apiProxy, a TCP forwarder the test can cut, to play the API
// server going away for plexusd alone.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/testutils"

	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/testutil"
)

// apiProxy forwards TCP connections to the API server until blocked; a
// blocked proxy resets every connection, open or new.
type apiProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	blocked bool
	conns   map[net.Conn]bool
}

func newAPIProxy(t testing.TB, target string) *apiProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &apiProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.block() })
	return p
}

func (p *apiProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.blocked {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close(); c.Close() }()
		go func() { io.Copy(c, up); up.Close(); c.Close() }()
	}
}

func (p *apiProxy) block() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = true
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

func (p *apiProxy) unblock() {
	p.mu.Lock()
	p.blocked = false
	p.mu.Unlock()
}

// plexusd is a plexusd the test runs, reaching the API through a proxy.
type plexusd struct {
	*testutil.Plexusd
	sock  string
	proxy *apiProxy
}

// startPlexusd runs plexusd for the kubeEnv's node, with the plexus
// ServiceAccount's kubeconfig pointed at a proxy, and makes the shim use it.
func (k *kubeEnv) startPlexusd(extra ...string) *plexusd {
	k.t.Helper()
	if k.node == "" {
		k.node = "pxd-node-" + k.Suffix
	}
	b, err := os.ReadFile(k.kubeconfig)
	if err != nil {
		k.t.Fatal(err)
	}
	host := strings.TrimPrefix(k.cp.RestConfig().Host, "https://")
	proxy := newAPIProxy(k.t, host)
	kc := filepath.Join(k.Dir, "plexusd.kubeconfig")
	if err := os.WriteFile(kc, []byte(strings.ReplaceAll(string(b), host, proxy.ln.Addr().String())), 0o600); err != nil {
		k.t.Fatal(err)
	}
	sock := filepath.Join(k.Dir, "run", "plexusd.sock")
	k.Extra["daemonSocket"] = sock
	d := testutil.StartPlexusd(k.t, sock, filepath.Join(k.Dir, "plexusd.log"), append([]string{"--kubeconfig", kc,
		"--node-name", k.node, "--cni-dir", k.CNIDir, "--bin-dir", k.BinDir}, extra...)...)
	return &plexusd{Plexusd: d, sock: sock, proxy: proxy}
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (k *kubeEnv) outbox() []string {
	ents, _ := os.ReadDir(filepath.Join(k.CNIDir, "outbox"))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestDaemonAddFromCache: with plexusd, ADD resolves from its informers
// (no API request on the ADD path), the status is published once by
// plexusd, DEL makes no request and nothing is left.
func TestDaemonAddFromCache(t *testing.T) {
	k := newKubeEnv(t)
	d := k.startPlexusd()
	k.bridgeNAD("default", "d-br-1", 1)
	k.bridgeNAD("default", "d-br-2", 2)
	p := k.createPod("dadd", "d-br-1,d-br-2@data0")
	apiBefore := d.Metric("plexus_api_requests_total", `verb="GET"`) + d.Metric("plexus_api_requests_total", `verb="LIST"`)
	if _, err := k.Add(p); err != nil {
		t.Fatalf("ADD: %v\nshim log:\n%s\nplexusd log:\n%s", err, k.Log(), d.Log())
	}
	if m := regexp.MustCompile(`msg="ADD timing".*`).FindAllString(k.Log(), -1); len(m) > 0 {
		t.Log(m[len(m)-1])
	}
	t.Logf("plexusd resolved in %.2f ms", 1000*d.Metric("plexus_resolve_duration_seconds_sum")/d.Metric("plexus_resolve_duration_seconds_count"))
	if got := len(k.Links(p)); got != 3 {
		t.Fatalf("%d interfaces in the pod, want 3", got)
	}
	// The shim's cache entry records where each attachment came from (as
	// plexusd resolved it), which hot-plug goes by.
	var entry podnet.Entry
	b, _ := os.ReadFile(filepath.Join(k.CNIDir, "containers", p.ContainerID, "intent.json"))
	if err := json.Unmarshal(b, &entry); err != nil || len(entry.Attachments) != 3 ||
		entry.Attachments[0].Origin != podnet.OriginPrimary || entry.Attachments[1].Origin != podnet.OriginAnnotation || entry.Attachments[2].Origin != podnet.OriginAnnotation {
		t.Errorf("the shim's cache entry does not record the origins (primary, annotation, annotation): %s (%v)", b, err)
	}
	waitFor(t, 2*time.Second, "network-status on the pod", func() bool { return len(k.podStatus(p)) == 3 })
	st := k.podStatus(p)
	if st[2].Interface != "data0" || st[2].Name != "default/d-br-2" || !st[0].Default {
		t.Errorf("network-status: %+v", st)
	}
	if miss := d.Metric("plexus_cache_lookups_total", `outcome="miss"`); miss > 0 {
		// The pod and NADs were created before; a miss is possible only if
		// the watch was slower than this test: report it, it costs requests.
		t.Logf("%v informer misses", miss)
	} else {
		apiAfter := d.Metric("plexus_api_requests_total", `verb="GET"`) + d.Metric("plexus_api_requests_total", `verb="LIST"`)
		if apiAfter != apiBefore {
			t.Errorf("ADD from the informers made %v GET/LIST requests, want 0", apiAfter-apiBefore)
		}
	}
	if n := d.Metric("plexus_api_requests_total", `verb="PATCH"`, `resource="pods/status"`); n != 1 {
		t.Errorf("%v status PATCHes, want 1", n)
	}
	if n := d.Metric("plexus_api_requests_total", `verb="POST"`, `resource="events"`); n != 1 {
		t.Errorf("%v Events, want 1", n)
	}
	if n := d.Metric("plexus_resolve_duration_seconds_count", `result="success"`); n != 1 {
		t.Errorf("%v successful resolutions counted, want 1", n)
	}
	if n := d.Metric("plexus_cni_operations_total", `command="ADD"`, `result="success"`); n != 1 {
		t.Errorf("plexus_cni_operations_total ADD success = %v, want 1", n)
	}
	if n := d.Metric("plexus_delegate_duration_seconds_count", `command="ADD"`, `plugins="bridge"`); n != 3 {
		t.Errorf("%v delegate ADDs observed, want 3", n)
	}
	waitFor(t, 2*time.Second, "the outbox emptied", func() bool { return len(k.outbox()) == 0 })
	reqs := d.Metric("plexus_api_requests_total")
	if err := k.Del(p); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	k.AssertClean(p)
	if n := d.Metric("plexus_api_requests_total") - reqs; n != 0 {
		t.Errorf("DEL made %v API requests, want 0", n)
	}
	if n := d.Metric("plexus_shim_fallbacks_total"); n != 0 {
		t.Errorf("%v fallbacks, want 0", n)
	}
}

// TestDaemonResolveErrorNamesPodNetworkField: a bad NAD is refused by
// plexusd with the thin path's message and a Warning event; nothing is left.
func TestDaemonResolveError(t *testing.T) {
	k := newKubeEnv(t)
	d := k.startPlexusd()
	k.bridgeNAD("default", "d-ok", 1)
	p := k.createPod("dbad", "d-ok,d-missing")
	_, err := k.Add(p)
	want := fmt.Sprintf(`pod default/%s: network "default/d-missing"`, p.Name)
	if err == nil || !strings.HasPrefix(strings.TrimPrefix(err.Error(), "plugin type=\"plexus\" failed (add): "), want) {
		t.Fatalf("ADD: %v, want an error starting %q", err, want)
	}
	k.AssertClean(p)
	waitFor(t, 5*time.Second, "a Warning event naming the network", func() bool {
		for _, ev := range k.events(p) {
			if ev.Type == "Warning" && strings.Contains(ev.Message, "default/d-missing") {
				return true
			}
		}
		return false
	})
	// A pod re-created under the same name (another UID) is a final
	// answer too, not plexusd being unable to answer.
	p2 := k.createPod("duid", "d-ok")
	p2.UID = "0b5e7c1e-0000-4000-8000-000000000000"
	_, err = k.Add(p2)
	if err == nil || !strings.Contains(err.Error(), "differs from K8S_POD_UID "+p2.UID) {
		t.Fatalf("ADD with another pod's UID: %v", err)
	}
	k.AssertClean(p2)
	if n := d.Metric("plexus_shim_fallbacks_total"); n != 0 {
		t.Errorf("a final resolution error fell back to the thin path (%v)", n)
	}
	if strings.Contains(k.Log(), "running the thin path") {
		t.Errorf("the shim ran the thin path for a final error:\n%s", k.Log())
	}
}

// TestDaemonDownFallsBack: with plexusd configured but not running, ADD
// and DEL run the thin path in full; the fallback is logged, and counted
// once plexusd runs again.
func TestDaemonDownFallsBack(t *testing.T) {
	k := newKubeEnv(t)
	d := k.startPlexusd()
	k.bridgeNAD("default", "f-br", 1)
	d.Kill() // its socket file stays: connection refused
	p := k.createPod("fb", "f-br")
	if _, err := k.Add(p); err != nil {
		t.Fatalf("ADD with plexusd down: %v\n%s", err, k.Log())
	}
	if len(k.podStatus(p)) != 2 {
		t.Errorf("the thin path did not publish network-status: %+v", k.podStatus(p))
	}
	if !strings.Contains(k.Log(), "plexusd did not answer: running the thin path") {
		t.Errorf("no fallback line in the log:\n%s", k.Log())
	}
	os.Remove(d.sock) // no socket at all: the same
	if err := k.Del(p); err != nil {
		t.Fatalf("DEL with plexusd down: %v", err)
	}
	k.AssertClean(p)
	d.Start()
	waitFor(t, 5*time.Second, "fallbacks counted", func() bool {
		return d.Metric("plexus_shim_fallbacks_total", `command="ADD"`) == 1
	})
	if len(k.outbox()) != 0 {
		t.Errorf("outbox not empty after counting: %v", k.outbox())
	}
}

// TestDaemonKilledBeforePublication: plexusd cannot reach the API when the
// ADD's status is handed over (the ADD succeeds from its caches), is
// SIGKILLed, and publishes the status after its restart.
func TestDaemonKilledBeforePublication(t *testing.T) {
	k := newKubeEnv(t)
	d := k.startPlexusd()
	k.bridgeNAD("default", "k-br", 1)
	p := k.createPod("kill", "k-br")
	waitFor(t, 5*time.Second, "the pod in plexusd's informer", func() bool {
		return d.Metric("plexus_informer_synced", `resource="pods"`) == 1
	})
	time.Sleep(300 * time.Millisecond) // let the watch deliver the pod and NAD (a miss would need the API below)
	d.proxy.block()
	if _, err := k.Add(p); err != nil {
		t.Fatalf("ADD with the API unreachable for plexusd: %v\n%s\n%s", err, k.Log(), d.Log())
	}
	if len(k.outbox()) != 1 {
		t.Fatalf("outbox %v, want the ADD's record", k.outbox())
	}
	if len(k.podStatus(p)) != 0 {
		t.Fatal("network-status published although plexusd cannot reach the API")
	}
	d.Kill()
	d.proxy.unblock()
	d.Start()
	waitFor(t, 10*time.Second, "network-status after the restart", func() bool { return len(k.podStatus(p)) == 2 })
	waitFor(t, 2*time.Second, "the outbox emptied", func() bool { return len(k.outbox()) == 0 })
	if err := k.Del(p); err != nil {
		t.Fatal(err)
	}
	k.AssertClean(p)
}

// TestDaemonAPIDownThenBack: the API goes away for plexusd while it runs;
// an ADD whose pod and NADs are cached succeeds, and its status is
// published when the API is back.
func TestDaemonAPIDownThenBack(t *testing.T) {
	k := newKubeEnv(t)
	d := k.startPlexusd()
	k.bridgeNAD("default", "a-br", 1)
	p := k.createPod("apidown", "a-br")
	time.Sleep(300 * time.Millisecond)
	d.proxy.block()
	if _, err := k.Add(p); err != nil {
		t.Fatalf("ADD with the API down: %v\n%s", err, k.Log())
	}
	time.Sleep(500 * time.Millisecond)
	if len(k.podStatus(p)) != 0 {
		t.Fatal("published with the API down")
	}
	d.proxy.unblock()
	waitFor(t, 35*time.Second, "network-status once the API is back", func() bool { return len(k.podStatus(p)) == 2 })
	if n := d.Metric("plexus_shim_fallbacks_total"); n != 0 {
		t.Errorf("%v fallbacks, want 0 (the caches answered)", n)
	}
}

// TestDaemonGCSandboxGone: a sandbox whose netns disappears without a DEL
// (removed behind the runtime's back) is collected by plexusd's GC: its
// delegates' DEL frees the IP, its cache entry goes.
func TestDaemonGCSandboxGone(t *testing.T) {
	k := newKubeEnv(t)
	d := k.startPlexusd("--gc-interval", "200ms", "--gc-grace", "1ms")
	k.bridgeNAD("default", "g-br", 1)
	p := k.createPod("gc", "g-br")
	if _, err := k.Add(p); err != nil {
		t.Fatal(err)
	}
	if len(k.Leases()) != 2 || len(k.CacheEntries()) != 1 {
		t.Fatalf("leases %v, entries %v", k.Leases(), k.CacheEntries())
	}
	// Behind the runtime's back: the netns goes, no DEL.
	p.NS.Close()
	if err := testutils.UnmountNS(p.NS); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "GC of the gone sandbox", func() bool { return len(k.CacheEntries()) == 0 })
	if l := k.Leases(); len(l) != 0 {
		t.Errorf("leases left after GC: %v", l)
	}
	// The entry goes inside the DEL; the metric counts it right after.
	waitFor(t, 2*time.Second, "plexus_gc_removed_total 1", func() bool {
		return d.Metric("plexus_gc_removed_total", `result="success"`) == 1
	})
}

// TestDaemonMalformedRequest: garbage on the socket gets a clear error and
// plexusd keeps serving.
func TestDaemonMalformedRequest(t *testing.T) {
	k := newKubeEnv(t)
	d := k.startPlexusd()
	for _, junk := range []string{"not json", `{"version":1,"op":"resolve","bogus":1}`, `{"version":99,"op":"ping"}`, `{"version":1,"op":"nope"}`} {
		c, err := net.Dial("unix", d.sock)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(junk))
		c.(*net.UnixConn).CloseWrite()
		b, _ := io.ReadAll(c)
		c.Close()
		if !strings.Contains(string(b), `"error"`) || !(strings.Contains(string(b), "malformed request") || strings.Contains(string(b), "unknown op")) {
			t.Errorf("%q: answer %s", junk, b)
		}
	}
	if n := d.Metric("plexus_socket_bad_requests_total"); n != 4 {
		t.Errorf("plexus_socket_bad_requests_total = %v, want 4", n)
	}
	// Still serving: an ADD through it works.
	k.bridgeNAD("default", "m-br", 1)
	p := k.createPod("malformed", "m-br")
	if _, err := k.Add(p); err != nil {
		t.Fatal(err)
	}
	if err := k.Del(p); err != nil {
		t.Fatal(err)
	}
}
