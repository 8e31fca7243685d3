package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// controllersReadyTimeout bounds the wait for kube-scheduler's and
// kube-controller-manager's /healthz.
const controllersReadyTimeout = 60 * time.Second

// StartControllers starts kube-scheduler and kube-controller-manager (only
// the resourceclaim controller, which makes ResourceClaims from a pod's
// ResourceClaimTemplates and releases them after the pod, and the garbage
// collector, which deletes them with their pod) on this control
// plane, with the admin credentials, and waits for their /healthz. Tests
// that need the real scheduler — DRA allocation from ResourceSlices — call
// it; the others do not pay for it. It returns at once when both already
// run; Stop stops them with the control plane.
func (c *ControlPlane) StartControllers() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sched != nil && !c.sched.exited() && c.kcm != nil && !c.kcm.exited() {
		return nil
	}
	for _, b := range []string{"kube-scheduler", "kube-controller-manager"} {
		if _, err := k8sBin(b); err != nil {
			return err
		}
	}
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	common := func(port int, name string) []string {
		return []string{
			"--kubeconfig=" + c.AdminKubeconfig,
			"--authentication-kubeconfig=" + c.AdminKubeconfig,
			"--authorization-kubeconfig=" + c.AdminKubeconfig,
			"--leader-elect=false", "--bind-address=127.0.0.1",
			fmt.Sprintf("--secure-port=%d", port),
			"--cert-dir=" + filepath.Join(c.Dir, name+"-certs"),
			"--v=1",
		}
	}
	start := func(name string, port int, extra ...string) (*process, error) {
		bin, _ := k8sBin(name)
		p, err := startProcess(name, bin, append(common(port, name), extra...), filepath.Join(c.Dir, name+".log"), nil)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
	if c.sched, err = start("kube-scheduler", ports[0]); err != nil {
		return err
	}
	if c.kcm, err = start("kube-controller-manager", ports[1], "--controllers=resourceclaim-controller,garbage-collector-controller", "--use-service-account-credentials=false"); err != nil {
		return err
	}
	if err := c.writeState(); err != nil {
		return err
	}
	for i, p := range []*process{c.sched, c.kcm} {
		if err := waitHealthz(p, ports[i]); err != nil {
			return fmt.Errorf("%w\n%s", err, tail(p.Log, 30))
		}
	}
	return nil
}

func waitHealthz(p *process, port int) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
	return waitFor(p.Name+" /healthz", controllersReadyTimeout, 100*time.Millisecond, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("%s exited", p.Name)
		}
		resp, err := hc.Get(url)
		if err != nil {
			if strings.Contains(err.Error(), "connection refused") {
				return false, nil
			}
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// StopControllers stops kube-scheduler and kube-controller-manager (if
// running), so that a test that started them leaves the control plane as it
// found it: their watches would hold up an apiserver restart.
func (c *ControlPlane) StopControllers() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, p := range []*process{c.sched, c.kcm} {
		if p != nil {
			if err := p.stop(stopGrace); err != nil {
				errs = append(errs, err)
			}
		}
	}
	c.sched, c.kcm = nil, nil
	if err := c.writeState(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
