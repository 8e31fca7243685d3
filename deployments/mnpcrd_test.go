package deployments

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mnp "github.com/k8snetworkplumbingwg/multi-networkpolicy/pkg/apis/k8s.cni.cncf.io/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/plexus-cni/plexus/e2e/cluster"
)

const mnpCRDFile = "multi-networkpolicy-crd.yaml"

// TestMultiNetworkPolicyCRD, on a real apiserver:
//   - a CRD another project installed (here a "newer" one: a v1beta3
//     stored, other descriptions), under its own field manager, is not
//     clobbered by `kubectl apply --server-side` of ours (the way
//     docs/network-policy.md installs it): kubectl reports the conflict
//     and the installed CRD is unchanged;
//   - without one, ours installs, and a v1beta2 policy with endPort and a
//     named port reads back as v1beta1 (what pkg/netpol compiles) with
//     every field kept.
func TestMultiNetworkPolicyCRD(t *testing.T) {
	cp := cluster.Shared(t)
	const name = "crd/multi-networkpolicies.k8s.cni.cncf.io"
	cleanup := func() { _, _ = cp.Kubectl("delete", "--ignore-not-found", "--wait", name) }
	cleanup()
	t.Cleanup(func() { cleanup(); installMNPCRD(t, cp) })

	// A newer CRD, installed by someone else.
	var crd map[string]any
	b, err := os.ReadFile(mnpCRDFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	spec := crd["spec"].(map[string]any)
	versions := spec["versions"].([]any)
	v3 := map[string]any{}
	remarshal(t, versions[1], &v3)
	v3["name"], v3["storage"] = "v1beta3", true
	versions[0].(map[string]any)["storage"] = false
	versions[0].(map[string]any)["schema"].(map[string]any)["openAPIV3Schema"].(map[string]any)["description"] = "a newer one"
	spec["versions"] = append(versions, v3)
	newer, err := yaml.Marshal(crd)
	if err != nil {
		t.Fatal(err)
	}
	newerFile := filepath.Join(t.TempDir(), "newer.yaml")
	if err := os.WriteFile(newerFile, newer, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Kubectl("apply", "--server-side", "--field-manager=other-project", "-f", newerFile); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Kubectl("wait", "--for=condition=Established", name); err != nil {
		t.Fatal(err)
	}
	before, err := cp.Kubectl("get", name, "-o", "jsonpath={.spec.versions[*].name} {.metadata.resourceVersion}")
	if err != nil {
		t.Fatal(err)
	}
	out, err := cp.Kubectl("apply", "--server-side", "-f", mnpCRDFile)
	if err == nil || !strings.Contains(string(out), "conflict") {
		t.Errorf("applying ours over another project's newer CRD: err %v, want a conflict:\n%s", err, out)
	}
	after, err := cp.Kubectl("get", name, "-o", "jsonpath={.spec.versions[*].name} {.metadata.resourceVersion}")
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) || !strings.HasPrefix(string(after), "v1beta1 v1beta2 v1beta3 ") {
		t.Errorf("the installed CRD changed: %q, was %q", after, before)
	}

	// None installed: ours installs, and serves both versions as one.
	cleanup()
	if _, err := cp.Kubectl("apply", "--server-side", "-f", mnpCRDFile); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Kubectl("wait", "--for=condition=Established", name); err != nil {
		t.Fatal(err)
	}
	pol := `apiVersion: k8s.cni.cncf.io/v1beta2
kind: MultiNetworkPolicy
metadata:
  name: p
  namespace: default
  annotations:
    k8s.v1.cni.cncf.io/policy-for: lan
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - namespaceSelector: {}
          podSelector: {matchExpressions: [{key: app, operator: In, values: [b]}]}
        - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
      ports:
        - {protocol: UDP, port: 8000, endPort: 8100}
        - {port: http}
  egress:
    - to: [{podSelector: {}}]
`
	polFile := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(polFile, []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Kubectl("apply", "-f", polFile); err != nil {
		t.Fatal(err)
	}
	got, err := cp.Kubectl("get", "multi-networkpolicies.v1beta1.k8s.cni.cncf.io", "-n", "default", "p", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var p mnp.MultiNetworkPolicy
	if err := json.Unmarshal(got, &p); err != nil {
		t.Fatal(err)
	}
	in := p.Spec.Ingress
	if p.APIVersion != "k8s.cni.cncf.io/v1beta1" || len(p.Spec.PolicyTypes) != 2 || len(in) != 1 || len(in[0].From) != 2 ||
		in[0].From[0].NamespaceSelector == nil || len(in[0].From[0].PodSelector.MatchExpressions) != 1 ||
		len(in[0].From[1].IPBlock.Except) != 1 || len(in[0].Ports) != 2 || in[0].Ports[0].EndPort == nil ||
		*in[0].Ports[0].EndPort != 8100 || in[0].Ports[1].Port.StrVal != "http" || len(p.Spec.Egress) != 1 {
		t.Errorf("policy read back as v1beta1 lost fields:\n%s", got)
	}
	// The schema refuses what NetworkPolicy's does: an unknown policy type.
	bad := strings.Replace(pol, "[Ingress, Egress]", "[Sideways]", 1)
	if err := os.WriteFile(polFile, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := cp.Kubectl("apply", "-f", polFile); err == nil {
		t.Errorf("policyTypes [Sideways] accepted:\n%s", out)
	}
}

// installMNPCRD installs our MultiNetworkPolicy CRD (kubectl auth can-i
// needs the resource to be discovered).
func installMNPCRD(t *testing.T, cp *cluster.ControlPlane) {
	t.Helper()
	if _, err := cp.Kubectl("apply", "--server-side", "-f", mnpCRDFile); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Kubectl("wait", "--for=condition=Established", "crd/multi-networkpolicies.k8s.cni.cncf.io"); err != nil {
		t.Fatal(err)
	}
}
