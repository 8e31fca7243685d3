package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"strings"
)

// kindNode is the host side of a kind cluster's nodes: Docker containers
// named like the nodes, reached with `docker exec`. plexus's cache is at the
// DaemonSet's cniDir (/var/lib/cni/plexus).
type kindNode struct {
	env    *Env
	docker string
}

func (n *kindNode) exec(ctx context.Context, node string, stdin []byte, script string) (string, error) {
	cmd := exec.CommandContext(ctx, n.docker, "exec", "-i", node, "sh", "-c", script)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("docker exec %s sh -c %q: %w: %s", node, script, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// quote quotes s for sh.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (n *kindNode) Leftovers(ctx context.Context, node, namespace string, pods, networks, bridges []string) ([]string, error) {
	var left []string
	for _, net := range networks {
		dir := path.Join("/var/lib/cni/networks", net)
		out, err := n.exec(ctx, node, nil, "ls -A "+quote(dir)+" 2>/dev/null || true")
		if err != nil {
			return nil, err
		}
		for _, name := range strings.Fields(out) {
			if name != "lock" && !strings.HasPrefix(name, "last_reserved_ip") {
				left = append(left, "IPAM lease "+path.Join(dir, name))
			}
		}
	}
	for _, br := range bridges {
		out, err := n.exec(ctx, node, nil, "ls /sys/class/net/"+quote(br)+"/brif 2>/dev/null || true")
		if err != nil {
			return nil, err
		}
		for _, p := range strings.Fields(out) {
			left = append(left, fmt.Sprintf("link %s on bridge %s", p, br))
		}
	}
	out, err := n.exec(ctx, node, nil, "cat /var/lib/cni/plexus/containers/*/intent.json 2>/dev/null || true")
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var entry struct {
			ContainerID  string `json:"containerID"`
			PodNamespace string `json:"podNamespace"`
			PodName      string `json:"podName"`
		}
		if err := dec.Decode(&entry); err != nil {
			if !errors.Is(err, io.EOF) {
				n.env.logf("node %s: reading plexus cache: %v", node, err)
			}
			break
		}
		if entry.PodNamespace == namespace && contains(pods, entry.PodName) {
			left = append(left, fmt.Sprintf("plexus cache entry of container %s (pod %s/%s)", entry.ContainerID, namespace, entry.PodName))
		}
	}
	return left, nil
}

func (n *kindNode) PutStaticPod(ctx context.Context, node, file string, manifest []byte) error {
	dir, err := n.env.StaticPodPath(ctx, node)
	if err != nil {
		return err
	}
	if dir == "" {
		return fmt.Errorf("node %s: %w", node, ErrNoStaticPods)
	}
	tmp := path.Join(dir, "."+file+".tmp")
	_, err = n.exec(ctx, node, manifest, "cat > "+quote(tmp)+" && mv "+quote(tmp)+" "+quote(path.Join(dir, file)))
	return err
}

func (n *kindNode) RemoveStaticPod(ctx context.Context, node, file string) error {
	dir, err := n.env.StaticPodPath(ctx, node)
	if err != nil || dir == "" {
		return err
	}
	_, err = n.exec(ctx, node, nil, "rm -f "+quote(path.Join(dir, file)))
	return err
}
