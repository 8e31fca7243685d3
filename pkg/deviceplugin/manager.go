package deviceplugin

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/plexus-cni/plexus/pkg/sriov/discovery"
	"github.com/plexus-cni/plexus/pkg/sriov/dpconfig"
)

// Options configure a Manager.
type Options struct {
	ConfigPath     string            // resourceList config file
	ResourcePrefix string            // default resourcePrefix
	Discovery      discovery.Options // where to discover PFs/VFs
	PluginDir      string            // kubelet's device-plugin directory
	DevInfoDir     string            // device-info files; "" writes none
	Links          LinkMonitor       // PF link states; nil: sysfs operstate only
	Metrics        *Metrics          // nil: no metrics
	Log            *slog.Logger
	// Resync is how often sockets are checked for a restarted kubelet or a
	// removed plugin socket, besides the file-system events (default 5s).
	Resync time.Duration
	// ReloadDelay debounces bursts of config-file events (default 200ms).
	ReloadDelay time.Duration
}

// Manager runs one Server per pool and keeps them in step with the config
// file, kubelet and the PFs' link states.
type Manager struct {
	opts Options
	log  *slog.Logger

	applyMu    sync.Mutex // one discovery+apply at a time
	mu         sync.Mutex
	cfg        *dpconfig.Config
	servers    map[string]*Server // by full resource name
	registered map[string]fileID  // kubelet.sock incarnation each server registered with
	sysfsUp    map[string]bool    // PF netdev -> up, from sysfs at the last discovery
	linkUp     map[string]bool    // PF netdev -> up, from the link monitor (wins)
	ready      chan struct{}
	state      atomic.Pointer[regState] // for NotReady (readiness.go)
}

// NewManager checks the options and fills in defaults.
func NewManager(o Options) (*Manager, error) {
	if o.ConfigPath == "" {
		return nil, fmt.Errorf("device plugin: config path is empty")
	}
	if o.PluginDir == "" {
		o.PluginDir = DefaultPluginDir
	}
	dir, err := filepath.Abs(o.PluginDir)
	if err != nil {
		return nil, fmt.Errorf("device plugin: plugin dir %q: %w", o.PluginDir, err)
	}
	o.PluginDir = dir
	if o.ResourcePrefix == "" {
		o.ResourcePrefix = dpconfig.DefaultPrefix
	}
	if o.Resync <= 0 {
		o.Resync = 5 * time.Second
	}
	if o.ReloadDelay <= 0 {
		o.ReloadDelay = 200 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return &Manager{
		opts: o, log: o.Log, servers: map[string]*Server{}, registered: map[string]fileID{},
		sysfsUp: map[string]bool{}, linkUp: map[string]bool{}, ready: make(chan struct{}),
	}, nil
}

// Ready is closed once the first configuration is served.
func (m *Manager) Ready() <-chan struct{} { return m.ready }

// Servers returns the running servers by resource name.
func (m *Manager) Servers() map[string]*Server {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]*Server, len(m.servers))
	for k, v := range m.servers {
		out[k] = v
	}
	return out
}

// Run serves until ctx ends, then stops every server and removes its socket;
// device-info files stay for the pods holding the devices. A bad config at start is an error; later bad
// configs are logged and the last good one is kept.
func (m *Manager) Run(ctx context.Context) error {
	cfg, err := dpconfig.LoadFile(m.opts.ConfigPath, m.opts.ResourcePrefix)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(m.opts.PluginDir, 0o750); err != nil {
		return fmt.Errorf("device plugin dir %s: %w", m.opts.PluginDir, err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("file watcher: %w", err)
	}
	defer w.Close()
	configDir := filepath.Dir(m.opts.ConfigPath)
	for _, d := range []string{m.opts.PluginDir, configDir} {
		if err := w.Add(d); err != nil {
			return fmt.Errorf("watch %s: %w", d, err)
		}
	}
	defer m.stopAll()
	if err := m.apply(ctx, cfg); err != nil {
		return err
	}
	close(m.ready)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	links := make(chan LinkEvent, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if m.opts.Links != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.opts.Links.Watch(ctx, links); err != nil {
				m.log.Error("link monitor stopped; health follows sysfs only", "err", err)
			}
		}()
	}
	resync := time.NewTicker(m.opts.Resync)
	defer resync.Stop()
	reload := time.NewTimer(time.Hour)
	reload.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return fmt.Errorf("file watcher closed")
			}
			switch {
			case filepath.Dir(ev.Name) == m.opts.PluginDir && filepath.Base(ev.Name) == KubeletSocketName && ev.Has(fsnotify.Create):
				m.log.Info("kubelet socket created; registering again")
				m.resync(ctx, true)
			case filepath.Dir(ev.Name) == configDir && m.isConfigEvent(ev):
				reload.Reset(m.opts.ReloadDelay)
			}
		case err := <-w.Errors:
			m.log.Warn("file watcher", "err", err)
		case <-reload.C:
			if err := m.Reload(ctx); err != nil {
				m.log.Error("config reload rejected; keeping the last good config", "err", err)
			}
		case ev := <-links:
			m.setLink(ev)
		case <-resync.C:
			m.resync(ctx, false)
		}
	}
}

