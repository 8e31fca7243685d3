package install

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/plexus-cni/plexus/pkg/apiendpoint"
)

// ServiceAccount is what a pod's mounted service-account directory holds.
type ServiceAccount struct {
	Token []byte
	CA    []byte
}

// Equal reports whether both tokens and CAs are identical.
func (s ServiceAccount) Equal(o ServiceAccount) bool {
	return string(s.Token) == string(o.Token) && string(s.CA) == string(o.CA)
}

// ReadServiceAccount reads token and ca.crt from dir (a projected volume:
// the files are symlinks swapped by kubelet when the token rotates, so they
// are read by name every time).
func ReadServiceAccount(dir string) (ServiceAccount, error) {
	token, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		return ServiceAccount{}, fmt.Errorf("service account: %w", err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return ServiceAccount{}, fmt.Errorf("service account: %w", err)
	}
	t := strings.TrimSpace(string(token))
	if t == "" {
		return ServiceAccount{}, fmt.Errorf("service account: %s is empty", filepath.Join(dir, "token"))
	}
	if !strings.Contains(string(ca), "BEGIN CERTIFICATE") {
		return ServiceAccount{}, fmt.Errorf("service account: %s holds no PEM certificate", filepath.Join(dir, "ca.crt"))
	}
	return ServiceAccount{Token: []byte(t), CA: ca}, nil
}

// APIServerFromEnv returns the in-cluster API server URL from the
// KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT variables kubelet sets
// in every container, or "" when they are not set.
func APIServerFromEnv() string {
	return apiendpoint.FromEnv(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
}

// The kubeconfig v1 document, only the fields plexus needs.
type kubeconfig struct {
	APIVersion     string         `json:"apiVersion"`
	Kind           string         `json:"kind"`
	Clusters       []namedCluster `json:"clusters"`
	Users          []namedUser    `json:"users"`
	Contexts       []namedContext `json:"contexts"`
	CurrentContext string         `json:"current-context"`
}
type namedCluster struct {
	Name    string `json:"name"`
	Cluster struct {
		Server                   string `json:"server"`
		CertificateAuthorityData string `json:"certificate-authority-data"`
	} `json:"cluster"`
}
type namedUser struct {
	Name string `json:"name"`
	User struct {
		Token string `json:"token"`
	} `json:"user"`
}
type namedContext struct {
	Name    string `json:"name"`
	Context struct {
		Cluster string `json:"cluster"`
		User    string `json:"user"`
	} `json:"context"`
}

// RenderKubeconfig returns a kubeconfig for server that authenticates with
// the service account's token and trusts its CA, both inline, so plexus
// needs no other file and a rewrite switches both at once.
func RenderKubeconfig(server string, sa ServiceAccount) ([]byte, error) {
	if server == "" {
		return nil, fmt.Errorf("kubeconfig: no API server address (set --api-server, or KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT)")
	}
	const name = "plexus"
	var c namedCluster
	c.Name = name
	c.Cluster.Server = server
	c.Cluster.CertificateAuthorityData = base64.StdEncoding.EncodeToString(sa.CA)
	var u namedUser
	u.Name = name
	u.User.Token = string(sa.Token)
	var x namedContext
	x.Name = name
	x.Context.Cluster = name
	x.Context.User = name
	kc := kubeconfig{
		APIVersion: "v1", Kind: "Config",
		Clusters: []namedCluster{c}, Users: []namedUser{u}, Contexts: []namedContext{x},
		CurrentContext: name,
	}
	out, err := yaml.Marshal(kc)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return append([]byte("# Written by plexus-install from its service account; rewritten when the token rotates.\n"), out...), nil
}
