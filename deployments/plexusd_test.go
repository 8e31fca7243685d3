package deployments

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/plexus-cni/plexus/e2e/cluster"
	"github.com/plexus-cni/plexus/pkg/testutil"
)

// TestPlexusdWithManifestRBAC runs plexusd (bin/plexusd) as plexus.yaml
// runs it — its args, with the host paths under a temp root and the
// metrics address on loopback — with the plexus ServiceAccount's token
// and the ClusterRole of plexus.yaml (the harness applies it): its
// informers sync (list and watch pods of its node, NADs), it serves its
// socket, and /readyz says 200. A ClusterRole without list or watch would
// keep it at 503. plexus.yaml turns MultiNetworkPolicy enforcement on: it
// starts without the MultiNetworkPolicy CRD, and is ready all the same
// (its policy informers wait), then its policy informers sync once the CRD
// is installed, without a restart.
func TestPlexusdWithManifestRBAC(t *testing.T) {
	cp := cluster.Shared(t)
	const mnpCRD = "crd/multi-networkpolicies.k8s.cni.cncf.io"
	if _, err := cp.Kubectl("delete", "--ignore-not-found", "--wait", mnpCRD); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = cp.Kubectl("delete", "--ignore-not-found", "--wait", mnpCRD) })
	bin := testutil.Binary(t, "plexusd")
	kc, err := cp.ServiceAccountKubeconfig("kube-system", "plexus")
	if err != nil {
		t.Fatal(err)
	}
	var d *container
	ds := daemonSetOf(t, "plexus.yaml")
	for i, c := range ds.Spec.Template.Spec.Containers {
		if c.Name == "plexusd" {
			d = &ds.Spec.Template.Spec.Containers[i]
		}
	}
	if d == nil {
		t.Fatal("no plexusd container in plexus.yaml")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	root := t.TempDir()
	var args []string
	socket := ""
	for _, a := range d.Args {
		k, v, ok := strings.Cut(a, "=")
		if !ok { // a boolean flag (--network-policy)
			args = append(args, a)
			continue
		}
		switch {
		case k == "--metrics-address":
			v = addr
		case filepath.IsAbs(v):
			v = filepath.Join(root, v)
		}
		if k == "--socket" {
			socket = v
		}
		args = append(args, k+"="+v)
	}
	args = append(args, "--kubeconfig="+kc)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "NODE_NAME=plexusd-manifest-test")
	logs := &lockedBuilder{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})

	last := ""
	err = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		select {
		case err := <-done:
			done <- err
			return false, fmt.Errorf("plexusd exited: %v", err)
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			last = err.Error()
			return false, nil
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("plexusd with plexus.yaml's args and RBAC not ready: %v (last /readyz: %s)\n%s", err, last, logs)
	}
	if fi, err := os.Stat(socket); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("plexusd's socket %s: %v", socket, err)
	}
	if strings.Contains(logs.String(), "policy: informers synced") {
		t.Fatalf("plexusd's policy informers synced without the MultiNetworkPolicy CRD:\n%s", logs)
	}
	if _, err := cp.Kubectl("apply", "--server-side", "-f", filepath.Join(testutil.RepoRoot(), "deployments", mnpCRDFile)); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 90*time.Second, true, func(context.Context) (bool, error) {
		return strings.Contains(logs.String(), "policy: informers synced"), nil
	}); err != nil {
		t.Fatalf("plexusd's policy informers did not sync once the CRD was installed (is --network-policy in plexus.yaml?):\n%s", logs)
	}
	if strings.Contains(logs.String(), "forbidden") {
		t.Errorf("plexusd was refused by RBAC:\n%s", logs)
	}
}

// lockedBuilder collects a process's output while the test reads it.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
