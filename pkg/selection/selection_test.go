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
		// A bare address, as Multus accepts.
		{`[{"name":"a","ips":["10.1.1.5"]}]`, `[{"name":"a","namespace":"pods","ips":["10.1.1.5"]}]`},
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
		{"a@this-name-is-too-long", `field "interface": "this-name-is-too-long": interface name is too long`},
		{"a@x:y", `field "interface": "x:y": interface name contains / or :`},
		{"a@.", `field "interface": ".": interface name is . or ..`},
		{"a@..", `field "interface": "..": interface name is . or ..`},
		{"a@x1,b@x1", `element 2 ("pods/b@x1"): field "interface": "x1" is also requested by element 1`},
		{"a b", `field "name": "a b" is not of the form`},
		{`{"name":"a"}`, `JSON form must be a list`},
		{`[{"name":"a"}`, `invalid JSON list`},
		{`["a"]`, `element 1: not a JSON object`},
		{`[{"name":"a","interfce":"x"}]`, `element 1: unknown field "interfce"`},
		{`[{"name":7}]`, `field "name": want string, got JSON number`},
		{`[{}]`, `element 1 ("pods/"): field "name": missing`},
		{`[{"name":"a","ips":"10.0.0.1/24"}]`, `field "ips": want []string`},
		{`[{"name":"a","ips":["10.0.0.1/33"]}]`, `field "ips": "10.0.0.1/33" is not an IP address or CIDR`},
		{`[{"name":"a","ips":["300.0.0.1/24"]}]`, `field "ips": "300.0.0.1/24" is not an IP address or CIDR`},
		{`[{"name":"a","ips":["host-1"]}]`, `field "ips": "host-1" is not an IP address or CIDR`},
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
		{`[{"name":"a","interface":"eth 0"}]`, `field "interface": "eth 0": interface name contains / or : or whitespace`},
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
	for _, s := range []string{"a", "ns/a@x", "a,b", `[{"name":"a","ips":["1.2.3.4/32"]}]`, `[{"name":"a","default-route":["::1"]}]`, `[{"name":"a","Interface":"x","foo":1}]`, "a@", ","} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, strict := range []bool{true, false} {
			elems, _, err := ParseWithWarnings(s, "default", strict)
			if err != nil {
				continue
			}
			for _, e := range elems {
				if e.Namespace == "" || e.Name == "" {
					t.Fatalf("accepted element without name/namespace: %+v", e)
				}
				for _, gw := range e.GatewayRequest {
					if gw == nil {
						t.Fatalf("accepted a nil default-route: %q", s)
					}
				}
			}
			if err := Validate(elems); err != nil {
				t.Fatalf("accepted input fails re-validation: %v", err)
			}
		}
	})
}

