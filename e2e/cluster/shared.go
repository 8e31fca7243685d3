package cluster

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"
)

// shared holds what Shared and SharedNode started for this test binary.
var shared struct {
	mu       sync.Mutex
	main     bool
	cp       *ControlPlane
	cpErr    error
	node     *Node
	nodeOpts NodeOptions
	nodeErr  error
	teardown []func()
}

// Shared returns the control plane shared by the tests of this binary,
// starting it on first use. TestMain must call Main, which stops it.
func Shared(t testing.TB) *ControlPlane {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		t.Fatal("cluster.Shared needs `func TestMain(m *testing.M) { cluster.Main(m) }` in this package, which stops the cluster")
	}
	if shared.cp == nil && shared.cpErr == nil {
		shared.cp, shared.cpErr = StartControlPlane(Options{})
	}
	if shared.cpErr != nil {
		t.Fatalf("shared control plane: %v", shared.cpErr)
	}
	return shared.cp
}

// SharedNode returns the node shared by the tests of this binary (on the
// shared control plane), starting it on first use with opts; every caller
// must pass the same opts. Needs root. TestMain must call Main.
func SharedNode(t testing.TB, opts NodeOptions) *Node {
	t.Helper()
	requireRoot(t)
	cp := Shared(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.node == nil && shared.nodeErr == nil {
		shared.nodeOpts = opts
		shared.node, shared.nodeErr = StartNode(cp, opts)
	}
	if shared.nodeErr != nil {
		t.Fatalf("shared node: %v", shared.nodeErr)
	}
	if !reflect.DeepEqual(opts, shared.nodeOpts) {
		t.Fatalf("SharedNode called with %+v, but the shared node was started with %+v", opts, shared.nodeOpts)
	}
	return shared.node
}

// Main runs the tests, then stops whatever Shared and SharedNode started
// (node first), also when the binary gets SIGINT or SIGTERM. When tests
// failed, it prints the tail of every component's log first.
func Main(m *testing.M) {
	shared.mu.Lock()
	shared.main = true
	shared.mu.Unlock()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "cluster: got %v, tearing down the shared cluster\n", s)
		stopShared(true)
		os.Exit(130)
	}()
	flag.Parse()
	if f := flag.Lookup("test.timeout"); f != nil {
		// `go test -timeout` panics the binary without a signal: tear the
		// cluster down shortly before, so that nothing outlives it.
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > 2*time.Minute {
			timer := time.AfterFunc(d-time.Minute, func() {
				fmt.Fprintln(os.Stderr, "cluster: one minute before the test timeout, tearing down the shared cluster")
				stopShared(true)
			})
			defer timer.Stop()
		}
	}
	code := m.Run()
	stopShared(code != 0)
	os.Exit(code)
}

func stopShared(printLogs bool) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if printLogs {
		if shared.node != nil {
			fmt.Fprintln(os.Stderr, shared.node.LogTails())
		}
		if shared.cp != nil {
			fmt.Fprintln(os.Stderr, shared.cp.LogTails())
		}
	}
	if shared.node != nil {
		if err := shared.node.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "cluster: stop node: %v\n", err)
		}
		shared.node = nil
	}
	if shared.cp != nil {
		if err := shared.cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "cluster: stop control plane: %v\n", err)
		}
		shared.cp = nil
	}
	for i := len(shared.teardown) - 1; i >= 0; i-- {
		shared.teardown[i]()
	}
	shared.teardown = nil
}

// AtTeardown registers f to run after Main has stopped the shared node and
// control plane: for host state a package's tests share (links, dirs).
func AtTeardown(f func()) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.teardown = append(shared.teardown, f)
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("PLEXUS_REQUIRE_ROOT") != "" {
		t.Fatal("the node needs root (PLEXUS_REQUIRE_ROOT is set)")
	}
	t.Skip("the node needs root")
}

// reapStale stops control planes left behind by test binaries that died
// without tearing down (e.g. killed by `go test -timeout`).
func reapStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "plexus-cp-*"))
	for _, d := range dirs {
		c, err := AttachControlPlane(d)
		if err != nil || c.state.Detached || c.state.Owner == 0 || pidIsRunning(c.state.Owner, "") {
			continue
		}
		_ = c.Stop()
	}
}

// stopSharedNode stops the shared node (if any); SharedNode starts a new one
// on next use.
func stopSharedNode() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.node != nil {
		if err := shared.node.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "cluster: stop node: %v\n", err)
		}
		shared.node, shared.nodeErr = nil, nil
	}
}
