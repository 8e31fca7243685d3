package deployments

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/plexus-cni/plexus/e2e/cluster"
)

const (
	nodeBoundPolicyFile = "policy/plexus-node-bound-status.yaml"
	nodeNameExtra       = "authentication.kubernetes.io/node-name"
)

// TestNodeBoundStatusPolicy applies deployments/policy/plexus-node-bound-status.yaml
// to the real kube-apiserver and writes as the plexus ServiceAccount with
// tokens bound to plexus pods on two nodes: a token patches the status of
// (and creates Events for) its own node's pods only; a token bound to no
// node writes nothing; other users are not affected.
func TestNodeBoundStatusPolicy(t *testing.T) {
	cp := cluster.Shared(t)
	ctx := context.Background()
	admin, err := cp.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	applyPlexusIdentity(t, cp)
	const ns = "nodebound"
	if err := cp.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}

	// Two nodes, a plexus pod on each (the DaemonSet's pods, as objects:
	// nothing runs them), a workload pod on each.
	for _, n := range []string{"node-a", "node-b"} {
		_, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	plexusA := createPod(ctx, t, admin, "kube-system", "plexus-node-a", "plexus", "node-a")
	plexusB := createPod(ctx, t, admin, "kube-system", "plexus-node-b", "plexus", "node-b")
	createPod(ctx, t, admin, ns, "on-a", "default", "node-a")
	createPod(ctx, t, admin, ns, "on-b", "default", "node-b")

	tokenA := plexusClient(ctx, t, cp, admin, plexusA, "node-a")
	tokenB := plexusClient(ctx, t, cp, admin, plexusB, "node-b")
	unbound := plexusClient(ctx, t, cp, admin, nil, "")

	// Without the policy, RBAC lets any plexus token patch any pod: what
	// the policy is for (and proof that its refusals below are its own).
	if err := patchStatus(ctx, tokenA, ns, "on-b", "before-policy"); err != nil {
		t.Fatalf("without the policy, node-a's token patching a pod on node-b: %v; want allowed (RBAC)", err)
	}

	applyNodeBoundPolicy(t, cp, tokenA, ns)

	const crossNode = `plexus on node "node-a" may not patch the status of pod nodebound/on-b, which is on node "node-b"`
	const noNode = `plexus credentials not bound to a node may not write the status of pod nodebound/on-a`
	for _, tc := range []struct {
		name    string
		client  kubernetes.Interface
		pod     string
		refused string // "" = admitted
	}{
		{name: "own-node", client: tokenA, pod: "on-a"},
		{name: "other-node", client: tokenA, pod: "on-b", refused: crossNode},
		{name: "own-node-b", client: tokenB, pod: "on-b"},
		{name: "other-node-b", client: tokenB, pod: "on-a",
			refused: `plexus on node "node-b" may not patch the status of pod nodebound/on-a, which is on node "node-a"`},
		{name: "unbound-token", client: unbound, pod: "on-a", refused: noNode},
		// The policy matches the plexus ServiceAccount only.
		{name: "admin", client: admin, pod: "on-b"},
	} {
		t.Run("status/"+tc.name, func(t *testing.T) {
			err := patchStatus(ctx, tc.client, ns, tc.pod, tc.name)
			checkAdmission(t, "patch pods/status "+ns+"/"+tc.pod, err, tc.refused)
			if err != nil {
				return
			}
			p, err := admin.CoreV1().Pods(ns).Get(ctx, tc.pod, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Annotations["k8s.v1.cni.cncf.io/network-status"]; !strings.Contains(got, tc.name) {
				t.Errorf("pod %s/%s network-status = %q after an admitted patch, want it to name %q", ns, tc.pod, got, tc.name)
			}
		})
	}

	for _, tc := range []struct {
		name, host, instance string
		client               kubernetes.Interface
		refused              string
	}{
		{name: "own-node", client: tokenA, host: "node-a", instance: "plexus-node-a"},
		{name: "as-other-node", client: tokenA, host: "node-b", instance: "plexus-node-b",
			refused: `plexus on node "node-a" may not create an event from node "node-b"`},
		{name: "other-host", client: tokenA, host: "node-b", instance: "plexus-node-a",
			refused: `plexus on node "node-a" may not create an event from node "node-b" (reportingInstance "plexus-node-a")`},
		{name: "other-instance", client: tokenA, host: "node-a", instance: "plexus-node-b",
			refused: `(reportingInstance "plexus-node-b"): source.host must be "node-a" and reportingInstance "plexus-node-a"`},
		// The limit of the policy (CEL cannot get the pod an Event is
		// about): node-a may report about node-b's pod, as node-a.
		{name: "about-other-nodes-pod", client: tokenA, host: "node-a", instance: "plexus-node-a"},
		{name: "unbound-token", client: unbound, host: "node-a", instance: "plexus-node-a",
			refused: `plexus credentials not bound to a node may not write events`},
	} {
		t.Run("event/"+tc.name, func(t *testing.T) {
			pod := "on-a"
			if tc.name == "about-other-nodes-pod" {
				pod = "on-b"
			}
			_, err := tc.client.CoreV1().Events(ns).Create(ctx, plexusEvent(ns, pod, tc.host, tc.instance), metav1.CreateOptions{})
			checkAdmission(t, "create event", err, tc.refused)
		})
	}
}

// checkAdmission checks err against what the policy must answer: nil when
// refused is "", else an admission refusal containing refused.
func checkAdmission(t *testing.T, what string, err error, refused string) {
	t.Helper()
	switch {
	case refused == "" && err != nil:
		t.Errorf("%s refused: %v", what, err)
	case refused != "" && err == nil:
		t.Errorf("%s admitted; want refused with %q", what, refused)
	case refused != "" && !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err):
		t.Errorf("%s: %v; want an admission refusal", what, err)
	case refused != "" && !strings.Contains(err.Error(), refused):
		t.Errorf("%s refused with\n  %v\nwant it to contain\n  %s", what, err, refused)
	}
}

