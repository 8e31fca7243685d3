package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"

	"github.com/plexus-cni/plexus/pkg/k8s"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/resolve"
)

// errUnavailable marks a lookup that failed because the API could not be
// asked (the shim then runs the thin path), as opposed to a pod or NAD
// that is not there. Resolution tells it, and a node file plexusd cannot
// read, by podnet.Unavailable.
var errUnavailable = podnet.ErrUnavailable

// Miss handling: a pod or NAD the informer does not hold (yet) is waited
// for briefly (the watch usually delivers it within milliseconds), then
// fetched with one GET bounded by missBudget.
const (
	missWait   = 300 * time.Millisecond
	missBudget = time.Second
)

// podKeep are the annotations plexus reads; an informer keeps only these.
var podKeep = map[string]bool{
	nadv1.NetworkAttachmentAnnot:       true,
	nadv1.NetworkStatusAnnot:           true,
	"v1.multus-cni.io/default-network": true,
	"kubernetes.io/config.mirror":      true,
	"kubernetes.io/config.source":      true,
}

// trimPod is the pod informer's transform: what resolution, publication,
// GC and hot-plug read, and nothing else (plexusd's memory is per pod).
func trimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	ann := map[string]string{}
	for k, v := range p.Annotations {
		if podKeep[k] {
			ann[k] = v
		}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: p.Namespace, Name: p.Name, UID: p.UID, ResourceVersion: p.ResourceVersion,
			Annotations: ann, DeletionTimestamp: p.DeletionTimestamp,
		},
		Spec:   corev1.PodSpec{NodeName: p.Spec.NodeName, ResourceClaims: p.Spec.ResourceClaims},
		Status: corev1.PodStatus{Phase: p.Status.Phase, ResourceClaimStatuses: p.Status.ResourceClaimStatuses},
	}, nil
}

// trimNAD is the NAD informer's transform: name, spec.config and the
// annotations resolution reads (resolve.NADAnnotations, the one list of
// them).
func trimNAD(obj any) (any, error) {
	n, ok := obj.(*nadv1.NetworkAttachmentDefinition)
	if !ok {
		return obj, nil
	}
	var ann map[string]string
	for _, k := range resolve.NADAnnotations {
		if v, ok := n.Annotations[k]; ok {
			if ann == nil {
				ann = map[string]string{}
			}
			ann[k] = v
		}
	}
	return &nadv1.NetworkAttachmentDefinition{
		TypeMeta: n.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Namespace: n.Namespace, Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion, Annotations: ann,
		},
		Spec: n.Spec,
	}, nil
}

// newPodInformer watches the pods of one node.
func newPodInformer(cl *k8s.Client, node string) cache.SharedIndexInformer {
	lw := cache.NewListWatchFromClient(cl.CoreREST(), "pods", metav1.NamespaceAll,
		fields.OneTermEqualSelector("spec.nodeName", node))
	inf := cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{})
	_ = inf.SetTransform(trimPod)
	return inf
}

// newNADInformer watches every NetworkAttachmentDefinition of the cluster.
func newNADInformer(cl *k8s.Client) cache.SharedIndexInformer {
	lw := cache.NewListWatchFromClient(cl.NADREST(), "network-attachment-definitions", metav1.NamespaceAll, fields.Everything())
	inf := cache.NewSharedIndexInformer(lw, &nadv1.NetworkAttachmentDefinition{}, 0, cache.Indexers{})
	_ = inf.SetTransform(trimNAD)
	return inf
}

// PodSource answers from the pod informer; a miss waits briefly and then
// GETs the pod once.
type PodSource struct {
	Informer cache.SharedIndexInformer
	Client   *k8s.Client
	Metrics  *Metrics
}

