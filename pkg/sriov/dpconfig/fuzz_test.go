package dpconfig

import (
	"strings"
	"testing"
)

// FuzzParse: any input either fails with an error or yields resources whose
// names are valid, unique and whose ranges are ordered; never a panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"resourceList":[{"resourceName":"a","selectors":[{"pfNames":["ens1f0#0-3,7"]}]}]}`,
		`{"resourceList":[{"resourceName":"b","resourcePrefix":"x.io","selectors":{"rootDevices":["0000:3b:00.0#1"]}}]}`,
		`{"resourceList":[{"resourceName":"-","selectors":[]}]}`,
		`{"resourceList":[{"resourceName":"a","selectors":[{"vendors":["8086"],"isRdma":true,"linkTypes":["ether"]}]}]}`,
		`[]`, ``, `{"resourceList":null}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		cfg, err := Parse([]byte(in), "")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		seen := map[string]bool{}
		for _, r := range cfg.Resources {
			if validateName(r.Name) != nil || validatePrefix(r.Prefix) != nil || seen[r.FullName()] {
				t.Fatalf("accepted bad or duplicate resource %q", r.FullName())
			}
			seen[r.FullName()] = true
			if len(r.Selectors) == 0 {
				t.Fatalf("resource %q without selectors accepted", r.Name)
			}
			for _, s := range r.Selectors {
				for _, ref := range append(append([]DeviceRef{}, s.PFNames...), s.RootDevices...) {
					if ref.Name == "" || strings.Contains(ref.Name, "#") {
						t.Fatalf("bad ref name %q", ref.Name)
					}
					for _, rg := range ref.Ranges {
						if rg.First > rg.Last || rg.First < 0 || rg.Last > maxVFIndex {
							t.Fatalf("bad range %+v", rg)
						}
					}
				}
			}
		}
	})
}

// FuzzParseDeviceRef: accepted refs contain exactly the indices listed.
func FuzzParseDeviceRef(f *testing.F) {
	for _, s := range []string{"ens1f0", "ens1f0#0-3,7", "ens1f0#", "#1", "a#1-0", "a#00-01,65535"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		ref, err := ParseDeviceRef(in, false)
		if err != nil {
			return
		}
		name, spec, has := strings.Cut(in, "#")
		if ref.Name != name || (has != (ref.Ranges != nil)) {
			t.Fatalf("%q parsed as %+v", in, ref)
		}
		if has && len(ref.Ranges) != strings.Count(spec, ",")+1 {
			t.Fatalf("%q: %d ranges", in, len(ref.Ranges))
		}
	})
}
