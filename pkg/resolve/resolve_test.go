package resolve

import (
	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/podnet"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plexus-cni/plexus/pkg/config"
	"github.com/plexus-cni/plexus/pkg/nad"
)

// Unit tests of the resolution logic (docs/architecture.md, "Three
// stages") over in-memory sources; the real API and clusterless directory
// are tested elsewhere.

// fakeNADs is an in-memory NADSource that records every lookup.
type fakeNADs struct {
	nads  map[string]*nadv1.NetworkAttachmentDefinition
	errs  map[string]error // a lookup error other than not-found
	calls []string
}

func (f *fakeNADs) NAD(_ context.Context, namespace, name string) (*nadv1.NetworkAttachmentDefinition, error) {
	key := namespace + "/" + name
	f.calls = append(f.calls, key)
	if err := f.errs[key]; err != nil {
		return nil, err
	}
	if n := f.nads[key]; n != nil {
		return n, nil
	}
	return nil, fmt.Errorf("%s: %w", key, podnet.ErrNADNotFound)
}

func nads(ns ...*nadv1.NetworkAttachmentDefinition) *fakeNADs {
	f := &fakeNADs{nads: map[string]*nadv1.NetworkAttachmentDefinition{}}
	for _, n := range ns {
		f.nads[n.Namespace+"/"+n.Name] = n
	}
	return f
}

func newNAD(namespace, name, config string, annotations map[string]string) *nadv1.NetworkAttachmentDefinition {
	return &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: config},
	}
}

// conflist is a delegate conflist with every key the resolver reads, so
// that nad.ConfList keeps its bytes unchanged.
func conflist(name string, plugins ...string) string {
	return `{"cniVersion":"1.0.0","name":"` + name + `","plugins":[` + strings.Join(plugins, ",") + `]}`
}

// newEngine builds an engine from plexus config keys (without braces)
// added to a minimal config whose confDir is a fresh temp directory.
func newEngine(t *testing.T, keys string, src NADSource) (*Resolver, string) {
	t.Helper()
	confDir := t.TempDir()
	js := `{"cniVersion":"1.0.0","name":"plexus-net","type":"plexus","confDir":"` + confDir + `"`
	if keys != "" {
		js += "," + keys
	}
	js += "}"
	c, err := config.Load([]byte(js))
	if err != nil {
		t.Fatalf("config.Load(%s): %v", js, err)
	}
	dir := t.TempDir()
	return &Resolver{Conf: c, NADs: src, Confs: nad.LocalConfs{Conf: c}, Pools: devinfo.Pools{Dir: dir}, DeviceInfoDir: dir}, confDir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

var (
	priConf    = conflist("pri", `{"type":"bridge","bridge":"cni0"}`)
	podArgs    = [][2]string{{"K8S_POD_NAMESPACE", "a"}, {"K8S_POD_NAME", "p"}}
	baseArgs   = [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "a"}, {"K8S_POD_NAME", "p"}}
	primaryNAD = newNAD("kube-system", "pri", priConf, nil)
)

func podIn(ns string, annotations map[string]string) *podnet.Pod {
	return &podnet.Pod{Namespace: ns, Name: "p", UID: "uid-1", Annotations: annotations}
}

func networksAnnot(v string) map[string]string {
	return map[string]string{nadv1.NetworkAttachmentAnnot: v}
}

