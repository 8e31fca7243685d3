// Package apiendpoint decides where plexus's node agents (plexusd,
// plexus-install's kubeconfig, sriov-dra-driver) reach the Kubernetes API:
// a kubeconfig, an --api-server address, or the in-cluster address kubelet
// puts in KUBERNETES_SERVICE_HOST/PORT. On clusters without kube-proxy those
// variables name a service address nothing routes (or are unset), so the
// operator names the control plane's address instead (docs/configuration.md).
// It has no dependencies, so plexus-install stays without client-go.
package apiendpoint

import (
	"fmt"
	"net"
	"net/url"
)

// Source is where to reach the API server and with which credentials: a
// kubeconfig file (its server replaced by Server when that is set), or the
// pod's service account against Server.
type Source struct {
	Kubeconfig string
	Server     string
}

// Choose decides the Source from the flags (--kubeconfig, --api-server) and
// the KUBERNETES_SERVICE_HOST/PORT variables: a kubeconfig wins (with
// --api-server replacing its server), --api-server replaces the service's
// address, and without either the variables give the in-cluster address.
func Choose(kubeconfig, apiServer, envHost, envPort string) (Source, error) {
	if apiServer != "" {
		if err := CheckURL(apiServer); err != nil {
			return Source{}, err
		}
	}
	if kubeconfig != "" || apiServer != "" {
		return Source{Kubeconfig: kubeconfig, Server: apiServer}, nil
	}
	s := FromEnv(envHost, envPort)
	if s == "" {
		return Source{}, fmt.Errorf("no API server address: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set; pass --api-server=https://<host>:<port> (the control plane's address) or --kubeconfig")
	}
	return Source{Server: s}, nil
}

// FromEnv is the in-cluster address from KUBERNETES_SERVICE_HOST and
// KUBERNETES_SERVICE_PORT's values, "" when either is empty.
func FromEnv(host, port string) string {
	if host == "" || port == "" {
		return ""
	}
	return "https://" + net.JoinHostPort(host, port)
}

// CheckURL accepts an --api-server of the form https://<host>[:<port>].
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("--api-server %q: want https://<host>:<port>", s)
	}
	return nil
}
