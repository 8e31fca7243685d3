package k8s

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestRestConfigFromKubeconfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.crt", "CA-FROM-FILE")
	write("token", "token-from-file\n")
	write("empty-token", "\n")
	write("client.crt", "CERT-FROM-FILE")
	write("client.key", "KEY-FROM-FILE")

	const head = `apiVersion: v1
kind: Config
current-context: ctx
contexts:
- name: other
  context: {cluster: other, user: other}
- name: ctx
  context: {cluster: c, user: u}
clusters:
- name: other
  cluster: {server: "https://other:1"}
`
	type want struct {
		host, token, ca, cert, key, serverName string
		insecure                               bool
	}
	cases := []struct {
		name    string
		cfg     string
		want    want
		wantErr []string
	}{
		{"token and CA file (relative)", head + `- name: c
  cluster: {server: "https://10.0.0.1:6443", certificate-authority: ca.crt, tls-server-name: api}
users:
- name: u
  user: {token: abc}
`, want{host: "https://10.0.0.1:6443", token: "abc", ca: "CA-FROM-FILE", serverName: "api"}, nil},
		{"tokenFile wins over token; CA data", head + `- name: c
  cluster: {server: "https://h", certificate-authority-data: ` + b64("CA-DATA") + `}
users:
- name: u
  user: {token: stale, tokenFile: ` + filepath.Join(dir, "token") + `}
`, want{host: "https://h", token: "token-from-file", ca: "CA-DATA"}, nil},
		{"client certificate files", head + `- name: c
  cluster: {server: "https://h", insecure-skip-tls-verify: true}
users:
- name: u
  user: {client-certificate: client.crt, client-key: client.key}
`, want{host: "https://h", cert: "CERT-FROM-FILE", key: "KEY-FROM-FILE", insecure: true}, nil},
		{"client certificate data", head + `- name: c
  cluster: {server: "https://h"}
users:
- name: u
  user: {client-certificate-data: ` + b64("CERT") + `, client-key-data: ` + b64("KEY") + `}
`, want{host: "https://h", cert: "CERT", key: "KEY"}, nil},
		{"only context, no current-context", `clusters:
- name: c
  cluster: {server: "https://only"}
contexts:
- name: x
  context: {cluster: c}
`, want{host: "https://only"}, nil},
		{"current-context missing", head + `- name: c
  cluster: {server: "https://h"}
users: [{name: u, user: {}}]
current-context: nope
`, want{}, []string{`current-context "nope" not found`}},
		{"cluster missing", strings.Replace(head, "{cluster: c, user: u}", "{cluster: gone, user: u}", 1) + `users: [{name: u, user: {}}]
`, want{}, []string{`context "ctx"`, `cluster "gone" not found`}},
		{"user missing", head + `- name: c
  cluster: {server: "https://h"}
`, want{}, []string{`user "u" not found`}},
		{"empty server", head + `- name: c
  cluster: {certificate-authority-data: ` + b64("x") + `}
users: [{name: u, user: {}}]
`, want{}, []string{`cluster "c"`, "server is empty"}},
		{"tokenFile missing", head + `- name: c
  cluster: {server: "https://h"}
users:
- name: u
  user: {tokenFile: nothere}
`, want{}, []string{`user "u"`, "field tokenFile", "nothere"}},
		{"tokenFile empty", head + `- name: c
  cluster: {server: "https://h"}
users:
- name: u
  user: {tokenFile: empty-token}
`, want{}, []string{"field tokenFile", "is empty"}},
		{"bad CA data", head + `- name: c
  cluster: {server: "https://h", certificate-authority-data: "!!"}
users: [{name: u, user: {}}]
`, want{}, []string{"field certificate-authority-data"}},
		{"cert without key", head + `- name: c
  cluster: {server: "https://h"}
users:
- name: u
  user: {client-certificate: client.crt}
`, want{}, []string{"client-certificate and client-key"}},
		{"exec unsupported", head + `- name: c
  cluster: {server: "https://h"}
users:
- name: u
  user: {exec: {command: aws}}
`, want{}, []string{"field exec is not supported"}},
		{"not YAML", "clusters: [", want{}, []string{"kubeconfig"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "kc"+string(rune('a'+i)))
			write(filepath.Base(path), tc.cfg)
			cfg, err := restConfigFromKubeconfig(path)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range append(tc.wantErr, path) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := want{cfg.Host, cfg.BearerToken, string(cfg.CAData), string(cfg.CertData), string(cfg.KeyData), cfg.ServerName, cfg.Insecure}
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "absent")
	if _, err := Load(p, Options{}); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("Load(%s) = %v, want an error naming the file", p, err)
	}
	if _, err := Load("", Options{}); err == nil {
		t.Fatal("Load(\"\") succeeded")
	}
}