func TestAttachmentsFull(t *testing.T) {
	xConf := conflist("x", `{"type":"macvlan","master":"eth1","ipam":{"type":"static"}}`, `{"type":"tuning"}`)
	sriovConf := conflist("sriov-a", `{"type":"sriov","vlan":10}`)
	gConf := conflist("g", `{"type":"bridge","bridge":"br1"}`)
	src := nads(primaryNAD,
		newNAD("a", "x", xConf, nil),
		newNAD("a", "sriov", sriovConf, map[string]string{nad.ResourceNameAnnot: "intel.com/sriov_a"}),
		newNAD("default", "g", gConf, nil),
	)
	e, _ := newEngine(t, `"clusterNetwork":"pri","namespaceIsolation":true`, src)
	pod := podIn("a", networksAnnot(`[
		{"name":"x","interface":"net5","ips":["10.0.0.5/24"],"mac":"02:00:00:00:00:05","cni-args":{"k":"v"},"default-route":["10.0.0.1"]},
		{"name":"sriov"},
		{"name":"g","namespace":"default","portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}]`))

	atts, err := e.attachments(context.Background(), pod, &podnet.Request{IfName: "eth0", Args: podArgs})
	if err != nil {
		t.Fatalf("attachments: %v", err)
	}
	args := func(extra ...[2]string) [][2]string { return append(append([][2]string{}, baseArgs...), extra...) }
	want := []podnet.Attachment{
		{Network: "kube-system/pri", IfName: "eth0", Primary: true, ConfList: json.RawMessage(priConf), CNIArgs: args(), Origin: podnet.OriginPrimary},
		{
			Network: "a/x", IfName: "net5", Origin: podnet.OriginAnnotation, ConfList: json.RawMessage(xConf),
			CNIArgs:        args([2]string{"IP", "10.0.0.5/24"}, [2]string{"MAC", "02:00:00:00:00:05"}),
			CNIArgsConf:    map[string]any{"k": "v"},
			CapabilityArgs: map[string]any{"ips": []string{"10.0.0.5/24"}, "mac": "02:00:00:00:00:05"},
			Gateways:       []string{"10.0.0.1"},
			WantIPs:        []string{"10.0.0.5/24"}, WantMAC: "02:00:00:00:00:05",
		},
		{Network: "a/sriov", IfName: "net2", ConfList: json.RawMessage(sriovConf), CNIArgs: args(), ResourceName: "intel.com/sriov_a", Origin: podnet.OriginAnnotation},
		{
			Network: "default/g", IfName: "net3", Origin: podnet.OriginAnnotation, ConfList: json.RawMessage(gConf), CNIArgs: args(),
			CapabilityArgs: map[string]any{"portMappings": []*nadv1.PortMapEntry{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}},
		},
	}
	if len(atts) != len(want) {
		t.Fatalf("got %d attachments, want %d: %+v", len(atts), len(want), atts)
	}
	for i := range want {
		if !reflect.DeepEqual(atts[i], want[i]) {
			t.Errorf("attachment %d:\n got %+v\nwant %+v", i, atts[i], want[i])
		}
	}
	wantWarn := []string{`network "default/g" (interface net3): field "portMappings": delegate "g" declares no capability "portMappings", so no plugin receives it (ignored, as Multus does); add "capabilities": {"portMappings": true} to a plugin that supports it`}
	if !reflect.DeepEqual(e.warnings, wantWarn) {
		t.Errorf("warnings:\n got %q\nwant %q", e.warnings, wantWarn)
	}
	if wantCalls := []string{"kube-system/pri", "a/x", "a/sriov", "default/g"}; !reflect.DeepEqual(src.calls, wantCalls) {
		t.Errorf("NAD lookups %v, want %v", src.calls, wantCalls)
	}
}

