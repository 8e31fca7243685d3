// Package cluster is plexus's local Kubernetes test harness: a real etcd and
// kube-apiserver on loopback (ControlPlane) and a real kubelet + containerd +
// runc node (Node) on this machine, from the binaries `make k8s` builds into
// bin/k8s/.
//
// Tests share one control plane and one node per test binary through Shared
// and SharedNode; TestMain must hand over to Main, which stops them after the
// tests, on SIGINT/SIGTERM, and a minute before `go test -timeout` fires:
//
//	func TestMain(m *testing.M) { cluster.Main(m) }
//
//	cp := cluster.Shared(t)                       // etcd + kube-apiserver, NAD CRD, plexus RBAC
//	kubeconfig, _ := cp.ServiceAccountKubeconfig("kube-system", "plexus")
//	node := cluster.SharedNode(t, cluster.NodeOptions{CNIBinDir: dir, CNIConfDir: conf})
//
// Pods on the node: spec.nodeName = node.Name, automountServiceAccountToken
// false, image cluster.BusyboxImage with imagePullPolicy Never (no registry);
// namespaces other than default and kube-system need cp.CreateNamespace (it
// adds the `default` ServiceAccount; no controller-manager runs).
//
// One node runs per machine (kubelet's device-plugin directory is fixed):
// StartNode waits on a machine-wide lock while another test binary's node
// runs, and refuses to start beside `make cluster-up`'s node. State that a
// killed test binary leaves behind is reaped by the next start.
//
// Every component logs to a file in its state directory; on failure Main
// prints their tails, and PLEXUS_E2E_KEEP_LOGS=<dir> keeps a copy of every
// log when the cluster is torn down.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Timeouts of the harness's waits.
const (
	etcdReadyTimeout      = 30 * time.Second
	apiserverReadyTimeout = 90 * time.Second
	crdTimeout            = 30 * time.Second
	stopGrace             = 15 * time.Second
	kubectlTimeout        = 2 * time.Minute
)

// Options configures StartControlPlane.
type Options struct {
	// Dir holds all the control plane's state (PKI, kubeconfigs, logs, etcd
	// data). Empty: a fresh temporary directory, removed by Stop. When set, it
	// is created and emptied; Stop removes it too.
	Dir string
	// Detached marks a control plane that outlives the process starting it
	// (localcluster up): stale-state reaping leaves it alone.
	Detached bool
	// SkipManifests skips applying deployments/crd.yaml and plexus's RBAC.
	SkipManifests bool
}

// ControlPlane is an etcd and a kube-apiserver on loopback.
type ControlPlane struct {
	Dir             string // state directory
	Server          string // https://127.0.0.1:<port>
	AdminKubeconfig string // kubeconfig with a system:masters token
	CACertFile      string // the cluster CA (also signs the node's client cert)

	state cpState
	pki   *pki
	mu    sync.Mutex
	etcd  *process
	api   *process
	// kube-scheduler and kube-controller-manager, when StartControllers ran.
	sched, kcm *process
}

// cpState is what Stop needs, persisted in Dir/state.json so that another
// process (localcluster down, stale-state reaping) can stop the cluster.
type cpState struct {
	Owner         int        `json:"owner"`
	Detached      bool       `json:"detached"`
	EtcdDataDir   string     `json:"etcdDataDir"`
	EtcdPort      int        `json:"etcdPort"`
	EtcdPeerPort  int        `json:"etcdPeerPort"`
	APIServerPort int        `json:"apiserverPort"`
	AdminToken    string     `json:"adminToken"`
	Processes     []*process `json:"processes"`
}

const stateFile = "state.json"

// K8sBinDir is where `make k8s` puts the cluster's binaries.
func K8sBinDir() string { return filepath.Join(RepoRoot(), "bin", "k8s") }

