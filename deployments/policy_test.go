package deployments

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/plexus-cni/plexus/e2e/cluster"
)

const (
	delegatePolicyFile = "policy/nad-delegate-policy.yaml"
	typesPolicyFile    = "policy/nad-plugin-types-policy.yaml"
	// policyTimeout bounds the wait for a policy (or its parameter) to take
	// effect: kube-apiserver loads them through informers.
	policyTimeout = 60 * time.Second
)

var nadGVR = schema.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1", Resource: "network-attachment-definitions"}

// policyCase is a NAD's spec.config and what the policy must say about it.
type policyCase struct {
	name   string
	config string
	// refused: the substring the refusal must carry; "" = admitted.
	refused string
	// sees: what Go's encoding/json (libcni and the reference plugins)
	// reads from config, "type=<t>" or "key=<k>": proves a refused case is
	// a real way to reach a plugin, not a strawman. "" = not checked.
	sees string
}

// TestNADDelegatePolicy applies deployments/policy/nad-delegate-policy.yaml
// to the real kube-apiserver and creates NADs: meta-plugins, runtime-owned
// keys and \u escapes are refused at creation and on update, with a message
// naming the network and what is wrong; ordinary NADs, Multus's e2e NADs
// and the example NADs are admitted.
func TestNADDelegatePolicy(t *testing.T) {
	cp := cluster.Shared(t)
	ctx := context.Background()
	const ns = "vap-tenant"
	if err := cp.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	nads := nadClient(t, cp)
	applyPolicy(t, cp, nads, delegatePolicyFile, ns)

	for _, tc := range []policyCase{
		{name: "macvlan", config: `{"cniVersion":"1.0.0","name":"macvlan","type":"macvlan","master":"eth1","mode":"bridge",
			"ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.1.0/24"}]]}}`},
		// Multus's e2e NADs (e2e/templates/simple-macvlan1.yml.j2, e2e/static-pod-nad.yml).
		{name: "multus-simple-macvlan1", config: `{ "cniVersion": "0.4.0", "plugins": [ { "type": "macvlan",
			"capabilities": { "ips": true }, "master": "eth1", "mode": "bridge", "ipam": { "type": "static" } },
			{ "type": "tuning" } ] }`},
		{name: "multus-static-pod-nad", config: `{ "cniVersion": "0.3.1", "name": "testnet", "type": "bridge",
			"bridge": "testnet0", "ipam": { "type": "host-local", "subnet": "10.10.0.0/16" } }`},
		// Quoted text inside a string value is not a key.
		{name: "quoted-in-value", config: `{"cniVersion":"1.0.0","name":"q","type":"bridge","note":"\"type\": \"multus\", \"args\": 1"}`},
		{name: "empty-config", config: ``},

		{name: "meta-conflist", config: `{"cniVersion":"1.0.0","name":"meta","plugins":[{"type":"macvlan","master":"eth1"},{"type":"multus"}]}`,
			refused: `network "vap-tenant/meta-conflist": plugin type "multus" is a meta-plugin; a NAD may not nest one`, sees: "type=multus"},
		{name: "meta-plexus", config: `{"cniVersion":"1.0.0","name":"p","type":"plexus"}`,
			refused: `plugin type "plexus" is a meta-plugin`, sees: "type=plexus"},
		{name: "meta-multus-shim", config: `{"cniVersion":"1.0.0","name":"p","plugins":[{"type":"multus-shim"}]}`,
			refused: `plugin type "multus-shim" is a meta-plugin`, sees: "type=multus-shim"},
		// encoding/json matches keys case-insensitively: libcni reads "TYPE" as type.
		{name: "meta-key-case", config: `{"cniVersion":"1.0.0","name":"p","plugins":[{"type":"bridge"},{"TYPE" : "multus"}]}`,
			refused: `plugin type "multus" is a meta-plugin`, sees: "type=multus"},
		{name: "meta-value-case", config: `{"cniVersion":"1.0.0","name":"p","type":"Multus"}`,
			refused: `plugin type "Multus" is a meta-plugin`, sees: "type=Multus"},
		{name: "meta-in-ipam", config: `{"cniVersion":"1.0.0","name":"p","type":"bridge","ipam":{"type":"plexus"}}`,
			refused: `plugin type "plexus" is a meta-plugin`},
		{name: "unicode-escape-key", config: `{"cniVersion":"1.0.0","name":"u","plugins":[{"type":"bridge"},{"typ\u0065":"multus"}]}`,
			refused: `network "vap-tenant/unicode-escape-key": spec.config may not contain JSON \u escapes`, sees: "type=multus"},
		{name: "unicode-escape-value", config: `{"cniVersion":"1.0.0","name":"u","type":"mult\u0075s"}`,
			refused: `may not contain JSON \u escapes`, sees: "type=multus"},
		{name: "unicode-escape-runtimeconfig", config: `{"cniVersion":"1.0.0","name":"u","type":"bridge","runtim\u0065Config":{"ips":["10.1.1.9/24"]}}`,
			refused: `may not contain JSON \u escapes`, sees: "key=runtimeConfig"},
		{name: "path-type", config: `{"cniVersion":"1.0.0","name":"p","type":"..\/bin\/multus"}`,
			refused: `plugin type "..\/bin\/multus" is not a plain plugin name`},

		{name: "runtimeconfig", config: `{"cniVersion":"1.0.0","name":"r","type":"macvlan","runtimeConfig":{"ips":["10.1.1.9/24"]}}`,
			refused: `network "vap-tenant/runtimeconfig": key "runtimeConfig" in spec.config is set by the runtime`, sees: "key=runtimeConfig"},
		{name: "runtimeconfig-in-plugin", config: `{"cniVersion":"1.0.0","name":"r","plugins":[{"type":"macvlan"},{"type":"tuning","runtimeConfig":{"mac":"02:00:00:00:00:01"}}]}`,
			refused: `key "runtimeConfig" in spec.config is set by the runtime`, sees: "key=runtimeConfig"},
		{name: "runtimeconfig-case", config: `{"cniVersion":"1.0.0","name":"r","type":"macvlan","RuntimeConfig" :{"ips":["10.1.1.9/24"]}}`,
			refused: `key "RuntimeConfig" in spec.config is set by the runtime`, sees: "key=runtimeConfig"},
		{name: "prevresult", config: `{"cniVersion":"1.0.0","name":"r","type":"macvlan","prevResult":{"cniVersion":"1.0.0"}}`,
			refused: `key "prevResult"`, sees: "key=prevResult"},
		{name: "args", config: `{"cniVersion":"1.0.0","name":"r","type":"macvlan","ipam":{"type":"static"},"args":{"cni":{"ips":["10.1.1.9/24"]}}}`,
			refused: `key "args"`, sees: "key=args"},
		{name: "args-in-plugin", config: `{"cniVersion":"1.0.0","name":"r","plugins":[{"type":"macvlan","ipam":{"type":"static"},"ARGS":{"cni":{"ips":["10.1.1.9/24"]}}}]}`,
			refused: `key "ARGS"`, sees: "key=args"},
		// U+017F LATIN SMALL LETTER LONG S folds to "s" in encoding/json and in (?i).
		{name: "args-unicode-fold", config: `{"cniVersion":"1.0.0","name":"r","type":"macvlan","argſ":{"cni":{"ips":["10.1.1.9/24"]}}}`,
			refused: `key "argſ"`, sees: "key=args"},
		{name: "cni-dev-key", config: `{"cniVersion":"1.0.0","name":"r","type":"macvlan","cni.dev/valid-attachments":[]}`,
			refused: `key "cni.dev/valid-attachments"`, sees: "key=cni.dev/valid-attachments"},
		{name: "cni-dev-escaped-slash", config: `{"cniVersion":"1.0.0","name":"r","plugins":[{"type":"macvlan","cni.dev\/valid-attachments":[]}]}`,
			refused: `key "cni.dev\/valid-attachments"`, sees: "key=cni.dev/valid-attachments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkCase(ctx, t, nads, ns, tc)
		})
	}

	t.Run("update", func(t *testing.T) {
		good := `{"cniVersion":"1.0.0","name":"upd","type":"macvlan","master":"eth1"}`
		obj, err := nads.Namespace(ns).Create(ctx, nadObject("update-me", good), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		t.Cleanup(func() { _ = nads.Namespace(ns).Delete(context.Background(), "update-me", metav1.DeleteOptions{}) })
		_ = unstructured.SetNestedField(obj.Object, `{"cniVersion":"1.0.0","name":"upd","plugins":[{"type":"macvlan"},{"type":"multus"}]}`, "spec", "config")
		_, err = nads.Namespace(ns).Update(ctx, obj, metav1.UpdateOptions{})
		if err == nil || !strings.Contains(err.Error(), `network "vap-tenant/update-me": plugin type "multus" is a meta-plugin`) {
			t.Errorf("update to a conflist nesting multus: err = %v, want the meta-plugin refusal", err)
		}
	})

	t.Run("examples", func(t *testing.T) {
		for _, n := range exampleNADs(t) {
			if _, err := nads.Namespace(ns).Create(ctx, n, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Errorf("example NAD %s refused by %s: %v", n.GetName(), delegatePolicyFile, err)
			}
		}
	})
}

