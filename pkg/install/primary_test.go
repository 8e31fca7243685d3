package install

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePrimary(t *testing.T) {
	for _, tc := range []struct {
		name, file, data string
		wantVersion      string
		wantCaps         string
		wantErr          string
	}{
		{"conflist", "a.conflist", bridgePrimary, "1.0.0", "bandwidth,portMappings", ""},
		{"conf", "a.conf", `{"cniVersion":"0.3.1","name":"n","type":"bridge","capabilities":{"mac":true,"ips":false}}`, "0.3.1", "mac", ""},
		{"conflist in .conf file", "a.conf", `{"cniVersion":"0.4.0","name":"n","plugins":[{"type":"calico","capabilities":{"ips":true}}]}`, "0.4.0", "ips", ""},
		{"json file", "a.json", `{"cniVersion":"0.4.0","name":"n","type":"ptp"}`, "0.4.0", "", ""},
		{"bad JSON", "a.conflist", `{"cniVersion":`, "", "", "primary config DIR/a.conflist: invalid JSON"},
		{"not an object", "a.conf", `[1]`, "", "", "invalid JSON"},
		{"no cniVersion", "a.conflist", `{"name":"n","plugins":[{"type":"x"}]}`, "", "", `DIR/a.conflist: field "cniVersion" is missing`},
		{"no name", "a.conflist", `{"cniVersion":"1.0.0","plugins":[{"type":"x"}]}`, "", "", `field "name" is missing`},
		{"no plugins", "a.conflist", `{"cniVersion":"1.0.0","name":"n"}`, "", "", `field "plugins" is missing`},
		{"empty plugins", "a.conflist", `{"cniVersion":"1.0.0","name":"n","plugins":[]}`, "", "", `field "plugins" is empty`},
		{"plugins not a list", "a.conflist", `{"cniVersion":"1.0.0","name":"n","plugins":{}}`, "", "", `field "plugins": json`},
		{"plugin without type", "a.conflist", `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"a"},{}]}`, "", "", `plugins[1]: field "type" is missing`},
		{"conf without type", "a.conf", `{"cniVersion":"1.0.0","name":"n"}`, "", "", `DIR/a.conf: field "type" is missing`},
		{"capabilities wrong type", "a.conf", `{"cniVersion":"1.0.0","name":"n","type":"x","capabilities":["mac"]}`, "", "", "invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tc.file)
			if err := os.WriteFile(path, []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := ReadPrimary(path)
			if tc.wantErr != "" {
				want := strings.ReplaceAll(tc.wantErr, "DIR", dir)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("error %v, want %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.CNIVersion != tc.wantVersion || strings.Join(p.Capabilities, ",") != tc.wantCaps || p.Path != path {
				t.Errorf("got %+v, want version %s caps %s", p, tc.wantVersion, tc.wantCaps)
			}
		})
	}
}

func TestFindPrimary(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string // "name" files, "name/" dirs, "name->target" symlinks
		want  string   // file name in dir, or "" for ErrNoPrimary
		named string
	}{
		{"lexically first", []string{"20-b.conf", "10-a.conflist", "99-z.json"}, "10-a.conflist", ""},
		{"skips own config", []string{DefaultConfName, "10-a.conflist"}, "10-a.conflist", ""},
		{"skips other extensions and hidden", []string{"05-x.conf.bak", ".01-tmp.conflist", "README", "10-a.conf"}, "10-a.conf", ""},
		{"skips directories", []string{"01-dir.conf/", "plexus.d/", "10-a.conf"}, "10-a.conf", ""},
		{"follows symlinks to files", []string{"real", "05-link.conflist->real"}, "05-link.conflist", ""},
		{"skips dangling symlink", []string{"05-link.conflist->gone", "10-a.conf"}, "10-a.conf", ""},
		{"only own", []string{DefaultConfName}, "", ""},
		{"empty", nil, "", ""},
		{"named", []string{"10-a.conflist", "50-calico.conflist"}, "50-calico.conflist", "50-calico.conflist"},
		{"named missing", []string{"10-a.conflist"}, "", "50-calico.conflist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				switch {
				case strings.HasSuffix(f, "/"):
					os.Mkdir(filepath.Join(dir, f), 0o755)
				case strings.Contains(f, "->"):
					parts := strings.SplitN(f, "->", 2)
					os.Symlink(parts[1], filepath.Join(dir, parts[0]))
				default:
					os.WriteFile(filepath.Join(dir, f), []byte("{}"), 0o644)
				}
			}
			got, err := FindPrimary(dir, DefaultConfName, tc.named)
			if tc.want == "" {
				if !errors.Is(err, ErrNoPrimary) {
					t.Fatalf("got %q, %v; want ErrNoPrimary", got, err)
				}
				return
			}
			if err != nil || got != filepath.Join(dir, tc.want) {
				t.Fatalf("got %q, %v; want %s", got, err, tc.want)
			}
		})
	}
	if _, err := FindPrimary(t.TempDir(), DefaultConfName, DefaultConfName); err == nil || !strings.Contains(err.Error(), "plexus's own config") {
		t.Errorf("naming plexus's own config as primary: %v", err)
	}
	if _, err := FindPrimary(filepath.Join(t.TempDir(), "nope"), DefaultConfName, ""); !errors.Is(err, ErrNoPrimary) {
		t.Errorf("missing conf dir: %v, want ErrNoPrimary", err)
	}
}

func TestFindPrimarySkipsMetaPlugins(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{
		"00-multus.conf":         `{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus","delegates":[]}`,
		"01-multus.conflist":     `{"cniVersion":"1.0.0","name":"multus-cni-network","plugins":[{"type":"multus-shim"}]}`,
		"02-old-plexus.conflist": `{"cniVersion":"1.0.0","name":"plexus-cni-network","plugins":[{"type":"plexus"}]}`,
		"10-calico.conflist":     `{"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"calico"},{"type":"portmap"}]}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := FindPrimary(dir, DefaultConfName, "")
	if err != nil || got != filepath.Join(dir, "10-calico.conflist") {
		t.Fatalf("got %q, %v; want 10-calico.conflist", got, err)
	}
	sh := ShadowingConfigs(dir, DefaultConfName)
	if len(sh) != 1 || filepath.Base(sh[0]) != "00-multus.conf" {
		t.Errorf("shadowing configs %v, want 00-multus.conf", sh)
	}
}
