// Package kubeletstub is an in-process stand-in for kubelet's device
// manager: it serves the real v1beta1 Registration API on kubelet.sock in a
// directory and, like kubelet, dials each registering plugin's socket in the
// same directory, checks its options and follows its ListAndWatch stream.
// Tests call the plugin's DevicePlugin API through the Plugin it returns.
package kubeletstub

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// Kubelet is a running stub.
type Kubelet struct {
	pluginapi.UnimplementedRegistrationServer
	Dir string

	mu      sync.Mutex
	srv     *grpc.Server
	plugins map[string]*Plugin
	regs    []*pluginapi.RegisterRequest
	notify  chan struct{}
}

// Start serves kubelet.sock in dir (made if missing); the stub stops at the
// end of the test.
func Start(t testing.TB, dir string) *Kubelet {
	t.Helper()
	k := &Kubelet{Dir: dir, plugins: map[string]*Plugin{}, notify: make(chan struct{})}
	if err := k.serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	return k
}

// SocketPath is kubelet.sock's path.
func (k *Kubelet) SocketPath() string { return filepath.Join(k.Dir, "kubelet.sock") }

func (k *Kubelet) serve() error {
	if err := os.MkdirAll(k.Dir, 0o755); err != nil {
		return err
	}
	_ = os.Remove(k.SocketPath())
	lis, err := net.Listen("unix", k.SocketPath())
	if err != nil {
		return fmt.Errorf("kubeletstub: listen: %w", err)
	}
	g := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(g, k)
	k.mu.Lock()
	k.srv = g
	k.mu.Unlock()
	go func() { _ = g.Serve(lis) }()
	return nil
}

// Stop stops serving, drops every plugin connection and removes kubelet.sock.
func (k *Kubelet) Stop() {
	k.mu.Lock()
	g := k.srv
	k.srv = nil
	plugins := k.plugins
	k.plugins = map[string]*Plugin{}
	k.mu.Unlock()
	if g != nil {
		g.Stop()
	}
	for _, p := range plugins {
		p.close()
	}
	_ = os.Remove(k.SocketPath())
}

// Restart does what a kubelet restart does to the directory: stop, remove
// every socket in it (plugins' too), and serve a new kubelet.sock.
func (k *Kubelet) Restart(t testing.TB) {
	t.Helper()
	k.Stop()
	ents, _ := os.ReadDir(k.Dir)
	for _, e := range ents {
		if e.Type()&os.ModeSocket != 0 {
			_ = os.Remove(filepath.Join(k.Dir, e.Name()))
		}
	}
	if err := k.serve(); err != nil {
		t.Fatal(err)
	}
}

// Register is the Registration API: it validates the request like kubelet
// (version, resource name, endpoint in the directory), connects to the
// plugin and starts following its ListAndWatch stream.
func (k *Kubelet) Register(ctx context.Context, r *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	if r.Version != pluginapi.Version {
		return nil, fmt.Errorf("kubeletstub: unsupported version %q", r.Version)
	}
	if err := checkResourceName(r.ResourceName); err != nil {
		return nil, err
	}
	if strings.Contains(r.Endpoint, "/") {
		return nil, fmt.Errorf("kubeletstub: endpoint %q must be a file name in %s", r.Endpoint, k.Dir)
	}
	p, err := dial(filepath.Join(k.Dir, r.Endpoint), r)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	if old := k.plugins[r.ResourceName]; old != nil {
		old.close()
	}
	k.plugins[r.ResourceName] = p
	k.regs = append(k.regs, r)
	close(k.notify)
	k.notify = make(chan struct{})
	k.mu.Unlock()
	return &pluginapi.Empty{}, nil
}

func checkResourceName(n string) error {
	prefix, name, ok := strings.Cut(n, "/")
	if !ok || prefix == "" || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("kubeletstub: resource name %q is not an extended resource name", n)
	}
	if prefix == "kubernetes.io" || strings.HasSuffix(prefix, ".kubernetes.io") {
		return fmt.Errorf("kubeletstub: resource name %q is in the kubernetes.io domain", n)
	}
	return nil
}

// Registrations returns every Register request received so far.
func (k *Kubelet) Registrations() []*pluginapi.RegisterRequest {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]*pluginapi.RegisterRequest(nil), k.regs...)
}