// TestNADPluginTypesPolicy applies deployments/policy/nad-plugin-types-policy.yaml
// as shipped (the recommended restrictive parameter: sriov and host-device
// only in the listed namespaces): sriov is refused in a namespace the
// parameter does not list and admitted in one it lists; without the
// parameter ConfigMap every type is admitted again.
func TestNADPluginTypesPolicy(t *testing.T) {
	cp := cluster.Shared(t)
	ctx := context.Background()
	const tenant, listed = "vap-types-tenant", "sriov-workloads" // listed: ns.sriov-workloads in the shipped ConfigMap
	for _, ns := range []string{tenant, listed} {
		if err := cp.CreateNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	nads := nadClient(t, cp)
	const sriov = `{"cniVersion":"1.0.0","name":"sriov-net","type":"sriov","vlan":100,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.40.0.0/24"}]]}}`
	applyPolicy(t, cp, nads, typesPolicyFile, tenant)

	for _, tc := range []policyCase{
		{name: "sriov", config: sriov,
			refused: `network "vap-types-tenant/sriov": plugin type "sriov" is not allowed in namespace "vap-types-tenant" (allowed there: bridge, macvlan,`},
		{name: "host-device", config: `{"cniVersion":"1.0.0","name":"hd","type":"host-device","device":"eth9"}`,
			refused: `plugin type "host-device" is not allowed in namespace "vap-types-tenant"`},
		{name: "macvlan", config: `{"cniVersion":"1.0.0","name":"m","plugins":[{"type":"macvlan","master":"eth1","ipam":{"type":"static"}},{"type":"tuning"}]}`},
		// IPAM types count: an IPAM plugin is a host binary too.
		{name: "unlisted-ipam", config: `{"cniVersion":"1.0.0","name":"m","type":"macvlan","ipam":{"type":"my-ipam"}}`,
			refused: `plugin type "my-ipam" is not allowed in namespace "vap-types-tenant"`},
		{name: "empty-config", config: ``},
	} {
		t.Run(tc.name, func(t *testing.T) { checkCase(ctx, t, nads, tenant, tc) })
	}
	t.Run("listed-namespace", func(t *testing.T) {
		checkCase(ctx, t, nads, listed, policyCase{name: "sriov", config: sriov})
		checkCase(ctx, t, nads, listed, policyCase{name: "host-device", config: `{"cniVersion":"1.0.0","name":"hd","type":"host-device","device":"eth9"}`})
	})
	t.Run("examples", func(t *testing.T) {
		for _, n := range exampleNADs(t) {
			_, err := nads.Namespace(tenant).Create(ctx, n, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if n.GetName() == "sriov-net" {
				if err == nil || !strings.Contains(err.Error(), `plugin type "sriov" is not allowed`) {
					t.Errorf("example NAD sriov-net in %s: err = %v, want refused", tenant, err)
				}
				if _, err := nads.Namespace(listed).Create(ctx, n, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
					t.Errorf("example NAD sriov-net in %s: %v", listed, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("example NAD %s refused in %s: %v", n.GetName(), tenant, err)
			}
		}
	})
	t.Run("without-parameter", func(t *testing.T) {
		if _, err := cp.Kubectl("-n", "kube-system", "delete", "configmap", "plexus-nad-plugin-types"); err != nil {
			t.Fatal(err)
		}
		// The binding allows every type once the parameter is gone.
		waitAdmitted(ctx, t, nads, tenant, "probe-sriov", sriov)
	})
}

// checkCase creates the NAD of tc in ns and checks the policy's answer
// (and, for refused cases, that Go's JSON decoding reads what tc.sees).
func checkCase(ctx context.Context, t *testing.T, nads dynamic.NamespaceableResourceInterface, ns string, tc policyCase) {
	t.Helper()
	if tc.sees != "" {
		if got := decodedAs(tc.config); !contains(got, tc.sees) {
			t.Fatalf("case %s: Go's JSON decoding reads %v, not %s: not the attack the case is about", tc.name, got, tc.sees)
		}
	}
	_, err := nads.Namespace(ns).Create(ctx, nadObject(tc.name, tc.config), metav1.CreateOptions{})
	if err == nil {
		t.Cleanup(func() { _ = nads.Namespace(ns).Delete(context.Background(), tc.name, metav1.DeleteOptions{}) })
	}
	switch {
	case tc.refused == "" && err != nil:
		t.Errorf("NAD %s/%s refused: %v", ns, tc.name, err)
	case tc.refused != "" && err == nil:
		t.Errorf("NAD %s/%s admitted; want refused with %q", ns, tc.name, tc.refused)
	case tc.refused != "" && !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err):
		t.Errorf("NAD %s/%s: %v; want an admission refusal", ns, tc.name, err)
	case tc.refused != "" && !strings.Contains(err.Error(), tc.refused):
		t.Errorf("NAD %s/%s refused with\n  %v\nwant it to contain\n  %s", ns, tc.name, err, tc.refused)
	}
}

// applyPolicy applies a policy file, waits until it refuses a NAD nesting
// multus (delegate policy) or a sriov NAD (types policy) in ns, and
// deletes it at cleanup, waiting until that NAD is admitted again.
func applyPolicy(t *testing.T, cp *cluster.ControlPlane, nads dynamic.NamespaceableResourceInterface, file, ns string) {
	t.Helper()
	ctx := context.Background()
	probe, want := `{"cniVersion":"1.0.0","name":"probe","plugins":[{"type":"bridge"},{"type":"multus"}]}`, "is a meta-plugin"
	if file == typesPolicyFile {
		probe, want = `{"cniVersion":"1.0.0","name":"probe","type":"sriov"}`, "is not allowed in namespace"
	}
	if _, err := cp.Kubectl("apply", "-f", file); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := cp.Kubectl("delete", "--ignore-not-found", "-f", file); err != nil {
			t.Error(err)
			return
		}
		waitAdmitted(context.Background(), t, nads, ns, "probe-gone", probe)
	})
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, policyTimeout, true, func(ctx context.Context) (bool, error) {
		_, last = nads.Namespace(ns).Create(ctx, nadObject("probe", probe), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return last != nil && strings.Contains(last.Error(), want), nil
	})
	if err != nil {
		t.Fatalf("%s: not in effect after %s (a NAD it refuses, last answer: %v)", file, policyTimeout, last)
	}
}

// waitAdmitted waits until a NAD with config is admitted in ns (dry run).
func waitAdmitted(ctx context.Context, t *testing.T, nads dynamic.NamespaceableResourceInterface, ns, name, config string) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, policyTimeout, true, func(ctx context.Context) (bool, error) {
		_, last = nads.Namespace(ns).Create(ctx, nadObject(name, config), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("NAD %s/%s still refused after %s: %v", ns, name, policyTimeout, last)
	}
}

func nadClient(t *testing.T, cp *cluster.ControlPlane) dynamic.NamespaceableResourceInterface {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cp.RestConfig())
	if err != nil {
		t.Fatal(err)
	}
	return dyn.Resource(nadGVR)
}