// isConfigEvent: the file itself, or a ConfigMap mount's "..data" swap.
func (m *Manager) isConfigEvent(ev fsnotify.Event) bool {
	base := filepath.Base(ev.Name)
	return base == filepath.Base(m.opts.ConfigPath) || base == "..data"
}

// Reload reads the config file again and applies it; on error the running
// config stays.
func (m *Manager) Reload(ctx context.Context) error {
	cfg, err := dpconfig.LoadFile(m.opts.ConfigPath, m.opts.ResourcePrefix)
	if err == nil {
		err = m.apply(ctx, cfg)
	}
	m.opts.Metrics.reloaded(err)
	return err
}

// apply discovers devices, pools them by cfg and brings the servers in line:
// vanished pools stop, new ones start and register, others update in place.
func (m *Manager) apply(ctx context.Context, cfg *dpconfig.Config) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	pfs, err := discovery.Discover(m.opts.Discovery)
	if err != nil {
		return err
	}
	pools := dpconfig.Pools(cfg, pfs)
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.snapshotLocked()
	m.cfg = cfg
	m.sysfsUp = map[string]bool{}
	for _, pf := range pfs {
		if pf.Netdev != "" {
			m.sysfsUp[pf.Netdev] = operStateUp(pf.OperState)
		}
	}
	want := map[string]bool{}
	var errs []error
	for _, p := range pools {
		name := p.Resource.FullName()
		want[name] = true
		health := m.healthLocked(p.Devices)
		if s := m.servers[name]; s != nil {
			s.Update(p, health)
			continue
		}
		s := NewServer(p, health, m.opts.PluginDir, m.opts.DevInfoDir, m.opts.Metrics, m.log)
		if err := s.Start(); err != nil {
			errs = append(errs, err)
			continue
		}
		m.servers[name] = s
		m.log.Info("serving pool", "resource", name, "devices", len(p.Devices), "socket", s.SocketPath())
		m.registerLocked(ctx, s)
	}
	for name, s := range m.servers {
		if !want[name] {
			m.log.Info("pool removed from config; stopping and removing its device-info files", "resource", name)
			s.Retire()
			delete(m.servers, name)
			delete(m.registered, name)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("start pools: %v", errs)
	}
	return nil
}

// registerLocked registers s with kubelet when kubelet's socket is there.
func (m *Manager) registerLocked(ctx context.Context, s *Server) {
	defer m.snapshotLocked()
	kubelet := statID(filepath.Join(m.opts.PluginDir, KubeletSocketName))
	if kubelet == (fileID{}) {
		m.log.Info("kubelet socket not there yet; will register when it appears", "resource", s.ResourceName())
		delete(m.registered, s.ResourceName())
		return
	}
	if err := Register(ctx, m.opts.PluginDir, s.ResourceName()); err != nil {
		m.log.Error("registration failed; will retry", "err", err)
		delete(m.registered, s.ResourceName())
		return
	}
	m.registered[s.ResourceName()] = kubelet
	m.log.Info("registered with kubelet", "resource", s.ResourceName())
}

// resync restarts servers whose socket vanished (kubelet clears the
// directory when it starts) and registers every server not registered with
// the current kubelet socket (all of them when force is set).
func (m *Manager) resync(ctx context.Context, force bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	kubelet := statID(filepath.Join(m.opts.PluginDir, KubeletSocketName))
	names := make([]string, 0, len(m.servers))
	for n := range m.servers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := m.servers[n]
		restarted := false
		if statID(s.SocketPath()) == (fileID{}) {
			m.log.Info("plugin socket gone; serving again", "resource", n)
			if err := s.Start(); err != nil {
				m.log.Error("restart pool server", "err", err)
				continue
			}
			restarted = true
		}
		if kubelet == (fileID{}) {
			continue
		}
		if force || restarted || m.registered[n] != kubelet {
			m.registerLocked(ctx, s)
		}
	}
}

// setLink records a PF link state and updates the health of its VFs.
func (m *Manager) setLink(ev LinkEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, known := m.linkUp[ev.Name]
	m.linkUp[ev.Name] = ev.Up
	if known && old == ev.Up {
		return
	}
	for _, s := range m.servers {
		s.SetHealth(s.healthFor(ev.Name, ev.Up))
	}
	if known || !ev.Up {
		m.log.Info("PF link state", "netdev", ev.Name, "up", ev.Up)
	}
}

// healthLocked gives each device its PF's link state.
func (m *Manager) healthLocked(devs []*dpconfig.Device) map[string]bool {
	h := make(map[string]bool, len(devs))
	for _, d := range devs {
		h[d.Addr] = m.pfUpLocked(d.PFNetdev)
	}
	return h
}

func (m *Manager) pfUpLocked(netdev string) bool {
	if netdev == "" {
		return true
	}
	if up, ok := m.linkUp[netdev]; ok {
		return up
	}
	if up, ok := m.sysfsUp[netdev]; ok {
		return up
	}
	return true
}

func (m *Manager) stopAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, s := range m.servers {
		s.Stop()
		delete(m.servers, name)
	}
}

// healthFor lists the server's devices on PF netdev with the given health.
func (s *Server) healthFor(netdev string, up bool) map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := map[string]bool{}
	for id, d := range s.devs {
		if d.PFNetdev == netdev {
			h[id] = up
		}
	}
	return h
}
