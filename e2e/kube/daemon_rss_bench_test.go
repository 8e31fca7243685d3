package kube_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned/typed/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/plexus-cni/plexus/pkg/testutil"
	"github.com/plexus-cni/plexus/pkg/testutil/cnienv"
)

// Scale of BenchmarkDaemonRSS: the target is plexusd's RSS with
// 110 pods on its node (the kubelet's default maximum) and 1000 NADs in
// the cluster.
const (
	rssNamespaces = 20
	rssNADs       = 1000 // rssNADs/rssNamespaces per namespace
	rssPods       = 110  // on plexusd's node, rssAddPods of them ADDed
	rssAddPods    = 3
	rssNetworks   = 4 // NADs named by each pod
	rssWorkers    = 16
)

// BenchmarkDaemonRSS: plexusd's resident memory with 110 pods on its node
// (each naming 4 NADs) and 1000 NADs in 20 namespaces, after its informers
// synced and a few shim ADDs and DELs went through it (resolution and
// publication have run), beside an idle Go program's in the same run:
//   - MiB/plexusd-rss: VmRSS at the end;
//   - MiB/plexusd-peak-rss: VmHWM (the initial LISTs are the peak);
//   - MiB/idle-go-rss: VmRSS of e2e/cmd/idle, a Go program that only waits.
//
// The pods look like a Deployment's (labels, a last-applied annotation,
// a container with env and resources), because plexusd decodes all of it
// before its informer trims it.
func BenchmarkDaemonRSS(b *testing.B) {
	idle := testutil.BuildPackage(b, "idle", "./e2e/cmd/idle")
	k := newKubeEnvB(b)
	k.node = "rss-node-" + k.Suffix
	cs, nads := fastClients(b, k)
	ctx := context.Background()

	nss := make([]string, rssNamespaces)
	for i := range nss {
		nss[i] = fmt.Sprintf("rss-%s-%d", k.Suffix, i)
	}
	perNS := rssNADs / rssNamespaces
	b.Cleanup(func() {
		// No namespace controller runs: empty each namespace, then delete it.
		zero := int64(0)
		parallel(len(nss), rssWorkers, func(i int) error {
			ns := nss[i]
			nads.NetworkAttachmentDefinitions(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
			cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
			cs.CoreV1().ServiceAccounts(ns).Delete(ctx, "default", metav1.DeleteOptions{})
			if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
				b.Errorf("deleting namespace %s: %v", ns, err)
			}
			// Other tests of this process share the API server: nothing left.
			if l, err := nads.NetworkAttachmentDefinitions(ns).List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) > 0 {
				b.Errorf("NADs left in %s: %v", ns, err)
			}
			if l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) > 0 {
				b.Errorf("pods left in %s: %v", ns, err)
			}
			return nil
		})
	})

	start := time.Now()
	if err := parallel(len(nss), rssWorkers, func(i int) error {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nss[i]}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		// No controller creates it, and pods need it (ServiceAccount admission).
		_, err := cs.CoreV1().ServiceAccounts(nss[i]).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	// Every NAD is a real bridge conflist; nad-0…3 of the first namespace
	// are the ones the ADDed pods use (bridges b1…b4 of this Env).
	if err := parallel(rssNADs, rssWorkers, func(i int) error {
		ns, j := nss[i/perNS], i%perNS
		name := fmt.Sprintf("nad-%d", j)
		n := j%rssNetworks + 1
		_, err := nads.NetworkAttachmentDefinitions(ns).Create(ctx, &nadv1.NetworkAttachmentDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: k.BridgeConf(name, k.Name(fmt.Sprintf("b%d", n)), n)},
		}, metav1.CreateOptions{})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	direct := rssPods - rssAddPods
	if err := parallel(direct, rssWorkers, func(i int) error {
		ns := nss[i%rssNamespaces]
		var names []string
		for j := 0; j < rssNetworks; j++ {
			names = append(names, fmt.Sprintf("nad-%d", (i*rssNetworks+j)%perNS))
		}
		_, err := cs.CoreV1().Pods(ns).Create(ctx, deploymentLikePod(ns, fmt.Sprintf("rss-%d", i), k.node, strings.Join(names, ",")), metav1.CreateOptions{})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	var addPods []*cnienv.Pod
	for i := 0; i < rssAddPods; i++ {
		var names []string
		for j := 0; j < rssNetworks; j++ {
			names = append(names, fmt.Sprintf("%s/nad-%d", nss[0], j))
		}
		addPods = append(addPods, k.createPod(fmt.Sprintf("rss-add%d", i), strings.Join(names, ",")))
	}
	b.Logf("created %d namespaces, %d NADs, %d pods on node %s in %v", len(nss), rssNADs, rssPods, k.node, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	d := k.startPlexusd()
	b.Logf("plexusd built (cached), started and ready (informers synced) in %v", time.Since(start).Round(time.Millisecond))
	for _, p := range addPods {
		if _, err := k.Add(p); err != nil {
			b.Fatalf("ADD: %v\nshim log:\n%s\nplexusd log:\n%s", err, k.Log(), d.Log())
		}
		if n := len(k.Links(p)); n != 1+rssNetworks {
			b.Fatalf("%d interfaces in the pod, want %d", n, 1+rssNetworks)
		}
	}
	waitFor(b, 10*time.Second, "the outbox emptied (statuses published)", func() bool { return len(k.outbox()) == 0 })
	for _, p := range addPods {
		if err := k.Del(p); err != nil {
			b.Fatalf("DEL: %v", err)
		}
	}
	for _, p := range addPods {
		k.AssertClean(p)
	}
	if strings.Contains(k.Log(), "running the thin path") {
		b.Fatalf("the shim fell back to the thin path:\n%s", k.Log())
	}
	// Every result: plexusd labels a successful resolve result="error" (a
	// typed nil *wire.Error passed on as an error).
	if n := d.Metric("plexus_resolve_duration_seconds_count"); n < rssAddPods {
		b.Fatalf("plexusd resolved %v pods, want %d (did the shim use it?)\nshim log:\n%s", n, rssAddPods, k.Log())
	}
	b.Logf("cache lookups: %v hits, %v misses; API requests: %v",
		d.Metric("plexus_cache_lookups_total", `outcome="hit"`), d.Metric("plexus_cache_lookups_total", `outcome="miss"`),
		d.Metric("plexus_api_requests_total"))

	st := procStatus(b, d.PID())
	rss, hwm := st["VmRSS"], st["VmHWM"]
	b.Logf("plexusd: VmRSS %.1f MiB, VmHWM %.1f MiB, RssAnon %.1f MiB, RssFile %.1f MiB; Go heap in use %.1f MiB, Go sys %.1f MiB, goroutines %v",
		rss, hwm, st["RssAnon"], st["RssFile"],
		d.Metric("go_memstats_heap_inuse_bytes")/(1<<20), d.Metric("go_memstats_sys_bytes")/(1<<20), d.Metric("go_goroutines"))

	idleRSS := idleGoRSS(b, idle)
	b.Logf("idle Go program: VmRSS %.1f MiB", idleRSS)
	b.ReportMetric(rss, "MiB/plexusd-rss")
	b.ReportMetric(hwm, "MiB/plexusd-peak-rss")
	b.ReportMetric(idleRSS, "MiB/idle-go-rss")
	if hwm > 40 {
		b.Logf("plexusd's peak RSS %.1f MiB is over the 40 MiB target", hwm)
	}
}

// fastClients are clients without client-side rate limiting (client-go's
// default of 5 requests per second would take minutes for the creates).
func fastClients(b *testing.B, k *kubeEnv) (*kubernetes.Clientset, nadclient.K8sCniCncfIoV1Interface) {
	cfg := rest.CopyConfig(k.cp.RestConfig())
	cfg.QPS, cfg.Burst = -1, 0
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	nc, err := nadclient.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return cs, nc
}

// parallel runs f(0…n-1) on at most workers goroutines and returns the
// first error.
func parallel(n, workers int, f func(i int) error) error {
	idx := make(chan int)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		idx <- i
	}
	close(idx)
	wg.Wait()
	return first
}

// deploymentLikePod is a pod as a Deployment makes it, with a networks
// annotation, bound to node.
func deploymentLikePod(ns, name, node, networks string) *corev1.Pod {
	no := false
	var env []corev1.EnvVar
	for i := 0; i < 8; i++ {
		env = append(env, corev1.EnvVar{Name: fmt.Sprintf("SETTING_%d", i), Value: strings.Repeat("v", 40)})
	}
	lastApplied := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"name":"` + name + `","namespace":"` + ns +
		`"},"spec":{"template":{"metadata":{"annotations":{"k8s.v1.cni.cncf.io/networks":"` + networks + `"}},"spec":{"containers":[{"name":"app","image":"registry.example.com/team/app:1.2.3","env":[` +
		strings.Repeat(`{"name":"SETTING","value":"`+strings.Repeat("v", 40)+`"},`, 8) + `{}]}]}}}}`
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels: map[string]string{"app": "rss", "pod-template-hash": "5d4f8c9b7", "team": "bench"},
			Annotations: map[string]string{
				nadv1.NetworkAttachmentAnnot:                       networks,
				"kubectl.kubernetes.io/last-applied-configuration": lastApplied,
				"prometheus.io/scrape":                             "true",
			}},
		Spec: corev1.PodSpec{NodeName: node, AutomountServiceAccountToken: &no,
			Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/team/app:1.2.3", ImagePullPolicy: corev1.PullIfNotPresent,
				Args: []string{"--listen=:8080", "--log-level=info"}, Env: env,
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}},
			}}},
	}
}

// procStatus is /proc/<pid>/status's memory lines in MiB.
func procStatus(b *testing.B, pid int) map[string]float64 {
	b.Helper()
	if pid == 0 {
		b.Fatal("process not running")
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if fields := strings.Fields(val); ok && len(fields) == 2 && fields[1] == "kB" {
			kb, _ := strconv.ParseFloat(fields[0], 64)
			out[key] = kb / 1024
		}
	}
	if _, ok := out["VmRSS"]; !ok {
		b.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	return out
}

// idleGoRSS runs the idle Go program until it waits, and returns its VmRSS.
func idleGoRSS(b *testing.B, bin string) float64 {
	cmd := exec.Command(bin)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		b.Fatalf("idle program: %q, %v", line, err)
	}
	return procStatus(b, cmd.Process.Pid)["VmRSS"]
}
