package k8s

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// The kubeconfig is parsed here rather than through
// k8s.io/client-go/tools/clientcmd: clientcmd pulls in modules and package
// init that plexus would pay on every exec, while plexus needs only one
// context with a server, a CA and a token or client certificate.

type kubeconfig struct {
	CurrentContext string         `json:"current-context"`
	Clusters       []namedCluster `json:"clusters"`
	Users          []namedUser    `json:"users"`
	Contexts       []namedContext `json:"contexts"`
}

type namedCluster struct {
	Name    string  `json:"name"`
	Cluster cluster `json:"cluster"`
}

type cluster struct {
	Server                   string `json:"server"`
	TLSServerName            string `json:"tls-server-name"`
	InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify"`
	CertificateAuthority     string `json:"certificate-authority"`
	CertificateAuthorityData string `json:"certificate-authority-data"`
	ProxyURL                 string `json:"proxy-url"`
}

type namedUser struct {
	Name string   `json:"name"`
	User authInfo `json:"user"`
}

type authInfo struct {
	ClientCertificate     string          `json:"client-certificate"`
	ClientCertificateData string          `json:"client-certificate-data"`
	ClientKey             string          `json:"client-key"`
	ClientKeyData         string          `json:"client-key-data"`
	Token                 string          `json:"token"`
	TokenFile             string          `json:"tokenFile"`
	Username              string          `json:"username"`
	Password              string          `json:"password"`
	Exec                  *map[string]any `json:"exec"`
	AuthProvider          *map[string]any `json:"auth-provider"`
}

type namedContext struct {
	Name    string      `json:"name"`
	Context kubeContext `json:"context"`
}

type kubeContext struct {
	Cluster string `json:"cluster"`
	User    string `json:"user"`
}

// restConfigFromKubeconfig reads the kubeconfig at path and turns its
// current context into a rest.Config. Relative file references are resolved
// against the kubeconfig's directory, and files (token, CA, client
// certificate) are read now so that every invocation sees their current
// content and a bad reference is reported naming the field.
func restConfigFromKubeconfig(path string) (*rest.Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(raw, &kc); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	ctxName, kctx, err := kc.currentContext()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	cl, ok := kc.cluster(kctx.Cluster)
	if !ok {
		return nil, fmt.Errorf("kubeconfig %s: context %q: cluster %q not found in clusters", path, ctxName, kctx.Cluster)
	}
	var user authInfo
	if kctx.User != "" {
		if user, ok = kc.user(kctx.User); !ok {
			return nil, fmt.Errorf("kubeconfig %s: context %q: user %q not found in users", path, ctxName, kctx.User)
		}
	}
	dir := filepath.Dir(path)
	cfg, err := clusterConfig(dir, cl)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: cluster %q: %w", path, kctx.Cluster, err)
	}
	if err := applyUser(cfg, dir, user); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: user %q: %w", path, kctx.User, err)
	}
	return cfg, nil
}

func (kc *kubeconfig) currentContext() (string, kubeContext, error) {
	name := kc.CurrentContext
	if name == "" {
		if len(kc.Contexts) != 1 {
			return "", kubeContext{}, fmt.Errorf("current-context is empty and there are %d contexts", len(kc.Contexts))
		}
		name = kc.Contexts[0].Name
	}
	for _, c := range kc.Contexts {
		if c.Name == name {
			return name, c.Context, nil
		}
	}
	return "", kubeContext{}, fmt.Errorf("current-context %q not found in contexts", name)
}

func (kc *kubeconfig) cluster(name string) (cluster, bool) {
	for _, c := range kc.Clusters {
		if c.Name == name {
			return c.Cluster, true
		}
	}
	return cluster{}, false
}

func (kc *kubeconfig) user(name string) (authInfo, bool) {
	for _, u := range kc.Users {
		if u.Name == name {
			return u.User, true
		}
	}
	return authInfo{}, false
}

func clusterConfig(dir string, cl cluster) (*rest.Config, error) {
	if cl.Server == "" {
		return nil, fmt.Errorf("field server is empty")
	}
	if cl.ProxyURL != "" {
		return nil, fmt.Errorf("field proxy-url is not supported")
	}
	cfg := &rest.Config{Host: cl.Server}
	cfg.ServerName = cl.TLSServerName
	cfg.Insecure = cl.InsecureSkipTLSVerify
	ca, err := fileOrData(dir, "certificate-authority", cl.CertificateAuthority, cl.CertificateAuthorityData)
	if err != nil {
		return nil, err
	}
	cfg.CAData = ca
	return cfg, nil
}

func applyUser(cfg *rest.Config, dir string, u authInfo) error {
	if u.Exec != nil {
		return fmt.Errorf("field exec is not supported: use token, tokenFile or a client certificate")
	}
	if u.AuthProvider != nil {
		return fmt.Errorf("field auth-provider is not supported: use token, tokenFile or a client certificate")
	}
	cfg.BearerToken = u.Token
	if u.TokenFile != "" {
		tok, err := os.ReadFile(resolve(dir, u.TokenFile))
		if err != nil {
			return fmt.Errorf("field tokenFile: %w", err)
		}
		cfg.BearerToken = strings.TrimSpace(string(tok))
		if cfg.BearerToken == "" {
			return fmt.Errorf("field tokenFile: %s is empty", resolve(dir, u.TokenFile))
		}
	}
	cfg.Username, cfg.Password = u.Username, u.Password
	cert, err := fileOrData(dir, "client-certificate", u.ClientCertificate, u.ClientCertificateData)
	if err != nil {
		return err
	}
	key, err := fileOrData(dir, "client-key", u.ClientKey, u.ClientKeyData)
	if err != nil {
		return err
	}
	if (cert == nil) != (key == nil) {
		return fmt.Errorf("fields client-certificate and client-key must be given together")
	}
	cfg.CertData, cfg.KeyData = cert, key
	return nil
}

// fileOrData returns the bytes of field's inline "-data" form (base64, as
// kubeconfig stores it) or of the file it names; data wins as in kubectl.
func fileOrData(dir, field, file, data string) ([]byte, error) {
	if data != "" {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(data))
		if err != nil {
			return nil, fmt.Errorf("field %s-data: %w", field, err)
		}
		return b, nil
	}
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(resolve(dir, file))
	if err != nil {
		return nil, fmt.Errorf("field %s: %w", field, err)
	}
	return b, nil
}

func resolve(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}
