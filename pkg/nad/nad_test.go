package nad

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const twoNADs = `apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: macvlan-data
spec:
  config: '{"cniVersion":"1.0.0","type":"macvlan","master":"eth9","ipam":{"type":"host-local","subnet":"10.9.0.0/24"}}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: br
  namespace: telco
  annotations:
    k8s.v1.cni.cncf.io/resourceName: plexus.io/sriov_a
spec:
  config: |
    {"cniVersion":"1.1.0","name":"br","plugins":[{"type":"bridge","bridge":"br9"},{"type":"tuning","capabilities":{"mac":true}}]}
`

func TestDirSource(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "nets.yaml"), []byte(twoNADs), 0o644)
	os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "README.txt"), []byte("ignored"), 0o644)
	s := &DirSource{Dir: dir}
	n, err := s.Lookup("default", "macvlan-data")
	if err != nil || n.Spec.Config == "" {
		t.Fatalf("Lookup default/macvlan-data: %v", err)
	}
	n, err = s.Lookup("telco", "br")
	if err != nil || n.Annotations[ResourceNameAnnot] != "plexus.io/sriov_a" {
		t.Fatalf("Lookup telco/br: %+v %v", n, err)
	}
	_, err = s.Lookup("default", "nope")
	if !errors.Is(err, ErrNotFound) || strings.Contains(err.Error(), "default/nope") || !strings.Contains(err.Error(), `broken.yaml: document 1: field "apiVersion"`) {
		t.Fatalf("missing NAD error: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "dup.yml"), []byte(twoNADs), 0o644)
	if _, err := (&DirSource{Dir: dir}).Lookup("telco", "br"); err == nil || !strings.Contains(err.Error(), "defined more than once") {
		t.Fatalf("duplicate NAD: %v", err)
	}
}

func TestParseYAMLBad(t *testing.T) {
	tests := []struct{ in, want string }{
		{"apiVersion: k8s.cni.cncf.io/v1\nkind: Pod\nmetadata: {name: a}\n", `field "kind": "Pod"`},
		{"apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {}\n", `field "metadata.name": missing`},
		{"apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {name: a}\nspec: {conf: x}\n", `unknown field "conf"`},
		{"apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {name: a}\nspec: [\n", `document 1`},
		// A leading "---" opens no empty document (apimachinery's reader, as kubectl).
		{"---\napiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {name: a}\n---\nkind: x\n", `document 2: field "apiVersion"`},
	}
	for _, tc := range tests {
		_, err := ParseYAML([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseYAML(%q): %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestDelegateConf(t *testing.T) {
	confDir := t.TempDir()
	os.WriteFile(filepath.Join(confDir, "10-a.conf"), []byte(`{"cniVersion":"0.4.0","name":"fromdir","type":"ptp"}`), 0o644)
	mk := func(cfg string) *nadv1.NetworkAttachmentDefinition {
		return &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: "fromdir", Namespace: "ns"}, Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: cfg}}
	}
	byName := func(name string) (*libcni.NetworkConfigList, error) { return ConfByName(confDir, name) }
	l, err := DelegateConf(mk(`{"type":"macvlan","master":"x"}`), byName, "1.1.0")
	if err != nil || l.Name != "fromdir" || l.CNIVersion != "1.1.0" || len(l.Plugins) != 1 || l.Plugins[0].Network.Type != "macvlan" {
		t.Fatalf("single conf: %+v %v", l, err)
	}
	l, err = DelegateConf(mk(""), byName, "1.1.0")
	if err != nil || l.CNIVersion != "0.4.0" || l.Plugins[0].Network.Type != "ptp" {
		t.Fatalf("conf from confDir: %+v %v", l, err)
	}
	for cfg, want := range map[string]string{
		`{"type":`:                    `field "spec.config": CNI config is not a JSON object`,
		`{"name":"x"}`:                `neither "type" nor "plugins"`,
		`{"name":"x","plugins":[]}`:   `no plugins in list`,
		`{"name":"x","plugins":[{}]}`: `field "spec.config"`,
	} {
		if _, err := DelegateConf(mk(cfg), byName, "1.1.0"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DelegateConf(%s): %v, want %q", cfg, err, want)
		}
	}
	n := mk("")
	n.Name = "absent"
	if _, err := DelegateConf(n, byName, "1.1.0"); err == nil || !strings.Contains(err.Error(), `"spec.config" is empty and no CNI config named "absent"`) {
		t.Errorf("missing confDir file: %v", err)
	}
}

func TestFirstConfSkipsPlexus(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "00-plexus.conflist"), []byte(`{"cniVersion":"1.1.0","name":"plexus","plugins":[{"type":"plexus"}]}`), 0o644)
	os.WriteFile(filepath.Join(dir, "10-bridge.conflist"), []byte(`{"cniVersion":"1.1.0","name":"cbr0","plugins":[{"type":"bridge"}]}`), 0o644)
	os.WriteFile(filepath.Join(dir, "20-other.conf"), []byte(`{"cniVersion":"1.1.0","name":"other","type":"ptp"}`), 0o644)
	l, path, err := FirstConf(dir)
	if err != nil || l.Name != "cbr0" || filepath.Base(path) != "10-bridge.conflist" {
		t.Fatalf("FirstConf: %v %s %v", l, path, err)
	}
	if _, _, err := FirstConf(t.TempDir()); err == nil {
		t.Fatal("empty dir: no error")
	}
}
