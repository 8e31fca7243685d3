package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/plexus-cni/plexus/pkg/sriov/dpconfig"
)

// Server serves one pool to kubelet.
type Server struct {
	pluginapi.UnimplementedDevicePluginServer

	log        *slog.Logger
	pluginDir  string
	devinfoDir string
	metrics    *Metrics
	fullName   string

	mu      sync.Mutex
	res     *dpconfig.Resource
	devs    map[string]*dpconfig.Device
	order   []string
	health  map[string]bool
	changed chan struct{}     // closed and replaced on every visible change
	written map[string]string // device-info file -> device ID (this server's or adopted)
	content map[string]string // device-info file -> what was written
	grpc    *grpc.Server
	done    chan struct{}
}

// NewServer makes a server for a pool; Start listens and serves.
func NewServer(pool *dpconfig.Pool, health map[string]bool, pluginDir, devinfoDir string, m *Metrics, log *slog.Logger) *Server {
	s := &Server{
		log: log.With("resource", pool.Resource.FullName()), pluginDir: pluginDir, devinfoDir: devinfoDir,
		metrics: m, fullName: pool.Resource.FullName(), changed: make(chan struct{}), written: map[string]string{}, content: map[string]string{},
	}
	s.adoptDevInfo()
	s.Update(pool, health)
	return s
}

// ResourceName is the extended resource name ("prefix/name").
func (s *Server) ResourceName() string { return s.fullName }

// SocketPath is the server's unix socket.
func (s *Server) SocketPath() string { return filepath.Join(s.pluginDir, SocketName(s.fullName)) }

// Start (re)creates the socket and serves on it until Stop.
func (s *Server) Start() error {
	s.stopServing()
	s.mu.Lock()
	defer s.mu.Unlock()
	path := s.SocketPath()
	if err := os.MkdirAll(s.pluginDir, 0o750); err != nil {
		return fmt.Errorf("resource %s: plugin dir: %w", s.fullName, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("resource %s: remove stale socket %s: %w", s.fullName, path, err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("resource %s: listen on %s: %w", s.fullName, path, err)
	}
	g := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(g, s)
	s.grpc, s.done = g, make(chan struct{})
	go func() { _ = g.Serve(lis) }()
	if err := waitServing(path); err != nil {
		close(s.done)
		s.grpc = nil
		g.Stop()
		_ = os.Remove(path)
		return fmt.Errorf("resource %s: %w", s.fullName, err)
	}
	return nil
}

// waitServing dials the fresh socket once so that kubelet, told to come,
// finds it answering.
func waitServing(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", path, err)
	}
	defer conn.Close()
	if _, err := pluginapi.NewDevicePluginClient(conn).GetDevicePluginOptions(ctx, &pluginapi.Empty{}); err != nil {
		return fmt.Errorf("plugin socket %s does not answer: %w", path, err)
	}
	return nil
}

// Stop stops serving and removes the socket. Device-info files stay: pods
// holding the devices may still run plexus ADD, and a restarted plugin
// serves the same pool again.
func (s *Server) Stop() {
	s.stopServing()
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = os.Remove(s.SocketPath())
	if s.metrics != nil {
		s.metrics.forget(s.fullName)
	}
}

// Retire is Stop for a pool removed from the config: its devices left the
// pool, so their device-info files go too.
func (s *Server) Retire() {
	s.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.written {
		s.removeDevInfoLocked(p)
	}
	if s.devinfoDir != "" {
		for id := range s.devs {
			s.removeDevInfoLocked(DevInfoPath(s.devinfoDir, s.fullName, id))
		}
	}
}

func (s *Server) removeDevInfoLocked(path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("remove device-info file", "path", path, "err", err)
	}
	delete(s.written, path)
	delete(s.content, path)
}

// adoptDevInfo records the device-info files of this resource already in
// the directory (a previous plugin process wrote them), so that those of
// devices no longer in the pool are removed like the ones this server wrote.
func (s *Server) adoptDevInfo() {
	if s.devinfoDir == "" {
		return
	}
	ents, err := os.ReadDir(s.devinfoDir)
	if err != nil {
		return
	}
	prefix := strings.ReplaceAll(s.fullName, "/", "-") + "-"
	for _, e := range ents {
		id, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if id, ok = strings.CutSuffix(id, "-device.json"); ok && pciAddress.MatchString(id) {
			s.written[filepath.Join(s.devinfoDir, e.Name())] = id
		}
	}
}

