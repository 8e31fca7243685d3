package selection

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseGood(t *testing.T) {
	tests := []struct {
		in   string
		want string // JSON of the elements
	}{
		{"", "null"},
		{"  ", "null"},
		{"macvlan", `[{"name":"macvlan","namespace":"pods"}]`},
		{"a, b", `[{"name":"a","namespace":"pods"},{"name":"b","namespace":"pods"}]`},
		{"other/a@data0", `[{"name":"a","namespace":"other","interface":"data0"}]`},
		{"a@x1,a@x2", `[{"name":"a","namespace":"pods","interface":"x1"},{"name":"a","namespace":"pods","interface":"x2"}]`},
		{"a,a", `[{"name":"a","namespace":"pods"},{"name":"a","namespace":"pods"}]`},
		{"net.example.com", `[{"name":"net.example.com","namespace":"pods"}]`},
		{`[{"name":"a"}]`, `[{"name":"a","namespace":"pods"}]`},
		{`[{"name":"a","namespace":"n2","interface":"sig0","ips":["10.1.1.5/24","fd00::5/64"],"mac":"02:00:00:00:00:05"}]`,
			`[{"name":"a","namespace":"n2","ips":["10.1.1.5/24","fd00::5/64"],"mac":"02:00:00:00:00:05","interface":"sig0"}]`},
		{`[{"name":"a","portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"bandwidth":{"ingressRate":1000,"ingressBurst":10,"egressRate":1000,"egressBurst":10}}]`,
			`[{"name":"a","namespace":"pods","portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"bandwidth":{"ingressRate":1000,"ingressBurst":10,"egressRate":1000,"egressBurst":10}}]`},
		{`[{"name":"a","cni-args":{"foo":"bar"},"default-route":["10.1.1.1"],"ipam-claim-reference":"claim1"}]`,
			`[{"name":"a","namespace":"pods","cni-args":{"foo":"bar"},"default-route":["10.1.1.1"],"ipam-claim-reference":"claim1"}]`},
		{`[{"name":"a","infiniband-guid":"00:11:22:33:44:55:66:77"}]`, `[{"name":"a","namespace":"pods","infiniband-guid":"00:11:22:33:44:55:66:77"}]`},
		{`  [ ]  `, `[]`},
	}
	for _, tc := range tests {
		got, err := Parse(tc.in, "pods")
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		b, _ := json.Marshal(got)
		if string(b) != tc.want {
			t.Errorf("Parse(%q) = %s, want %s", tc.in, b, tc.want)
		}
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct{ in, want string }{
		{",", `element 1: empty element`},
		{"a,", `element 2: empty element`},
		{"a,,b", `element 2: empty element`},
		{"a@", `field "interface": empty after '@'`},
		{"/a", `field "namespace": empty before '/'`},
		{"ns/", `field "name": missing`},
		{"a/b/c", `field "name": "b/c" is not of the form`},
		{"a@b@c", `field "interface": "b@c" contains a second '@'`},
		{"A", `field "name": "A" is not a valid DNS-1123 subdomain`},
		{"bad_name", `field "name": "bad_name" is not a valid DNS-1123 subdomain`},
		{"-a", `field "name": "-a" is not a valid DNS-1123`},
		{"a-", `field "name": "a-" is not a valid DNS-1123`},
		{"a..b", `"a..b" is not a valid DNS-1123`},
		{"Ns/a", `field "namespace": "Ns" is not a valid DNS-1123 label`},
		{"n.s/a", `field "namespace": "n.s" is not a valid DNS-1123 label`},
		{strings.Repeat("n", 64) + "/a", `field "namespace"`},
		{strings.Repeat("a", 254), `field "name"`},
		{"a@this-name-is-too-long", `field "interface": "this-name-is-too-long" is longer than 15 characters`},
		{"a@x:y", `field "interface": "x:y" contains`},
		{"a@.", `field "interface": "." is not a valid interface name`},
		{"a@..", `field "interface": ".." is not a valid interface name`},
		{"a@x1,b@x1", `element 2 ("pods/b@x1"): field "interface": "x1" is also requested by element 1`},
		{"a b", `field "name": "a b" is not of the form`},
		{`{"name":"a"}`, `JSON form must be a list`},
		{`[{"name":"a"}`, `invalid JSON list`},
		{`["a"]`, `element 1: not a JSON object`},
		{`[{"name":"a","interfce":"x"}]`, `element 1: unknown field "interfce"`},
		{`[{"name":7}]`, `field "name": want string, got JSON number`},
		{`[{}]`, `element 1 ("pods/"): field "name": missing`},
		{`[{"name":"a","ips":"10.0.0.1/24"}]`, `field "ips": want []string`},
		{`[{"name":"a","ips":["10.0.0.1"]}]`, `field "ips": "10.0.0.1" is not a CIDR`},
		{`[{"name":"a","ips":["300.0.0.1/24"]}]`, `field "ips": "300.0.0.1/24" is not a CIDR`},
		{`[{"name":"a","mac":"zz:00:00:00:00:00"}]`, `field "mac": "zz:00:00:00:00:00" is not a MAC address`},
		{`[{"name":"a","mac":"02:00:00:00:00"}]`, `field "mac"`},
		{`[{"name":"a","infiniband-guid":"02:00:00:00:00:01"}]`, `field "infiniband-guid": "02:00:00:00:00:01" is not an 8-byte GUID`},
		{`[{"name":"a","portMappings":[{"hostPort":1,"containerPort":0}]}]`, `field "portMappings"[0]: ports must be within 1-65535`},
		{`[{"name":"a","portMappings":[{"hostPort":70000,"containerPort":80}]}]`, `field "portMappings"[0]: ports must be within`},
		{`[{"name":"a","portMappings":[{"hostPort":1,"containerPort":80,"protocol":"icmp"}]}]`, `protocol: "icmp" is not tcp, udp or sctp`},
		{`[{"name":"a","portMappings":[null]}]`, `field "portMappings"[0]: null`},
		{`[{"name":"a","bandwidth":{"ingressRate":-1}}]`, `field "bandwidth": rates and bursts must not be negative`},
		{`[{"name":"a","default-route":["10.0.0.1","10.0.0.2"]}]`, `field "default-route": at most one gateway per IP family`},
		{`[{"name":"a","default-route":["not-an-ip"]}]`, `element 1`},
		{`[{"name":"a","interface":"eth 0"}]`, `field "interface": "eth 0" contains`},
		{`[{"name":"a","namespace":"UPPER"}]`, `field "namespace": "UPPER"`},
		{`[{"name":"a","interface":"n1"},{"name":"b","interface":"n1"}]`, `element 2 ("pods/b@n1"): field "interface": "n1" is also requested by element 1`},
	}
	for _, tc := range tests {
		_, err := Parse(tc.in, "pods")
		if err == nil {
			t.Errorf("Parse(%q): no error, want %q", tc.in, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error %q, want it to contain %q", tc.in, err, tc.want)
		}
	}
	if len(tests) < 30 {
		t.Fatalf("only %d bad inputs", len(tests))
	}
}

func TestParseShortRejectsJSON(t *testing.T) {
	if _, err := ParseShort(`[{"name":"a"}]`, "default"); err == nil {
		t.Fatal("short form must not accept JSON")
	}
	got, err := ParseShort("a@net5, ns2/b", "default")
	if err != nil || len(got) != 2 || got[0].Namespace != "default" || got[1].Namespace != "ns2" || got[0].InterfaceRequest != "net5" {
		t.Fatalf("ParseShort: %+v %v", got, err)
	}
}

// FuzzParse: Parse never panics, and whatever it accepts re-validates and
// has a namespace on every element.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"a", "ns/a@x", "a,b", `[{"name":"a","ips":["1.2.3.4/32"]}]`, `[{"name":"a","default-route":["::1"]}]`, "a@", ","} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		elems, err := Parse(s, "default")
		if err != nil {
			return
		}
		for _, e := range elems {
			if e.Namespace == "" || e.Name == "" {
				t.Fatalf("accepted element without name/namespace: %+v", e)
			}
		}
		if err := Validate(elems); err != nil {
			t.Fatalf("accepted input fails re-validation: %v", err)
		}
	})
}