// Pod returns the pod ref names. ref.UID, when set, must match.
func (s *PodSource) Pod(ctx context.Context, ref podnet.PodRef) (*podnet.Pod, error) {
	if ref.Namespace == "" || ref.Name == "" {
		return nil, fmt.Errorf("pod %q: namespace and name must both be set (K8S_POD_NAMESPACE, K8S_POD_NAME)", ref.String())
	}
	deadline := time.Now().Add(missWait)
	for {
		if p := s.cached(ref); p != nil {
			s.Metrics.lookup("pod", "hit")
			// The informer's object is shared: its annotations map is not
			// handed out.
			pod := k8s.PodFromAPI(p)
			pod.Annotations = maps.Clone(pod.Annotations)
			return pod, nil
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, 20*time.Millisecond) {
			break
		}
	}
	s.Metrics.lookup("pod", "miss")
	sess := s.Client.Session(k8s.Options{PodWait: time.Millisecond, Budget: missBudget, Total: missBudget, Attempts: 2})
	pod, err := sess.Pods().Pod(ctx, ref)
	if err != nil {
		if errors.Is(err, podnet.ErrPodNotFound) || errors.Is(err, k8s.ErrUIDMismatch) || isFinal(err) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errUnavailable, err)
	}
	return pod, nil
}

// cached is the informer's pod when it matches ref (a pod re-created under
// the same name is a miss until the watch delivers it).
func (s *PodSource) cached(ref podnet.PodRef) *corev1.Pod {
	obj, ok, err := s.Informer.GetIndexer().GetByKey(ref.Namespace + "/" + ref.Name)
	if err != nil || !ok {
		return nil
	}
	p := obj.(*corev1.Pod)
	if k8s.CheckUID(p, ref) != nil {
		return nil
	}
	return p
}

// NADSource answers from the NAD informer; a miss GETs (LISTs the
// namespace) once, so that a NAD created just before its pod is found.
type NADSource struct {
	Informer cache.SharedIndexInformer
	Client   *k8s.Client
	Metrics  *Metrics
}

func (s *NADSource) NAD(ctx context.Context, namespace, name string) (*nadv1.NetworkAttachmentDefinition, error) {
	obj, ok, err := s.Informer.GetIndexer().GetByKey(namespace + "/" + name)
	if err == nil && ok {
		s.Metrics.lookup("nad", "hit")
		return obj.(*nadv1.NetworkAttachmentDefinition).DeepCopy(), nil
	}
	s.Metrics.lookup("nad", "miss")
	sess := s.Client.Session(k8s.Options{Budget: missBudget, Total: missBudget, Attempts: 2})
	n, err := sess.NADs().NAD(ctx, namespace, name)
	if err != nil {
		if errors.Is(err, podnet.ErrNADNotFound) || isFinal(err) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errUnavailable, err)
	}
	return n, nil
}

// isFinal: the API answered, and the answer will not change by asking
// again (forbidden, invalid); anything else is the API being unreachable.
func isFinal(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) || apierrors.IsBadRequest(err) || apierrors.IsInvalid(err)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// DRASource reads what DRA pods need (resolve.ClaimSource and
// resolve.DeviceAttributes) with one request each: claims and slices are
// read only for pods whose NADs name a claim or a resource, so plexusd
// keeps no informer of them. An API that does not answer is errUnavailable
// (the shim runs the thin path).
type DRASource struct {
	Client *k8s.Client
}

// Claim reads a ResourceClaim with one GET.
func (s *DRASource) Claim(ctx context.Context, namespace, name string) (*podnet.Claim, error) {
	c, err := s.Client.Session(k8s.Options{Budget: missBudget, Total: missBudget, Attempts: 2}).NADs().Claim(ctx, namespace, name)
	return c, unavailableUnless(err)
}

// PoolAttributes reads a DRA driver's ResourceSlice attributes of one pool
// with one LIST, as the thin path does.
func (s *DRASource) PoolAttributes(ctx context.Context, driver, pool string) (map[string]map[string]string, error) {
	a, err := s.Client.Session(k8s.Options{Budget: missBudget, Total: missBudget, Attempts: 2}).NADs().PoolAttributes(ctx, driver, pool)
	return a, unavailableUnless(err)
}

// unavailableUnless marks err errUnavailable unless the API answered it
// (not found, forbidden, invalid).
func unavailableUnless(err error) error {
	if err == nil || apierrors.IsNotFound(err) || isFinal(err) {
		return err
	}
	return fmt.Errorf("%w: %w", errUnavailable, err)
}
