package k8s

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// blackHole accepts TCP connections and never answers, like an API server
// that hangs (or a network that drops everything after the SYN).
func blackHole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// TestTotalBudget: against a server that never answers, each operation
// gives up within its budget and all of them together within Total.
func TestTotalBudget(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`clusters: [{name: c, cluster: {server: "https://%s", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, blackHole(t))
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// Total is spent by the pod lookup and the NAD list; what comes after
	// must fail at once, without a request. That, not a stopwatch, is the
	// assertion: wall-clock bounds only guard against a hang, with slack for
	// a loaded 2-core machine.
	const total = 1500 * time.Millisecond
	const slack = 5 * time.Second
	opts := Options{RequestTimeout: 100 * time.Millisecond, Budget: 3 * time.Second, PodWait: 100 * time.Millisecond, Total: total}
	start := time.Now()
	c, err := Load(kc, opts)
	if err != nil {
		t.Fatal(err)
	}
	loaded := time.Now()
	ctx := context.Background()
	pod := &podnet.Pod{Namespace: "ns", Name: "web", UID: "u"}
	if _, err := c.Pods().Pod(ctx, podnet.PodRef{Namespace: "ns", Name: "web"}); err == nil {
		t.Fatal("pod lookup succeeded against a server that never answers")
	}
	if _, err := c.NADs().NAD(ctx, "ns", "net1"); err == nil {
		t.Fatal("NAD lookup succeeded against a server that never answers")
	}
	// Load fixed the Client's Total deadline before it returned: past
	// loaded+total, Total is surely spent.
	if left := total - time.Since(loaded); left > 0 {
		// Both gave up on their own bounds before Total: spend the rest.
		time.Sleep(left)
	}
	before := c.Requests()
	if err := c.Status().Attached(ctx, pod, "ctr", nil); err == nil {
		t.Fatal("status write succeeded against a server that never answers")
	}
	c.Status().Failed(ctx, pod, "net1", fmt.Errorf("boom"))
	if n := c.Requests() - before; n != 0 {
		t.Errorf("%d requests after Total (%v) was spent, want none", n, total)
	}
	if took := time.Since(start); took > total+slack {
		t.Errorf("all operations took %v, past Total %v (+%v slack)", took, total, slack)
	}
}