func nadObject(name, config string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"config": config},
	}}
}

// exampleNADs returns the NADs of deployments/examples.
func exampleNADs(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, f := range manifests(t) {
		if !strings.HasPrefix(f, "examples/") {
			continue
		}
		for _, d := range documents(t, f) {
			if d["kind"] == "NetworkAttachmentDefinition" {
				out = append(out, &unstructured.Unstructured{Object: d})
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no example NADs")
	}
	return out
}

// decodedAs lists what Go's encoding/json — libcni's and the reference
// plugins' decoder, which matches keys case-insensitively with Unicode
// folding — reads from a config: "type=<t>" per plugin and
// "key=<canonical key>" for each runtime-owned key at the top level or in
// a plugin.
func decodedAs(config string) []string {
	var out []string
	raw := []byte(config)
	var probe map[string]json.RawMessage
	if json.Unmarshal(raw, &probe) != nil {
		return []string{"invalid JSON"}
	}
	var l *libcni.NetworkConfigList
	var err error
	if _, ok := probe["plugins"]; ok {
		l, err = libcni.ConfListFromBytes(raw)
	} else {
		var c *libcni.PluginConfig
		if c, err = libcni.NetworkPluginConfFromBytes(raw); err == nil {
			l = &libcni.NetworkConfigList{Plugins: []*libcni.PluginConfig{c}}
		}
	}
	if err != nil {
		return []string{"libcni: " + err.Error()}
	}
	objs := [][]byte{raw}
	for _, p := range l.Plugins {
		out = append(out, "type="+p.Network.Type)
		objs = append(objs, p.Bytes)
	}
	for _, b := range objs {
		var k struct {
			RuntimeConfig    json.RawMessage `json:"runtimeConfig"`
			PrevResult       json.RawMessage `json:"prevResult"`
			Args             json.RawMessage `json:"args"`
			ValidAttachments json.RawMessage `json:"cni.dev/valid-attachments"`
		}
		if json.Unmarshal(b, &k) != nil {
			continue
		}
		for key, v := range map[string]json.RawMessage{"runtimeConfig": k.RuntimeConfig, "prevResult": k.PrevResult,
			"args": k.Args, "cni.dev/valid-attachments": k.ValidAttachments} {
			if v != nil {
				out = append(out, "key="+key)
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
