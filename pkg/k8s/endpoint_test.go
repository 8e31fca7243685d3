package k8s

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"

	"github.com/plexus-cni/plexus/pkg/apiendpoint"
)

// A service account against --api-server: client-go reaches the server the
// flag names, trusting the service account's CA and sending its token.
func TestRESTConfigServiceAccount(t *testing.T) {
	var gotAuth string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"major":"1","minor":"35","gitVersion":"v1.35.0"}`))
	}))
	defer srv.Close()
	sa := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(sa, "ca.crt"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sa, "token"), []byte("sa-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := apiendpoint.Choose("", srv.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := RESTConfig(src, sa)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != "v1.35.0" || gotAuth != "Bearer sa-token" {
		t.Fatalf("version %s, Authorization %q", v.GitVersion, gotAuth)
	}
}

func TestRESTConfigErrors(t *testing.T) {
	if _, err := RESTConfig(apiendpoint.Source{Server: "https://192.0.2.1:6443"}, t.TempDir()); err == nil || !strings.Contains(err.Error(), "service account token for https://192.0.2.1:6443") {
		t.Fatalf("no token: %v", err)
	}
	if _, err := RESTConfig(apiendpoint.Source{}, t.TempDir()); err == nil || !strings.Contains(err.Error(), "--api-server") {
		t.Fatalf("no server: %v", err)
	}
}

// A kubeconfig's server is replaced by --api-server.
func TestRESTConfigKubeconfigServer(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://10.96.0.1:443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for server, want := range map[string]string{"": "https://10.96.0.1:443", "https://192.0.2.10:6443": "https://192.0.2.10:6443"} {
		cfg, err := RESTConfig(apiendpoint.Source{Kubeconfig: kc, Server: server}, "")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Host != want {
			t.Errorf("server flag %q: host %s, want %s", server, cfg.Host, want)
		}
	}
}
