// Package delegate runs the CNI plugins plexus delegates to, through libcni,
// with each attachment's interface name, CNI args and runtime config.
package delegate

import (
	"time"

	"github.com/plexus-cni/plexus/pkg/podnet"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// Runner runs delegate conflists.
type Runner struct {
	cni  *libcni.CNIConfig
	path []string
	// Observe, when set, is told how long each delegate's ADD or DEL took
	// (plugins: the chain's types joined by "+").
	Observe func(command, plugins string, d time.Duration, err error)
}

func (r *Runner) observe(command string, l *libcni.NetworkConfigList, start time.Time, err error) {
	if r.Observe != nil {
		r.Observe(command, pluginTypes(l), time.Since(start), err)
	}
}

// NewRunner finds plugins in path (binDir first, then CNI_PATH) and keeps
// libcni's per-attachment result cache under cacheDir.
func NewRunner(path []string, cacheDir string) *Runner {
	return &Runner{cni: libcni.NewCNIConfigWithCacheDir(path, cacheDir, nil), path: path}
}

// List parses an attachment's cached conflist.
func List(a *podnet.Attachment) (*libcni.NetworkConfigList, error) {
	l, err := libcni.NetworkConfFromBytes(a.ConfList)
	if err != nil {
		return nil, fmt.Errorf("network %q: cached delegate config: %v", a.Network, err)
	}
	return l, nil
}

// RunList is the conflist an attachment runs: its resolved conflist with the
// allocated device (deviceID and pciBusID, as Multus sets them) and the
// selection's cni-args set in every plugin.
func RunList(a *podnet.Attachment) (*libcni.NetworkConfigList, error) {
	l, err := List(a)
	if err != nil || (a.DeviceID == "" && a.CNIArgsConf == nil) {
		return l, err
	}
	b, err := Inject(l, a.DeviceID, a.CNIArgsConf)
	if err != nil {
		return nil, fmt.Errorf("network %q: %v", a.Network, err)
	}
	return libcni.NetworkConfFromBytes(b)
}

func runtimeConf(e *podnet.Entry, a *podnet.Attachment) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID:    e.ContainerID,
		NetNS:          e.NetNS,
		IfName:         a.IfName,
		Args:           a.CNIArgs,
		CapabilityArgs: a.CapabilityArgs,
	}
}

// Add runs ADD for one attachment.
func (r *Runner) Add(ctx context.Context, e *podnet.Entry, a *podnet.Attachment) (types.Result, error) {
	l, err := RunList(a)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := r.cni.AddNetworkList(ctx, l, runtimeConf(e, a))
	r.observe("ADD", l, start, err)
	if err != nil {
		return nil, fmt.Errorf("network %q (interface %s): delegate %s: %w", a.Network, a.IfName, pluginTypes(l), err)
	}
	return res, nil
}

