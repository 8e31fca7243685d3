// Package daemon is plexusd, the node daemon of the daemon deployment
// (docs/architecture.md, "Two deployments"). It keeps informers of the
// pods of its node and of every NetworkAttachmentDefinition, answers the
// plexus shim's "resolve this pod" on a unix socket from memory, publishes
// network-status and Events from the outbox the shim fills, and collects
// cache entries whose sandbox is gone. It never runs a pod's delegates for
// an ADD: the shim does, in the runtime's context.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/plexus-cni/plexus/pkg/attach"
	"github.com/plexus-cni/plexus/pkg/config"
	"github.com/plexus-cni/plexus/pkg/k8s"
	"github.com/plexus-cni/plexus/pkg/outbox"
	"github.com/plexus-cni/plexus/pkg/podresources"
	"github.com/plexus-cni/plexus/pkg/policysync"
	"github.com/plexus-cni/plexus/pkg/resolve"
)

// DefaultSocket is where plexusd listens.
const DefaultSocket = "/run/plexus/plexusd.sock"

// Options configure plexusd.
type Options struct {
	// RESTConfig is the API's; built from Kubeconfig (or in-cluster) when nil.
	RESTConfig *rest.Config
	Kubeconfig string
	NodeName   string
	Socket     string
	// CNIDir is plexus's cniDir (the cache and the outbox under it); BinDir
	// is where GC finds the delegates.
	CNIDir string
	BinDir string
	// MetricsAddress serves /metrics, /readyz and /healthz ("" for none).
	MetricsAddress     string
	PodResourcesSocket string
	// GCInterval is how often GC looks for entries whose sandbox is gone;
	// GCGrace how old such an entry must be (0: the defaults).
	GCInterval time.Duration
	GCGrace    time.Duration
	Log        *slog.Logger

	// CNIConfig is plexus's conflist (DefaultCNIConfig when empty), read by
	// hot-plug for plexus's config (hotplug.go); "-" turns hot-plug off.
	CNIConfig string

	// NetworkPolicy enforces MultiNetworkPolicy on the pods of this node
	// (pkg/policysync; docs/network-policy.md).
	NetworkPolicy bool
	// NetnsDir is the runtime's netns directory, checked at start to
	// receive the host's new mounts (netnsmount.go); "" skips the check.
	NetnsDir string
}

// Defaults of Options.
const (
	DefaultGCInterval = time.Minute
	DefaultGCGrace    = 2 * time.Minute
)

// Daemon is one plexusd.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	client  *k8s.Client
	pods    cache.SharedIndexInformer
	nads    cache.SharedIndexInformer
	podSrc  *PodSource
	nadSrc  *NADSource
	devices *podresources.Client
	// sources are what every resolution plexusd makes reads through (the
	// shim's ADD, hot-plug).
	sources resolve.Sources
	metrics *Metrics
	box     outbox.Box
	att     *attach.Attacher
	hotplug *hotplug // hotplug.go
	policy  *policysync.Syncer

	serving atomic.Bool
	kick    chan struct{}
	wg      sync.WaitGroup

	netnsErr error // set once by Run: the netns directory's mount (netnsmount.go)

	// publishing holds, per outbox file, its retry state.
	mu         sync.Mutex
	retryState map[string]*retry
	inFlight   map[string]bool          // outbox records being published
	newer      map[string]bool          // outbox records of a newer schema, logged once
	lastEvent  map[string]*atomic.Int64 // resource -> unix nanos of the last informer event
}

// New builds a Daemon; nothing runs until Run.
func New(opts Options) (*Daemon, error) {
	if opts.NodeName == "" {
		return nil, fmt.Errorf("plexusd: the node name is not set (--node-name or NODE_NAME)")
	}
	if opts.Socket == "" {
		opts.Socket = DefaultSocket
	}
	if opts.CNIDir == "" {
		opts.CNIDir = config.DefaultCNIDir
	}
	if opts.BinDir == "" {
		opts.BinDir = config.DefaultBinDir
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = DefaultGCInterval
	}
	if opts.GCGrace <= 0 {
		opts.GCGrace = DefaultGCGrace
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	cfg := opts.RESTConfig
	if cfg == nil {
		var err error
		if cfg, err = k8s.InClusterOrKubeconfig(opts.Kubeconfig); err != nil {
			return nil, err
		}
	}
	m := NewMetrics()
	m.PluginDir = opts.BinDir // plugin types found there are metric labels
	cl, err := k8s.NewForConfig(cfg, k8s.Options{UserAgent: "plexusd", Component: "plexus", Host: opts.NodeName, Wrap: m.WrapTransport(),
		// The informers' watches outlive any budget: only requests made
		// through Sessions are bounded.
		RequestTimeout: -1, Total: 100 * 365 * 24 * time.Hour})
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		opts: opts, log: opts.Log, client: cl, metrics: m,
		box:        outbox.Box{Dir: outbox.Dir(opts.CNIDir)},
		kick:       make(chan struct{}, 1),
		retryState: map[string]*retry{},
		inFlight:   map[string]bool{},
		lastEvent:  map[string]*atomic.Int64{"pods": {}, "nads": {}},
		devices:    podresources.NewClient(opts.PodResourcesSocket),
	}
	d.pods = newPodInformer(cl, opts.NodeName)
	d.nads = newNADInformer(cl)
	for res, inf := range map[string]cache.SharedIndexInformer{"pods": d.pods, "nads": d.nads} {
		last := d.lastEvent[res]
		touch := func() { last.Store(time.Now().UnixNano()) }
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { touch() },
			UpdateFunc: func(any, any) { touch() },
			DeleteFunc: func(any) { touch() },
		})
	}
	if opts.NetworkPolicy {
		if d.policy, err = newPolicySyncer(cfg, cl, opts, m); err != nil {
			return nil, err
		}
	}
	d.podSrc = &PodSource{Informer: d.pods, Client: cl, Metrics: m}
	d.nadSrc = &NADSource{Informer: d.nads, Client: cl, Metrics: m}
	dra := &DRASource{Client: cl}
	// plexusd reads the node's files (clusterNetwork, confDir,
	// deviceInfoDir) through its container's mounts: one it cannot read is
	// "unavailable", and the shim resolves in the runtime's context.
	d.sources = resolve.Sources{NADs: d.nadSrc, Devices: d.devices, Claims: dra, Attributes: dra, Mounted: true}
	d.att = attach.ForConfig(&config.Conf{CNIDir: opts.CNIDir, BinDir: opts.BinDir, MultusCacheDir: config.DefaultMultusCacheDir}, d.log, "")
	// Hot-plug (hotplug.go).
	if opts.CNIConfig != "-" {
		if opts.CNIConfig == "" {
			d.opts.CNIConfig = DefaultCNIConfig
		}
		d.hotplug = newHotplug(d)
		_, _ = d.pods.AddEventHandler(d.hotplug.handler())
	}
	return d, nil
}

