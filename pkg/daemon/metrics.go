package daemon

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/transport"

	"github.com/plexus-cni/plexus/pkg/wire"
)

// Metrics are plexusd's Prometheus metrics (docs/observability.md). A nil
// *Metrics records nothing.
//
// Label values a tenant can influence are bounded (docs/observability.md,
// "Bounded labels"): a NAD's plugin types become the delegate histogram's
// "plugins" label only when binDir holds a plugin of that name, and the
// number of distinct chains is capped; commands, results and record kinds
// are one of a fixed set, else "other".
type Metrics struct {
	Registry *prometheus.Registry
	// PluginDir is the delegate plugins' directory (plexusd's --bin-dir):
	// only plugin types found in it are label values. Set it before use.
	PluginDir string
	plugins   pluginLabels

	ops          *prometheus.CounterVec
	opSeconds    *prometheus.HistogramVec
	delegate     delegateHistogram
	resolve      *prometheus.HistogramVec
	lookups      *prometheus.CounterVec
	api          *prometheus.CounterVec
	outboxDepth  prometheus.Gauge
	outboxOldest prometheus.Gauge
	published    *prometheus.CounterVec
	publishDelay prometheus.Histogram
	informerSync *prometheus.GaugeVec
	informerLag  *prometheus.GaugeVec
	fallbacks    *prometheus.CounterVec
	gcRemoved    *prometheus.CounterVec
	socketErrors prometheus.Counter
}

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2, 5, 10, 30}

// NewMetrics registers plexusd's metrics, with the Go and process
// collectors, in a registry of their own.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_cni_operations_total",
			Help: "CNI commands run by the plexus shim on this node, by command and result (as handed to plexusd)."}, []string{"command", "result"}),
		opSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "plexus_cni_operation_duration_seconds",
			Help: "Duration of CNI commands in the plexus shim, by command and result.", Buckets: latencyBuckets}, []string{"command", "result"}),
		delegate: delegateHistogram{vec: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "plexus_delegate_duration_seconds",
			Help: "Duration of one delegate's ADD or DEL, by command, plugin types (chain joined by +; a type not in binDir is \"other\") and result.", Buckets: latencyBuckets}, []string{"command", "plugins", "result"})},
		resolve: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "plexus_resolve_duration_seconds",
			Help: "Duration of plexusd's resolution of a pod's attachments, by result.", Buckets: latencyBuckets}, []string{"result"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_cache_lookups_total",
			Help: "Pod and NAD lookups by plexusd, by kind and outcome (hit: from the informer; miss: one API request)."}, []string{"kind", "outcome"}),
		api: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_api_requests_total",
			Help: "Requests plexusd sent to the kube-apiserver, by verb, resource and HTTP code (0: no answer)."}, []string{"verb", "resource", "code"}),
		outboxDepth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "plexus_outbox_depth",
			Help: "Records waiting in the outbox to be published."}),
		outboxOldest: prometheus.NewGauge(prometheus.GaugeOpts{Name: "plexus_outbox_oldest_age_seconds",
			Help: "Age of the oldest record waiting in the outbox (0 when empty)."}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_outbox_published_total",
			Help: "Outbox records handled, by kind and outcome (published, failed: retried later, dropped: pod gone or superseded)."}, []string{"kind", "outcome"}),
		publishDelay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "plexus_network_status_delay_seconds",
			Help: "Time from the shim's hand-off to network-status written on the pod.", Buckets: latencyBuckets}),
		informerSync: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "plexus_informer_synced",
			Help: "1 when the informer has synced, by resource."}, []string{"resource"}),
		informerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "plexus_informer_last_event_age_seconds",
			Help: "Seconds since the informer's last event (add, update, delete), by resource."}, []string{"resource"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_shim_fallbacks_total",
			Help: "ADDs and DELs the shim ran on the thin path because plexusd did not answer (counted when plexusd next runs), by command."}, []string{"command"}),
		gcRemoved: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plexus_gc_removed_total",
			Help: "Cache entries removed by plexusd's GC because their sandbox is gone, by result of the delegates' DEL."}, []string{"result"}),
		socketErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "plexus_socket_bad_requests_total",
			Help: "Malformed requests on plexusd's socket."}),
	}
	m.delegate.m = m
	r.MustRegister(m.ops, m.opSeconds, m.delegate.vec, m.resolve, m.lookups, m.api, m.outboxDepth, m.outboxOldest,
		m.published, m.publishDelay, m.informerSync, m.informerLag, m.fallbacks, m.gcRemoved, m.socketErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) observeStats(st *wire.Stats) {
	if m == nil || st == nil {
		return
	}
	cmd, res := commandLabel(st.Command), resultLabel(st.Result)
	m.ops.WithLabelValues(cmd, res).Inc()
	m.opSeconds.WithLabelValues(cmd, res).Observe(st.Seconds)
	for _, d := range st.Delegates {
		m.delegate.WithLabelValues(d.Command, d.Plugins, d.Result).Observe(d.Seconds)
	}
}

