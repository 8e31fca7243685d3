package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
)

// localNode is the host side of the local kubelet+containerd node: this
// machine, where plexus keeps its cache in cacheDir.
type localNode struct {
	env      *Env
	cacheDir string
	// binDir and confDir are the node's CNI dirs (for PlexusGC).
	binDir, confDir string
}

// Leftovers: host-local leases under /var/lib/cni/networks/<network>,
// links enslaved to the bridges, plexus cache entries of the pods.
func (n *localNode) Leftovers(ctx context.Context, node, namespace string, pods, networks, bridges []string) ([]string, error) {
	var left []string
	for _, net := range networks {
		dir := filepath.Join("/var/lib/cni/networks", net)
		ents, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		for _, en := range ents {
			if name := en.Name(); name != "lock" && !strings.HasPrefix(name, "last_reserved_ip") {
				left = append(left, "IPAM lease "+filepath.Join(dir, name))
			}
		}
	}
	for _, br := range bridges {
		l, err := netlinksafe.LinkByName(br)
		if err != nil {
			continue // no bridge, no ports
		}
		links, err := netlinksafe.LinkList()
		if err != nil {
			return nil, err
		}
		for _, p := range links {
			if p.Attrs().MasterIndex == l.Attrs().Index {
				left = append(left, fmt.Sprintf("link %s on bridge %s", p.Attrs().Name, br))
			}
		}
	}
	intents, _ := filepath.Glob(filepath.Join(n.cacheDir, "containers", "*", "intent.json"))
	for _, f := range intents {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // removed meanwhile
		}
		var entry struct {
			PodNamespace string `json:"podNamespace"`
			PodName      string `json:"podName"`
		}
		if json.Unmarshal(b, &entry) == nil && entry.PodNamespace == namespace && contains(pods, entry.PodName) {
			left = append(left, fmt.Sprintf("plexus cache entry %s of pod %s/%s", filepath.Dir(f), namespace, entry.PodName))
		}
	}
	return left, nil
}

// PutStaticPod writes into the kubelet's staticPodPath (from its configz).
func (n *localNode) PutStaticPod(ctx context.Context, node, file string, manifest []byte) error {
	dir, err := n.env.StaticPodPath(ctx, node)
	if err != nil {
		return err
	}
	if dir == "" {
		return fmt.Errorf("node %s: %w", node, ErrNoStaticPods)
	}
	tmp := filepath.Join(dir, "."+file+".tmp") // kubelet ignores dot files
	if err := os.WriteFile(tmp, manifest, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, file))
}

func (n *localNode) RemoveStaticPod(ctx context.Context, node, file string) error {
	dir, err := n.env.StaticPodPath(ctx, node)
	if err != nil || dir == "" {
		return err
	}
	if err := os.Remove(filepath.Join(dir, file)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
