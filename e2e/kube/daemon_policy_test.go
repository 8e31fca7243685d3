package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/plexus-cni/plexus/pkg/testutil"
	"github.com/plexus-cni/plexus/pkg/testutil/cnienv"
)

// TestDaemonPolicyBeforeDelegates: with --network-policy, plexusd writes
// the pod's MultiNetworkPolicy table in its netns when it answers the
// shim's resolution, so the table is there when the delegate's ADD runs
// (testplugin "dumpTable" reads it from the pod's netns, then runs the
// bridge). A pod no policy selects gets no table and attaches as before.
func TestDaemonPolicyBeforeDelegates(t *testing.T) {
	k := newKubeEnv(t)
	if _, err := k.cp.Kubectl("apply", "--server-side", "-f", filepath.Join(testutil.RepoRoot(), "deployments", "multi-networkpolicy-crd.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := k.cp.Kubectl("wait", "--for=condition=Established", "crd/multi-networkpolicies.k8s.cni.cncf.io"); err != nil {
		t.Fatal(err)
	}
	testutil.BuildPackage(t, "testplugin", "./pkg/testutil/testplugin") // beside plexus: in the runtime's CNI_PATH
	plugin := "testplugin"
	dumps := t.TempDir()
	nad := func(name string, n int) {
		conf := strings.Replace(k.BridgeConf(name, k.Name("pb"+name[len(name)-1:]), n), `"type":"bridge",`,
			`"type":"`+plugin+`","delegate":"bridge","dumpTable":"`+filepath.Join(dumps, name)+`",`, 1)
		k.createNAD("default", name, conf)
	}
	guarded, open := "pol-a-"+k.Suffix, "pol-b-"+k.Suffix
	nad(guarded+"-1", 1)
	nad(open+"-2", 2)
	pol := `apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata: {name: deny-` + k.Suffix + `, namespace: default, annotations: {k8s.v1.cni.cncf.io/policy-for: ` + guarded + `-1}}
spec:
  podSelector: {matchLabels: {guard: "` + k.Suffix + `"}}
  policyTypes: [Ingress]
`
	k.applyPolicy(pol)
	d := k.startPlexusd("--network-policy")
	waitFor(t, 20*time.Second, "plexusd's policy informers synced", func() bool { return strings.Contains(d.Log(), "policy: informers synced") })

	// Without the guarantee, the table may still win the race with the
	// delegate now and then: n pods, each must have it (the old cache
	// watch won about 2 races in 3: all 8 about 4% of the time).
	networks := guarded + "-1," + open + "-2"
	const n = 8
	var withPol, without []time.Duration
	for i := 0; i < n; i++ {
		sel := k.createLabeledPod(fmt.Sprintf("sel%d", i), networks, map[string]string{"guard": k.Suffix})
		start := time.Now()
		if _, err := k.Add(sel); err != nil {
			t.Fatalf("ADD: %v\nshim log:\n%s\nplexusd log:\n%s", err, k.Log(), d.Log())
		}
		withPol = append(withPol, time.Since(start))
		b, _ := os.ReadFile(filepath.Join(dumps, guarded+"-1"))
		if !strings.Contains(string(b), `iifname vmap { "net1"`) || !strings.Contains(string(b), "drop") {
			t.Fatalf("pod %d: when net1's delegate ADD ran, the pod's netns had no table filtering net1:\n%q\nplexusd log:\n%s", i, b, d.Log())
		}
		b, _ = os.ReadFile(filepath.Join(dumps, open+"-2"))
		if strings.Contains(string(b), `"net2"`) {
			t.Errorf("net2, of a NAD no policy is for, is filtered:\n%s", b)
		}

		free := k.createLabeledPod(fmt.Sprintf("free%d", i), networks, nil)
		start = time.Now()
		if _, err := k.Add(free); err != nil {
			t.Fatalf("ADD of a pod no policy selects: %v\nplexusd log:\n%s", err, d.Log())
		}
		without = append(without, time.Since(start))
		if b, _ := os.ReadFile(filepath.Join(dumps, guarded+"-1")); len(b) != 0 {
			t.Errorf("a pod no policy selects has a table:\n%s", b)
		}
		for _, p := range []*cnienv.Pod{sel, free} {
			if err := k.Del(p); err != nil {
				t.Errorf("DEL: %v", err)
			}
		}
	}
	mw, mo := median(withPol), median(without)
	t.Logf("ADD (shim, plexusd, 2 bridge attachments), median of %d: %v with a policy selecting the pod, %v without (ratio %.2f)", n, mw, mo, float64(mw)/float64(mo))
}

// createLabeledPod is createPod with labels.
func (k *kubeEnv) createLabeledPod(name, networks string, labels map[string]string) *cnienv.Pod {
	k.t.Helper()
	k.labels = labels
	defer func() { k.labels = nil }()
	return k.createPod(name, networks)
}

// TestDaemonPolicyHotplugBeforeDelegate: with --network-policy, plexusd's
// hot-plug writes the new interface's rules in the pod's table before it
// runs the interface's delegate ADD (testplugin "dumpTable" reads the
// table then). Several pods: the old cache watch won that race often.
func TestDaemonPolicyHotplugBeforeDelegate(t *testing.T) {
	k := newKubeEnv(t)
	if _, err := k.cp.Kubectl("apply", "--server-side", "-f", filepath.Join(testutil.RepoRoot(), "deployments", "multi-networkpolicy-crd.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := k.cp.Kubectl("wait", "--for=condition=Established", "crd/multi-networkpolicies.k8s.cni.cncf.io"); err != nil {
		t.Fatal(err)
	}
	// Hot-plug runs delegates from binDir alone: the reference plugins
	// and testplugin, side by side.
	bin := filepath.Join(k.Dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(k.BinDir)
	for _, e := range ents {
		os.Symlink(filepath.Join(k.BinDir, e.Name()), filepath.Join(bin, e.Name()))
	}
	if err := os.Symlink(testutil.BuildPackage(t, "testplugin", "./pkg/testutil/testplugin"), filepath.Join(bin, "testplugin")); err != nil {
		t.Fatal(err)
	}
	k.BinDir = bin
	dumps := t.TempDir()
	first, plugged := "hp-a-"+k.Suffix, "hp-b-"+k.Suffix
	k.bridgeNAD("default", first, 1)
	k.createNAD("default", plugged, strings.Replace(k.BridgeConf(plugged, k.Name("hpb"), 2), `"type":"bridge",`,
		`"type":"testplugin","delegate":"bridge","dumpTable":"`+filepath.Join(dumps, "net2")+`",`, 1))
	pol := `apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata: {name: hp-deny-` + k.Suffix + `, namespace: default, annotations: {k8s.v1.cni.cncf.io/policy-for: "` + first + `, ` + plugged + `"}}
spec:
  podSelector: {matchLabels: {guard: "` + k.Suffix + `"}}
  policyTypes: [Ingress]
`
	k.applyPolicy(pol)
	confFile := filepath.Join(k.Dir, "plexus.conflist")
	if err := os.WriteFile(confFile, k.PlexusConf().Bytes, 0o600); err != nil {
		t.Fatal(err)
	}
	d := k.startPlexusd("--network-policy", "--cni-config", confFile)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plexusd log:\n%s", d.Log())
		}
	})
	waitFor(t, 20*time.Second, "plexusd's policy informers synced", func() bool { return strings.Contains(d.Log(), "policy: informers synced") })
	ctx := context.Background()
	const n = 6
	for i := 0; i < n; i++ {
		p := k.createLabeledPod(fmt.Sprintf("hp%d", i), first, map[string]string{"guard": k.Suffix})
		if _, err := k.Add(p); err != nil {
			t.Fatalf("ADD: %v\nplexusd log:\n%s", err, d.Log())
		}
		waitFor(t, 5*time.Second, "network-status published", func() bool { return len(k.podStatus(p)) == 2 })
		if _, err := k.cs.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType,
			[]byte(`{"status":{"phase":"Running"}}`), metav1.PatchOptions{}, "status"); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dumps, "net2"))
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{nadv1.NetworkAttachmentAnnot: first + "," + plugged}}})
		if _, err := k.cs.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "hot-plug ran net2's delegate", func() bool {
			_, err := os.Stat(filepath.Join(dumps, "net2"))
			return err == nil
		})
		waitFor(t, 10*time.Second, "net2 in the pod", func() bool { _, ok := k.Links(p)["net2"]; return ok })
		b, _ := os.ReadFile(filepath.Join(dumps, "net2"))
		if !strings.Contains(string(b), `"net2"`) || !strings.Contains(string(b), `"net1"`) {
			t.Fatalf("pod %d: when hot-plug ran net2's delegate ADD, the pod's table did not filter net2 (and net1):\n%s\nplexusd log:\n%s", i, b, d.Log())
		}
		if err := k.Del(p); err != nil {
			t.Errorf("DEL: %v", err)
		}
	}
}

// applyPolicy applies a MultiNetworkPolicy's YAML and deletes it after the
// test.
func (k *kubeEnv) applyPolicy(y string) {
	k.t.Helper()
	f := filepath.Join(k.t.TempDir(), "p.yaml")
	if err := os.WriteFile(f, []byte(y), 0o600); err != nil {
		k.t.Fatal(err)
	}
	if _, err := k.cp.Kubectl("apply", "-f", f); err != nil {
		k.t.Fatal(err)
	}
	k.t.Cleanup(func() { k.cp.Kubectl("delete", "-f", f) })
}
