package daemon

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/wire"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct{ method, url, verb, res string }{
		{"GET", "/api/v1/namespaces/ns/pods/p", "GET", "pods"},
		{"GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn", "LIST", "pods"},
		{"GET", "/api/v1/pods?watch=true&fieldSelector=x", "WATCH", "pods"},
		{"PATCH", "/api/v1/namespaces/ns/pods/p/status", "PATCH", "pods/status"},
		{"POST", "/api/v1/namespaces/ns/events", "POST", "events"},
		{"GET", "/apis/k8s.cni.cncf.io/v1/namespaces/ns/network-attachment-definitions", "LIST", "network-attachment-definitions"},
		{"GET", "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions?watch=1", "WATCH", "network-attachment-definitions"},
		{"GET", "/apis/resource.k8s.io/v1/namespaces/ns/resourceclaims/c", "GET", "resourceclaims"},
		{"GET", "/api/v1/namespaces/ns", "GET", "namespaces"},
		{"GET", "/healthz", "GET", "other"},
	} {
		u, _ := url.Parse(tc.url)
		verb, res := classify(&http.Request{Method: tc.method, URL: u})
		if verb != tc.verb || res != tc.res {
			t.Errorf("%s %s: %s %s, want %s %s", tc.method, tc.url, verb, res, tc.verb, tc.res)
		}
	}
}

// labelValues gathers m's registry and returns, per label name of metric
// name, its distinct values.
func labelValues(t *testing.T, m *Metrics, name string) map[string]map[string]bool {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if out[lp.GetName()] == nil {
					out[lp.GetName()] = map[string]bool{}
				}
				out[lp.GetName()][lp.GetValue()] = true
			}
		}
	}
	return out
}

// A NAD's plugin types are the tenant's: 200 NADs with distinct long types,
// through both paths to the delegate histogram (the shim's stats on the
// socket, and hot-plug's delegate runs in plexusd), leave a bounded set of
// short label values. Types found in binDir keep their names.
func TestDelegateLabelsBounded(t *testing.T) {
	m := NewMetrics()
	setPluginDir(t, m)
	long := strings.Repeat("x", 1000)
	for i := 0; i < 200; i++ {
		typ := fmt.Sprintf("t%03d-%s", i, long)
		m.observeStats(&wire.Stats{Command: "ADD", Result: "success", Seconds: .1,
			Delegates: []wire.DelegateStats{{Command: "ADD", Plugins: typ, Result: "success", Seconds: .1}}})
		// A chain of types binDir holds, each distinct (bridge, tuning in
		// the pattern of i's binary digits).
		var chain []string
		for b := 0; b < 9; b++ {
			if i&(1<<b) != 0 {
				chain = append(chain, "tuning")
			} else {
				chain = append(chain, "bridge")
			}
		}
		m.delegate.WithLabelValues("DEL", strings.Join(chain[:1+i%9], "+"), "error").Observe(.1)
		m.delegate.WithLabelValues("DEL", "bridge+"+typ, "error").Observe(.1)
		// The shim's own labels come over the socket too.
		m.observeStats(&wire.Stats{Command: "ADD" + typ, Result: "r" + typ, Seconds: .1})
	}
	const maxLabelLen = 4*65 + 5
	m.observeStats(&wire.Stats{Command: "ADD", Result: "success", Delegates: []wire.DelegateStats{
		{Command: "ADD", Plugins: "bridge+tuning", Result: "success"}, {Command: "ADD", Plugins: "bridge", Result: "success"}}})
	for _, name := range []string{"plexus_delegate_duration_seconds", "plexus_cni_operations_total", "plexus_cni_operation_duration_seconds"} {
		for label, vals := range labelValues(t, m, name) {
			if len(vals) > 70 {
				t.Errorf("%s: %d values of label %s, want a bounded set", name, len(vals), label)
			}
			long := 0
			for v := range vals {
				if len(v) > maxLabelLen {
					long++
				}
			}
			if long > 0 {
				t.Errorf("%s: %d values of label %s are longer than %d bytes", name, long, label, maxLabelLen)
			}
		}
	}
	plugins := labelValues(t, m, "plexus_delegate_duration_seconds")["plugins"]
	for _, want := range []string{"bridge", "bridge+tuning", "other"} {
		if !plugins[want] {
			t.Errorf("plugins label %q missing (types in binDir keep their names): have %d values", want, len(plugins))
		}
	}
}

// setPluginDir gives m a binDir holding bridge and tuning.
func setPluginDir(t *testing.T, m *Metrics) {
	t.Helper()
	dir := t.TempDir()
	for _, p := range []string{"bridge", "tuning"} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m.PluginDir = dir
}

func TestPluginsLabel(t *testing.T) {
	m := NewMetrics()
	setPluginDir(t, m)
	if err := os.Mkdir(filepath.Join(m.PluginDir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"bridge", "bridge"},
		{"bridge+tuning", "bridge+tuning"},
		{"macvlan", "other"}, // not in binDir
		{"bridge+evil", "bridge+other"},
		{"../bridge", "other"}, // a path, not a file name
		{"./bridge", "other"},
		{"adir", "other"}, // not a file
		{"", "other"},
		{"bridge+bridge+tuning+bridge+tuning", "bridge+bridge+tuning+bridge+more"},
		{strings.Repeat("b", maxTypeLen+1), "other"},
	} {
		if got := m.plugins.label(m.PluginDir, tc.in); got != tc.want {
			t.Errorf("label(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, cmd, res, kind string }{
		{"ADD", "ADD", "other", "other"},
		{"success", "other", "success", "other"},
		{"attached", "other", "other", "attached"},
		{"", "other", "other", "other"},
	} {
		if c, r, k := commandLabel(tc.in), resultLabel(tc.in), kindLabel(tc.in); c != tc.cmd || r != tc.res || k != tc.kind {
			t.Errorf("%q: command %q, result %q, kind %q; want %q %q %q", tc.in, c, r, k, tc.cmd, tc.res, tc.kind)
		}
	}
}