// Del runs DEL for one attachment: every plugin of its chain, in reverse
// order, even past one that fails (libcni's DelNetworkList stops at the
// first failure and so would leak what the earlier plugins made), and
// returns the errors together. A plugin whose binary does not exist is
// skipped when the attachment's ADD never completed: it created nothing.
func (r *Runner) Del(ctx context.Context, e *podnet.Entry, a *podnet.Attachment) error {
	l, err := RunList(a)
	if err != nil {
		return err
	}
	rt := runtimeConf(e, a)
	prev, err := r.prevResult(l, rt, a)
	if err != nil {
		return fmt.Errorf("network %q (interface %s): %w", a.Network, a.IfName, err)
	}
	var errs []error
	start := time.Now()
	defer func() { r.observe("DEL", l, start, errors.Join(errs...)) }()
	for i := len(l.Plugins) - 1; i >= 0; i-- {
		p := l.Plugins[i]
		bin, err := invoke.FindInPath(p.Network.Type, r.path)
		if err != nil {
			if len(a.Result) == 0 {
				continue // never ran ADD to completion: it made nothing
			}
			errs = append(errs, fmt.Errorf("plugin %q: %v", p.Network.Type, err))
			continue
		}
		conf, err := pluginConf(l, p, prev, rt)
		if err == nil {
			err = invoke.ExecPluginWithoutResult(ctx, bin, conf, r.args("DEL", rt), nil)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("plugin %q: %w", p.Network.Type, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("network %q (interface %s): delegate %s: DEL: %w", a.Network, a.IfName, pluginTypes(l), errors.Join(errs...))
	}
	// An empty list makes libcni drop its cached result of the attachment
	// and run nothing.
	_ = r.cni.DelNetworkList(ctx, &libcni.NetworkConfigList{Name: l.Name, CNIVersion: l.CNIVersion}, rt)
	return nil
}

// prevResult is the result DEL passes to each plugin (CNI 0.4.0 and later):
// libcni's cached result, else the one plexus recorded.
func (r *Runner) prevResult(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf, a *podnet.Attachment) (types.Result, error) {
	if ok, err := version.GreaterThanOrEqualTo(l.CNIVersion, "0.4.0"); err != nil || !ok {
		return nil, err
	}
	if res, err := r.cni.GetNetworkListCachedResult(l, rt); err == nil && res != nil {
		return res, nil
	}
	if len(a.Result) == 0 {
		return nil, nil
	}
	res, err := version.NewResult(l.CNIVersion, a.Result)
	if err != nil {
		return nil, nil // a result plexus cannot read is no reason to keep state
	}
	return res, nil
}

// pluginConf is what one plugin of a chain gets on stdin: the plugin's
// config with the list's name and cniVersion, prevResult, and the
// capability args it declares as runtimeConfig. libcni builds the same for
// its own list operations but does not export it for a single plugin.
func pluginConf(l *libcni.NetworkConfigList, p *libcni.PluginConfig, prev types.Result, rt *libcni.RuntimeConf) ([]byte, error) {
	inject := map[string]any{"name": l.Name, "cniVersion": l.CNIVersion}
	if prev != nil {
		inject["prevResult"] = prev
	}
	rc := map[string]any{}
	for c, on := range p.Network.Capabilities {
		if v, ok := rt.CapabilityArgs[c]; ok && on {
			rc[c] = v
		}
	}
	if len(rc) > 0 {
		inject["runtimeConfig"] = rc
	}
	out, err := libcni.InjectConf(p, inject)
	if err != nil {
		return nil, err
	}
	return out.Bytes, nil
}

func (r *Runner) args(command string, rt *libcni.RuntimeConf) *invoke.Args {
	return &invoke.Args{
		Command:     command,
		ContainerID: rt.ContainerID,
		NetNS:       rt.NetNS,
		PluginArgs:  rt.Args,
		IfName:      rt.IfName,
		Path:        strings.Join(r.path, string(os.PathListSeparator)),
	}
}

// Check runs CHECK for one attachment; delegates older than 0.4.0 have no
// CHECK and are skipped.
func (r *Runner) Check(ctx context.Context, e *podnet.Entry, a *podnet.Attachment) error {
	l, err := RunList(a)
	if err != nil {
		return err
	}
	if ok, _ := version.GreaterThanOrEqualTo(l.CNIVersion, "0.4.0"); !ok {
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

// Inject sets top-level keys in every plugin of a conflist (deviceID and
// pciBusID, and
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
			pm["pciBusID"] = deviceID
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

// SortedKeys is a small helper for error messages.
func SortedKeys(m map[string]bool) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// ConfList turns a CNI config (a conflist, or a single plugin conf) into a
// conflist. A missing name becomes fallbackName, a missing cniVersion
// fallbackVersion.
func ConfList(raw []byte, fallbackName, fallbackVersion string) (*libcni.NetworkConfigList, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("CNI config is not a JSON object: %v", err)
	}
	changed := false
	if n, _ := m["name"].(string); n == "" {
		m["name"] = fallbackName
		changed = true
	}
	if v, _ := m["cniVersion"].(string); v == "" {
		m["cniVersion"] = fallbackVersion
		changed = true
	}
	if changed {
		raw, _ = json.Marshal(m)
	}
	if _, ok := m["plugins"]; ok {
		l, err := libcni.NetworkConfFromBytes(raw)
		if err != nil {
			return nil, fmt.Errorf("CNI conflist: %v", err)
		}
		if len(l.Plugins) == 0 {
			return nil, fmt.Errorf("CNI conflist %q has no plugins", l.Name)
		}
		return l, nil
	}
	if t, _ := m["type"].(string); t == "" {
		return nil, fmt.Errorf("CNI config has neither \"type\" nor \"plugins\"")
	}
	c, err := libcni.NetworkPluginConfFromBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("CNI config: %v", err)
	}
	// Multus accepts a single-plugin config (a .conf, or a NAD's
	// spec.config without "plugins"), so plexus must; libcni deprecated
	// the format but has no other way to wrap one in a list.
	//lint:ignore SA1019 Multus compatibility (see above)
	l, err := libcni.ConfListFromConf(c)
	if err != nil {
		return nil, fmt.Errorf("CNI config: %v", err)
	}
	return l, nil
}

// Args passes CNI_ARGS on, with IgnoreUnknown=1 first so that
// plugins that parse CNI_ARGS strictly accept the K8S_* keys.
func Args(args [][2]string) [][2]string {
	out := [][2]string{{"IgnoreUnknown", "1"}}
	for _, kv := range args {
		if kv[0] != "IgnoreUnknown" {
			out = append(out, kv)
		}
	}
	return out
}