// applyPlexusIdentity applies the ServiceAccount, ClusterRole and
// ClusterRoleBinding of plexus.yaml (not the DaemonSet: other tests own it).
func applyPlexusIdentity(t *testing.T, cp *cluster.ControlPlane) {
	t.Helper()
	var parts []string
	for _, d := range documents(t, "plexus.yaml") {
		switch d["kind"] {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding":
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, string(b))
		}
	}
	if len(parts) != 3 {
		t.Fatalf("plexus.yaml: %d of ServiceAccount, ClusterRole, ClusterRoleBinding, want 3", len(parts))
	}
	f := filepath.Join(t.TempDir(), "plexus-identity.yaml")
	if err := os.WriteFile(f, []byte(strings.Join(parts, "\n---\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Kubectl("apply", "-f", f); err != nil {
		t.Fatal(err)
	}
}

// createPod creates a pod bound to node (it never runs: no kubelet) and
// deletes it at cleanup.
func createPod(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name, sa, node string) *corev1.Pod {
	t.Helper()
	no := false
	p, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			NodeName: node, ServiceAccountName: sa, AutomountServiceAccountToken: &no,
			Containers: []corev1.Container{{Name: "c", Image: "busybox", ImagePullPolicy: corev1.PullNever}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("pod %s/%s: %v", ns, name, err)
	}
	t.Cleanup(func() {
		zero := int64(0)
		_ = cs.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	return p
}

// plexusClient returns a client with a token of kube-system/plexus bound
// to pod (TokenRequest, as kubelet projects it into the DaemonSet's pod),
// or bound to nothing when pod is nil; it checks with a SelfSubjectReview
// that the apiserver authenticates the token with node wantNode ("" = no
// node claim).
func plexusClient(ctx context.Context, t *testing.T, cp *cluster.ControlPlane, admin kubernetes.Interface, pod *corev1.Pod, wantNode string) kubernetes.Interface {
	t.Helper()
	exp := int64(3600)
	spec := authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}
	if pod != nil {
		spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	tr, err := admin.CoreV1().ServiceAccounts("kube-system").CreateToken(ctx, "plexus", &authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for kube-system/plexus: %v", err)
	}
	cfg := rest.CopyConfig(cp.RestConfig())
	cfg.BearerToken = tr.Status.Token
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectReview: %v", err)
	}
	u := r.Status.UserInfo
	if u.Username != "system:serviceaccount:kube-system:plexus" {
		t.Fatalf("token authenticates as %q, want the plexus ServiceAccount", u.Username)
	}
	got := strings.Join(u.Extra[nodeNameExtra], ",")
	if got != wantNode {
		t.Fatalf("token bound to %v: extra %s = %q, want %q (extra: %v)", pod != nil, nodeNameExtra, got, wantNode, u.Extra)
	}
	return cs
}

// patchStatus writes the pod's network-status as plexus does: one merge
// PATCH of pods/status (pkg/k8s/status.go).
func patchStatus(ctx context.Context, cs kubernetes.Interface, ns, pod, value string) error {
	status, err := json.Marshal([]map[string]any{{"name": "default/cluster", "interface": "eth0", "default": true, "note": value}})
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		"k8s.v1.cni.cncf.io/network-status": string(status)}}})
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Pods(ns).Patch(ctx, pod, types.MergePatchType, body, metav1.PatchOptions{}, "status")
	return err
}

// plexusEvent is an Event as pkg/k8s/status.go newEvent builds it, from
// host with reportingInstance instance.
func plexusEvent(ns, pod, host, instance string) *corev1.Event {
	now := metav1.Now()
	return &corev1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", pod, time.Now().UnixNano()), Namespace: ns},
		InvolvedObject:      corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: ns, Name: pod},
		Reason:              "AddedInterface",
		Message:             "test",
		Type:                corev1.EventTypeNormal,
		Source:              corev1.EventSource{Component: "plexus", Host: host},
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
		ReportingController: "plexus",
		ReportingInstance:   instance,
	}
}

// applyNodeBoundPolicy applies the policy and waits until node-a's token
// is refused on node-b's pod; at cleanup it deletes the policy and waits
// until that patch is admitted again.
func applyNodeBoundPolicy(t *testing.T, cp *cluster.ControlPlane, tokenA kubernetes.Interface, ns string) {
	t.Helper()
	if _, err := cp.Kubectl("apply", "-f", nodeBoundPolicyFile); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := cp.Kubectl("delete", "--ignore-not-found", "-f", nodeBoundPolicyFile); err != nil {
			t.Error(err)
			return
		}
		var last error
		err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, policyTimeout, true, func(ctx context.Context) (bool, error) {
			last = patchStatus(ctx, tokenA, ns, "on-b", "policy-gone")
			return last == nil, nil
		})
		if err != nil {
			t.Errorf("%s deleted, node-a's token still refused on node-b's pod after %s: %v", nodeBoundPolicyFile, policyTimeout, last)
		}
	})
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, policyTimeout, true, func(ctx context.Context) (bool, error) {
		last = patchStatus(ctx, tokenA, ns, "on-b", "probe")
		return last != nil && strings.Contains(last.Error(), `may not patch the status of pod`), nil
	})
	if err != nil {
		t.Fatalf("%s: not in effect after %s (node-a's token patching node-b's pod, last answer: %v)", nodeBoundPolicyFile, policyTimeout, last)
	}
}
