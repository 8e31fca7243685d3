package cluster

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The scheduler and the resourceclaim controller run: a pod naming a
// ResourceClaimTemplate gets its ResourceClaim (made by the controller, owned
// by the pod) and, with no node that could hold it, the scheduler's
// Unschedulable condition.
func TestControllersAllocateFromTemplates(t *testing.T) {
	cp := Shared(t)
	if err := cp.StartControllers(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.StopControllers(); err != nil {
			t.Error(err)
		}
	})
	if err := cp.StartControllers(); err != nil { // already running: no-op
		t.Fatal(err)
	}
	cs, err := cp.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := "ctrl-test"
	if err := cp.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.ResourceV1().DeviceClasses().Create(ctx, &resourcev1.DeviceClass{ObjectMeta: metav1.ObjectMeta{Name: "ctrl-test.example.com"},
		Spec: resourcev1.DeviceClassSpec{Selectors: []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{Expression: `device.driver == "ctrl-test.example.com"`}}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.ResourceV1().ResourceClaimTemplates(ns).Create(ctx, &resourcev1.ResourceClaimTemplate{ObjectMeta: metav1.ObjectMeta{Name: "tmpl"},
		Spec: resourcev1.ResourceClaimTemplateSpec{Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
			Name: "dev", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: "ctrl-test.example.com"}}}}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	no := false
	tmpl := "tmpl"
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{
		AutomountServiceAccountToken: &no,
		ResourceClaims:               []corev1.PodResourceClaim{{Name: "c", ResourceClaimTemplateName: &tmpl}},
		Containers:                   []corev1.Container{{Name: "c", Image: BusyboxImage, Resources: corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "c"}}}}},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var claimName, reason string
	err = waitFor("claim and Unschedulable condition", 60*time.Second, 100*time.Millisecond, func() (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, s := range p.Status.ResourceClaimStatuses {
			if s.Name == "c" && s.ResourceClaimName != nil {
				claimName = *s.ResourceClaimName
			}
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				reason = c.Reason
			}
		}
		return claimName != "" && reason != "", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if reason != corev1.PodReasonUnschedulable {
		t.Errorf("PodScheduled reason %q, want %q", reason, corev1.PodReasonUnschedulable)
	}
	claim, err := cs.ResourceV1().ResourceClaims(ns).Get(ctx, claimName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(claim.OwnerReferences) != 1 || claim.OwnerReferences[0].UID != pod.UID {
		t.Errorf("claim %s owners %+v, want the pod %s", claimName, claim.OwnerReferences, pod.UID)
	}
}
