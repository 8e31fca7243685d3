package dpconfig

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseGood(t *testing.T) {
	cfg, err := Parse([]byte(`{"resourceList": [
	  {"resourceName": "sriov_a", "selectors": [{"vendors": ["8086"], "devices": ["1889"], "drivers": ["iavf"],
	     "pfNames": ["ens1f0#0-3,7", "ens1f1"], "linkTypes": ["ether"], "needVhostNet": true}]},
	  {"resourceName": "dpdk", "resourcePrefix": "example.com", "deviceType": "netDevice", "excludeTopology": true,
	   "allocationPolicy": "spread",
	   "selectors": {"drivers": ["vfio-pci"], "rootDevices": ["0000:3B:00.0#2"], "pciAddresses": ["0000:3C:00.1"], "isRdma": true}},
	  {"resourceName": "sriov-b.x", "selectors": [{}]}
	]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Resources) != 3 {
		t.Fatalf("resources: %d", len(cfg.Resources))
	}
	a, d, b := cfg.Resources[0], cfg.Resources[1], cfg.Resources[2]
	if a.FullName() != "plexus.io/sriov_a" || a.DeviceType != "netDevice" || a.ExcludeTopology || a.AllocationPolicy != PolicyPacked {
		t.Fatalf("a: %+v", a)
	}
	s := a.Selectors[0]
	wantPF := []DeviceRef{{Name: "ens1f0", Ranges: []Range{{0, 3}, {7, 7}}}, {Name: "ens1f1"}}
	if !reflect.DeepEqual(s.PFNames, wantPF) || !s.NeedVhostNet || s.IsRdma || s.Vendors[0] != "8086" {
		t.Fatalf("a selector: %+v", s)
	}
	if d.FullName() != "example.com/dpdk" || !d.ExcludeTopology || d.AllocationPolicy != PolicySpread || len(d.Selectors) != 1 {
		t.Fatalf("dpdk: %+v", d)
	}
	ds := d.Selectors[0]
	if !reflect.DeepEqual(ds.RootDevices, []DeviceRef{{Name: "0000:3b:00.0", Ranges: []Range{{2, 2}}}}) || ds.PCIAddresses[0] != "0000:3c:00.1" || !ds.IsRdma {
		t.Fatalf("dpdk selector: %+v", ds)
	}
	if b.FullName() != "plexus.io/sriov-b.x" {
		t.Fatalf("b: %s", b.FullName())
	}
	cfg, err = Parse([]byte(`{"resourceList":[{"resourceName":"x","selectors":[{}]}]}`), "acme.org")
	if err != nil || cfg.Resources[0].FullName() != "acme.org/x" {
		t.Fatalf("flag prefix: %v %+v", err, cfg)
	}
	cfg, err = Parse([]byte(`{}`), "")
	if err != nil || len(cfg.Resources) != 0 {
		t.Fatalf("empty list: %v", err)
	}
}

func TestParseBad(t *testing.T) {
	res := func(body string) string { return `{"resourceList":[` + body + `]}` }
	sel := func(s string) string { return res(`{"resourceName":"r","selectors":[` + s + `]}`) }
	for _, tc := range []struct{ name, cfg, want string }{
		{"empty file", ``, "config is empty"},
		{"not json", `{"resourceList": [}`, "config: must be a JSON object"},
		{"top-level array", `[]`, "config: must be a JSON object"},
		{"unknown top key", `{"resourceList":[],"resources":[]}`, `config: unknown key "resources"`},
		{"resourceList not a list", `{"resourceList":{}}`, "resourceList: must be a list of objects"},
		{"resource not an object", res(`"x"`), "resourceList[0]: must be a JSON object"},
		{"unknown resource key", res(`{"resourceName":"r","selector":{}}`), `resourceList[0]: unknown key "selector"`},
		{"missing resourceName", res(`{"selectors":[{}]}`), "resourceList[0]: resourceName: required"},
		{"resourceName not string", res(`{"resourceName":5,"selectors":[{}]}`), "resourceList[0]: resourceName: want a string, got 5"},
		{"leading hyphen", res(`{"resourceName":"-sriov","selectors":[{}]}`), `resourceName "-sriov": name part must consist of alphanumeric`},
		{"trailing hyphen", res(`{"resourceName":"sriov-","selectors":[{}]}`), `resourceName "sriov-"`},
		{"slash in name", res(`{"resourceName":"a/b","selectors":[{}]}`), `resourceName "a/b": must not contain "/"`},
		{"space in name", res(`{"resourceName":"a b","selectors":[{}]}`), `resourceName "a b"`},
		{"name too long", res(`{"resourceName":"` + strings.Repeat("a", 64) + `","selectors":[{}]}`), "must be no more than 63 bytes"},
		{"duplicate", res(`{"resourceName":"r","selectors":[{}]},{"resourceName":"r","selectors":[{}]}`), `resourceList[1]: resourceName "r": duplicate resource "plexus.io/r" (also resourceList[0])`},
		{"bad prefix", res(`{"resourceName":"r","resourcePrefix":"Intel_COM","selectors":[{}]}`), `resourcePrefix "Intel_COM": a lowercase RFC 1123 subdomain`},
		{"prefix leading hyphen", res(`{"resourceName":"r","resourcePrefix":"-intel.com","selectors":[{}]}`), `resourcePrefix "-intel.com"`},
		{"kubernetes.io prefix", res(`{"resourceName":"r","resourcePrefix":"kubernetes.io","selectors":[{}]}`), "kubernetes.io domain is reserved"},
		{"unknown deviceType", res(`{"resourceName":"r","deviceType":"nic","selectors":[{}]}`), `resourceList[0] (resource "r"): deviceType "nic": unknown`},
		{"accelerator", res(`{"resourceName":"r","deviceType":"accelerator","selectors":[{}]}`), `deviceType "accelerator": not supported`},
		{"excludeTopology string", res(`{"resourceName":"r","excludeTopology":"yes","selectors":[{}]}`), `excludeTopology: want true or false, got "yes"`},
		{"bad allocationPolicy", res(`{"resourceName":"r","allocationPolicy":"random","selectors":[{}]}`), `allocationPolicy "random"`},
		{"missing selectors", res(`{"resourceName":"r"}`), `resourceList[0] (resource "r"): selectors: required`},
		{"empty selectors", sel(``), `resourceList[0] (resource "r").selectors: at least one selector is required`},
		{"selectors string", res(`{"resourceName":"r","selectors":"all"}`), `selectors: must be a list of objects`},
		{"unknown selector key", sel(`{"vendor":["8086"]}`), `selectors[0]: unknown key "vendor"`},
		{"unsupported selector key", sel(`{"ddpProfiles":["x"]}`), `selectors[0]: key "ddpProfiles" is not supported by plexus`},
		{"vendors not list", sel(`{"vendors":"8086"}`), `vendors: want a list of strings, got "8086"`},
		{"vendor 0x", sel(`{"vendors":["0x8086"]}`), `selectors[0].vendors[0] "0x8086": want 4 hex digits`},
		{"device bad hex", sel(`{},{"devices":["15zz"]}`), `selectors[1].devices[0] "15zz"`},
		{"empty driver", sel(`{"drivers":[""]}`), `drivers[0] "": must not be empty`},
		{"bad pci address", sel(`{"pciAddresses":["3b:00.0"]}`), `pciAddresses[0] "3b:00.0": want a PCI address`},
		{"pfName missing name", sel(`{"pfNames":["#0-3"]}`), `pfNames[0] "#0-3": missing the PF name`},
		{"pfName empty range", sel(`{"pfNames":["ens1f0#"]}`), `pfNames[0] "ens1f0#": empty VF range`},
		{"pfName reversed", sel(`{"pfNames":["ens1f0#3-1"]}`), `VF range "3-1": start 3 is greater than end 1`},
		{"pfName letters", sel(`{"pfNames":["ens1f0#a-3"]}`), `VF range "a-3": "a" is not a VF index`},
		{"pfName open range", sel(`{"pfNames":["ens1f0#0-"]}`), `VF range "0-": missing index`},
		{"pfName empty element", sel(`{"pfNames":["ens1f0#0,,3"]}`), `empty element in VF range list`},
		{"pfName negative", sel(`{"pfNames":["ens1f0#-1"]}`), `VF range "-1": missing index`},
		{"pfName huge", sel(`{"pfNames":["ens1f0#70000"]}`), `index 70000 out of range`},
		{"rootDevice not pci", sel(`{"rootDevices":["ens1f0#0-1"]}`), `rootDevices[0] "ens1f0#0-1": root device "ens1f0"`},
		{"bad linkType", sel(`{"linkTypes":["wifi"]}`), `linkTypes[0] "wifi": want "ether" or "infiniband"`},
		{"isRdma string", sel(`{"isRdma":"true"}`), `isRdma: want true or false`},
		{"needVhostNet number", sel(`{"needVhostNet":1}`), `needVhostNet: want true or false, got 1`},
		{"selector null", sel(`null`), `selectors[0]: must be a JSON object, got null`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.cfg), "")
			if err == nil {
				t.Fatalf("accepted: %s", tc.cfg)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dp.json")
	if _, err := LoadFile(p, ""); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile(p, []byte(`{"resourceList":[{"resourceName":"x","selectors":[{"vendors":["zz"]}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(p, ""); err == nil || !strings.HasPrefix(err.Error(), "config "+p+": resourceList[0]") {
		t.Fatalf("bad file: %v", err)
	}
}

func TestDeviceRefContains(t *testing.T) {
	for _, tc := range []struct {
		in   string
		in1  []int
		out1 []int
	}{
		{"ens1f0", []int{0, 5, 63}, nil},
		{"ens1f0#0-3,7", []int{0, 1, 3, 7}, []int{4, 6, 8}},
		{"ens1f0#5", []int{5}, []int{4, 6}},
		{"ens1f0#2-2,10-12", []int{2, 10, 12}, []int{3, 9, 13}},
	} {
		ref, err := ParseDeviceRef(tc.in, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range tc.in1 {
			if !ref.Contains(i) {
				t.Errorf("%s should contain %d", tc.in, i)
			}
		}
		for _, i := range tc.out1 {
			if ref.Contains(i) {
				t.Errorf("%s should not contain %d", tc.in, i)
			}
		}
	}
}