// pciAddress is a PCI address in sysfs form (domain:bus:device.function);
// it tells a device-info file of resource "p/n" from one of "p/n-x".
var pciAddress = regexp.MustCompile(`^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$`)

// stopServing ends the streams and the gRPC server, if running.
func (s *Server) stopServing() {
	s.mu.Lock()
	g := s.grpc
	if g != nil {
		close(s.done)
		s.grpc = nil
	}
	s.mu.Unlock()
	if g != nil {
		g.Stop()
	}
}

// Update replaces the pool's devices and health (device ID -> healthy;
// devices missing from it are healthy). ListAndWatch streams get the new
// list when what kubelet sees changed; devices that stay are untouched.
func (s *Server) Update(pool *dpconfig.Pool, health map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	before := s.viewLocked()
	s.res = pool.Resource
	s.devs = make(map[string]*dpconfig.Device, len(pool.Devices))
	s.order = s.order[:0]
	s.health = make(map[string]bool, len(pool.Devices))
	for _, d := range pool.Devices {
		s.devs[d.Addr] = d
		s.order = append(s.order, d.Addr)
		h, ok := health[d.Addr]
		s.health[d.Addr] = h || !ok
	}
	for p, id := range s.written {
		if s.devs[id] == nil {
			s.removeDevInfoLocked(p)
		}
	}
	if !sameView(before, s.viewLocked()) {
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.recordMetricsLocked()
}

// SetHealth changes the health of the listed devices.
func (s *Server) SetHealth(health map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for id, h := range health {
		if old, ok := s.health[id]; ok && old != h {
			s.health[id] = h
			changed = true
		}
	}
	if changed {
		close(s.changed)
		s.changed = make(chan struct{})
		s.recordMetricsLocked()
	}
}

// Devices is what ListAndWatch sends now.
func (s *Server) Devices() []*pluginapi.Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.viewLocked()
}

func (s *Server) viewLocked() []*pluginapi.Device {
	out := make([]*pluginapi.Device, 0, len(s.order))
	for _, id := range s.order {
		d := &pluginapi.Device{ID: id, Health: pluginapi.Healthy}
		if !s.health[id] {
			d.Health = pluginapi.Unhealthy
		}
		if numa := s.devs[id].NUMA; numa >= 0 && !s.res.ExcludeTopology {
			d.Topology = &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(numa)}}}
		}
		out = append(out, d)
	}
	return out
}

func sameView(a, b []*pluginapi.Device) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Health != b[i].Health || numaKey(a[i]) != numaKey(b[i]) {
			return false
		}
	}
	return true
}

func numaKey(d *pluginapi.Device) int64 {
	if d.Topology == nil || len(d.Topology.Nodes) == 0 {
		return -1
	}
	return d.Topology.Nodes[0].ID
}

func (s *Server) recordMetricsLocked() {
	if s.metrics == nil {
		return
	}
	s.metrics.setPool(s.fullName, s.health)
}

// GetDevicePluginOptions advertises GetPreferredAllocation.
func (s *Server) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}, nil
}

// ListAndWatch sends the device list, then again on every change.
func (s *Server) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	for {
		s.mu.Lock()
		devs, changed, done := s.viewLocked(), s.changed, s.done
		s.mu.Unlock()
		if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: devs}); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-done:
			return nil
		case <-stream.Context().Done():
			return nil
		}
	}
}

// PreStartContainer is not required (not advertised).
func (s *Server) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

// GetPreferredAllocation picks devices for each container request.
func (s *Server) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	s.mu.Lock()
	devs, policy := s.devs, s.res.AllocationPolicy
	s.mu.Unlock()
	resp := &pluginapi.PreferredAllocationResponse{}
	for i, cr := range req.ContainerRequests {
		ids, err := Prefer(devs, policy, cr.AvailableDeviceIDs, cr.MustIncludeDeviceIDs, int(cr.AllocationSize))
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "resource %s: container request %d: %v", s.fullName, i, err)
		}
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: ids})
	}
	return resp, nil
}
