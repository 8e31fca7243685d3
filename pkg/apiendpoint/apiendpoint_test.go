package apiendpoint

import (
	"strings"
	"testing"
)

func TestChoose(t *testing.T) {
	for _, c := range []struct {
		name                         string
		kubeconfig, server, host, pt string
		want                         Source
		wantErr                      string
	}{
		{"in-cluster", "", "", "10.96.0.1", "443", Source{Server: "https://10.96.0.1:443"}, ""},
		{"in-cluster IPv6", "", "", "fd00::1", "443", Source{Server: "https://[fd00::1]:443"}, ""},
		{"flag over the service address", "", "https://192.0.2.10:6443", "10.96.0.1", "443", Source{Server: "https://192.0.2.10:6443"}, ""},
		{"flag without the variables", "", "https://cp.example:6443", "", "", Source{Server: "https://cp.example:6443"}, ""},
		{"kubeconfig", "/etc/kubernetes/kubelet.conf", "", "", "", Source{Kubeconfig: "/etc/kubernetes/kubelet.conf"}, ""},
		{"kubeconfig with a server", "/k.conf", "https://192.0.2.10:6443", "10.96.0.1", "443", Source{Kubeconfig: "/k.conf", Server: "https://192.0.2.10:6443"}, ""},
		{"nothing", "", "", "", "", Source{}, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set; pass --api-server="},
		{"host without port", "", "", "10.96.0.1", "", Source{}, "pass --api-server="},
		{"no scheme", "", "192.0.2.10:6443", "", "", Source{}, `--api-server "192.0.2.10:6443": want https://`},
		{"http", "", "http://192.0.2.10:6443", "", "", Source{}, "want https://"},
		{"path", "", "https://192.0.2.10:6443/api", "", "", Source{}, "want https://"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Choose(c.kubeconfig, c.server, c.host, c.pt)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("got %+v, %v; want error %q", got, err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}