func TestAttachmentsNamespaceIsolation(t *testing.T) {
	src := func() *fakeNADs {
		return nads(primaryNAD,
			newNAD("a", "x", conflist("x", `{"type":"macvlan"}`), nil),
			newNAD("b", "x", conflist("bx", `{"type":"macvlan"}`), nil),
			newNAD("default", "x", conflist("dx", `{"type":"macvlan"}`), nil),
			newNAD("kube-system", "x", conflist("kx", `{"type":"macvlan"}`), nil),
		)
	}
	const forbidB = `namespaceIsolation forbids pods in namespace "a" from using networks in namespace "b" (globalNamespaces: "default")`
	tests := []struct {
		name       string
		keys       string
		annots     map[string]string
		wantNets   []string // networks of the attachments, in order
		wantErr    string
		wantErrNet string // podnet.NetworkOf(err)
		wantCalls  []string
	}{
		{
			name: "same namespace", keys: `"namespaceIsolation":true`, annots: networksAnnot("x"),
			wantNets: []string{"kube-system/pri", "a/x"}, wantCalls: []string{"kube-system/pri", "a/x"},
		},
		{
			name: "global namespace", keys: `"namespaceIsolation":true`, annots: networksAnnot("default/x"),
			wantNets: []string{"kube-system/pri", "default/x"}, wantCalls: []string{"kube-system/pri", "default/x"},
		},
		{
			name: "other namespace refused before lookup", keys: `"namespaceIsolation":true`, annots: networksAnnot("x,b/x"),
			wantErr:    `network "b/x" (interface net2): ` + forbidB,
			wantErrNet: "b/x", wantCalls: []string{"kube-system/pri", "a/x"},
		},
		{
			name: "other namespace without isolation", annots: networksAnnot("b/x"),
			wantNets: []string{"kube-system/pri", "b/x"}, wantCalls: []string{"kube-system/pri", "b/x"},
		},
		{
			name: "kube-system refused for the networks annotation", keys: `"namespaceIsolation":true`, annots: networksAnnot("kube-system/x@eth7"),
			wantErr:    `network "kube-system/x" (interface eth7): namespaceIsolation forbids pods in namespace "a" from using networks in namespace "kube-system" (globalNamespaces: "default")`,
			wantErrNet: "kube-system/x", wantCalls: []string{"kube-system/pri"},
		},
		{
			name: "globalNamespaces list", keys: `"namespaceIsolation":true,"globalNamespaces":"b, c"`, annots: networksAnnot("b/x"),
			wantNets: []string{"kube-system/pri", "b/x"}, wantCalls: []string{"kube-system/pri", "b/x"},
		},
		// The default-network override is a way to name a network too.
		{
			name: "override: other namespace refused", keys: `"namespaceIsolation":true`, annots: map[string]string{DefaultNetworkAnnot: "b/x"},
			wantErr:    `network "b/x": annotation v1.multus-cni.io/default-network: ` + forbidB,
			wantErrNet: "b/x", wantCalls: nil,
		},
		{
			name: "override: multusNamespace allowed", keys: `"namespaceIsolation":true`, annots: map[string]string{DefaultNetworkAnnot: "kube-system/x"},
			wantNets: []string{"kube-system/x"}, wantCalls: []string{"kube-system/x"},
		},
		{
			name: "override: bare name is in multusNamespace", keys: `"namespaceIsolation":true`, annots: map[string]string{DefaultNetworkAnnot: "x"},
			wantNets: []string{"kube-system/x"}, wantCalls: []string{"kube-system/x"},
		},
		{
			name: "override: own namespace allowed", keys: `"namespaceIsolation":true`, annots: map[string]string{DefaultNetworkAnnot: "a/x"},
			wantNets: []string{"a/x"}, wantCalls: []string{"a/x"},
		},
		{
			name: "override: global namespace allowed", keys: `"namespaceIsolation":true`, annots: map[string]string{DefaultNetworkAnnot: "default/x"},
			wantNets: []string{"default/x"}, wantCalls: []string{"default/x"},
		},
		{
			name: "override: other namespace without isolation", annots: map[string]string{DefaultNetworkAnnot: "b/x"},
			wantNets: []string{"b/x"}, wantCalls: []string{"b/x"},
		},
		{
			name: "override: custom multusNamespace", keys: `"namespaceIsolation":true,"multusNamespace":"b"`, annots: map[string]string{DefaultNetworkAnnot: "x"},
			wantNets: []string{"b/x"}, wantCalls: []string{"b/x"},
		},
		{
			name: "override: not found", annots: map[string]string{DefaultNetworkAnnot: "a/nope"},
			wantErr:    `network "a/nope": annotation v1.multus-cni.io/default-network: a/nope: network-attachment-definition not found`,
			wantErrNet: "a/nope", wantCalls: []string{"a/nope"},
		},
		{
			name: "override: two networks", annots: map[string]string{DefaultNetworkAnnot: "x,a/x"},
			wantErr: `annotation v1.multus-cni.io/default-network: want exactly one network, got 2`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := src()
			e, _ := newEngine(t, joinKeys(`"clusterNetwork":"pri"`, tc.keys), s)
			atts, err := e.attachments(context.Background(), podIn("a", tc.annots), &podnet.Request{IfName: "eth0", Args: podArgs})
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error:\n got %v\nwant %s", err, tc.wantErr)
				}
				if got := podnet.NetworkOf(err); got != tc.wantErrNet {
					t.Errorf("podnet.NetworkOf(err) = %q, want %q", got, tc.wantErrNet)
				}
			} else {
				if err != nil {
					t.Fatalf("attachments: %v", err)
				}
				if got := networksOf(atts); !reflect.DeepEqual(got, tc.wantNets) {
					t.Errorf("networks %v, want %v", got, tc.wantNets)
				}
			}
			if !reflect.DeepEqual(s.calls, tc.wantCalls) {
				t.Errorf("NAD lookups %v, want %v", s.calls, tc.wantCalls)
			}
		})
	}
}

