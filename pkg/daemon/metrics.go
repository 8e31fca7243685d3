package daemon

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/transport"

	"github.com/plexus-cni/plexus/pkg/wire"
)

// Metrics are plexusd's Prometheus metrics (docs/observability.md). A nil
// *Metrics records nothing.
type Metrics struct {
	Registry *prometheus.Registry

	ops          *prometheus.CounterVec
	opSeconds    *prometheus.HistogramVec
	delegate     *prometheus.HistogramVec
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
		delegate: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "plexus_delegate_duration_seconds",
			Help: "Duration of one delegate's ADD or DEL, by command, plugin types (chain joined by +) and result.", Buckets: latencyBuckets}, []string{"command", "plugins", "result"}),
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
	r.MustRegister(m.ops, m.opSeconds, m.delegate, m.resolve, m.lookups, m.api, m.outboxDepth, m.outboxOldest,
		m.published, m.publishDelay, m.informerSync, m.informerLag, m.fallbacks, m.gcRemoved, m.socketErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) observeStats(st *wire.Stats) {
	if m == nil || st == nil {
		return
	}
	m.ops.WithLabelValues(st.Command, st.Result).Inc()
	m.opSeconds.WithLabelValues(st.Command, st.Result).Observe(st.Seconds)
	for _, d := range st.Delegates {
		m.delegate.WithLabelValues(d.Command, d.Plugins, d.Result).Observe(d.Seconds)
	}
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
