package policysync

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plexus-cni/plexus/e2e/cluster"
	plexuscache "github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/netpol"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/testutil"
)

// TestPlexusdNetworkPolicy runs the plexusd binary with --network-policy
// against a real apiserver holding 1000 pods on one NAD: it writes the
// local pod's table (peers: the 100 pods a policy selects) and exports the
// policy metrics. Its RSS with and without --network-policy is logged
// (the cost of the cluster-wide trimmed pod informer) and bounded.
func TestPlexusdNetworkPolicy(t *testing.T) {
	testutil.RequireRoot(t)
	cp := cluster.Shared(t)
	if _, err := cp.Kubectl("apply", "--server-side", "-f", filepath.Join(testutil.RepoRoot(), "deployments", "multi-networkpolicy-crd.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Kubectl("wait", "--for=condition=Established", "crd/multi-networkpolicies.k8s.cni.cncf.io"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cs, err := cp.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	const nsName, n = "rss", 1000
	if err := cp.CreateNamespace(ctx, nsName); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: nsName,
					Labels: map[string]string{"app": fmt.Sprintf("g%d", i%10), "pod-template-hash": "5d8f7c9b6"},
					Annotations: map[string]string{"k8s.v1.cni.cncf.io/network-status": fmt.Sprintf(
						`[{"name":"cbr0","interface":"eth0","ips":["10.244.%d.%d"],"default":true},{"name":"rss/lan","interface":"net1","ips":["10.88.%d.%d"]}]`,
						i/250, i%250+1, i/250, i%250+1)}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.example/app:v1",
						Env: []corev1.EnvVar{{Name: "A", Value: strings.Repeat("v", 200)}}}}}}
				if _, err := cs.CoreV1().Pods(nsName).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods(nsName).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "local", Namespace: nsName,
		Labels: map[string]string{"app": "local"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pol := `apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata: {name: from-g1, namespace: rss, annotations: {k8s.v1.cni.cncf.io/policy-for: lan}}
spec:
  podSelector: {matchLabels: {app: local}}
  ingress: [{from: [{podSelector: {matchLabels: {app: g1}}}]}]
`
	f := filepath.Join(t.TempDir(), "p.yaml")
	if err := writeFile(f, pol); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Kubectl("apply", "-f", f); err != nil {
		t.Fatal(err)
	}
	netns := testutil.NewNS(t)
	dir := t.TempDir()
	store := plexuscache.Store{Dir: filepath.Join(dir, "cni")}
	if err := store.Save(&podnet.Entry{Version: plexuscache.EntryVersion, ContainerID: "ctr-local", NetNS: netns.Path(),
		PodNamespace: nsName, PodName: "local", Attachments: []podnet.Attachment{{Network: nsName + "/lan", IfName: "net1"}}}); err != nil {
		t.Fatal(err)
	}
	args := []string{"--kubeconfig", cp.AdminKubeconfig, "--node-name", "node-rss", "--cni-dir", store.Dir,
		"--cni-config", "-", "--pod-resources-socket", filepath.Join(dir, "none.sock"), "--gc-interval", "1h"}
	rss := func(d *testutil.Plexusd) float64 {
		time.Sleep(2 * time.Second) // settle: the first lists' garbage collected
		return d.Metric("process_resident_memory_bytes")
	}
	without := testutil.StartPlexusd(t, filepath.Join(dir, "a.sock"), filepath.Join(dir, "a.log"), args...)
	base := rss(without)
	without.Kill()
	d := testutil.StartPlexusd(t, filepath.Join(dir, "b.sock"), filepath.Join(dir, "b.log"), append(args, "--network-policy")...)
	eventually(t, "plexusd filters the local pod's net1", func() bool {
		return d.Metric("plexus_policy_interfaces_selected") == 1 && d.Metric("plexus_policy_pods_selected") == 1
	})
	table, err := netpol.Dump(ctx, netns.Path())
	if err != nil {
		t.Fatal(err)
	}
	// g1 is every tenth pod: p1, p11, …; p2 is not selected.
	if !strings.Contains(table, "10.88.0.2") || strings.Contains(table, "10.88.0.3,") || !strings.Contains(table, `iifname vmap { "net1"`) {
		t.Errorf("table:\n%s", table)
	}
	if !strings.Contains(d.Log(), "policy: informers synced") || !strings.Contains(d.Log(), "pods=1001") {
		t.Errorf("plexusd log lacks the policy informers' sync with 1001 pods:\n%s", d.Log())
	}
	with := rss(d)
	t.Logf("plexusd RSS with %d pods in the cluster: %.1f MiB without --network-policy, %.1f MiB with (+%.1f MiB)",
		n+1, base/(1<<20), with/(1<<20), (with-base)/(1<<20))
	if with-base > 64<<20 {
		t.Errorf("--network-policy costs %.1f MiB of RSS at %d pods, want under 64 MiB", (with-base)/(1<<20), n)
	}
}