// RepoRoot is the directory holding plexus's go.mod.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// k8sBin returns the path of a cluster binary, or an error telling to run
// `make k8s`.
func k8sBin(name string) (string, error) {
	p := filepath.Join(K8sBinDir(), name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s is missing: run `make k8s` (builds kube-apiserver, kubelet, kubectl, containerd into bin/k8s/): %w", p, err)
	}
	return p, nil
}

// StartControlPlane generates a PKI, starts etcd and kube-apiserver on free
// loopback ports, waits for /readyz, then applies the NAD CRD (waiting for
// Established), creates the default ServiceAccounts and applies plexus's RBAC
// from deployments/plexus.yaml when that file exists. On error everything
// already started is stopped and removed.
func StartControlPlane(opts Options) (*ControlPlane, error) {
	reapStale()
	for _, b := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if _, err := k8sBin(b); err != nil {
			return nil, err
		}
	}
	for attempt := 1; ; attempt++ {
		c, err := startControlPlane(opts)
		// A free port found may be taken by someone else before our
		// component binds it: start again on other ports.
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return c, err
		}
	}
}

func startControlPlane(opts Options) (*ControlPlane, error) {
	dir := opts.Dir
	var err error
	if dir == "" {
		if dir, err = os.MkdirTemp("", "plexus-cp-"); err != nil {
			return nil, err
		}
	} else {
		if dir, err = filepath.Abs(dir); err != nil {
			return nil, err
		}
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	c := &ControlPlane{Dir: dir, CACertFile: filepath.Join(dir, "pki", "ca.crt"), AdminKubeconfig: filepath.Join(dir, "admin.kubeconfig")}
	c.state.Owner = os.Getpid()
	c.state.Detached = opts.Detached
	if err := c.start(opts); err != nil {
		logs := c.logTails()
		if serr := c.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, fmt.Errorf("start control plane: %w\n%s", err, logs)
	}
	return c, nil
}

func (c *ControlPlane) start(opts Options) error {
	var err error
	if c.pki, err = generatePKI(filepath.Join(c.Dir, "pki")); err != nil {
		return fmt.Errorf("PKI: %w", err)
	}
	c.state.AdminToken = c.pki.AdminToken
	c.state.EtcdDataDir = filepath.Join(c.Dir, "etcd")
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		// etcd 3.4 fsyncs every write; tmpfs makes it cheap.
		if d, err := os.MkdirTemp("/dev/shm", "plexus-etcd-"); err == nil {
			c.state.EtcdDataDir = d
		}
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	c.state.EtcdPort, c.state.EtcdPeerPort, c.state.APIServerPort = ports[0], ports[1], ports[2]
	c.Server = fmt.Sprintf("https://127.0.0.1:%d", c.state.APIServerPort)
	if err := c.writeState(); err != nil {
		return err
	}
	if err := writeKubeconfig(c.AdminKubeconfig, c.Server, c.CACertFile, "admin", c.pki.AdminToken, "", ""); err != nil {
		return err
	}
	if err := c.startEtcd(); err != nil {
		return err
	}
	if err := c.StartAPIServer(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return c.bootstrap(ctx, opts)
}

func (c *ControlPlane) startEtcd() error {
	bin, _ := k8sBin("etcd")
	client := fmt.Sprintf("http://127.0.0.1:%d", c.state.EtcdPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", c.state.EtcdPeerPort)
	p, err := startProcess("etcd", bin, []string{
		"--name=plexus", "--data-dir=" + c.state.EtcdDataDir,
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=plexus=" + peer, "--logger=zap", "--log-level=warn",
	}, filepath.Join(c.Dir, "etcd.log"), nil)
	if err != nil {
		return err
	}
	c.etcd = p
	if err := c.writeState(); err != nil {
		return err
	}
	return waitFor("etcd", etcdReadyTimeout, 50*time.Millisecond, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("etcd exited")
		}
		resp, err := http.Get(client + "/health")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// StartAPIServer (re)starts kube-apiserver on the control plane's port and
// data, waiting for /readyz.
func (c *ControlPlane) StartAPIServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api != nil && !c.api.exited() {
		return fmt.Errorf("kube-apiserver already running (pid %d)", c.api.Pid)
	}
	bin, err := k8sBin("kube-apiserver")
	if err != nil {
		return err
	}
	p := c.pki
	args := []string{
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", c.state.EtcdPort),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", c.state.APIServerPort),
		"--tls-cert-file=" + p.ServerCert, "--tls-private-key-file=" + p.ServerKey,
		"--client-ca-file=" + p.CACert, "--token-auth-file=" + p.TokenFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.SAPub, "--service-account-signing-key-file=" + p.SAKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC", "--allow-privileged=true",
		"--endpoint-reconciler-type=none", "--kubelet-preferred-address-types=InternalIP",
		"--profiling=false", "--enable-priority-and-fairness=false",
		"--cert-dir=" + filepath.Join(c.Dir, "apiserver-certs"),
		"--v=1",
	}
	api, err := startProcess("kube-apiserver", bin, args, filepath.Join(c.Dir, "kube-apiserver.log"), nil)
	if err != nil {
		return err
	}
	c.api = api
	if err := c.writeState(); err != nil {
		return err
	}
	if err := c.waitReady(api); err != nil {
		return fmt.Errorf("%w\n%s", err, tail(api.Log, 30))
	}
	return nil
}

func (c *ControlPlane) waitReady(api *process) error {
	hc, err := c.httpClient()
	if err != nil {
		return err
	}
	return waitFor("kube-apiserver /readyz", apiserverReadyTimeout, 100*time.Millisecond, func() (bool, error) {
		if api.exited() {
			return false, fmt.Errorf("kube-apiserver exited")
		}
		req, _ := http.NewRequest(http.MethodGet, c.Server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.state.AdminToken)
		resp, err := hc.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

func (c *ControlPlane) httpClient() (*http.Client, error) {
	ca, err := os.ReadFile(c.CACertFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

// StopAPIServer stops kube-apiserver, leaving etcd (and the data) running.
func (c *ControlPlane) StopAPIServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api == nil {
		return nil
	}
	return c.api.stop(stopGrace)
}

// RestConfig is an admin (system:masters) client configuration.
func (c *ControlPlane) RestConfig() *rest.Config {
	return &rest.Config{
		Host:            c.Server,
		BearerToken:     c.state.AdminToken,
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.CACertFile},
		QPS:             200,
		Burst:           400,
		Timeout:         30 * time.Second,
	}
}

// Clientset is an admin clientset (a convenience for tests).
func (c *ControlPlane) Clientset() (*kubernetes.Clientset, error) {
	return kubernetes.NewForConfig(c.RestConfig())
}

// Kubectl runs kubectl with the admin kubeconfig; the error carries its output.
func (c *ControlPlane) Kubectl(args ...string) ([]byte, error) {
	bin, err := k8sBin("kubectl")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig=" + c.AdminKubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// ApplyFile runs `kubectl apply -f path`.
func (c *ControlPlane) ApplyFile(path string) error {
	_, err := c.Kubectl("apply", "-f", path)
	return err
}

// CreateNamespace creates namespace ns (if missing) with its `default`
// ServiceAccount, which pods need because no controller-manager runs.
func (c *ControlPlane) CreateNamespace(ctx context.Context, ns string) error {
	cs, err := c.Clientset()
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	return ensureServiceAccount(ctx, cs, ns, "default")
}

func ensureServiceAccount(ctx context.Context, cs kubernetes.Interface, ns, name string) error {
	return waitFor(fmt.Sprintf("serviceaccount %s/%s", ns, name), 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			return true, nil
		}
		return false, err // e.g. the namespace is not created yet
	})
}

// ServiceAccountKubeconfig requests a bound token (TokenRequest, 1 h) for
// ServiceAccount ns/sa and writes it as a kubeconfig; it returns the file's
// path, which is the same for every call with the same ns/sa: calling it again
// replaces the token in place (atomically), as a token rotation would.
func (c *ControlPlane) ServiceAccountKubeconfig(ns, sa string) (string, error) {
	cs, err := c.Clientset()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exp := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for serviceaccount %s/%s: %w", ns, sa, err)
	}
	path := filepath.Join(c.Dir, "kubeconfigs", ns+"-"+sa+".kubeconfig")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	user := "system:serviceaccount:" + ns + ":" + sa
	if err := writeKubeconfig(path, c.Server, c.CACertFile, user, tr.Status.Token, "", ""); err != nil {
		return "", err
	}
	return path, nil
}

// Stop stops kube-apiserver, then etcd (the other order hangs the
// apiserver's shutdown), and removes the state directory and etcd's data.
func (c *ControlPlane) Stop() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, p := range []*process{c.sched, c.kcm, c.api, c.etcd} {
		if p != nil {
			if err := p.stop(stopGrace); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if d := c.state.EtcdDataDir; d != "" {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	keepLogs(c.Dir)
	if err := os.RemoveAll(c.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// LogTails returns the last lines of etcd's and kube-apiserver's logs.
func (c *ControlPlane) LogTails() string { return c.logTails() }

func (c *ControlPlane) logTails() string {
	var b strings.Builder
	for _, n := range []string{"etcd.log", "kube-apiserver.log", "kube-scheduler.log", "kube-controller-manager.log"} {
		if _, err := os.Stat(filepath.Join(c.Dir, n)); err == nil {
			b.WriteString(tail(filepath.Join(c.Dir, n), 25))
			b.WriteString("\n")
		}
	}
	return b.String()
}

func (c *ControlPlane) writeState() error {
	c.state.Processes = nil
	for _, p := range []*process{c.etcd, c.api, c.sched, c.kcm} {
		if p != nil {
			c.state.Processes = append(c.state.Processes, p)
		}
	}
	b, err := json.MarshalIndent(c.state, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.Dir, stateFile), b, 0o600)
}

// AttachControlPlane re-attaches to a control plane started (detached) by
// another process from its state directory, so that it can be used or
// stopped.
func AttachControlPlane(dir string) (*ControlPlane, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("no control plane state in %s: %w", dir, err)
	}
	c := &ControlPlane{Dir: dir, CACertFile: filepath.Join(dir, "pki", "ca.crt"), AdminKubeconfig: filepath.Join(dir, "admin.kubeconfig")}
	if err := json.Unmarshal(b, &c.state); err != nil {
		return nil, fmt.Errorf("control plane state %s: %w", dir, err)
	}
	c.Server = fmt.Sprintf("https://127.0.0.1:%d", c.state.APIServerPort)
	c.pki = pkiPaths(filepath.Join(dir, "pki"))
	c.pki.AdminToken = c.state.AdminToken
	for _, p := range c.state.Processes {
		switch p.Name {
		case "etcd":
			c.etcd = p
		case "kube-apiserver":
			c.api = p
		case "kube-scheduler":
			c.sched = p
		case "kube-controller-manager":
			c.kcm = p
		}
	}
	return c, nil
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeKubeconfig writes a kubeconfig authenticating either with a bearer
// token or with a client certificate.
func writeKubeconfig(path, server, caFile, user, token, certFile, keyFile string) error {
	cred := fmt.Sprintf("    token: %s\n", token)
	if token == "" {
		cred = fmt.Sprintf("    client-certificate: %s\n    client-key: %s\n", certFile, keyFile)
	}
	s := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: plexus-test
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %q
  user:
%scontexts:
- name: plexus-test
  context:
    cluster: plexus-test
    user: %q
current-context: plexus-test
`, server, caFile, user, cred, user)
	return writeFileAtomic(path, []byte(s), 0o600)
}
