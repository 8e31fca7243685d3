package install

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexus-cni/plexus/pkg/k8s"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

// TestKubeconfigWorksForPlexus: the kubeconfig plexus-install writes is
// read by plexus's own loader (pkg/k8s), which must trust the CA, send the
// token and reach the server; after a rotation only the new token works.
func TestKubeconfigWorksForPlexus(t *testing.T) {
	caPEM, serverCert := caAndServerCert(t)
	var want atomic.Value
	want.Store("token-1")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+want.Load().(string) {
			http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}`, http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/api/v1/namespaces/default/pods/p1" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p1","namespace":"default","uid":"u1"}}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}}
	srv.StartTLS()
	defer srv.Close()

	h := newHost(t)
	h.rotateServiceAccount("token-1", caPEM)
	h.write(filepath.Join(h.conf, "10-kindnet.conflist"), bridgePrimary)
	cfg := h.config()
	cfg.APIServer = srv.URL
	start(t, cfg)
	eventually(t, "kubeconfig", func() bool { _, tok, _ := tryReadKubeconfig(cfg.Kubeconfig); return tok == "token-1" })

	getPod := func() error {
		c, err := k8s.Load(cfg.Kubeconfig, k8s.Options{Attempts: 1, PodWait: time.Millisecond})
		if err != nil {
			return err
		}
		p, err := c.Pods().Pod(context.Background(), podnet.PodRef{Namespace: "default", Name: "p1", UID: "u1"})
		if err == nil && p.UID != "u1" {
			t.Fatalf("pod %+v", p)
		}
		return err
	}
	if err := getPod(); err != nil {
		t.Fatalf("plexus with plexus-install's kubeconfig: %v", err)
	}
	// The token rotates: the server accepts only the new one, and so does
	// the rewritten kubeconfig.
	want.Store("token-2")
	if err := getPod(); err == nil {
		t.Fatal("the server accepts the old token; the test cannot tell rotation")
	}
	h.rotateServiceAccount("token-2", caPEM)
	eventually(t, "kubeconfig with token-2", func() bool { _, tok, _ := tryReadKubeconfig(cfg.Kubeconfig); return tok == "token-2" })
	if err := getPod(); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
}

// caAndServerCert returns a CA (PEM) and a serving cert for 127.0.0.1 it signed.
func caAndServerCert(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "plexus-test-ca"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "apiserver"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
