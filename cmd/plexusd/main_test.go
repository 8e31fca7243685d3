package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

// Without KUBERNETES_SERVICE_HOST/PORT (a cluster without kube-proxy, or
// plexusd run outside a pod) and without --api-server or --kubeconfig,
// plexusd stops at once with an error naming the flag to set; a malformed
// --api-server is refused naming itself.
func TestAPIServerChoice(t *testing.T) {
	bin := testutil.BuildBinary(t, "plexusd")
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set; pass --api-server=https://<host>:<port>"},
		{[]string{"--api-server=192.0.2.10:6443"}, `--api-server "192.0.2.10:6443": want https://<host>:<port>`},
	} {
		cmd := exec.Command(bin, append(c.args, "--node-name=n1", "--metrics-address=", "--socket="+t.TempDir()+"/s.sock")...)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%v: err %v, output lacks %q:\n%s", c.args, err, c.want, out)
		}
	}
}
