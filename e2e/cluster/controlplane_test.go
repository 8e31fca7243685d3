package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned/typed/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

func TestMain(m *testing.M) { Main(m) }

func TestControlPlaneCRDEstablished(t *testing.T) {
	cp := Shared(t)
	out, err := cp.Kubectl("get", "crd", NADCRDName, "-o", `jsonpath={.status.conditions[?(@.type=="Established")].status}`)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "True" {
		t.Fatalf("CRD %s Established = %q, want True", NADCRDName, out)
	}
	out, err = cp.Kubectl("api-resources", "--api-group=k8s.cni.cncf.io", "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"network-attachment-definitions", "net-attach-def", "true", "NetworkAttachmentDefinition"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("api-resources for k8s.cni.cncf.io lacks %q:\n%s", want, out)
		}
	}
}

func TestControlPlaneNADRoundTrip(t *testing.T) {
	cp := Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nadclient.NewForConfig(cp.RestConfig())
	if err != nil {
		t.Fatal(err)
	}
	const conf = `{"cniVersion":"1.0.0","type":"macvlan","master":"eth0","ipam":{"type":"host-local","subnet":"10.1.2.0/24"}}`
	nad := &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke-macvlan", Namespace: "default"},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: conf},
	}
	if _, err := nc.NetworkAttachmentDefinitions("default").Create(ctx, nad, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create NAD: %v", err)
	}
	t.Cleanup(func() {
		_ = nc.NetworkAttachmentDefinitions("default").Delete(context.Background(), nad.Name, metav1.DeleteOptions{})
	})
	got, err := nc.NetworkAttachmentDefinitions("default").Get(ctx, nad.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get NAD: %v", err)
	}
	if got.Spec.Config != conf {
		t.Fatalf("NAD spec.config = %q, want %q", got.Spec.Config, conf)
	}
	out, err := cp.Kubectl("get", "net-attach-def", "-n", "default", nad.Name, "-o", "jsonpath={.spec.config}")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != conf {
		t.Fatalf("kubectl get net-attach-def: %q, want %q", out, conf)
	}
}

// The API server restarts on the same port and data.
func TestControlPlaneRestartAPIServer(t *testing.T) {
	cp := Shared(t)
	cs, err := cp.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "smoke-restart"}, Data: map[string]string{"k": "v"}}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer cs.CoreV1().ConfigMaps("default").Delete(ctx, cm.Name, metav1.DeleteOptions{})
	if err := cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, cm.Name, metav1.GetOptions{}); err == nil {
		t.Fatal("API server still answers after StopAPIServer")
	}
	start := time.Now()
	if err := cp.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver restart to /readyz: %v", time.Since(start).Round(time.Millisecond))
	got, err := cs.CoreV1().ConfigMaps("default").Get(ctx, cm.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if got.Data["k"] != "v" {
		t.Fatalf("after restart: data %v", got.Data)
	}
}

// A ServiceAccount kubeconfig gets exactly what RBAC grants.
func TestServiceAccountKubeconfigRBAC(t *testing.T) {
	cp := Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const ns = "smoke-rbac"
	if err := cp.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	admin, err := cp.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"}, Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}}}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "reader-pods"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "pod-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reader", Namespace: ns}},
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })

	path, err := cp.ServiceAccountKubeconfig(ns, "reader")
	if err != nil {
		t.Fatal(err)
	}
	sa := clientFromKubeconfig(t, path)
	tests := []struct {
		name    string
		call    func() error
		allowed bool
	}{
		{"list pods in own namespace", func() error { _, err := sa.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); return err }, true},
		{"list pods in default", func() error { _, err := sa.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); return err }, false},
		{"list secrets in own namespace", func() error { _, err := sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); return err }, false},
		{"create pod in own namespace", func() error {
			_, err := sa.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: BusyboxImage}}}}, metav1.CreateOptions{})
			return err
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			switch {
			case tc.allowed && err != nil:
				t.Fatalf("want allowed, got %v", err)
			case !tc.allowed && !apierrors.IsForbidden(err):
				t.Fatalf("want Forbidden, got %v", err)
			}
		})
	}

	// A second call rotates the token in place; the first token still works
	// (bound tokens stay valid until they expire), and so does the new one.
	old, _ := os.ReadFile(path)
	path2, err := cp.ServiceAccountKubeconfig(ns, "reader")
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := os.ReadFile(path2)
	if path2 != path || string(cur) == string(old) {
		t.Fatalf("second ServiceAccountKubeconfig: path %s (was %s), token replaced: %v", path2, path, string(cur) != string(old))
	}
	if _, err := clientFromKubeconfig(t, path2).CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("rotated token: %v", err)
	}
}

// plexus's own ServiceAccount gets the RBAC of deployments/plexus.yaml.
func TestPlexusServiceAccountKubeconfig(t *testing.T) {
	if _, err := os.Stat(PlexusManifest()); err != nil {
		t.Skipf("%s not written yet", PlexusManifest())
	}
	cp := Shared(t)
	path, err := cp.ServiceAccountKubeconfig("kube-system", "plexus")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sa := clientFromKubeconfig(t, path)
	if _, err := sa.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("plexus may list secrets in kube-system (want Forbidden): %v", err)
	}
	nc, err := nadclient.NewForConfig(restConfigFromKubeconfig(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.NetworkAttachmentDefinitions("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("plexus cannot list NADs: %v", err)
	}
}

func clientFromKubeconfig(t *testing.T, path string) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(restConfigFromKubeconfig(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// restConfigFromKubeconfig reads the token kubeconfigs the harness writes.
func restConfigFromKubeconfig(t *testing.T, path string) *rest.Config {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kc struct {
		Clusters []struct {
			Cluster struct {
				Server string `json:"server"`
				CA     string `json:"certificate-authority"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				Token string `json:"token"`
			} `json:"user"`
		} `json:"users"`
	}
	if err := yaml.Unmarshal(b, &kc); err != nil || len(kc.Clusters) != 1 || len(kc.Users) != 1 || kc.Users[0].User.Token == "" {
		t.Fatalf("kubeconfig %s: %v\n%s", path, err, b)
	}
	return &rest.Config{
		Host:            kc.Clusters[0].Cluster.Server,
		BearerToken:     kc.Users[0].User.Token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: kc.Clusters[0].Cluster.CA},
	}
}

func TestReadManifestKeepsRBACOnly(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "m.yaml")
	doc := `apiVersion: v1
kind: ServiceAccount
metadata: {name: plexus, namespace: kube-system}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: plexus, namespace: kube-system}
---
# comment only
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: plexus}
`
	if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := readManifest(f, rbacKinds)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
	}
	if strings.Join(kinds, ",") != "ServiceAccount,ClusterRole" {
		t.Fatalf("kinds %v, want ServiceAccount,ClusterRole", kinds)
	}
	if _, err := readManifest(f, nil); err == nil || !strings.Contains(err.Error(), `"DaemonSet"`) {
		t.Fatalf("unsupported kind not reported: %v", err)
	}
}
