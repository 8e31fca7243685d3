package k8s

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// Annotations kubelet puts on the API object of a static pod (its mirror
// pod). The mirror pod's UID differs from the UID the runtime passes.
const (
	annotationMirror       = "kubernetes.io/config.mirror"
	annotationConfigSource = "kubernetes.io/config.source"
)

// Pods returns the PodSource of c.
func (c *Client) Pods() PodSource { return PodSource{c} }

// PodSource gets pods through the API.
type PodSource struct{ c *Client }

// Pod GETs the pod ref names. A pod that is not in the API yet is waited for
// up to Options.PodWait; a non-empty ref.UID must match the pod's UID unless
// the pod is a mirror (static) pod.
func (s PodSource) Pod(ctx context.Context, ref podnet.PodRef) (*podnet.Pod, error) {
	c := s.c
	if ref.Namespace == "" || ref.Name == "" {
		return nil, fmt.Errorf("pod %q: namespace and name must both be set (K8S_POD_NAMESPACE, K8S_POD_NAME)", ref.String())
	}
	ctx, cancel := c.within(ctx, c.opts.PodWait+c.opts.Budget)
	defer cancel()
	pod, err := c.getPodWaiting(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := CheckUID(pod, ref); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.nodes[ref.String()] = pod.Spec.NodeName
	c.mu.Unlock()
	return PodFromAPI(pod), nil
}

// CheckUID fails when ref names a UID and pod has another one, unless pod is
// a mirror (static) pod, whose API UID differs from the runtime's.
func CheckUID(pod *corev1.Pod, ref podnet.PodRef) error {
	if ref.UID != "" && string(pod.UID) != ref.UID && !isMirrorPod(pod) {
		return fmt.Errorf("%w: UID %s in the API differs from K8S_POD_UID %s (the pod was deleted and re-created)",
			ErrUIDMismatch, pod.UID, ref.UID)
	}
	return nil
}

// ErrUIDMismatch is wrapped by CheckUID's error: the API's pod is another
// one than the runtime's (a final answer, not the API being unreachable).
var ErrUIDMismatch = errors.New("pod UID mismatch")

// PodFromAPI is what plexus keeps of an API pod: every source of pods (a
// GET here, plexusd's informer) converts with it.
func PodFromAPI(pod *corev1.Pod) *podnet.Pod {
	p := &podnet.Pod{
		Namespace:   pod.Namespace,
		Name:        pod.Name,
		UID:         string(pod.UID),
		Annotations: pod.Annotations,
	}
	// The pod's claims in spec order: a claim the spec names directly, or
	// the one status.resourceClaimStatuses says its template became.
	for _, rc := range pod.Spec.ResourceClaims {
		c := podnet.PodClaim{Name: rc.Name}
		if rc.ResourceClaimName != nil {
			c.ClaimName = *rc.ResourceClaimName
		}
		for _, s := range pod.Status.ResourceClaimStatuses {
			if s.Name == rc.Name && s.ResourceClaimName != nil {
				c.ClaimName = *s.ResourceClaimName
			}
		}
		p.ResourceClaims = append(p.ResourceClaims, c)
	}
	return p
}

// getPodWaiting GETs the pod, retrying transient errors, and polls with
// backoff while it is NotFound until Options.PodWait has passed (a last GET
// at the end of the wait).
func (c *Client) getPodWaiting(ctx context.Context, ref podnet.PodRef) (*corev1.Pod, error) {
	waitUntil := time.Now().Add(c.opts.PodWait)
	delay := 50 * time.Millisecond
	for {
		pod, err := c.getPod(ctx, ref)
		if err == nil {
			return pod, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("get: %w", err)
		}
		left := time.Until(waitUntil)
		if left <= 0 || !sleep(ctx, min(delay, left)) {
			return nil, fmt.Errorf("%w (waited %s)", podnet.ErrPodNotFound, c.opts.PodWait)
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

func (c *Client) getPod(ctx context.Context, ref podnet.PodRef) (*corev1.Pod, error) {
	ctx, cancel := c.budget(ctx)
	defer cancel()
	var pod corev1.Pod
	err := c.retry(ctx, false, func(ctx context.Context) error {
		return c.core.Get().MaxRetries(0).
			Namespace(ref.Namespace).Resource("pods").Name(ref.Name).
			Do(ctx).Into(&pod)
	})
	if err != nil {
		return nil, err
	}
	return &pod, nil
}

func isMirrorPod(pod *corev1.Pod) bool {
	if _, ok := pod.Annotations[annotationMirror]; ok {
		return true
	}
	src, ok := pod.Annotations[annotationConfigSource]
	return ok && src != "api"
}
