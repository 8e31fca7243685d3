// Cluster integration tests of plexus in Kubernetes mode: a real etcd and
// kube-apiserver (e2e/cluster), pods and NADs created as API objects,
// plexus exec'd for them as a runtime would, with the plexus
// ServiceAccount's own least-privilege token.
package kube_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned/typed/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/plexus-cni/plexus/e2e/cluster"
	"github.com/plexus-cni/plexus/pkg/testutil"
	"github.com/plexus-cni/plexus/pkg/testutil/cnienv"
)

func TestMain(m *testing.M) { cluster.Main(m) }

type kubeEnv struct {
	*cnienv.Env
	t          testing.TB
	cp         *cluster.ControlPlane
	cs         *kubernetes.Clientset
	nads       nadclient.K8sCniCncfIoV1Interface
	kubeconfig string
	// node, when set, is the spec.nodeName of the pods createPod makes
	// (plexusd watches the pods of its node only).
	node string
	// labels, when set, are the labels of the pods createPod makes.
	labels map[string]string
}

func newKubeEnv(t *testing.T) *kubeEnv { return newKubeEnvB(t) }

func newKubeEnvB(t testing.TB) *kubeEnv {
	cp := cluster.Shared(t)
	e := cnienv.New(t)
	e.WritePrimary()
	cs, err := cp.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nadclient.NewForConfig(cp.RestConfig())
	if err != nil {
		t.Fatal(err)
	}
	kc, err := cp.ServiceAccountKubeconfig("kube-system", "plexus")
	if err != nil {
		t.Fatal(err)
	}
	// A copy the test may rewrite (token rotation).
	own := filepath.Join(e.Dir, "plexus.kubeconfig")
	b, _ := os.ReadFile(kc)
	os.WriteFile(own, b, 0o600)
	e.Extra = map[string]any{"kubeconfig": own, "networksDir": ""}
	return &kubeEnv{Env: e, t: t, cp: cp, cs: cs, nads: nc, kubeconfig: own}
}

