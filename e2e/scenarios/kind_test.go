package scenarios

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestOnCluster runs every scenario on the cluster PLEXUS_E2E_KUBECONFIG
// points at (e2e/kind/run.sh sets it, with plexus already deployed there).
// Without it the test is skipped: make test runs the same scenarios on the
// local node instead (local_test.go).
//
//	PLEXUS_E2E_KUBECONFIG   admin kubeconfig (required)
//	PLEXUS_E2E_KUBECTL      kubectl binary (default: kubectl)
//	PLEXUS_E2E_IMAGE        pod image with sh, sleep, ip (default: busybox:1.36)
//	PLEXUS_E2E_MACVLAN_MASTER  node interface for macvlan (default: eth0)
//	PLEXUS_E2E_TIMEOUT      per-wait timeout (default: 3m)
//	PLEXUS_E2E_DOCKER       docker binary, to look at the kind nodes (default: docker)
func TestOnCluster(t *testing.T) {
	kc := os.Getenv("PLEXUS_E2E_KUBECONFIG")
	if kc == "" {
		t.Skip("PLEXUS_E2E_KUBECONFIG not set (e2e/kind/run.sh sets it)")
	}
	timeout, err := time.ParseDuration(envOr("PLEXUS_E2E_TIMEOUT", "3m"))
	if err != nil {
		t.Fatalf("PLEXUS_E2E_TIMEOUT: %v", err)
	}
	e := &Env{
		Kubectl: envOr("PLEXUS_E2E_KUBECTL", "kubectl"), Kubeconfig: kc,
		Namespace: fmt.Sprintf("plexus-e2e-%06x", rand.Uint32()&0xffffff),
		Image:     envOr("PLEXUS_E2E_IMAGE", "busybox:1.36"), MacvlanMaster: envOr("PLEXUS_E2E_MACVLAN_MASTER", "eth0"),
		Timeout: timeout, Logf: t.Logf,
	}
	// The nodes are Docker containers (e2e/kind): their host side is
	// reachable with docker exec.
	if docker, err := exec.LookPath(envOr("PLEXUS_E2E_DOCKER", "docker")); err == nil {
		e.Node = &kindNode{env: e, docker: docker}
	}
	RunAll(t, e)
}

// RunAll sets up e's namespace, runs every scenario as a subtest, and
// deletes the namespace.
func RunAll(t *testing.T, e *Env) {
	t.Helper()
	ctx := context.Background()
	if err := e.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Teardown(context.Background()); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	for _, s := range All {
		t.Run(s.Name, func(t *testing.T) {
			if err := s.Run(ctx, e); errors.Is(err, ErrSkipped) {
				t.Skip(err)
			} else if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