// Bounds of the "plugins" label: a plugin type is a label value when it
// is a file name of at most maxTypeLen bytes found in PluginDir; a chain
// shows its first maxChain types (then "more"); and at most
// maxPluginLabels distinct values exist (later ones are "other"). The
// label is thus at most maxChain*(maxTypeLen+1)+4 bytes, and the
// histogram at most 5 commands x (maxPluginLabels+1) x 3 results series.
const (
	maxTypeLen      = 64
	maxChain        = 4
	maxPluginLabels = 64
	otherLabel      = "other"
)

// delegateHistogram is plexus_delegate_duration_seconds: every observation
// goes through the label bounds.
type delegateHistogram struct {
	vec *prometheus.HistogramVec
	m   *Metrics
}

// WithLabelValues is the series of a delegate run: command (ADD, DEL),
// plugins (the chain's types joined by "+", as the delegate runner reports
// them) and result (success, error).
func (h delegateHistogram) WithLabelValues(command, plugins, result string) prometheus.Observer {
	return h.vec.WithLabelValues(commandLabel(command), h.m.plugins.label(h.m.PluginDir, plugins), resultLabel(result))
}

// pluginLabels maps plugin chains to bounded label values.
type pluginLabels struct {
	mu sync.Mutex
	// found are the types seen in the plugin directory (at most
	// maxPluginLabels*maxChain: no more can be part of a label).
	found map[string]bool
	// values are the label values handed out.
	values map[string]bool
}

func (p *pluginLabels) label(dir, chain string) string {
	types := strings.SplitN(chain, "+", maxChain+1)
	more := len(types) > maxChain
	if more {
		types = types[:maxChain]
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.values == nil {
		p.found, p.values = map[string]bool{}, map[string]bool{}
	}
	for i, t := range types {
		if !p.isPlugin(dir, t) {
			types[i] = otherLabel
		}
	}
	if more {
		types = append(types, "more")
	}
	v := strings.Join(types, "+")
	if !p.values[v] {
		if len(p.values) >= maxPluginLabels {
			return otherLabel
		}
		p.values[v] = true
	}
	return v
}

// isPlugin says whether dir holds a plugin named t (a file name of at
// most maxTypeLen bytes of [A-Za-z0-9._-]).
func (p *pluginLabels) isPlugin(dir, t string) bool {
	if p.found[t] {
		return true
	}
	if dir == "" || t == "" || len(t) > maxTypeLen || t == "." || t == ".." || strings.IndexFunc(t, notNameChar) >= 0 {
		return false
	}
	fi, err := os.Stat(filepath.Join(dir, t))
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if len(p.found) < maxPluginLabels*maxChain {
		p.found[t] = true
	}
	return true
}

func notNameChar(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
}

// commandLabel is a CNI command, or "other".
func commandLabel(c string) string {
	switch c {
	case "ADD", "DEL", "CHECK", "GC", "STATUS":
		return c
	}
	return otherLabel
}

// resultLabel is success or error, or "other".
func resultLabel(r string) string {
	switch r {
	case "success", "error":
		return r
	}
	return otherLabel
}

func (m *Metrics) lookup(kind, outcome string) {
	if m != nil {
		m.lookups.WithLabelValues(kind, outcome).Inc()
	}
}

func (m *Metrics) resolved(d time.Duration, err error) {
	if m != nil {
		r := "success"
		if err != nil {
			r = "error"
		}
		m.resolve.WithLabelValues(r).Observe(d.Seconds())
	}
}

// WrapTransport counts API requests by verb, resource and code.
func (m *Metrics) WrapTransport() transport.WrapperFunc {
	return func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(r)
			if m != nil {
				code := 0
				if resp != nil {
					code = resp.StatusCode
				}
				verb, res := classify(r)
				m.api.WithLabelValues(verb, res, strconv.Itoa(code)).Inc()
			}
			return resp, err
		})
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// classify names an API request by verb (GET, LIST, WATCH, POST, PATCH,
// PUT, DELETE) and resource (pods, pods/status, events,
// network-attachment-definitions, ...).
func classify(r *http.Request) (verb, res string) {
	var parts []string
	for _, p := range strings.Split(r.URL.Path, "/") {
		if p != "" {
			parts = append(parts, p)
		}
	}
	// Skip /api/v1 or /apis/group/version, then namespaces/<ns>.
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return r.Method, "other"
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	switch len(parts) {
	case 0:
		res = "other"
	case 1, 2:
		res = parts[0]
	default:
		res = parts[0] + "/" + parts[2]
	}
	verb = r.Method
	if r.Method == http.MethodGet {
		switch {
		case r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1":
			verb = "WATCH"
		case len(parts) == 1:
			verb = "LIST"
		}
	}
	return verb, res
}
