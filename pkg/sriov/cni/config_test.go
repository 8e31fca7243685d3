package cni

import (
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/sriov/pf"
)

func TestParseConfigErrors(t *testing.T) {
	base := `"cniVersion":"1.0.0","name":"net1","type":"sriov"`
	tests := []struct {
		name, conf, want string
	}{
		{"not JSON", `{`, "invalid JSON"},
		{"no version", `{"name":"n","type":"sriov"}`, `key "cniVersion": required`},
		{"bad version", `{"cniVersion":"0.2.0","name":"n"}`, `key "cniVersion": "0.2.0" not supported`},
		{"deviceID not PCI", `{` + base + `,"deviceID":"eth0"}`, `key "deviceID": "eth0" is not a PCI address`},
		{"runtime deviceID not PCI", `{` + base + `,"runtimeConfig":{"deviceID":"00:01.1"}}`, `key "runtimeConfig.deviceID"`},
		{"deviceID wrong type", `{` + base + `,"deviceID":7}`, `key "deviceID": expected string`},
		{"vlan too big", `{` + base + `,"vlan":4095}`, `key "vlan": 4095 out of range 0-4094`},
		{"vlan negative", `{` + base + `,"vlan":-1}`, `key "vlan": -1 out of range`},
		{"vlan string", `{` + base + `,"vlan":"100"}`, `key "vlan": expected int`},
		{"qos too big", `{` + base + `,"vlan":10,"vlanQoS":8}`, `key "vlanQoS": 8 out of range 0-7`},
		{"qos negative", `{` + base + `,"vlan":10,"vlanQoS":-2}`, `key "vlanQoS": -2 out of range`},
		{"qos without vlan", `{` + base + `,"vlanQoS":3}`, `key "vlanQoS": needs a non-zero "vlan"`},
		{"qos with vlan 0", `{` + base + `,"vlan":0,"vlanQoS":3}`, `key "vlanQoS": needs`},
		{"bad proto", `{` + base + `,"vlan":10,"vlanProto":"802.1x"}`, `key "vlanProto": "802.1x" is neither`},
		{"ad without vlan", `{` + base + `,"vlanProto":"802.1ad"}`, `key "vlanProto": 802.1ad needs`},
		{"bad mac", `{` + base + `,"mac":"zz:00:00:00:00:01"}`, `key "mac": "zz:00:00:00:00:01" is not an Ethernet MAC`},
		{"infiniband mac", `{` + base + `,"mac":"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01"}`, `key "mac"`},
		{"multicast mac", `{` + base + `,"mac":"01:00:5e:00:00:01"}`, `key "mac": "01:00:5e:00:00:01" is a multicast`},
		{"zero mac", `{` + base + `,"mac":"00:00:00:00:00:00"}`, `key "mac": "00:00:00:00:00:00" is the zero`},
		{"runtime mac bad", `{` + base + `,"runtimeConfig":{"mac":"nope"}}`, `key "runtimeConfig.mac"`},
		{"spoofchk yes", `{` + base + `,"spoofchk":"yes"}`, `key "spoofchk": "yes" is neither "on" nor "off"`},
		{"spoofchk bool", `{` + base + `,"spoofchk":true}`, `key "spoofchk": expected string`},
		{"trust ON", `{` + base + `,"trust":"ON"}`, `key "trust": "ON"`},
		{"link_state", `{` + base + `,"link_state":"up"}`, `key "link_state": "up" is not one of auto, enable, disable`},
		{"min rate negative", `{` + base + `,"min_tx_rate":-1}`, `key "min_tx_rate": -1 is negative`},
		{"max rate negative", `{` + base + `,"max_tx_rate":-5}`, `key "max_tx_rate": -5 is negative`},
		{"min above max", `{` + base + `,"min_tx_rate":500,"max_tx_rate":100}`, `key "min_tx_rate": 500 exceeds max_tx_rate 100`},
		{"rate float", `{` + base + `,"max_tx_rate":1.5}`, `key "max_tx_rate": expected int`},
		{"ips without ipam", `{` + base + `,"runtimeConfig":{"ips":["10.1.0.5/24"]}}`, `key "runtimeConfig.ips": requested but "ipam"`},
		{"bad ip", `{` + base + `,"ipam":{"type":"static"},"runtimeConfig":{"ips":["10.1.0.500/24"]}}`, `key "runtimeConfig.ips[0]"`},
		{"ipam path", `{` + base + `,"ipam":{"type":"../host-local"}}`, `key "ipam.type"`},
		{"log file relative", `{` + base + `,"logFile":"sriov.log"}`, `key "logFile": "sriov.log" is not an absolute path`},
		{"devinfo relative", `{` + base + `,"runtimeConfig":{"CNIDeviceInfoFile":"x.json"}}`, `key "runtimeConfig.CNIDeviceInfoFile"`},
		{"dataDir relative", `{` + base + `,"dataDir":"var/lib"}`, `key "dataDir": "var/lib" is not an absolute path`},
		{"prevResult bad", `{` + base + `,"prevResult":{"ips":"x"}}`, `key "prevResult"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.conf))
			if err == nil {
				t.Fatalf("accepted %s", tc.conf)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if tc.name != "not JSON" && !strings.HasPrefix(err.Error(), "sriov config") {
				t.Fatalf("error %q does not name the plugin config", err)
			}
		})
	}
}

func TestParseConfigValues(t *testing.T) {
	c, err := ParseConfig([]byte(`{"cniVersion":"0.4.0","name":"n","type":"sriov","deviceID":"0000:3b:02.0",
		"vlan":100,"vlanQoS":5,"vlanProto":"802.1AD","mac":"02:00:00:00:00:01","spoofchk":"off","trust":"on",
		"link_state":"disable","min_tx_rate":10,"max_tx_rate":200,"ipam":{"type":"host-local"},
		"dataDir":"/tmp/x","logLevel":"debug","someUnknownKey":1,
		"runtimeConfig":{"deviceID":"0000:3b:02.1","mac":"02:00:00:00:00:02","CNIDeviceInfoFile":"/run/d.json"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.DeviceID != "0000:3b:02.1" || c.MAC.String() != "02:00:00:00:00:02" {
		t.Errorf("runtimeConfig did not win: %s %s", c.DeviceID, c.MAC)
	}
	if c.Vlan != 100 || c.Qos != 5 || c.VlanProto != pf.VlanProto8021AD {
		t.Errorf("vlan %d qos %d proto %#x", c.Vlan, c.Qos, c.VlanProto)
	}
	if c.Spoofchk == nil || *c.Spoofchk || c.Trust == nil || !*c.Trust || c.LinkState == nil || *c.LinkState != pf.LinkStateDisable {
		t.Errorf("spoofchk/trust/link_state wrong")
	}
	if c.Rate == nil || *c.Rate != [2]int{10, 200} {
		t.Errorf("rate %v", c.Rate)
	}
	if c.IPAMType != "host-local" || c.DataDir != "/tmp/x" || c.DeviceInfoFile != "/run/d.json" {
		t.Errorf("ipam %q dataDir %q devinfo %q", c.IPAMType, c.DataDir, c.DeviceInfoFile)
	}
	if got := plannedOps(c); strings.Join(got, ",") != "vlan,mac,spoofchk,trust,link_state,rate" {
		t.Errorf("planned ops %v", got)
	}

	min, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"n","type":"sriov"}`))
	if err != nil {
		t.Fatal(err)
	}
	if min.DataDir != DefaultDataDir || min.VlanProto != pf.VlanProto8021Q || min.MAC != nil || min.Spoofchk != nil || min.Rate != nil {
		t.Errorf("defaults wrong: %+v", min)
	}
	if got := plannedOps(min); strings.Join(got, ",") != "vlan" {
		t.Errorf("planned ops %v", got)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"n","vlan":5,"mac":"02:00:00:00:00:01"}`))
	f.Add([]byte(`{"cniVersion":"0.3.1","vlanQoS":9}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err == nil && (c.Vlan < 0 || c.Vlan > 4094 || c.Qos < 0 || c.Qos > 7) {
			t.Fatalf("accepted out-of-range config %s", b)
		}
	})
}

// An unknown logLevel is info, as sriov-cni treats it: such NADs work there.
func TestUnknownLogLevelIsInfo(t *testing.T) {
	c, err := ParseConfig([]byte(`{"cniVersion":"1.0.0","name":"net1","type":"sriov","deviceID":"0000:00:01.1","logLevel":"verbose"}`))
	if err != nil || c.LogLevel != "info" {
		t.Fatalf("ParseConfig: %+v %v", c, err)
	}
}
