// Package scenarios holds plexus's end-to-end scenarios: pods created
// through the API get their extra interfaces and network-status from plexus
// as the node's CNI, and deleting them cleans up. They drive any cluster
// through kubectl and a kubeconfig, so the same code runs on a kind cluster
// (e2e/kind/run.sh) and on the local kubelet+containerd node of make test.
package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Env is a cluster to run scenarios on.
type Env struct {
	Kubectl    string // kubectl binary
	Kubeconfig string // admin kubeconfig
	Namespace  string // created by Setup, deleted by Teardown
	Image      string // pod image with sh, sleep and ip (busybox)
	PullPolicy string // imagePullPolicy of the pods ("" = IfNotPresent)
	NodeName   string // pin pods to this node ("" = let the scheduler choose)
	// MacvlanMaster is the node interface macvlan networks sit on.
	MacvlanMaster string
	// Whereabouts: how the cluster's whereabouts IPAM is set up.
	Whereabouts WhereaboutsEnv
	// Node reaches the nodes' host side, for what a deleted pod may leave
	// there and for static pods. nil: those checks are skipped.
	Node Node
	// Timeout bounds each wait (pod Running, pod gone); default 2 minutes.
	Timeout time.Duration
	// Logf reports progress (e.g. t.Logf); may be nil.
	Logf func(format string, args ...any)
}

// Node is the host side of a cluster's nodes.
type Node interface {
	// Leftovers lists what the deleted pods (names in namespace) left on
	// node: host-local leases of the CNI networks, ports of the bridges,
	// plexus cache entries.
	Leftovers(ctx context.Context, node, namespace string, pods, networks, bridges []string) ([]string, error)
	// PutStaticPod writes a static pod manifest (file name) into the
	// kubelet's staticPodPath on node; ErrNoStaticPods when it has none.
	PutStaticPod(ctx context.Context, node, file string, manifest []byte) error
	// RemoveStaticPod removes it.
	RemoveStaticPod(ctx context.Context, node, file string) error
}

// ErrNoStaticPods: the node's kubelet has no staticPodPath.
var ErrNoStaticPods = errors.New("the kubelet has no staticPodPath")

// checkLeftovers fails when deleted pods left something on their node.
func (e *Env) checkLeftovers(ctx context.Context, node string, pods, networks, bridges []string) error {
	if e.Node == nil {
		e.logf("no node access: not checking what pods %v left on their node", pods)
		return nil
	}
	left, err := e.Node.Leftovers(ctx, node, e.Namespace, pods, networks, bridges)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("deleted pods %v left on node %s: %s", pods, node, strings.Join(left, "; "))
	}
	return nil
}

func (e *Env) logf(format string, args ...any) {
	if e.Logf != nil {
		e.Logf(format, args...)
	}
}

func (e *Env) timeout() time.Duration {
	if e.Timeout > 0 {
		return e.Timeout
	}
	return 2 * time.Minute
}

// kubectl runs kubectl with the Env's kubeconfig, stdin if non-empty.
func (e *Env) kubectl(ctx context.Context, stdin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Kubectl, append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// Setup creates the namespace and its default ServiceAccount (which a
// cluster without controller-manager lacks).
func (e *Env) Setup(ctx context.Context) error {
	if _, err := e.kubectl(ctx, "", "create", "namespace", e.Namespace); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		return err
	}
	if _, err := e.kubectl(ctx, "", "-n", e.Namespace, "create", "serviceaccount", "default"); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		return err
	}
	return nil
}

// Teardown deletes the pods (waiting until they are gone: their DELs run)
// and NADs the scenarios left, then the namespace without waiting for it (a
// cluster without controller-manager never finalizes a namespace).
func (e *Env) Teardown(ctx context.Context) error {
	if _, err := e.kubectl(ctx, "", "-n", e.Namespace, "delete", "pods,network-attachment-definitions", "--all",
		"--wait=true", "--ignore-not-found", "--timeout="+e.timeout().String()); err != nil {
		return err
	}
	_, err := e.kubectl(ctx, "", "delete", "namespace", e.Namespace, "--wait=false", "--ignore-not-found")
	return err
}