// WaitPlugin waits until resource has registered at least n times in total
// and returns its current plugin.
func (k *Kubelet) WaitPlugin(t testing.TB, resource string, n int, timeout time.Duration) *Plugin {
	t.Helper()
	deadline := time.After(timeout)
	for {
		k.mu.Lock()
		count := 0
		for _, r := range k.regs {
			if r.ResourceName == resource {
				count++
			}
		}
		p, notify := k.plugins[resource], k.notify
		k.mu.Unlock()
		if count >= n && p != nil {
			return p
		}
		select {
		case <-notify:
		case <-deadline:
			t.Fatalf("kubeletstub: %s registered %d times, want %d, within %v", resource, count, n, timeout)
		}
	}
}

// Plugin is kubelet's side of one registered plugin.
type Plugin struct {
	Request *pluginapi.RegisterRequest
	Options *pluginapi.DevicePluginOptions
	Client  pluginapi.DevicePluginClient

	conn   *grpc.ClientConn
	cancel context.CancelFunc

	mu      sync.Mutex
	devices []*pluginapi.Device
	updates int
	ended   bool
	notify  chan struct{}
}

func dial(sock string, r *pluginapi.RegisterRequest) (*Plugin, error) {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("kubeletstub: dial plugin %s: %w", sock, err)
	}
	p := &Plugin{Request: r, Client: pluginapi.NewDevicePluginClient(conn), conn: conn, notify: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.Options, err = p.Client.GetDevicePluginOptions(ctx, &pluginapi.Empty{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("kubeletstub: plugin %s: GetDevicePluginOptions: %w", r.ResourceName, err)
	}
	lctx, lcancel := context.WithCancel(context.Background())
	p.cancel = lcancel
	stream, err := p.Client.ListAndWatch(lctx, &pluginapi.Empty{})
	if err != nil {
		lcancel()
		conn.Close()
		return nil, fmt.Errorf("kubeletstub: plugin %s: ListAndWatch: %w", r.ResourceName, err)
	}
	go p.follow(stream)
	return p, nil
}

func (p *Plugin) follow(stream grpc.ServerStreamingClient[pluginapi.ListAndWatchResponse]) {
	for {
		resp, err := stream.Recv()
		p.mu.Lock()
		if err != nil {
			p.ended = true
		} else {
			p.devices = resp.Devices
			p.updates++
		}
		close(p.notify)
		p.notify = make(chan struct{})
		p.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (p *Plugin) close() {
	p.cancel()
	_ = p.conn.Close()
}

// Devices returns the latest device list and how many lists were received.
func (p *Plugin) Devices() ([]*pluginapi.Device, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.devices, p.updates
}

// WaitDevices waits until the latest device list satisfies cond.
func (p *Plugin) WaitDevices(t testing.TB, timeout time.Duration, cond func([]*pluginapi.Device) bool) []*pluginapi.Device {
	t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		devs, notify, ended, n := p.devices, p.notify, p.ended, p.updates
		p.mu.Unlock()
		if n > 0 && cond(devs) {
			return devs
		}
		if ended {
			t.Fatalf("kubeletstub: %s: ListAndWatch ended; last list %v", p.Request.ResourceName, devs)
		}
		select {
		case <-notify:
		case <-deadline:
			t.Fatalf("kubeletstub: %s: device list did not reach the expected state within %v; last: %v", p.Request.ResourceName, timeout, devs)
		}
	}
}

// Ended reports whether the ListAndWatch stream has ended.
func (p *Plugin) Ended() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ended
}

// Allocate calls Allocate with one container request per id list.
func (p *Plugin) Allocate(ctx context.Context, containers ...[]string) (*pluginapi.AllocateResponse, error) {
	req := &pluginapi.AllocateRequest{}
	for _, ids := range containers {
		req.ContainerRequests = append(req.ContainerRequests, &pluginapi.ContainerAllocateRequest{DevicesIds: ids})
	}
	return p.Client.Allocate(ctx, req)
}

// Prefer calls GetPreferredAllocation for one container.
func (p *Plugin) Prefer(ctx context.Context, available, mustInclude []string, size int) ([]string, error) {
	resp, err := p.Client.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{
		ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
			AvailableDeviceIDs: available, MustIncludeDeviceIDs: mustInclude, AllocationSize: int32(size),
		}},
	})
	if err != nil {
		return nil, err
	}
	return resp.ContainerResponses[0].DeviceIDs, nil
}
