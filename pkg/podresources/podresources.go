// Package podresources asks kubelet's pod-resources API (v1) which devices
// of an extended resource (SR-IOV VFs, ...) the containers of a pod hold.
package podresources

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// DefaultSocket is where kubelet serves the pod-resources API.
const DefaultSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"

// Timeout bounds one Devices call (both RPCs when Get falls back to List).
const Timeout = 5 * time.Second

// maxMsgSize allows List answers of nodes with many pods.
const maxMsgSize = 16 << 20

// Client is a DeviceSource backed by kubelet. It connects on the first
// Devices call, so constructing one costs nothing.
type Client struct {
	socket string

	mu     sync.Mutex
	conn   *grpc.ClientConn
	lister podresourcesv1.PodResourcesListerClient
	noGet  bool // kubelet does not serve Get: use List
}

// NewClient returns the device source for kubelet's socket at socketPath
// (DefaultSocket when empty).
func NewClient(socketPath string) *Client {
	if socketPath == "" {
		socketPath = DefaultSocket
	}
	return &Client{socket: socketPath}
}

// Close releases the connection, if any.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn, c.lister = nil, nil
	return err
}

// Devices returns the IDs of resourceName's devices held by pod's
// containers: containers in kubelet's order, each container's devices in
// kubelet's order, every ID once.
func (c *Client) Devices(ctx context.Context, pod *podnet.Pod, resourceName string) ([]string, error) {
	if pod == nil || pod.Namespace == "" || pod.Name == "" {
		return nil, fmt.Errorf("pod-resources: pod namespace and name must be set")
	}
	if resourceName == "" {
		return nil, fmt.Errorf("pod %s/%s: pod-resources: resource name is empty", pod.Namespace, pod.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	res, err := c.podResources(ctx, pod.Namespace, pod.Name)
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: resource %s: kubelet pod-resources %s: %w", pod.Namespace, pod.Name, resourceName, c.socket, err)
	}
	return deviceIDs(res, resourceName), nil
}

// podResources gets the pod's resources with Get, or with List when
// kubelet does not serve Get (feature gate KubeletPodResourcesGet off).
func (c *Client) podResources(ctx context.Context, namespace, name string) (*podresourcesv1.PodResources, error) {
	lister, useGet, err := c.client()
	if err != nil {
		return nil, err
	}
	if useGet {
		resp, err := lister.Get(ctx, &podresourcesv1.GetPodResourcesRequest{PodName: name, PodNamespace: namespace})
		if err == nil {
			if resp.GetPodResources() == nil {
				return nil, fmt.Errorf("get: empty answer")
			}
			return resp.GetPodResources(), nil
		}
		if !getUnsupported(err) {
			return nil, fmt.Errorf("get: %w", err)
		}
		c.mu.Lock()
		c.noGet = true
		c.mu.Unlock()
	}
	resp, err := lister.List(ctx, &podresourcesv1.ListPodResourcesRequest{})
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	for _, pr := range resp.GetPodResources() {
		if pr.GetNamespace() == namespace && pr.GetName() == name {
			return pr, nil
		}
	}
	return nil, fmt.Errorf("list: pod %s/%s not among kubelet's %d pods", namespace, name, len(resp.GetPodResources()))
}

// client connects on first use. grpc.NewClient does not dial; the
// connection is made by the first RPC, bounded by its context.
func (c *Client) client() (podresourcesv1.PodResourcesListerClient, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lister == nil {
		conn, err := grpc.NewClient("unix://"+c.socket,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize)))
		if err != nil {
			return nil, false, err
		}
		c.conn, c.lister = conn, podresourcesv1.NewPodResourcesListerClient(conn)
	}
	return c.lister, !c.noGet, nil
}

// getUnsupported tells a kubelet without the Get RPC: older kubelets answer
// Unimplemented, newer ones with the feature gate off an Unknown error
// saying the method is disabled.
func getUnsupported(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	return st.Code() == codes.Unimplemented ||
		st.Code() == codes.Unknown && strings.Contains(st.Message(), "Get method disabled")
}

// deviceIDs collects resourceName's device IDs in container order, each
// container's sorted, dropping repeats. Sorted because kubelet lists a
// container's devices in Go map order, which changes from call to call.
func deviceIDs(pr *podresourcesv1.PodResources, resourceName string) []string {
	var ids []string
	seen := map[string]bool{}
	for _, ctr := range pr.GetContainers() {
		first := len(ids)
		for _, dev := range ctr.GetDevices() {
			if dev.GetResourceName() != resourceName {
				continue
			}
			for _, id := range dev.GetDeviceIds() {
				if !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
		}
		sort.Strings(ids[first:])
	}
	return ids
}
