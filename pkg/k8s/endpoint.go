package k8s

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"

	"github.com/plexus-cni/plexus/pkg/apiendpoint"
)

// ServiceAccountDir is where kubelet mounts a pod's service-account token
// and CA.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// RESTConfig builds the rest.Config of src (apiendpoint.Choose): the
// kubeconfig's, its server replaced by src.Server when set; or the service
// account's in saDir against src.Server, as rest.InClusterConfig builds it
// for the service address (the token file is re-read as kubelet rotates
// it).
func RESTConfig(src apiendpoint.Source, saDir string) (*rest.Config, error) {
	if src.Kubeconfig != "" {
		cfg, err := restConfigFromKubeconfig(src.Kubeconfig)
		if err != nil {
			return nil, err
		}
		if src.Server != "" {
			cfg.Host = src.Server
		}
		return cfg, nil
	}
	if src.Server == "" {
		return nil, fmt.Errorf("no API server address: pass --api-server or --kubeconfig")
	}
	tokenFile, caFile := filepath.Join(saDir, "token"), filepath.Join(saDir, "ca.crt")
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("service account token for %s: %w", src.Server, err)
	}
	if _, err := os.Stat(caFile); err != nil {
		return nil, fmt.Errorf("service account CA for %s: %w", src.Server, err)
	}
	return &rest.Config{
		Host:            src.Server,
		BearerToken:     strings.TrimSpace(string(token)),
		BearerTokenFile: tokenFile,
		TLSClientConfig: rest.TLSClientConfig{CAFile: caFile},
	}, nil
}