func joinKeys(ks ...string) string {
	var out []string
	for _, k := range ks {
		if k != "" {
			out = append(out, k)
		}
	}
	return strings.Join(out, ",")
}

func networksOf(atts []podnet.Attachment) []string {
	var out []string
	for _, a := range atts {
		out = append(out, a.Network)
	}
	return out
}

func TestPrimaryClusterNetwork(t *testing.T) {
	fileConf := `{"cniVersion":"1.0.0","name":"from-file","type":"ptp"}`
	tests := []struct {
		name string
		// setup writes files (below dir, a temp directory) and returns
		// the clusterNetwork value.
		setup     func(t *testing.T, dir, confDir string) string
		nads      *fakeNADs
		keys      string
		wantName  string
		wantType  string
		wantErr   string // a prefix when it ends with "…"
		wantCalls []string
	}{
		{
			name: "absolute file path: no NAD lookup",
			setup: func(t *testing.T, dir, _ string) string {
				p := filepath.Join(dir, "10-pri.conf")
				writeFile(t, p, fileConf)
				return p
			},
			nads:     nads(newNAD("kube-system", "10-pri.conf", priConf, nil)),
			wantName: "from-file", wantType: "ptp", wantCalls: nil,
		},
		{
			name: "absolute directory: first conf that is not plexus",
			setup: func(t *testing.T, dir, _ string) string {
				writeFile(t, filepath.Join(dir, "00-plexus.conflist"), conflist("plexus-net", `{"type":"plexus"}`))
				writeFile(t, filepath.Join(dir, "10-b.conf"), fileConf)
				writeFile(t, filepath.Join(dir, "20-c.conflist"), conflist("c", `{"type":"bridge"}`))
				return dir
			},
			nads:     nads(),
			wantName: "from-file", wantType: "ptp", wantCalls: nil,
		},
		{
			name:    "absolute path that does not exist",
			setup:   func(t *testing.T, dir, _ string) string { return filepath.Join(dir, "nope.conf") },
			nads:    nads(),
			wantErr: `plexus config: key "clusterNetwork": stat …`,
		},
		{
			name: "name: NAD in multusNamespace before the conf of that name",
			setup: func(t *testing.T, _, confDir string) string {
				writeFile(t, filepath.Join(confDir, "10-pri.conflist"), conflist("pri", `{"type":"ptp"}`))
				return "pri"
			},
			nads:     nads(primaryNAD, newNAD("a", "pri", conflist("pri", `{"type":"macvlan"}`), nil)),
			wantName: "kube-system/pri", wantType: "bridge", wantCalls: []string{"kube-system/pri"},
		},
		{
			name: "name: NAD in a custom multusNamespace",
			setup: func(t *testing.T, _, _ string) string {
				return "pri"
			},
			keys:     `"multusNamespace":"plexus-system"`,
			nads:     nads(primaryNAD, newNAD("plexus-system", "pri", conflist("pri", `{"type":"ipvlan"}`), nil)),
			wantName: "plexus-system/pri", wantType: "ipvlan", wantCalls: []string{"plexus-system/pri"},
		},
		{
			name: "name: no NAD, conf of that name in confDir",
			setup: func(t *testing.T, _, confDir string) string {
				writeFile(t, filepath.Join(confDir, "05-other.conf"), `{"cniVersion":"1.0.0","name":"other","type":"bridge"}`)
				writeFile(t, filepath.Join(confDir, "10-pri.conflist"), conflist("pri", `{"type":"ptp"}`))
				return "pri"
			},
			nads:     nads(),
			wantName: "pri", wantType: "ptp", wantCalls: []string{"kube-system/pri"},
		},
		{
			name:      "name: neither NAD nor conf",
			setup:     func(t *testing.T, _, _ string) string { return "pri" },
			nads:      nads(),
			wantErr:   `plexus config: key "clusterNetwork": "pri" is neither a NAD in namespace "kube-system" nor a CNI config (no CNI config named "pri" in …`,
			wantCalls: []string{"kube-system/pri"},
		},
		{
			name: "name: lookup error other than not-found is not a fallback",
			setup: func(t *testing.T, _, confDir string) string {
				writeFile(t, filepath.Join(confDir, "10-pri.conflist"), conflist("pri", `{"type":"ptp"}`))
				return "pri"
			},
			nads:      &fakeNADs{errs: map[string]error{"kube-system/pri": errors.New("forbidden")}},
			wantErr:   `plexus config: key "clusterNetwork": network "kube-system/pri": forbidden`,
			wantCalls: []string{"kube-system/pri"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			confDir := t.TempDir()
			cn := tc.setup(t, dir, confDir)
			keys := joinKeys(`"clusterNetwork":"`+cn+`"`, `"confDir":"`+confDir+`"`, tc.keys)
			c, err := config.Load([]byte(`{"cniVersion":"1.0.0","name":"plexus-net","type":"plexus",` + keys + `}`))
			if err != nil {
				t.Fatal(err)
			}
			e := &Resolver{Conf: c, NADs: tc.nads, Confs: nad.LocalConfs{Conf: c}, DeviceInfoDir: t.TempDir()}
			l, name, err := e.primary(context.Background(), podIn("a", nil))
			if tc.wantErr != "" {
				if err == nil || !matches(err.Error(), tc.wantErr) {
					t.Fatalf("error:\n got %v\nwant %s", err, tc.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("primary: %v", err)
				}
				if name != tc.wantName || len(l.Plugins) != 1 || l.Plugins[0].Network.Type != tc.wantType {
					t.Errorf("primary = %q (%s), want %q (type %s)", name, l.Bytes, tc.wantName, tc.wantType)
				}
			}
			if !reflect.DeepEqual(tc.nads.calls, tc.wantCalls) {
				t.Errorf("NAD lookups %v, want %v", tc.nads.calls, tc.wantCalls)
			}
		})
	}
}

// matches compares exactly, or by prefix when want ends with "…".
func matches(got, want string) bool {
	if p, ok := strings.CutSuffix(want, "…"); ok {
		return strings.HasPrefix(got, p)
	}
	return got == want
}

func TestPrimaryInlineDelegates(t *testing.T) {
	src := nads(newNAD("a", "x", conflist("x", `{"type":"macvlan"}`), nil))
	e, _ := newEngine(t, `"delegates":[{"cniVersion":"1.0.0","name":"d0","type":"bridge"},{"type":"ipvlan","master":"eth1"}]`, src)
	atts, err := e.attachments(context.Background(), podIn("a", networksAnnot("x")), &podnet.Request{IfName: "eth0", Args: podArgs})
	if err != nil {
		t.Fatal(err)
	}
	type ni struct{ net, ifName, typ string }
	var got []ni
	for _, a := range atts {
		var l struct {
			Plugins []struct{ Type string } `json:"plugins"`
		}
		if err := json.Unmarshal(a.ConfList, &l); err != nil || len(l.Plugins) != 1 {
			t.Fatalf("attachment %s: conflist %s: %v", a.Network, a.ConfList, err)
		}
		got = append(got, ni{a.Network, a.IfName, l.Plugins[0].Type})
	}
	// delegates[0] is the primary, delegates[1:] come next as net1…,
	// the pod's networks after them.
	want := []ni{{"d0", "eth0", "bridge"}, {"delegate-1", "net1", "ipvlan"}, {"a/x", "net2", "macvlan"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("attachments %v, want %v", got, want)
	}
	if !atts[0].Primary || atts[1].Primary {
		t.Errorf("Primary flags: %v, %v; want true, false", atts[0].Primary, atts[1].Primary)
	}
	if wantCalls := []string{"a/x"}; !reflect.DeepEqual(src.calls, wantCalls) {
		t.Errorf("NAD lookups %v, want %v", src.calls, wantCalls)
	}
}

func TestAttachmentsAnnotationWarnings(t *testing.T) {
	annot := `[{"name":"x","interfce":"net7"},{"name":"y","Interface":"net8"}]`
	src := func() *fakeNADs {
		return nads(primaryNAD,
			newNAD("a", "x", conflist("x", `{"type":"macvlan"}`), nil),
			newNAD("a", "y", conflist("y", `{"type":"macvlan"}`), nil))
	}

	e, _ := newEngine(t, `"clusterNetwork":"pri"`, src())
	atts, err := e.attachments(context.Background(), podIn("a", networksAnnot(annot)), &podnet.Request{IfName: "eth0"})
	if err != nil {
		t.Fatalf("attachments: %v", err)
	}
	if got, want := ifNames(atts), []string{"eth0", "net1", "net8"}; !reflect.DeepEqual(got, want) {
		t.Errorf("interfaces %v, want %v", got, want)
	}
	wantWarn := []string{
		`annotation k8s.v1.cni.cncf.io/networks: network "a/x": unknown field "interfce" ignored`,
		`annotation k8s.v1.cni.cncf.io/networks: network "a/y": field "Interface" read as "interface"`,
	}
	if !reflect.DeepEqual(e.warnings, wantWarn) {
		t.Errorf("warnings:\n got %q\nwant %q", e.warnings, wantWarn)
	}

	strict, _ := newEngine(t, `"clusterNetwork":"pri","strictAnnotations":true`, src())
	_, err = strict.attachments(context.Background(), podIn("a", networksAnnot(annot)), &podnet.Request{IfName: "eth0"})
	if want := `annotation k8s.v1.cni.cncf.io/networks: network selection element 1: unknown field "interfce"`; err == nil || err.Error() != want {
		t.Errorf("strictAnnotations: error\n got %v\nwant %s", err, want)
	}
	if len(strict.warnings) != 0 {
		t.Errorf("strictAnnotations: warnings %q, want none", strict.warnings)
	}
}

func ifNames(atts []podnet.Attachment) []string {
	var out []string
	for _, a := range atts {
		out = append(out, a.IfName)
	}
	return out
}

func TestAttachmentsDefaultNetworks(t *testing.T) {
	src := func() *fakeNADs {
		return nads(primaryNAD,
			newNAD("kube-system", "dn", conflist("dn", `{"type":"macvlan"}`), nil),
			newNAD("other", "dn2", conflist("dn2", `{"type":"macvlan"}`), nil),
			newNAD("a", "x", conflist("x", `{"type":"ipvlan"}`), nil),
			newNAD("kube-system", "x", conflist("kx", `{"type":"ipvlan"}`), nil))
	}
	keys := `"clusterNetwork":"pri","defaultNetworks":["dn","other/dn2"],"namespaceIsolation":true`
	tests := []struct {
		name     string
		keys     string
		ns       string
		annot    string
		wantNets []string
		wantIfs  []string
	}{
		{
			// defaultNetworks are the administrator's: namespaceIsolation
			// does not apply to them.
			name: "applied, exempt from isolation", keys: keys, ns: "a", annot: "x",
			wantNets: []string{"kube-system/pri", "kube-system/dn", "other/dn2", "a/x"},
			wantIfs:  []string{"eth0", "net1", "net2", "net3"},
		},
		{
			name: "not in a system namespace", keys: keys, ns: "kube-system", annot: "x",
			wantNets: []string{"kube-system/pri", "kube-system/x"},
			wantIfs:  []string{"eth0", "net1"},
		},
		{
			name: "systemNamespaces configured", keys: keys + `,"systemNamespaces":["a"]`, ns: "a",
			wantNets: []string{"kube-system/pri"},
			wantIfs:  []string{"eth0"},
		},
		{
			name: "kube-system not special when systemNamespaces is set", keys: keys + `,"systemNamespaces":["a"]`, ns: "kube-system",
			wantNets: []string{"kube-system/pri", "kube-system/dn", "other/dn2"},
			wantIfs:  []string{"eth0", "net1", "net2"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newEngine(t, tc.keys, src())
			var annots map[string]string
			if tc.annot != "" {
				annots = networksAnnot(tc.annot)
			}
			atts, err := e.attachments(context.Background(), podIn(tc.ns, annots), &podnet.Request{IfName: "eth0"})
			if err != nil {
				t.Fatalf("attachments: %v", err)
			}
			if got := networksOf(atts); !reflect.DeepEqual(got, tc.wantNets) {
				t.Errorf("networks %v, want %v", got, tc.wantNets)
			}
			if got := ifNames(atts); !reflect.DeepEqual(got, tc.wantIfs) {
				t.Errorf("interfaces %v, want %v", got, tc.wantIfs)
			}
		})
	}
}

func TestAttachmentsRefusals(t *testing.T) {
	src := func() *fakeNADs {
		return nads(primaryNAD,
			newNAD("a", "x", conflist("x", `{"type":"macvlan"}`), nil),
			newNAD("a", "y", conflist("y", `{"type":"macvlan"}`), nil),
			newNAD("a", "meta", conflist("meta", `{"type":"bridge"}`, `{"type":"multus"}`), nil))
	}
	tests := []struct {
		name, annot, wantErr, wantNet string
	}{
		{
			name: "two elements request one interface", annot: "x@net1,y@net1",
			wantErr: `annotation k8s.v1.cni.cncf.io/networks: network selection element 2 ("a/y@net1"): field "interface": "net1" is also requested by element 1`,
		},
		{
			name: "requested name taken by a generated one", annot: "x,y@net1",
			wantErr: `network "a/y": interface "net1" is also assigned to network "a/x"; request distinct names with "interface" or @name`,
			wantNet: "a/y",
		},
		{
			name: "primary's interface requested", annot: "x@eth0",
			wantErr: `network "a/x": interface "eth0" is also assigned to network "kube-system/pri"; request distinct names with "interface" or @name`,
			wantNet: "a/x",
		},
		{
			name: "two default routes of one family", annot: `[{"name":"x","default-route":["10.0.0.1"]},{"name":"y","default-route":["10.1.0.1","fd00::1"]}]`,
			wantErr: `network "a/y": field "default-route": network "a/x" already takes the default route for this IP family; at most one gateway per family`,
			wantNet: "a/y",
		},
		{
			name: "NAD not found", annot: "x,nope",
			wantErr: `network "a/nope" (interface net2): a/nope: network-attachment-definition not found`,
			wantNet: "a/nope",
		},
		{
			name: "meta-plugin in a NAD", annot: "meta",
			wantErr: `network "a/meta" (interface net1): field "type": plugin type "multus" is a meta-plugin; a network may not nest plexus or Multus`,
			wantNet: "a/meta",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newEngine(t, `"clusterNetwork":"pri"`, src())
			_, err := e.attachments(context.Background(), podIn("a", networksAnnot(tc.annot)), &podnet.Request{IfName: "eth0"})
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("error:\n got %v\nwant %s", err, tc.wantErr)
			}
			if got := podnet.NetworkOf(err); got != tc.wantNet {
				t.Errorf("podnet.NetworkOf(err) = %q, want %q", got, tc.wantNet)
			}
		})
	}
}

