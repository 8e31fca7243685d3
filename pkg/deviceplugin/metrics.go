package deviceplugin

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/plexus-cni/plexus/pkg/probe"
)

// Metrics are the plugin's Prometheus metrics, on their own registry.
type Metrics struct {
	Registry    *prometheus.Registry
	devices     *prometheus.GaugeVec
	allocations *prometheus.CounterVec
	allocDevs   *prometheus.CounterVec
	allocErrs   *prometheus.CounterVec
	reloads     *prometheus.CounterVec
	assignErrs  prometheus.Counter

	// pools are the devices each pool advertises (ID -> healthy), for
	// plexus_sriov_vfs; assigned, when set, tells which of them kubelet
	// has assigned to containers, asked at each scrape.
	mu       sync.Mutex
	pools    map[string]map[string]bool
	assigned AssignedFunc
}

// AssignedFunc returns, per resource name, the IDs of the devices kubelet
// has assigned to the containers of the node's pods.
type AssignedFunc func(ctx context.Context) (map[string]map[string]bool, error)

// States of plexus_sriov_vfs, as kubelet counts them: allocatable are the
// healthy devices (the node's allocatable), unhealthy the others, and
// allocated the devices assigned to containers (healthy or not), so that
// allocatable - allocated are free when every allocated device is healthy.
const (
	StateAllocatable = "allocatable"
	StateAllocated   = "allocated"
	StateUnhealthy   = "unhealthy"
)

// assignedTimeout bounds the pod-resources request of one scrape.
const assignedTimeout = 3 * time.Second

var vfsDesc = prometheus.NewDesc("plexus_sriov_vfs",
	"Devices (VFs) per pool by state: allocatable (healthy, advertised to kubelet), unhealthy, "+
		"and allocated (assigned to a container, per kubelet's pod-resources API; only with --pod-resources-socket).",
	[]string{"resource", "state"}, nil)

// vfsCollector computes plexus_sriov_vfs at scrape time.
type vfsCollector struct{ m *Metrics }

func (c vfsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- vfsDesc }

func (c vfsCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	m.mu.Lock()
	pools := make(map[string]map[string]bool, len(m.pools))
	for res, devs := range m.pools {
		pools[res] = devs // replaced, never changed in place (setPool)
	}
	src := m.assigned
	m.mu.Unlock()
	var assigned map[string]map[string]bool
	if src != nil {
		ctx, cancel := context.WithTimeout(context.Background(), assignedTimeout)
		var err error
		assigned, err = src(ctx)
		cancel()
		if err != nil {
			m.assignErrs.Inc()
			src = nil // no allocated series rather than a wrong one
		}
	}
	for res, devs := range pools {
		var healthy, unhealthy, allocated int
		for id, h := range devs {
			if h {
				healthy++
			} else {
				unhealthy++
			}
			if assigned[res][id] {
				allocated++
			}
		}
		ch <- prometheus.MustNewConstMetric(vfsDesc, prometheus.GaugeValue, float64(healthy), res, StateAllocatable)
		ch <- prometheus.MustNewConstMetric(vfsDesc, prometheus.GaugeValue, float64(unhealthy), res, StateUnhealthy)
		if src != nil {
			ch <- prometheus.MustNewConstMetric(vfsDesc, prometheus.GaugeValue, float64(allocated), res, StateAllocated)
		}
	}
}

// SetAssigned makes plexus_sriov_vfs report the allocated state from f
// (PodResourcesAssigned); nil reports none.
func (m *Metrics) SetAssigned(f AssignedFunc) {
	m.mu.Lock()
	m.assigned = f
	m.mu.Unlock()
}

// PodResourcesAssigned asks kubelet's pod-resources API (List) at socket
// which devices its pods' containers hold. It connects at each call: a
// scrape is rare, and kubelet may have restarted in between.
func PodResourcesAssigned(socket string) AssignedFunc {
	return func(ctx context.Context) (map[string]map[string]bool, error) {
		conn, err := grpc.NewClient("unix://"+socket,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
		if err != nil {
			return nil, fmt.Errorf("pod-resources %s: %w", socket, err)
		}
		defer conn.Close()
		resp, err := podresourcesv1.NewPodResourcesListerClient(conn).List(ctx, &podresourcesv1.ListPodResourcesRequest{})
		if err != nil {
			return nil, fmt.Errorf("pod-resources %s: list: %w", socket, err)
		}
		out := map[string]map[string]bool{}
		for _, pr := range resp.GetPodResources() {
			for _, c := range pr.GetContainers() {
				for _, d := range c.GetDevices() {
					ids := out[d.GetResourceName()]
					if ids == nil {
						ids = map[string]bool{}
						out[d.GetResourceName()] = ids
					}
					for _, id := range d.GetDeviceIds() {
						ids[id] = true
					}
				}
			}
		}
		return out, nil
	}
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
		assignErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plexus_sriov_pod_resources_errors_total", Help: "Scrapes whose pod-resources List failed (plexus_sriov_vfs then has no allocated state).",
		}),
		pools: map[string]map[string]bool{},
	}
	m.Registry.MustRegister(m.devices, m.allocations, m.allocDevs, m.allocErrs, m.reloads, m.assignErrs, vfsCollector{m})
	return m
}

// setPool records the devices a pool advertises, by ID, with their health.
func (m *Metrics) setPool(res string, health map[string]bool) {
	devs := make(map[string]bool, len(health))
	healthy := 0
	for id, h := range health {
		devs[id] = h
		if h {
			healthy++
		}
	}
	m.devices.WithLabelValues(res, "Healthy").Set(float64(healthy))
	m.devices.WithLabelValues(res, "Unhealthy").Set(float64(len(health) - healthy))
	m.mu.Lock()
	m.pools[res] = devs
	m.mu.Unlock()
}

func (m *Metrics) forget(res string) {
	m.devices.DeleteLabelValues(res, "Healthy")
	m.devices.DeleteLabelValues(res, "Unhealthy")
	m.mu.Lock()
	delete(m.pools, res)
	m.mu.Unlock()
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
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	return probe.ServeHTTP(ctx, "metrics", addr, mux)
}
