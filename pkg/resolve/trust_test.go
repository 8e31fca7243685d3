package resolve

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plexus-cni/plexus/pkg/delegate"
	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/nad"
)

func jsonObj(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, b)
	}
	return m
}

// writeDPDeviceInfo writes the device-info file a device plugin writes
// for a device of a resource.
func writeDPDeviceInfo(t *testing.T, base, resource, pciAddress string) {
	t.Helper()
	b, err := json.Marshal(nadv1.DeviceInfo{Type: nadv1.DeviceInfoTypePCI, Version: "1.1.0", Pci: &nadv1.PciDevice{PciAddress: pciAddress}})
	if err != nil {
		t.Fatal(err)
	}
	p := devinfo.DPPath(base, resource, pciAddress)
	if want := filepath.Join(base, "dp", "intel.com-sriov_a-"+pciAddress+"-device.json"); resource == "intel.com/sriov_a" && p != want {
		t.Fatalf("DPDeviceInfoPath = %s, want %s", p, want)
	}
	writeFile(t, p, string(b))
}

func TestVetTenantConf(t *testing.T) {
	resAnnot := map[string]string{nad.ResourceNameAnnot: "intel.com/sriov_a"}
	tests := []struct {
		name     string
		keys     string // plexus config keys
		ns       string
		config   string
		annots   map[string]string
		pool     map[string]string // device → resource with a dp/ device-info file
		want     string            // the vetted conflist; "" = unchanged
		warnings []string
		wantErr  string // regexp, anchored
	}{
		{
			name:   "clean conflist unchanged",
			config: conflist("x", `{"type":"macvlan","master":"eth1"}`, `{"type":"tuning","capabilities":{"mac":true}}`),
		},
		{
			name: "runtime-owned keys removed at the top and in every plugin",
			config: `{"cniVersion":"1.0.0","name":"x","runtimeConfig":{"ips":["10.0.0.1/24"]},"prevResult":{"cniVersion":"1.0.0"},"cni.dev/attachments":[],"plugins":[
				{"type":"macvlan","master":"eth1","runtimeConfig":{"mac":"02:00:00:00:00:01"},"cni.dev/valid-attachments":[{"containerID":"c","ifname":"net1"}]},
				{"type":"tuning","prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.9.9.9/32"}]},"cni.devx":1}]}`,
			want: `{"cniVersion":"1.0.0","name":"x","plugins":[
				{"type":"macvlan","master":"eth1"},
				{"type":"tuning","cni.devx":1}]}`,
			warnings: []string{
				`field "cni.dev/attachments" in spec.config is set by the runtime: ignored`,
				`field "cni.dev/valid-attachments" in spec.config is set by the runtime: ignored`,
				`field "prevResult" in spec.config is set by the runtime: ignored`,
				`field "runtimeConfig" in spec.config is set by the runtime: ignored`,
			},
		},
		{
			name:     "single-plugin conf",
			config:   `{"cniVersion":"0.4.0","name":"x","type":"macvlan","master":"eth1","runtimeConfig":{"mac":"02:00:00:00:00:01"}}`,
			want:     `{"cniVersion":"0.4.0","name":"x","plugins":[{"cniVersion":"0.4.0","name":"x","type":"macvlan","master":"eth1"}]}`,
			warnings: []string{`field "runtimeConfig" in spec.config is set by the runtime: ignored`},
		},
		{
			name:    "plexus refused",
			config:  conflist("x", `{"type":"plexus","clusterNetwork":"pri"}`),
			wantErr: `field "type": plugin type "plexus" is a meta-plugin; a network may not nest plexus or Multus`,
		},
		{
			name:    "multus refused as a chained plugin",
			config:  conflist("x", `{"type":"bridge"}`, `{"type":"multus"}`),
			wantErr: `field "type": plugin type "multus" is a meta-plugin; a network may not nest plexus or Multus`,
		},
		{
			name:    "multus-shim refused",
			config:  `{"cniVersion":"1.0.0","name":"x","type":"multus-shim"}`,
			wantErr: `field "type": plugin type "multus-shim" is a meta-plugin; a network may not nest plexus or Multus`,
		},
		{
			name:   "deviceID and pciBusID removed for a NAD with a resourceName",
			annots: resAnnot,
			config: conflist("x", `{"type":"sriov","deviceID":"0000:03:00.9","vlan":10}`, `{"type":"tuning","pciBusID":"0000:03:00.9"}`),
			pool:   map[string]string{"0000:03:00.9": "intel.com/sriov_a"},
			want:   conflist("x", `{"type":"sriov","vlan":10}`, `{"type":"tuning"}`),
			warnings: []string{
				`field "deviceID" in spec.config is set by plexus from the device kubelet allocated: ignored`,
				`field "pciBusID" in spec.config is set by plexus from the device kubelet allocated: ignored`,
			},
		},
		{
			name:    "hard-coded deviceID of a pool device refused",
			config:  conflist("x", `{"type":"host-device","deviceID":"0000:03:00.2"}`),
			pool:    map[string]string{"0000:03:00.2": "intel.com/sriov_a", "0000:03:00.3": "intel.com/sriov_a"},
			wantErr: `field "deviceID": device 0000:03:00\.2 belongs to a device-plugin pool \(device-info \S+/dp/intel\.com-sriov_a-0000:03:00\.2-device\.json\); request it with the NAD annotation k8s\.v1\.cni\.cncf\.io/resourceName instead of naming it`,
		},
		{
			name:    "hard-coded pciBusID of a pool device refused",
			config:  conflist("x", `{"type":"tuning"}`, `{"type":"host-device","pciBusID":"0000:03:00.3"}`),
			pool:    map[string]string{"0000:03:00.2": "intel.com/sriov_a", "0000:03:00.3": "intel.com/sriov_a"},
			wantErr: `field "pciBusID": device 0000:03:00\.3 belongs to a device-plugin pool \(device-info \S+/dp/intel\.com-sriov_a-0000:03:00\.3-device\.json\); request it with the NAD annotation k8s\.v1\.cni\.cncf\.io/resourceName instead of naming it`,
		},
		{
			name:   "hard-coded deviceID of a device no pool owns kept",
			config: conflist("x", `{"type":"host-device","deviceID":"0000:05:00.0"}`),
			pool:   map[string]string{"0000:03:00.2": "intel.com/sriov_a"},
		},
		{
			name:   "host-device by name kept",
			config: conflist("x", `{"type":"host-device","device":"eth5"}`),
			pool:   map[string]string{"0000:03:00.2": "intel.com/sriov_a"},
		},
		// delegatePolicy (config key): a namespace may use the default
		// list plus its own entry's; every plugin and IPAM type counts.
		{
			name:    "delegatePolicy default refuses a type",
			keys:    `"delegatePolicy":{"default":{"allow":["tuning","bridge"]},"namespaces":{"telco":{"allow":["sriov"]}}}`,
			ns:      "a",
			config:  conflist("x", `{"type":"macvlan"}`, `{"type":"tuning"}`),
			wantErr: `field "type": plugin type "macvlan" is not allowed in namespace "a" \(allowed there: bridge, tuning; plexus config key "delegatePolicy"\)`,
		},
		{
			name:   "delegatePolicy default allows every plugin",
			keys:   `"delegatePolicy":{"default":{"allow":["tuning","bridge","host-local"]},"namespaces":{"telco":{"allow":["sriov"]}}}`,
			ns:     "a",
			config: conflist("x", `{"type":"bridge","ipam":{"type":"host-local"}}`, `{"type":"tuning"}`),
		},
		{
			name:    "delegatePolicy namespace entry does not reach other namespaces",
			keys:    `"delegatePolicy":{"default":{"allow":["tuning","bridge"]},"namespaces":{"telco":{"allow":["sriov"]}}}`,
			ns:      "a",
			config:  conflist("x", `{"type":"tuning"}`, `{"type":"sriov"}`),
			wantErr: `field "type": plugin type "sriov" is not allowed in namespace "a" \(allowed there: bridge, tuning; plexus config key "delegatePolicy"\)`,
		},
		{
			name:   "delegatePolicy namespace entry adds to default",
			keys:   `"delegatePolicy":{"default":{"allow":["tuning","bridge"]},"namespaces":{"telco":{"allow":["sriov"]}}}`,
			ns:     "telco",
			config: conflist("x", `{"type":"sriov"}`, `{"type":"tuning"}`),
		},
		{
			name:    "delegatePolicy IPAM type counts",
			keys:    `"delegatePolicy":{"default":{"allow":["macvlan"]},"namespaces":{"telco":{"allow":["whereabouts"]}}}`,
			ns:      "telco",
			config:  conflist("x", `{"type":"macvlan","ipam":{"type":"host-local"}}`),
			wantErr: `field "ipam.type": plugin type "host-local" is not allowed in namespace "telco" \(allowed there: macvlan, whereabouts; plexus config key "delegatePolicy"\)`,
		},
		{
			name:   "delegatePolicy wildcard",
			keys:   `"delegatePolicy":{"default":{"allow":["bridge"]},"namespaces":{"infra":{"allow":["*"]}}}`,
			ns:     "infra",
			config: conflist("x", `{"type":"whatever","ipam":{"type":"dhcp"}}`),
		},
		{
			name:    "delegatePolicy empty list allows none",
			keys:    `"delegatePolicy":{"namespaces":{"locked":{"allow":[]}}}`,
			ns:      "locked",
			config:  conflist("x", `{"type":"bridge"}`),
			wantErr: `field "type": plugin type "bridge" is not allowed in namespace "locked" \(allowed there: none; plexus config key "delegatePolicy"\)`,
		},
		{
			name:    "delegatePolicy without default: unlisted namespace may use no type",
			keys:    `"delegatePolicy":{"namespaces":{"open":{"allow":["bridge"]}}}`,
			ns:      "a",
			config:  conflist("x", `{"type":"bridge"}`),
			wantErr: `field "type": plugin type "bridge" is not allowed in namespace "a" \(allowed there: none; plexus config key "delegatePolicy"\)`,
		},
		{
			name:   "delegatePolicy without default: listed namespace",
			keys:   `"delegatePolicy":{"namespaces":{"open":{"allow":["bridge"]}}}`,
			ns:     "open",
			config: conflist("x", `{"type":"bridge"}`),
		},
		{
			name:    "meta-plugin refused before delegatePolicy",
			keys:    `"delegatePolicy":{"default":{"allow":["bridge"]}}`,
			ns:      "a",
			config:  conflist("x", `{"type":"plexus"}`),
			wantErr: `field "type": plugin type "plexus" is a meta-plugin; a network may not nest plexus or Multus`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newEngine(t, joinKeys(`"clusterNetwork":"pri"`, tc.keys), nads())
			for dev, res := range tc.pool {
				writeDPDeviceInfo(t, e.DeviceInfoDir, res, dev)
			}
			ns := tc.ns
			if ns == "" {
				ns = "a"
			}
			n := newNAD(ns, "x", tc.config, tc.annots)
			l, err := nad.DelegateConf(n, e.Confs.ByName, "1.0.0")
			if err != nil {
				t.Fatalf("DelegateConf: %v", err)
			}
			got, warnings, err := e.vetTenantConf(n, l, false)
			if tc.wantErr != "" {
				if err == nil || !regexp.MustCompile("^"+tc.wantErr+"$").MatchString(err.Error()) {
					t.Fatalf("error:\n got %v\nwant %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("vetTenantConf: %v", err)
			}
			if !reflect.DeepEqual(warnings, tc.warnings) {
				t.Errorf("warnings:\n got %q\nwant %q", warnings, tc.warnings)
			}
			if tc.want == "" {
				if got != l {
					t.Errorf("conflist changed: %s, want the input unchanged", got.Bytes)
				}
				return
			}
			if g, w := jsonObj(t, got.Bytes), jsonObj(t, []byte(tc.want)); !reflect.DeepEqual(g, w) {
				t.Errorf("vetted conflist:\n got %s\nwant %s", got.Bytes, tc.want)
			}
			// libcni's parsed plugins are what runs: they must be vetted too.
			wl := jsonObj(t, []byte(tc.want))["plugins"].([]any)
			if len(got.Plugins) != len(wl) {
				t.Fatalf("%d plugins, want %d", len(got.Plugins), len(wl))
			}
			for i, p := range got.Plugins {
				if g := jsonObj(t, p.Bytes); !reflect.DeepEqual(g, wl[i]) {
					t.Errorf("plugin %d: %s, want %v", i, p.Bytes, wl[i])
				}
			}
		})
	}
}

func TestPoolOf(t *testing.T) {
	e, _ := newEngine(t, `"clusterNetwork":"pri"`, nads())
	writeDPDeviceInfo(t, e.DeviceInfoDir, "example.com/pool_b", "0000:81:00.4")
	// Device-info of other than a PCI device is not a claim on one.
	writeFile(t, filepath.Join(e.DeviceInfoDir, "dp", "vdpa-0000:81:00.6-device.json"), `{"type":"vdpa","version":"1.1.0","vdpa":{"parent-device":"vdpa:0000:81:00.6"}}`)
	writeFile(t, filepath.Join(e.DeviceInfoDir, "cni", "a-x-c1-net1-device.json"), `{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:81:00.7"}}`)
	tests := map[string]*regexp.Regexp{
		"0000:81:00.4": regexp.MustCompile(`/dp/example\.com-pool_b-0000:81:00\.4-device\.json$`),
		"0000:81:00.5": regexp.MustCompile(`^$`),
		"0000:81:00.6": regexp.MustCompile(`^$`),
		"0000:81:00.7": regexp.MustCompile(`^$`), // cni/ is not a pool
		"":             regexp.MustCompile(`^$`),
	}
	for dev, want := range tests {
		if got, err := e.Pools.Claim(dev); err != nil || !want.MatchString(got) {
			t.Errorf("poolOf(%q) = %q, %v, want %s", dev, got, err, want)
		}
	}
}

// The guard against a NAD hard-coding a device-plugin pool's VF fails
// closed: a device-info file it cannot read, or cannot parse, may be the
// pool's claim on the device, so the NAD is refused (naming the field and
// the file), never let through.
func TestVetTenantConfPoolsUnreadable(t *testing.T) {
	for name, setup := range map[string]func(t *testing.T, dp string){
		// root reads any mode; a symlink loop it cannot open.
		"unreadable file": func(t *testing.T, dp string) {
			if err := os.Symlink("loop-0000:81:00.5-device.json", filepath.Join(dp, "loop-0000:81:00.5-device.json")); err != nil {
				t.Fatal(err)
			}
		},
		"not device-info": func(t *testing.T, dp string) {
			writeFile(t, filepath.Join(dp, "junk-0000:81:00.5-device.json"), "{not json")
		},
		"dp not a directory": func(t *testing.T, dp string) {
			os.Remove(dp)
			writeFile(t, dp, "")
		},
	} {
		t.Run(name, func(t *testing.T) {
			e, _ := newEngine(t, `"clusterNetwork":"pri"`, nads())
			dp := filepath.Join(e.DeviceInfoDir, "dp")
			if err := os.MkdirAll(dp, 0o755); err != nil {
				t.Fatal(err)
			}
			setup(t, dp)
			n := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "hd"}}
			l, err := delegate.ConfList([]byte(`{"cniVersion":"1.0.0","name":"hd","type":"host-device","deviceID":"0000:81:00.5"}`), "hd", "")
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = e.vetTenantConf(n, l, false)
			if err == nil || !strings.HasPrefix(err.Error(), `field "deviceID": device 0000:81:00.5: cannot tell whether a device-plugin pool on this node owns it: `) {
				t.Fatalf("vetTenantConf: %v, want a refusal naming the field and the device", err)
			}
			if !strings.Contains(err.Error(), dp) {
				t.Errorf("error %q does not name the device-info it could not read", err)
			}
		})
	}
}

