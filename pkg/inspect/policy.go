package inspect

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/plexus-cni/plexus/pkg/netpol"
)

// PodPolicy is the MultiNetworkPolicy table of one container of a pod.
type PodPolicy struct {
	ContainerID string `json:"containerID"`
	NetNS       string `json:"netns"`
	// Table is `nft list table inet plexus` in the netns, "" when no
	// policy filters any of the pod's interfaces.
	Table string `json:"table"`
	Error string `json:"error,omitempty"`
}

// Policy reads the plexus table of every sandbox of pod ("ns/name").
func (n *Node) Policy(ctx context.Context, pod string) ([]PodPolicy, error) {
	ns, name, ok := strings.Cut(pod, "/")
	if !ok || ns == "" || name == "" {
		return nil, fmt.Errorf("pod %q: want namespace/name", pod)
	}
	cs, err := n.cacheContainers()
	if err != nil {
		return nil, err
	}
	var out []PodPolicy
	for _, c := range cs {
		if c.Pod.Namespace != ns || c.Pod.Name != name || c.NetNS == "" {
			continue
		}
		p := PodPolicy{ContainerID: c.ContainerID, NetNS: c.NetNS}
		if p.Table, err = netpol.Dump(ctx, c.NetNS); err != nil {
			p.Error = err.Error()
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("pod %s: plexus attached no sandbox of it on this node", pod)
	}
	return out, nil
}

func runPolicy(ctx context.Context, n *Node, pod string, stdout io.Writer, asJSON bool) error {
	ps, err := n.Policy(ctx, pod)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, struct {
			Pod        string      `json:"pod"`
			Containers []PodPolicy `json:"containers"`
		}{pod, ps})
	}
	for _, p := range ps {
		fmt.Fprintf(stdout, "container %s (netns %s):\n", p.ContainerID, p.NetNS)
		switch {
		case p.Error != "":
			fmt.Fprintf(stdout, "  error: %s\n", p.Error)
		case p.Table == "":
			fmt.Fprintln(stdout, "  no MultiNetworkPolicy filters its interfaces (no table inet plexus)")
		default:
			fmt.Fprint(stdout, p.Table)
		}
	}
	return nil
}
