package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the plugin's Prometheus metrics, on their own registry.
type Metrics struct {
	Registry    *prometheus.Registry
	devices     *prometheus.GaugeVec
	allocations *prometheus.CounterVec
	allocDevs   *prometheus.CounterVec
	allocErrs   *prometheus.CounterVec
	reloads     *prometheus.CounterVec
}

// NewMetrics makes the metrics and registers them on a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		devices: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "plexus_sriov_devices", Help: "Devices advertised to kubelet, per pool and health.",
		}, []string{"resource", "health"}),
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plexus_sriov_allocations_total", Help: "Allocate calls answered, per pool.",
		}, []string{"resource"}),
		allocDevs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plexus_sriov_allocated_devices_total", Help: "Devices handed out by Allocate, per pool.",
		}, []string{"resource"}),
		allocErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plexus_sriov_allocation_errors_total", Help: "Allocate calls refused, per pool.",
		}, []string{"resource"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plexus_sriov_config_reloads_total", Help: "Configuration reloads by result (ok, error).",
		}, []string{"result"}),
	}
	m.Registry.MustRegister(m.devices, m.allocations, m.allocDevs, m.allocErrs, m.reloads)
	return m
}

func (m *Metrics) setDevices(res string, healthy, unhealthy int) {
	m.devices.WithLabelValues(res, "Healthy").Set(float64(healthy))
	m.devices.WithLabelValues(res, "Unhealthy").Set(float64(unhealthy))
}

func (m *Metrics) forget(res string) {
	m.devices.DeleteLabelValues(res, "Healthy")
	m.devices.DeleteLabelValues(res, "Unhealthy")
}

func (m *Metrics) allocated(res string, n int) {
	m.allocations.WithLabelValues(res).Inc()
	m.allocDevs.WithLabelValues(res).Add(float64(n))
}

func (m *Metrics) allocationFailed(res string) { m.allocErrs.WithLabelValues(res).Inc() }

func (m *Metrics) reloaded(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.reloads.WithLabelValues("error").Inc()
		return
	}
	m.reloads.WithLabelValues("ok").Inc()
}

// Serve serves /metrics on addr until ctx ends. The listener is bound before
// Serve returns its first error, so a bad address fails at once.
func (m *Metrics) Serve(ctx context.Context, addr string) (net.Addr, <-chan error, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics address %q: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() {
		err := srv.Serve(lis)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return lis.Addr(), errc, nil
}
