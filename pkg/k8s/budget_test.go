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
	opts := Options{RequestTimeout: 100 * time.Millisecond, Budget: 500 * time.Millisecond, PodWait: 100 * time.Millisecond, Total: 800 * time.Millisecond}
	start := time.Now()
	c, err := Load(kc, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pod := &podnet.Pod{Namespace: "ns", Name: "web", UID: "u"}
	ops := []struct {
		name string
		max  time.Duration // since start
		run  func() error
	}{
		{"pod", 600 * time.Millisecond, func() error { _, err := c.Pods().Pod(ctx, podnet.PodRef{Namespace: "ns", Name: "web"}); return err }},
		{"nad", 900 * time.Millisecond, func() error { _, err := c.NADs().NAD(ctx, "ns", "net1"); return err }},
		{"status", 900 * time.Millisecond, func() error { return c.Status().Attached(ctx, pod, "ctr", nil) }},
	}
	for _, op := range ops {
		err := op.run()
		took := time.Since(start)
		if err == nil {
			t.Fatalf("%s succeeded against a server that never answers", op.name)
		}
		if took > op.max {
			t.Errorf("%s: gave up %v after Load, want within %v", op.name, took, op.max)
		}
		t.Logf("%s: %v after Load: %v", op.name, took, err)
	}
	c.Status().Failed(ctx, pod, "net1", fmt.Errorf("boom"))
	if took := time.Since(start); took > 900*time.Millisecond {
		t.Errorf("Failed returned %v after Load, past the total budget", took)
	}
}
