package dra

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// DefaultHealthAddress is where /healthz and /readyz are served: the driver
// runs on the host's network, so this is the node's port 9558 (plexusd has
// 9555, sriov-device-plugin 9556 and 9557).
const DefaultHealthAddress = ":9558"

// readiness is the driver's /readyz: ready once kubelet has registered the
// plugin and the API holds the ResourceSlices last handed to the
// publisher. A confirmed publication is remembered, so probes ask the API
// only until the slices of each new publication are seen.
type readiness struct {
	driver, node string
	client       kubernetes.Interface
	timeout      time.Duration // bounds one List

	mu           sync.Mutex
	started      bool
	registration func() *registerapi.RegistrationStatus
	want         *resourceslice.DriverResources // last published
	confirmed    *resourceslice.DriverResources // last seen in the API
}

// published records what was handed to the ResourceSlice publisher.
func (r *readiness) published(res resourceslice.DriverResources) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.want = &res
}

// pluginStarted records how to ask for kubelet's registration verdict.
func (r *readiness) pluginStarted(status func() *registerapi.RegistrationStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started, r.registration = true, status
}

// NotReady returns nil when ready, else why not.
func (r *readiness) NotReady() error {
	r.mu.Lock()
	started, status, want, confirmed := r.started, r.registration, r.want, r.confirmed
	r.mu.Unlock()
	if !started {
		return fmt.Errorf("starting: the kubelet plugin is not started yet")
	}
	if err := registered(status()); err != nil {
		return err
	}
	if want == nil {
		return fmt.Errorf("no ResourceSlices handed to the publisher yet")
	}
	if want == confirmed {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	list, err := r.client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{
		FieldSelector: fields.AndSelectors(
			fields.OneTermEqualSelector("spec.driver", r.driver),
			fields.OneTermEqualSelector("spec.nodeName", r.node)).String(),
	})
	if err != nil {
		return fmt.Errorf("listing this node's ResourceSlices: %w", err)
	}
	if err := slicesPublished(*want, r.driver, r.node, list.Items); err != nil {
		return err
	}
	r.mu.Lock()
	if r.want == want {
		r.confirmed = want
	}
	r.mu.Unlock()
	return nil
}

// registered is kubelet's registration verdict: nil when it registered the
// plugin.
func registered(st *registerapi.RegistrationStatus) error {
	switch {
	case st == nil:
		return fmt.Errorf("not registered with kubelet yet (kubelet has not called back on the plugins_registry socket)")
	case !st.PluginRegistered:
		return fmt.Errorf("kubelet refused the registration: %s", st.Error)
	}
	return nil
}

// slicesPublished says whether slices (from the API) hold, for each pool
// of want, a complete generation with exactly want's devices.
func slicesPublished(want resourceslice.DriverResources, driver, node string, slices []resourceapi.ResourceSlice) error {
	pools := make([]string, 0, len(want.Pools))
	for p := range want.Pools {
		pools = append(pools, p)
	}
	sort.Strings(pools)
	for _, pool := range pools {
		var gen int64 = -1
		var cur []*resourceapi.ResourceSlice
		for i := range slices {
			s := &slices[i]
			if s.Spec.Driver != driver || s.Spec.Pool.Name != pool || s.Spec.NodeName == nil || *s.Spec.NodeName != node {
				continue
			}
			switch g := s.Spec.Pool.Generation; {
			case g > gen:
				gen, cur = g, []*resourceapi.ResourceSlice{s}
			case g == gen:
				cur = append(cur, s)
			}
		}
		if len(cur) == 0 {
			return fmt.Errorf("pool %s: no ResourceSlice of driver %s for node %s published yet", pool, driver, node)
		}
		if n := cur[0].Spec.Pool.ResourceSliceCount; int64(len(cur)) < n {
			return fmt.Errorf("pool %s: %d of %d ResourceSlices of generation %d published", pool, len(cur), n, gen)
		}
		have := map[string]bool{}
		for _, s := range cur {
			for _, d := range s.Spec.Devices {
				have[d.Name] = true
			}
		}
		wantN := 0
		var missing []string
		for _, s := range want.Pools[pool].Slices {
			for _, d := range s.Devices {
				wantN++
				if !have[d.Name] {
					missing = append(missing, d.Name)
				}
			}
		}
		if len(missing) > 0 || wantN != len(have) {
			if len(missing) > 3 {
				missing = append(missing[:3], "…")
			}
			return fmt.Errorf("pool %s: the API has %d devices, the driver publishes %d (not yet there: %s)", pool, len(have), wantN, strings.Join(missing, ", "))
		}
	}
	return nil
}