func (k *kubeEnv) createNAD(ns, name, config string) {
	k.t.Helper()
	_, err := k.nads.NetworkAttachmentDefinitions(ns).Create(context.Background(), &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: config}}, metav1.CreateOptions{})
	if err != nil {
		k.t.Fatal(err)
	}
	k.t.Cleanup(func() {
		k.nads.NetworkAttachmentDefinitions(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

func (k *kubeEnv) ensureNamespace(ns string) {
	_, err := k.cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		k.t.Fatal(err)
	}
}

// createPod makes the pod object (never scheduled: no scheduler runs) and a
// sandbox netns for it.
func (k *kubeEnv) createPod(name, networks string) *cnienv.Pod {
	k.t.Helper()
	no := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-" + k.Suffix, Namespace: "default", Labels: k.labels},
		Spec: corev1.PodSpec{AutomountServiceAccountToken: &no,
			Containers: []corev1.Container{{Name: "c", Image: "busybox", ImagePullPolicy: corev1.PullNever}}},
	}
	if networks != "" {
		pod.Annotations = map[string]string{nadv1.NetworkAttachmentAnnot: networks}
	}
	pod.Spec.NodeName = k.node
	created, err := k.cs.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		k.t.Fatal(err)
	}
	k.t.Cleanup(func() {
		zero := int64(0)
		k.cs.CoreV1().Pods("default").Delete(context.Background(), created.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	b := make([]byte, 8)
	rand.Read(b)
	return &cnienv.Pod{Namespace: "default", Name: created.Name, UID: string(created.UID), ContainerID: hex.EncodeToString(b), NS: testutil.NewNS(k.t)}
}

func (k *kubeEnv) podStatus(p *cnienv.Pod) []nadv1.NetworkStatus {
	k.t.Helper()
	pod, err := k.cs.CoreV1().Pods(p.Namespace).Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		k.t.Fatal(err)
	}
	var st []nadv1.NetworkStatus
	if v := pod.Annotations[nadv1.NetworkStatusAnnot]; v != "" {
		if err := json.Unmarshal([]byte(v), &st); err != nil {
			k.t.Fatalf("network-status annotation %q: %v", v, err)
		}
	}
	return st
}

func (k *kubeEnv) events(p *cnienv.Pod) []corev1.Event {
	k.t.Helper()
	var out []corev1.Event
	for i := 0; i < 20; i++ {
		list, err := k.cs.CoreV1().Events(p.Namespace).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + p.Name})
		if err != nil {
			k.t.Fatal(err)
		}
		if out = list.Items; len(out) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return out
}

var reqRe = regexp.MustCompile(`msg="API requests" .*count=(\d+)`)

// lastRequests is the API request count plexus logged for its last run.
func (k *kubeEnv) lastRequests() int {
	m := reqRe.FindAllStringSubmatch(k.Log(), -1)
	if len(m) == 0 {
		k.t.Fatalf("no request count in plexus's log (%s):\n%s", filepath.Join(k.Dir, "plexus.log"), k.Log())
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

var rssRe = regexp.MustCompile(`msg="peak RSS of plexus" .*kib=(\d+)`)

// lastPeakRSS is plexus's own peak RSS (KiB) as it logged it last.
func (k *kubeEnv) lastPeakRSS() int {
	m := rssRe.FindAllStringSubmatch(k.Log(), -1)
	if len(m) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

func (k *kubeEnv) bridgeNAD(ns, name string, n int) {
	k.createNAD(ns, name, k.BridgeConf(name, k.Name(fmt.Sprintf("b%d", n)), n))
}

func TestThreeAttachmentsStatusMatchesNetns(t *testing.T) {
	k := newKubeEnv(t)
	k.bridgeNAD("default", "br-1", 1)
	k.bridgeNAD("default", "br-2", 2)
	k.bridgeNAD("default", "br-3", 3)
	for _, tc := range []struct{ name, networks string }{
		{"short", "br-1, default/br-2@data0, br-3"},
		{"json", `[{"name":"br-1"},{"name":"br-2","namespace":"default","interface":"data0"},{"name":"br-3","interface":"net3"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := *k
			sub.t = t
			k := &sub
			p := k.createPod("p-"+tc.name, tc.networks)
			if _, err := k.Add(p); err != nil {
				t.Fatalf("ADD: %v\n%s", err, k.Log())
			}
			if n := k.lastRequests(); n > 4 {
				t.Errorf("ADD made %d API requests, want at most 4", n)
			}
			if m := regexp.MustCompile(`msg="ADD timing".*`).FindAllString(k.Log(), -1); len(m) > 0 {
				t.Log(m[len(m)-1])
			}
			st := k.podStatus(p)
			links := k.Links(p)
			var got, want []string
			for _, s := range st {
				got = append(got, s.Interface+"="+strings.Join(s.IPs, ",")+"/"+s.Mac)
			}
			for name, l := range links {
				var ips []string
				for _, a := range k.Addrs(p, name) {
					ips = append(ips, strings.Split(a, "/")[0])
				}
				want = append(want, name+"="+strings.Join(ips, ",")+"/"+l.Attrs().HardwareAddr.String())
			}
			sort.Strings(got)
			sort.Strings(want)
			if strings.Join(got, " ") != strings.Join(want, " ") || len(got) != 4 {
				t.Errorf("network-status on the API object:\n  %v\ninterfaces in the netns:\n  %v", got, want)
			}
			if !st[0].Default || st[0].Interface != "eth0" || st[2].Name != "default/br-2" || st[2].Interface != "data0" {
				t.Errorf("network-status entries: %+v", st)
			}
			ev := k.events(p)
			if len(ev) == 0 || ev[0].Type != corev1.EventTypeNormal || !strings.Contains(ev[0].Message, "data0") {
				t.Errorf("events: %+v", ev)
			}
			if err := k.Del(p); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if n := k.lastRequests(); n != 0 {
				t.Errorf("DEL with a cache made %d API requests, want 0", n)
			}
			k.AssertClean(p)
		})
	}
}

func TestUnknownNADWarnsAndLeavesNothing(t *testing.T) {
	k := newKubeEnv(t)
	k.bridgeNAD("default", "br-ok", 1)
	p := k.createPod("unknown", "br-ok,does-not-exist")
	_, err := k.Add(p)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf(`pod default/%s: network "default/does-not-exist"`, p.Name)) {
		t.Fatalf("ADD: %v", err)
	}
	k.AssertClean(p)
	var warned bool
	for _, ev := range k.events(p) {
		if ev.Type == corev1.EventTypeWarning && strings.Contains(ev.Message, "default/does-not-exist") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no Warning event naming the network: %+v", k.events(p))
	}
}

func TestNamespaceIsolation(t *testing.T) {
	k := newKubeEnv(t)
	k.ensureNamespace("plexus-other")
	k.bridgeNAD("plexus-other", "br-x", 1)
	k.Extra["namespaceIsolation"] = true
	p := k.createPod("iso", "plexus-other/br-x")
	_, err := k.Add(p)
	if err == nil || !strings.Contains(err.Error(), `namespaceIsolation forbids pods in namespace "default" from using networks in namespace "plexus-other"`) {
		t.Fatalf("ADD: %v", err)
	}
	k.AssertClean(p)
	// globalNamespaces lifts it.
	k.Extra["globalNamespaces"] = "plexus-other"
	if _, err := k.Add(p); err != nil {
		t.Fatalf("ADD with plexus-other global: %v\n%s", err, k.Log())
	}
	if err := k.Del(p); err != nil {
		t.Fatal(err)
	}
	k.AssertClean(p)
}

func TestKubeconfigTokenReplaced(t *testing.T) {
	k := newKubeEnv(t)
	k.bridgeNAD("default", "br-t", 1)
	good, _ := os.ReadFile(k.kubeconfig)
	bad := regexp.MustCompile(`token: .*`).ReplaceAll(good, []byte("token: not-a-valid-token"))
	if string(bad) == string(good) {
		t.Fatal("kubeconfig has no token line")
	}
	p := k.createPod("tok", "br-t")
	os.WriteFile(k.kubeconfig, bad, 0o600)
	_, err := k.Add(p)
	if err == nil || !strings.Contains(err.Error(), "pod default/"+p.Name) {
		t.Fatalf("ADD with an invalid token: %v", err)
	}
	k.AssertClean(p)
	os.WriteFile(k.kubeconfig, good, 0o600) // rotated in: no restart, next exec reads it
	if _, err := k.Add(p); err != nil {
		t.Fatalf("ADD after the token was replaced: %v", err)
	}
	os.WriteFile(k.kubeconfig, bad, 0o600)
	if err := k.Del(p); err != nil {
		t.Fatalf("DEL with a revoked token: %v", err)
	}
	k.AssertClean(p)
}

func TestAPIServerStoppedBeforeDel(t *testing.T) {
	k := newKubeEnv(t)
	k.bridgeNAD("default", "br-s", 1)
	p := k.createPod("stop", "br-s")
	if _, err := k.Add(p); err != nil {
		t.Fatal(err)
	}
	never := k.createPod("never", "br-s")
	if err := k.cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := k.cp.StartAPIServer(); err != nil {
			t.Fatal(err)
		}
	}()
	if err := k.Del(p); err != nil {
		t.Fatalf("DEL with the API server stopped: %v", err)
	}
	k.AssertClean(p)
	start := time.Now()
	if err := k.Del(never); err != nil {
		t.Fatalf("DEL of a pod never added, API server stopped: %v", err)
	}
	t.Logf("DEL without cache and without API server took %v", time.Since(start))
}

// defaultNetworks are attached to every pod outside systemNamespaces, and
// the pod's v1.multus-cni.io/default-network replaces the cluster network.
func TestDefaultNetworksAndOverride(t *testing.T) {
	k := newKubeEnv(t)
	k.bridgeNAD("kube-system", "dn-"+k.Suffix, 1)
	k.bridgeNAD("kube-system", "alt-"+k.Suffix, 2)
	k.bridgeNAD("default", "own", 3)
	k.Extra["defaultNetworks"] = []string{"dn-" + k.Suffix}

	p := k.createPod("dn", "own")
	if _, err := k.Add(p); err != nil {
		t.Fatalf("ADD: %v\n%s", err, k.Log())
	}
	st := k.podStatus(p)
	if len(st) != 3 || st[0].Name != "primary" || st[1].Name != "kube-system/dn-"+k.Suffix || st[1].Interface != "net1" || st[2].Name != "default/own" || st[2].Interface != "net2" {
		t.Fatalf("network-status with defaultNetworks: %+v", st)
	}
	if err := k.Del(p); err != nil {
		t.Fatal(err)
	}
	k.AssertClean(p)

	// A pod in a system namespace does not get defaultNetworks.
	k.Extra["systemNamespaces"] = []string{"default"}
	p = k.createPod("sys", "")
	if _, err := k.Add(p); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if st := k.podStatus(p); len(st) != 1 {
		t.Errorf("pod in a system namespace got %d networks, want only the primary: %+v", len(st), st)
	}
	if err := k.Del(p); err != nil {
		t.Fatal(err)
	}
	k.AssertClean(p)

	// The default-network override: eth0 from another NAD.
	p = k.createPod("ovr", "")
	pod, err := k.cs.CoreV1().Pods("default").Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Annotations = map[string]string{"v1.multus-cni.io/default-network": "alt-" + k.Suffix}
	if _, err := k.cs.CoreV1().Pods("default").Update(context.Background(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Add(p); err != nil {
		t.Fatalf("ADD with default-network override: %v\n%s", err, k.Log())
	}
	st = k.podStatus(p)
	if len(st) != 1 || st[0].Name != "kube-system/alt-"+k.Suffix || !st[0].Default || !strings.HasPrefix(st[0].IPs[0], strings.TrimSuffix(k.SubnetN(2), "0/24")) {
		t.Errorf("network-status with the override: %+v (want eth0 on %s)", st, k.SubnetN(2))
	}
	if err := k.Del(p); err != nil {
		t.Fatal(err)
	}
	k.AssertClean(p)
}

// Errors and Warning events say each thing once: the runtime's error names
// the pod, the network and the interface once each, in that order, within
// its first 100 characters; the Event (which is about the pod) names the
// network once. What plexus accepts but reports (an unknown annotation
// field) is one Warning event naming the field; the pod gets its network.
func TestErrorsAndWarningsSayEachThingOnce(t *testing.T) {
	k := newKubeEnv(t)
	k.bridgeNAD("default", "br-once", 1)
	p := k.createPod("once", "br-once,gone-net")
	_, err := k.Add(p)
	if err == nil {
		t.Fatal("ADD succeeded with a missing NAD")
	}
	msg := err.Error()
	want := fmt.Sprintf(`pod default/%s: network "default/gone-net" (interface net2): network-attachment-definition not found`, p.Name)
	if i := strings.Index(msg, want); i < 0 || i > 100 {
		t.Errorf("error %q: want %q within the first 100 characters", msg, want)
	}
	for _, w := range []string{"default/" + p.Name, "default/gone-net", "net2"} {
		if n := strings.Count(msg, w); n != 1 {
			t.Errorf("error names %q %d times: %s", w, n, msg)
		}
	}
	var failed []string
	for _, ev := range k.events(p) {
		if ev.Reason == "AttachFailed" {
			failed = append(failed, ev.Message)
		}
	}
	if len(failed) != 1 || strings.Count(failed[0], "default/gone-net") != 1 || strings.Contains(failed[0], "pod default/") {
		t.Errorf("AttachFailed events %q: want one naming the network once and not the pod", failed)
	}
	k.AssertClean(p)

	w := k.createPod("typo", `[{"name":"br-once","interfce":"x9"}]`)
	if _, err := k.Add(w); err != nil {
		t.Fatalf("ADD with an unknown annotation field: %v\n%s", err, k.Log())
	}
	if _, ok := k.Links(w)["net1"]; !ok {
		t.Errorf("net1 missing: %v", k.Links(w))
	}
	var warnings []string
	for _, ev := range k.events(w) {
		if ev.Type == corev1.EventTypeWarning {
			warnings = append(warnings, ev.Reason+": "+ev.Message)
		}
	}
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "NetworkWarning: ") || !strings.Contains(warnings[0], `"interfce"`) {
		t.Errorf("Warning events %q: want one NetworkWarning naming \"interfce\"", warnings)
	}
	if err := k.Del(w); err != nil {
		t.Fatal(err)
	}
	k.AssertClean(w)
}
