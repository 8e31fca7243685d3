package delegate

import (
	"github.com/plexus-cni/plexus/pkg/podnet"

	"encoding/json"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

func mustList(t *testing.T, s string) *libcni.NetworkConfigList {
	t.Helper()
	l, err := libcni.NetworkConfFromBytes([]byte(s))
	if err != nil {
		t.Fatalf("conflist %s: %v", s, err)
	}
	return l
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, b)
	}
	return m
}

func mustJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	return decode(t, []byte(s))
}

const twoPlugins = `{"cniVersion":"1.0.0","name":"sriov-net","plugins":[
	{"type":"sriov","vlan":10,"args":{"cni":{"a":1,"b":"x"},"other":{"k":"v"}}},
	{"type":"tuning","capabilities":{"mac":true}}]}`

func TestInject(t *testing.T) {
	tests := []struct {
		name     string
		conf     string
		deviceID string
		cniArgs  map[string]any
		want     string
	}{
		{
			name: "device and cni-args in every plugin, cni-args merged per key", conf: twoPlugins,
			deviceID: "0000:03:00.2", cniArgs: map[string]any{"b": "y", "c": true},
			want: `{"cniVersion":"1.0.0","name":"sriov-net","plugins":[
				{"type":"sriov","vlan":10,"deviceID":"0000:03:00.2","pciBusID":"0000:03:00.2",
				 "args":{"cni":{"a":1,"b":"y","c":true},"other":{"k":"v"}}},
				{"type":"tuning","capabilities":{"mac":true},"deviceID":"0000:03:00.2","pciBusID":"0000:03:00.2",
				 "args":{"cni":{"b":"y","c":true}}}]}`,
		},
		{
			name: "device only: no args added", conf: twoPlugins, deviceID: "0000:03:00.3",
			want: `{"cniVersion":"1.0.0","name":"sriov-net","plugins":[
				{"type":"sriov","vlan":10,"deviceID":"0000:03:00.3","pciBusID":"0000:03:00.3",
				 "args":{"cni":{"a":1,"b":"x"},"other":{"k":"v"}}},
				{"type":"tuning","capabilities":{"mac":true},"deviceID":"0000:03:00.3","pciBusID":"0000:03:00.3"}]}`,
		},
		{
			name: "cni-args only: no device keys", conf: twoPlugins, cniArgs: map[string]any{"a": "z"},
			want: `{"cniVersion":"1.0.0","name":"sriov-net","plugins":[
				{"type":"sriov","vlan":10,"args":{"cni":{"a":"z","b":"x"},"other":{"k":"v"}}},
				{"type":"tuning","capabilities":{"mac":true},"args":{"cni":{"a":"z"}}}]}`,
		},
		{
			name:    "args.cni of another type replaced by an object",
			conf:    `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"macvlan","args":{"cni":"str"}}]}`,
			cniArgs: map[string]any{"k": "v"},
			want:    `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"macvlan","args":{"cni":{"k":"v"}}}]}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := mustList(t, tc.conf)
			b, err := Inject(l, tc.deviceID, tc.cniArgs)
			if err != nil {
				t.Fatalf("Inject: %v", err)
			}
			if got, want := decode(t, b), mustJSON(t, tc.want); !reflect.DeepEqual(got, want) {
				t.Errorf("Inject:\n got %s\nwant %s", b, tc.want)
			}
		})
	}
}

func TestInjectNoOp(t *testing.T) {
	l := mustList(t, twoPlugins)
	b, err := Inject(l, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(l.Bytes) {
		t.Errorf("Inject with neither device nor cni-args changed the conflist:\n got %s\nwant %s", b, l.Bytes)
	}
}

func TestInjectBadBytes(t *testing.T) {
	_, err := Inject(&libcni.NetworkConfigList{Bytes: []byte("not json")}, "0000:03:00.2", nil)
	if err == nil {
		t.Fatal("Inject of a conflist whose bytes are not JSON: no error")
	}
}

func TestRunList(t *testing.T) {
	t.Run("nothing to inject", func(t *testing.T) {
		a := &podnet.Attachment{Network: "a/x", ConfList: json.RawMessage(twoPlugins)}
		l, err := RunList(a)
		if err != nil {
			t.Fatal(err)
		}
		if string(l.Bytes) != twoPlugins || l.Name != "sriov-net" || len(l.Plugins) != 2 {
			t.Errorf("RunList changed the conflist: %s", l.Bytes)
		}
	})
	t.Run("device and cni-args reach every plugin", func(t *testing.T) {
		a := &podnet.Attachment{Network: "a/x", ConfList: json.RawMessage(twoPlugins), DeviceID: "0000:03:00.4", CNIArgsConf: map[string]any{"b": "q"}}
		l, err := RunList(a)
		if err != nil {
			t.Fatal(err)
		}
		if l.Name != "sriov-net" || l.CNIVersion != "1.0.0" || len(l.Plugins) != 2 {
			t.Fatalf("RunList: name %q version %q %d plugins", l.Name, l.CNIVersion, len(l.Plugins))
		}
		wantCNI := []map[string]any{{"a": 1.0, "b": "q"}, {"b": "q"}}
		for i, p := range l.Plugins {
			m := decode(t, p.Bytes)
			if m["deviceID"] != "0000:03:00.4" || m["pciBusID"] != "0000:03:00.4" {
				t.Errorf("plugin %d (%s): deviceID %v pciBusID %v, want 0000:03:00.4", i, p.Network.Type, m["deviceID"], m["pciBusID"])
			}
			args, _ := m["args"].(map[string]any)
			if got := args["cni"]; !reflect.DeepEqual(got, wantCNI[i]) {
				t.Errorf("plugin %d (%s): args.cni %v, want %v", i, p.Network.Type, got, wantCNI[i])
			}
		}
	})
	t.Run("cached conflist unreadable", func(t *testing.T) {
		_, err := RunList(&podnet.Attachment{Network: "a/x", ConfList: json.RawMessage(`{"name":`)})
		if err == nil || !strings.HasPrefix(err.Error(), `network "a/x": cached delegate config: `) {
			t.Errorf("error %v, want one starting with network \"a/x\": cached delegate config:", err)
		}
	})
}

func TestCapabilities(t *testing.T) {
	tests := []struct {
		conf string
		want map[string]bool
	}{
		{`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}`, map[string]bool{}},
		{
			`{"cniVersion":"1.0.0","name":"n","plugins":[
				{"type":"bridge","capabilities":{"ips":true,"mac":false}},
				{"type":"portmap","capabilities":{"portMappings":true}},
				{"type":"tuning","capabilities":{"mac":true,"bandwidth":false}}]}`,
			map[string]bool{"ips": true, "portMappings": true, "mac": true},
		},
	}
	for _, tc := range tests {
		if got := Capabilities(mustList(t, tc.conf)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Capabilities(%s) = %v, want %v", tc.conf, got, tc.want)
		}
	}
}

func TestPluginConf(t *testing.T) {
	l := mustList(t, `{"cniVersion":"1.0.0","name":"pod-net","plugins":[
		{"type":"bridge","bridge":"br0","capabilities":{"ips":true,"mac":false}},
		{"type":"tuning"}]}`)
	rt := &libcni.RuntimeConf{CapabilityArgs: map[string]any{
		"ips": []string{"10.0.0.5/24"}, "mac": "02:00:00:00:00:05", "portMappings": []any{},
	}}
	_, ipn, _ := net.ParseCIDR("10.0.0.5/24")
	ipn.IP = net.ParseIP("10.0.0.5")
	prev := &current.Result{CNIVersion: "1.0.0", IPs: []*current.IPConfig{{Address: *ipn}}}
	prevJSON := `{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.5/24"}]}`

	tests := []struct {
		name   string
		plugin int
		prev   types.Result
		want   string
	}{
		{
			name: "declared capability only, with prevResult", plugin: 0, prev: prev,
			want: `{"type":"bridge","bridge":"br0","capabilities":{"ips":true,"mac":false},
				"name":"pod-net","cniVersion":"1.0.0","prevResult":` + prevJSON + `,
				"runtimeConfig":{"ips":["10.0.0.5/24"]}}`,
		},
		{
			name: "no capabilities, no prevResult", plugin: 1,
			want: `{"type":"tuning","name":"pod-net","cniVersion":"1.0.0"}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := pluginConf(l, l.Plugins[tc.plugin], tc.prev, rt)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := decode(t, b), mustJSON(t, tc.want); !reflect.DeepEqual(got, want) {
				t.Errorf("pluginConf:\n got %s\nwant %s", b, tc.want)
			}
		})
	}
}

func TestSortedKeys(t *testing.T) {
	got := SortedKeys(map[string]bool{"mac": true, "ips": false, "bandwidth": true})
	if want := []string{"bandwidth", "ips", "mac"}; !reflect.DeepEqual(got, want) {
		t.Errorf("SortedKeys = %v, want %v", got, want)
	}
}