// apply applies objects (JSON or YAML) in the Env's namespace.
func (e *Env) apply(ctx context.Context, manifest string) error {
	_, err := e.kubectl(ctx, manifest, "-n", e.Namespace, "apply", "-f", "-")
	return err
}

// nad returns a NetworkAttachmentDefinition manifest.
func nad(name, config string, annotations map[string]string) string {
	m := map[string]any{
		"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
		"metadata": map[string]any{"name": name, "annotations": annotations},
		"spec":     map[string]any{"config": config},
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// pod returns a pod manifest that sleeps, with the networks annotation.
func (e *Env) pod(name, networks string) string {
	policy := corev1.PullPolicy(e.PullPolicy)
	if policy == "" {
		policy = corev1.PullIfNotPresent
	}
	// A grace period above 0 keeps the pod in the API until kubelet has
	// killed it, which includes tearing down its sandbox (plexus's DEL):
	// once the object is gone, its addresses are free. (With 0 the object
	// goes at once and the DEL happens later.)
	grace := int64(1)
	no := false
	p := corev1.Pod{
		TypeMeta: metaType("v1", "Pod"),
		Spec: corev1.PodSpec{
			NodeName:                      e.NodeName,
			AutomountServiceAccountToken:  &no,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "app", Image: e.Image, ImagePullPolicy: policy,
				Command: []string{"sleep", "3600"},
			}},
		},
	}
	p.Name = name
	if networks != "" {
		p.Annotations = map[string]string{NetworksAnnotation: networks}
	}
	b, _ := json.Marshal(p)
	return string(b)
}

// getPod reads a pod.
func (e *Env) getPod(ctx context.Context, name string) (*corev1.Pod, error) {
	out, err := e.kubectl(ctx, "", "-n", e.Namespace, "get", "pod", name, "-o", "json")
	if err != nil {
		return nil, err
	}
	var p corev1.Pod
	if err := json.Unmarshal(out, &p); err != nil {
		return nil, fmt.Errorf("pod %s: %w", name, err)
	}
	return &p, nil
}

// waitRunning waits until the pod's container runs; on timeout the error
// carries the pod's events (where plexus's failures show).
func (e *Env) waitRunning(ctx context.Context, name string) (*corev1.Pod, error) {
	deadline := time.Now().Add(e.timeout())
	for {
		p, err := e.getPod(ctx, name)
		if err == nil && p.Status.Phase == corev1.PodRunning {
			return p, nil
		}
		if time.Now().After(deadline) {
			phase := "unknown"
			if p != nil {
				phase = string(p.Status.Phase)
			}
			return nil, fmt.Errorf("pod %s/%s not Running after %s (phase %s, last error %v); events:\n%s",
				e.Namespace, name, e.timeout(), phase, err, e.events(ctx, name))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// events lists the events of an object, one a line.
func (e *Env) events(ctx context.Context, name string) string {
	out, err := e.kubectl(ctx, "", "-n", e.Namespace, "get", "events", "--field-selector", "involvedObject.name="+name,
		"-o", `jsonpath={range .items[*]}{.type} {.reason}: {.message}{"\n"}{end}`)
	if err != nil {
		return err.Error()
	}
	return string(out)
}

// deletePod deletes a pod and waits until it is gone.
func (e *Env) deletePod(ctx context.Context, name string) error {
	_, err := e.kubectl(ctx, "", "-n", e.Namespace, "delete", "pod", name, "--wait=true", "--ignore-not-found",
		"--timeout="+e.timeout().String())
	return err
}

// exec runs a command in the pod's container.
func (e *Env) exec(ctx context.Context, pod string, cmd ...string) (string, error) {
	out, err := e.kubectl(ctx, "", append([]string{"-n", e.Namespace, "exec", pod, "--"}, cmd...)...)
	return string(out), err
}
