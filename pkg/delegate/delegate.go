// Package delegate runs the CNI plugins plexus delegates to, through libcni,
// with each attachment's interface name, CNI args and runtime config.
package delegate

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/plexus-cni/plexus/pkg/cache"
)

// Runner runs delegate conflists.
type Runner struct {
	cni *libcni.CNIConfig
}

// NewRunner finds plugins in path (binDir first, then CNI_PATH) and keeps
// libcni's per-attachment result cache under cacheDir.
func NewRunner(path []string, cacheDir string) *Runner {
	return &Runner{cni: libcni.NewCNIConfigWithCacheDir(path, cacheDir, nil)}
}

// List parses an attachment's cached conflist.
func List(a *cache.Attachment) (*libcni.NetworkConfigList, error) {
	l, err := libcni.NetworkConfFromBytes(a.ConfList)
	if err != nil {
		return nil, fmt.Errorf("network %q: cached delegate config: %v", a.Network, err)
	}
	return l, nil
}

func runtimeConf(e *cache.Entry, a *cache.Attachment) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID:    e.ContainerID,
		NetNS:          e.NetNS,
		IfName:         a.IfName,
		Args:           a.CNIArgs,
		CapabilityArgs: a.CapabilityArgs,
	}
}

// Add runs ADD for one attachment.
func (r *Runner) Add(ctx context.Context, e *cache.Entry, a *cache.Attachment) (types.Result, error) {
	l, err := List(a)
	if err != nil {
		return nil, err
	}
	res, err := r.cni.AddNetworkList(ctx, l, runtimeConf(e, a))
	if err != nil {
		return nil, fmt.Errorf("network %q (interface %s): delegate %s: %w", a.Network, a.IfName, pluginTypes(l), err)
	}
	return res, nil
}

// Del runs DEL for one attachment.
func (r *Runner) Del(ctx context.Context, e *cache.Entry, a *cache.Attachment) error {
	l, err := List(a)
	if err != nil {
		return err
	}
	if err := r.cni.DelNetworkList(ctx, l, runtimeConf(e, a)); err != nil {
		return fmt.Errorf("network %q (interface %s): delegate %s: %w", a.Network, a.IfName, pluginTypes(l), err)
	}
	return nil
}

// Check runs CHECK for one attachment; delegates older than 0.4.0 have no
// CHECK and are skipped.
func (r *Runner) Check(ctx context.Context, e *cache.Entry, a *cache.Attachment) error {
	l, err := List(a)
	if err != nil {
		return err
	}
	if !atLeast(l.CNIVersion, "0.4.0") {
		return nil
	}
	if err := r.cni.CheckNetworkList(ctx, l, runtimeConf(e, a)); err != nil {
		return fmt.Errorf("network %q (interface %s): delegate %s: %w", a.Network, a.IfName, pluginTypes(l), err)
	}
	return nil
}

// GC runs GC on a delegate conflist with the attachments still valid for it.
func (r *Runner) GC(ctx context.Context, l *libcni.NetworkConfigList, valid []types.GCAttachment) error {
	return r.cni.GCNetworkList(ctx, l, &libcni.GCArgs{ValidAttachments: valid})
}

// Status runs STATUS on a delegate conflist.
func (r *Runner) Status(ctx context.Context, l *libcni.NetworkConfigList) error {
	return r.cni.GetStatusNetworkList(ctx, l)
}

// Capabilities is the union of the capabilities the conflist's plugins declare.
func Capabilities(l *libcni.NetworkConfigList) map[string]bool {
	caps := map[string]bool{}
	for _, p := range l.Plugins {
		for k, v := range p.Network.Capabilities {
			if v {
				caps[k] = true
			}
		}
	}
	return caps
}

// Inject sets top-level keys in every plugin of a conflist (deviceID, and
// "args": {"cni": …} from the selection's cni-args) and returns the new
// conflist bytes.
func Inject(l *libcni.NetworkConfigList, deviceID string, cniArgs map[string]any) ([]byte, error) {
	if deviceID == "" && cniArgs == nil {
		return l.Bytes, nil
	}
	var top map[string]any
	if err := json.Unmarshal(l.Bytes, &top); err != nil {
		return nil, err
	}
	plugins, _ := top["plugins"].([]any)
	for _, p := range plugins {
		pm, ok := p.(map[string]any)
		if !ok {
			continue
		}
		if deviceID != "" {
			pm["deviceID"] = deviceID
		}
		if cniArgs != nil {
			args, _ := pm["args"].(map[string]any)
			if args == nil {
				args = map[string]any{}
			}
			cni, _ := args["cni"].(map[string]any)
			if cni == nil {
				cni = map[string]any{}
			}
			for k, v := range cniArgs {
				cni[k] = v
			}
			args["cni"] = cni
			pm["args"] = args
		}
	}
	return json.Marshal(top)
}

func pluginTypes(l *libcni.NetworkConfigList) string {
	ts := make([]string, 0, len(l.Plugins))
	for _, p := range l.Plugins {
		ts = append(ts, p.Network.Type)
	}
	return strings.Join(ts, "+")
}

func atLeast(v, min string) bool {
	parse := func(s string) [3]int {
		var out [3]int
		fmt.Sscanf(s, "%d.%d.%d", &out[0], &out[1], &out[2])
		return out
	}
	a, b := parse(v), parse(min)
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return true
}

// SortedKeys is a small helper for error messages.
func SortedKeys(m map[string]bool) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
