package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// plexusd in its own mount namespace, its netns directory a private bind
// mount (what a container gets when the host's /run/netns is not shared
// and the runtime does not refuse): /readyz answers 503 naming it.
func TestReadyzNamesPrivateNetnsMount(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.BuildBinary(t, "plexusd")
	dir := t.TempDir()
	netns := filepath.Join(dir, "netns")
	if err := os.Mkdir(netns, 0o755); err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", `mount --bind "$0" "$0" && exec "$@"`, netns,
		bin, "--kubeconfig", kc, "--node-name", "n1", "--socket", filepath.Join(dir, "d.sock"), "--metrics-address", addr,
		"--netns-dir", netns, "--cni-dir", filepath.Join(dir, "cni"), "--cni-config", "-")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	want := netns + " is not a shared mount on the host: "
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), want) {
			t.Logf("/readyz: %s", b)
			return
		}
	}
	t.Fatalf("/readyz: %s, want 503 with %q\n%s", last, want, out.String())
}
