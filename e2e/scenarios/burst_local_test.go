package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

// burst creates n pods with 4 bridge networks each at once on the local
// node, with plexusd running: all must run without a failed sandbox, each
// with network-status, published by plexusd within 2 s of its ADD; after
// they are deleted nothing is left on the node.
func burst(t *testing.T, ctx context.Context, e *Env, d *testutil.Plexusd, n int) {
	var networks, netNames, bridges []string
	var objs []string
	for i := 1; i <= 4; i++ {
		name := fmt.Sprintf("burst-%d", i)
		br := bridgeName(fmt.Sprintf("%s-burst%d", e.Namespace, i))
		conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"bridge","bridge":%q,"ipMasq":false,
"ipam":{"type":"host-local","ranges":[[{"subnet":"10.%d.0.0/24"}]]}}`, e.netName(name), br, 150+i)
		objs = append(objs, nad(name, conf, nil))
		networks = append(networks, name)
		netNames = append(netNames, e.netName(name))
		bridges = append(bridges, br)
	}
	t.Cleanup(func() { deleteLinks(t, bridges...) })
	var pods []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("burst-%02d", i)
		pods = append(pods, name)
		objs = append(objs, e.pod(name, strings.Join(networks, ",")))
	}
	if err := e.apply(ctx, `{"apiVersion":"v1","kind":"List","items":[`+strings.Join(objs[:4], ",")+`]}`); err != nil {
		t.Fatal(err)
	}
	delayCount := d.Metric("plexus_network_status_delay_seconds_count")
	within2s := d.Metric("plexus_network_status_delay_seconds_bucket", `le="2"`)
	start := time.Now()
	list := `{"apiVersion":"v1","kind":"List","items":[` + strings.Join(objs[4:], ",") + `]}`
	if err := e.apply(ctx, list); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	var running int
	for {
		out, err := e.kubectl(ctx, "", "-n", e.Namespace, "get", "pods", "-l", "", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var l corev1.PodList
		if err := json.Unmarshal(out, &l); err != nil {
			t.Fatal(err)
		}
		running = 0
		for _, p := range l.Items {
			if strings.HasPrefix(p.Name, "burst-") && p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		if running == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d burst pods Running after 3 minutes", running, n)
		}
		time.Sleep(500 * time.Millisecond)
	}
	e.logf("%d pods x 4 networks Running %s after they were created at once", n, time.Since(start).Round(time.Millisecond))
	out, err := e.kubectl(ctx, "", "-n", e.Namespace, "get", "events", "-o", `jsonpath={range .items[*]}{.involvedObject.name} {.reason}{"\n"}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "burst-") && (strings.Contains(line, "FailedCreatePodSandBox") || strings.Contains(line, "AttachFailed")) {
			t.Errorf("failed sandbox in the burst: %s", line)
		}
	}
	// Every pod's network-status is there (5 entries) …
	waitUntil(t, 10*time.Second, "network-status on every burst pod", func() bool {
		for _, name := range pods {
			p, err := e.getPod(ctx, name)
			if err != nil {
				return false
			}
			st, err := ParseNetworkStatus(p.Annotations)
			if err != nil || len(st) != 5 {
				return false
			}
		}
		return true
	})
	// … and plexusd published each within 2 s of the shim's hand-off.
	published := d.Metric("plexus_network_status_delay_seconds_count") - delayCount
	fast := d.Metric("plexus_network_status_delay_seconds_bucket", `le="2"`) - within2s
	if published < float64(n) || fast != published {
		t.Errorf("plexusd published %v network-statuses, %v of them within 2 s of the ADD; want %d, all", published, fast, n)
	}
	e.logf("network-status delay: %v published, mean %.0f ms; informer misses: %v pods, %v NADs", published,
		1000*d.Metric("plexus_network_status_delay_seconds_sum")/d.Metric("plexus_network_status_delay_seconds_count"),
		d.Metric("plexus_cache_lookups_total", `kind="pod"`, `outcome="miss"`), d.Metric("plexus_cache_lookups_total", `kind="nad"`, `outcome="miss"`))
	if _, err := e.kubectl(ctx, "", append([]string{"-n", e.Namespace, "delete", "pod", "--wait=true", "--timeout=3m"}, pods...)...); err != nil {
		t.Fatal(err)
	}
	if err := e.checkLeftovers(ctx, e.NodeName, pods, netNames, bridges); err != nil {
		t.Error(err)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