// Keys compare as encoding/json matches them to struct fields: in any
// letter case and with Unicode folding (ſ is s), so a NAD cannot hide a
// runtime-owned key or a device from the check by spelling it otherwise.
func TestVetTenantConfKeysFoldCase(t *testing.T) {
	e, _ := newEngine(t, `"clusterNetwork":"pri"`, nads())
	writeDPDeviceInfo(t, e.DeviceInfoDir, "intel.com/a", "0000:03:00.2")
	for _, tc := range []struct{ cfg, removed, refused string }{
		{`{"type":"bridge","RuntimeConfig":{"CNIDeviceInfoFile":"/etc/x"}}`, "RuntimeConfig", ""},
		{`{"type":"bridge","PREVRESULT":{}}`, "PREVRESULT", ""},
		{`{"type":"bridge","prevReſult":{}}`, "prevReſult", ""},
		{`{"type":"bridge","CNI.Dev/valid-attachments":[]}`, "CNI.Dev/valid-attachments", ""},
		{`{"type":"host-device","DeviceID":"0000:03:00.2"}`, "", `field "DeviceID": device 0000:03:00.2 belongs to a device-plugin pool`},
		{`{"type":"host-device","pcibusid":"0000:03:00.2"}`, "", `field "pcibusid": device 0000:03:00.2 belongs to a device-plugin pool`},
	} {
		n := newNAD("a", "x", conflist("x", tc.cfg), nil)
		l, err := delegate.ConfList([]byte(n.Spec.Config), "x", "1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		got, warnings, err := e.vetTenantConf(n, l, false)
		if tc.refused != "" {
			if err == nil || !strings.Contains(err.Error(), tc.refused) {
				t.Errorf("%s: error %v, want %q", tc.cfg, err, tc.refused)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.cfg, err)
		}
		if strings.Contains(string(got.Bytes), tc.removed) || len(warnings) != 1 || !strings.Contains(warnings[0], tc.removed) {
			t.Errorf("%s: kept %s (warnings %q)", tc.cfg, got.Bytes, warnings)
		}
	}
}
