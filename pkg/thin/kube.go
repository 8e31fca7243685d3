package thin

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/config"
	"github.com/plexus-cni/plexus/pkg/k8s"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/podresources"
)

func init() { kubeSources = newKubeSources }

// newKubeSources builds Kubernetes-mode sources: pods, NADs, network-status
// and Events through the API, devices through kubelet's pod-resources API
// (dialled only when a NAD names a resource). Nothing here makes a request:
// DEL with a cache entry makes none at all.
func newKubeSources(c *config.Conf, log *slog.Logger, containerID string) (*Sources, error) {
	opts := k8s.Options{}
	if os.Getenv("CNI_COMMAND") != "ADD" {
		// Only ADD waits for a pod that is not in the API yet; DEL without
		// a cache entry must not wait for a pod that is gone.
		opts.PodWait = time.Millisecond
	}
	cl, err := k8s.Load(c.Kubeconfig, opts)
	if err != nil {
		// DEL, CHECK and GC work from the cache; they must not fail because
		// the kubeconfig is unreadable. ADD fails when it asks for the pod.
		log.Warn("Kubernetes client unavailable", "kubeconfig", c.Kubeconfig, "err", err)
		u := unavailable{fmt.Errorf("plexus config: key \"kubeconfig\": %w", err)}
		return &Sources{Pods: u, NADs: u, Sink: u}, nil
	}
	dev := podresources.NewClient(c.PodResourcesSocket)
	return &Sources{
		Pods: cl.Pods(), NADs: cl.NADs(), Sink: cl.Status(), Devices: dev,
		// ResourceClaims and ResourceSlices: one request each, through
		// the same client.
		Claims: cl.NADs(), Attributes: cl.NADs(),
		Close: func() {
			for _, e := range cl.EventErrors() {
				log.Warn("recording an Event failed", "err", e)
			}
			log.Debug("API requests", "count", cl.Requests())
			dev.Close()
			cl.Close()
		},
	}, nil
}

// unavailable is every source when the API client cannot be built.
type unavailable struct{ err error }

func (u unavailable) Pod(context.Context, podnet.PodRef) (*podnet.Pod, error) { return nil, u.err }
func (u unavailable) NAD(context.Context, string, string) (*nadv1.NetworkAttachmentDefinition, error) {
	return nil, u.err
}
func (u unavailable) Attached(context.Context, *podnet.Pod, string, []nadv1.NetworkStatus) error {
	return u.err
}
func (u unavailable) Failed(context.Context, *podnet.Pod, string, error) {}
func (u unavailable) Warned(context.Context, *podnet.Pod, []string)      {}