// TestParseDefaultRoute: every default-route entry must be an IP address;
// nadv1's decoding turns "" and null into nil IPs without an error.
func TestParseDefaultRoute(t *testing.T) {
	tests := []struct {
		name, in, wantErr string // wantErr "" = accepted
	}{
		{"v4", `[{"name":"a","default-route":["10.0.0.1"]}]`, ""},
		{"v4 and v6", `[{"name":"a","default-route":["10.0.0.1","fd00::1"]}]`, ""},
		{"null list", `[{"name":"a","default-route":null}]`, ""},
		{"empty list", `[{"name":"a","default-route":[]}]`, ""},
		{"empty string", `[{"name":"a","default-route":[""]}]`, `element 1 ("pods/a"): field "default-route"[0]: "" is not an IP address`},
		{"null entry", `[{"name":"a","default-route":[null]}]`, `element 1 ("pods/a"): field "default-route"[0]: null is not an IP address`},
		{"second null", `[{"name":"a","default-route":["10.0.0.1",null]}]`, `field "default-route"[1]: null is not an IP address`},
		{"name", `[{"name":"a","default-route":["gw"]}]`, `element 1 ("pods/a"): field "default-route"[0]: "gw" is not an IP address`},
		{"cidr", `[{"name":"a","default-route":["10.0.0.1/24"]}]`, `field "default-route"[0]: "10.0.0.1/24" is not an IP address`},
		{"number", `[{"name":"a","default-route":[7]}]`, `field "default-route"[0]: 7 is not an IP address`},
		{"not a list", `[{"name":"a","default-route":"10.0.0.1"}]`, `field "default-route": want a list of IP addresses`},
		{"second element", `[{"name":"a"},{"name":"b","namespace":"n","default-route":[""]}]`, `element 2 ("n/b"): field "default-route"[0]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in, "pods")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse(%s): %v", tc.in, err)
				}
				for _, e := range got {
					for _, gw := range e.GatewayRequest {
						if gw == nil {
							t.Fatalf("Parse(%s): nil gateway accepted", tc.in)
						}
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(%s): no error, want %q", tc.in, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Parse(%s):\n  error %q\n  want  %q", tc.in, err, tc.wantErr)
			}
			if i := strings.Index(err.Error(), `"default-route"`); i < 0 || i > 100 {
				t.Fatalf("error %q does not name default-route within 100 characters", err)
			}
		})
	}
}

// TestParseWithWarnings: unknown fields of the JSON form are ignored, as
// Multus ignores them, and reported; strict keeps refusing them.
func TestParseWithWarnings(t *testing.T) {
	tests := []struct {
		name, in  string
		want      string   // JSON of the elements when not strict
		warnings  []string // when not strict
		strictErr string   // "" = strict accepts too
	}{
		{"known fields only", `[{"name":"a","interface":"x1"}]`, `[{"name":"a","namespace":"pods","interface":"x1"}]`, nil, ""},
		{"short form", `ns/a@x1`, `[{"name":"a","namespace":"ns","interface":"x1"}]`, nil, ""},
		{"typo", `[{"name":"x","namespace":"ns","interfce":"net5"}]`, `[{"name":"x","namespace":"ns"}]`,
			[]string{`network "ns/x": unknown field "interfce" ignored`}, `element 1: unknown field "interfce"`},
		{"two unknown, sorted", `[{"name":"a","zeta":1,"alpha":{"x":[1]}}]`, `[{"name":"a","namespace":"pods"}]`,
			[]string{`network "pods/a": unknown field "alpha" ignored`, `network "pods/a": unknown field "zeta" ignored`}, `unknown field "alpha"`},
		{"second element", `[{"name":"a"},{"name":"b","foo":true}]`, `[{"name":"a","namespace":"pods"},{"name":"b","namespace":"pods"}]`,
			[]string{`network "pods/b": unknown field "foo" ignored`}, `element 2: unknown field "foo"`},
		{"case variant read as the field (encoding/json does under Multus)", `[{"name":"a","Interface":"x1"}]`, `[{"name":"a","namespace":"pods","interface":"x1"}]`,
			[]string{`network "pods/a": field "Interface" read as "interface"`}, `unknown field "Interface" (did you mean "interface"?)`},
		{"case variant beside the field", `[{"name":"a","interface":"x1","INTERFACE":"x2"}]`, `[{"name":"a","namespace":"pods","interface":"x1"}]`,
			[]string{`network "pods/a": field "INTERFACE" ignored: field "interface" is also given`}, `unknown field "INTERFACE"`},
		{"Multus interfaceRequest", `[{"name":"a","interfaceRequest":"x1"}]`, `[{"name":"a","namespace":"pods","interface":"x1"}]`,
			[]string{`network "pods/a": field "interfaceRequest" read as "interface"`}, `unknown field "interfaceRequest" (Multus's deprecated name; use "interface")`},
		{"Multus interfaceRequest beside interface", `[{"name":"a","interface":"x1","interfaceRequest":"x2"}]`, `[{"name":"a","namespace":"pods","interface":"x1"}]`,
			[]string{`network "pods/a": field "interfaceRequest" ignored: field "interface" is also given`}, `unknown field "interfaceRequest"`},
		{"Multus deviceID never taken from a pod", `[{"name":"a","deviceID":"0000:03:00.1"}]`, `[{"name":"a","namespace":"pods"}]`,
			[]string{`network "pods/a": field "deviceID" ignored: device IDs come only from the kubelet, for NADs with a resourceName`}, `unknown field "deviceID"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, warnings, err := ParseWithWarnings(tc.in, "pods", false)
			if err != nil {
				t.Fatalf("ParseWithWarnings(%s): %v", tc.in, err)
			}
			if b, _ := json.Marshal(got); string(b) != tc.want {
				t.Errorf("elements = %s, want %s", b, tc.want)
			}
			if strings.Join(warnings, "\n") != strings.Join(tc.warnings, "\n") {
				t.Errorf("warnings = %q, want %q", warnings, tc.warnings)
			}
			_, _, err = ParseWithWarnings(tc.in, "pods", true)
			if tc.strictErr == "" {
				if err != nil {
					t.Errorf("strict: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.strictErr) {
				t.Errorf("strict: error %v, want %q", err, tc.strictErr)
			}
			if _, perr := Parse(tc.in, "pods"); perr == nil || perr.Error() != err.Error() {
				t.Errorf("Parse must be the strict form: %v vs %v", perr, err)
			}
		})
	}
}

// TestParseWithWarningsStillRefusesBadValues: leniency covers unknown field
// names only; a malformed known field is an error either way.
func TestParseWithWarningsStillRefusesBadValues(t *testing.T) {
	for _, in := range []string{
		`[{"name":"a","bogus":1,"ips":["10.0.0.1/40"]}]`,
		`[{"name":"a","bogus":1,"default-route":[""]}]`,
		`[{"name":"a","Interface":"eth 0"}]`,
		`[{"name":"a","interfaceRequest":7}]`,
		`[{"bogus":1}]`,
	} {
		if _, _, err := ParseWithWarnings(in, "pods", false); err == nil {
			t.Errorf("ParseWithWarnings(%s): no error", in)
		}
	}
}