func TestAttachmentsVettingWarnings(t *testing.T) {
	src := nads(primaryNAD,
		newNAD("a", "x", conflist("x", `{"type":"macvlan","runtimeConfig":{"mac":"02:00:00:00:00:01"}}`), nil))
	e, _ := newEngine(t, `"clusterNetwork":"pri"`, src)
	atts, err := e.attachments(context.Background(), podIn("a", networksAnnot("x,x@net9")), &podnet.Request{IfName: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	// The same NAD twice: one warning, not two.
	want := []string{`network "a/x": field "runtimeConfig" in spec.config is set by the runtime: ignored`}
	if !reflect.DeepEqual(e.warnings, want) {
		t.Errorf("warnings:\n got %q\nwant %q", e.warnings, want)
	}
	if strings.Contains(string(atts[1].ConfList), "runtimeConfig") {
		t.Errorf("vetted conflist still holds runtimeConfig: %s", atts[1].ConfList)
	}
}

// delegatePolicy limits tenants: the NADs plexus's own config names
// (clusterNetwork, defaultNetworks) are the administrator's and pass, while
// a pod's own network of the same type is refused.
func TestDelegatePolicyExemptsAdminNetworks(t *testing.T) {
	src := nads(
		newNAD("kube-system", "k8s-pod-network", conflist("k8s-pod-network", `{"type":"calico"}`), nil),
		newNAD("kube-system", "mgmt", conflist("mgmt", `{"type":"bridge"}`), nil),
		newNAD("a", "mine", conflist("mine", `{"type":"bridge"}`), nil),
	)
	e, _ := newEngine(t, `"clusterNetwork":"k8s-pod-network","defaultNetworks":["mgmt"],"delegatePolicy":{"default":{"allow":["macvlan"]}}`, src)
	_, name, err := e.primary(context.Background(), podIn("a", nil))
	if err != nil || name != "kube-system/k8s-pod-network" {
		t.Fatalf("primary: %q %v", name, err)
	}
	atts, err := e.attachments(context.Background(), podIn("a", nil), &podnet.Request{IfName: "eth0"})
	if err != nil || len(atts) != 2 || atts[1].Network != "kube-system/mgmt" {
		t.Fatalf("defaultNetworks under delegatePolicy: %v %v", networksOf(atts), err)
	}
	_, err = e.attachments(context.Background(), podIn("a", networksAnnot("mine")), &podnet.Request{IfName: "eth0"})
	if err == nil || !strings.Contains(err.Error(), `plugin type "bridge" is not allowed in namespace "a"`) {
		t.Fatalf("a pod's own bridge network under delegatePolicy: %v", err)
	}
}

// auxConfs is the node's admin configs with an auxiliary chain.
type auxConfs struct {
	nad.LocalConfs
	aux *libcni.NetworkConfigList
}

func (c auxConfs) Auxiliary() (*libcni.NetworkConfigList, error) { return c.aux, nil }

// Every attachment records where it came from, so that hot-plug tells the
// config's from the annotation's without the config of the day (the same
// network may be in both).
func TestAttachmentsOrigins(t *testing.T) {
	src := nads(newNAD("kube-system", "dn", conflist("dn", `{"type":"macvlan"}`), nil), newNAD("a", "dn", conflist("dn", `{"type":"macvlan"}`), nil))
	e, _ := newEngine(t, `"delegates":[{"cniVersion":"1.0.0","name":"d0","type":"bridge"},{"type":"ipvlan","master":"eth1"}],"defaultNetworks":["kube-system/dn"]`, src)
	aux, err := libcni.ConfListFromBytes([]byte(conflist("chain", `{"type":"passthru"}`)))
	if err != nil {
		t.Fatal(err)
	}
	e.Confs = auxConfs{LocalConfs: e.Confs.(nad.LocalConfs), aux: aux}
	atts, err := e.attachments(context.Background(), podIn("a", networksAnnot("kube-system/dn,dn")), &podnet.Request{IfName: "eth0", Args: podArgs})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range atts {
		got = append(got, a.Network+"@"+a.IfName+":"+a.Origin)
	}
	want := []string{"d0@eth0:primary", "delegate-1@net1:delegates", "kube-system/dn@net2:defaultNetworks",
		"kube-system/dn@net3:annotation", "a/dn@net4:annotation", "chain@net5:auxiliary"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("attachments %v, want %v", got, want)
	}
	for _, a := range atts {
		if podnet.FromConfig(a.Origin) == (a.Origin == podnet.OriginAnnotation) {
			t.Errorf("%s: FromConfig(%q) = %v", a.Network, a.Origin, podnet.FromConfig(a.Origin))
		}
	}
}