// Metrics returns the daemon's metrics.
func (d *Daemon) Metrics() *Metrics { return d.metrics }

// Synced reports whether both informers have synced.
func (d *Daemon) Synced() bool { return d.pods.HasSynced() && d.nads.HasSynced() }

// Ready reports whether plexusd answers from memory: informers synced and
// the socket served.
func (d *Daemon) Ready() bool { return d.Synced() && d.serving.Load() }

// Run runs plexusd until ctx is done.
func (d *Daemon) Run(ctx context.Context) error {
	if d.opts.NetnsDir != "" {
		if d.netnsErr = checkNetnsMount(d.opts.NetnsDir); d.netnsErr != nil {
			d.log.Error("plexusd stays not ready", "err", d.netnsErr)
		}
	}
	ln, err := listen(d.opts.Socket)
	if err != nil {
		return err
	}
	var srv *http.Server
	if d.opts.MetricsAddress != "" {
		hl, err := net.Listen("tcp", d.opts.MetricsAddress)
		if err != nil {
			ln.Close()
			return fmt.Errorf("plexusd: metrics address %s: %w", d.opts.MetricsAddress, err)
		}
		srv = &http.Server{Handler: d.httpHandler(), ReadHeaderTimeout: 5 * time.Second}
		d.wg.Add(1)
		go func() { defer d.wg.Done(); _ = srv.Serve(hl) }()
		d.log.Info("serving metrics", "address", hl.Addr().String())
	}
	go d.pods.Run(ctx.Done())
	go d.nads.Run(ctx.Done())
	d.wg.Add(4)
	go func() { defer d.wg.Done(); d.serve(ctx, ln) }()
	go func() { defer d.wg.Done(); d.publishLoop(ctx) }()
	go func() { defer d.wg.Done(); d.gcLoop(ctx) }()
	go func() { defer d.wg.Done(); d.watchSync(ctx) }()
	if d.hotplug != nil { // hotplug.go
		d.wg.Add(1)
		go func() { defer d.wg.Done(); d.hotplug.run(ctx) }()
	}
	if d.policy != nil {
		d.wg.Add(1)
		go func() { defer d.wg.Done(); _ = d.policy.Run(ctx) }()
	}
	d.log.Info("plexusd started", "node", d.opts.NodeName, "socket", d.opts.Socket, "cniDir", d.opts.CNIDir)
	<-ctx.Done()
	ln.Close()
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	d.wg.Wait()
	d.devices.Close()
	d.client.Close()
	return nil
}

// watchSync keeps the informer metrics current.
func (d *Daemon) watchSync(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	logged := false
	for {
		for res, inf := range map[string]cache.SharedIndexInformer{"pods": d.pods, "nads": d.nads} {
			v := 0.0
			if inf.HasSynced() {
				v = 1
			}
			d.metrics.informerSync.WithLabelValues(res).Set(v)
			if ns := d.lastEvent[res].Load(); ns > 0 {
				d.metrics.informerLag.WithLabelValues(res).Set(time.Since(time.Unix(0, ns)).Seconds())
			}
		}
		if !logged && d.Synced() {
			logged = true
			d.log.Info("informers synced", "pods", len(d.pods.GetStore().ListKeys()), "nads", len(d.nads.GetStore().ListKeys()))
			d.wake()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Daemon) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if d.netnsErr != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", d.netnsErr)
			return
		}
		if !d.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: informers synced=%v, socket served=%v\n", d.Synced(), d.serving.Load())
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// listen opens the socket: its directory is made root-only, a stale socket
// of a previous plexusd is replaced, the socket is mode 0600.
func listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("plexusd: socket directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("plexusd: removing the stale socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("plexusd: socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("plexusd: socket %s: %w", path, err)
	}
	return ln, nil
}
