package plexus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/containernetworking/cni/libcni"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/delegate"
	"github.com/plexus-cni/plexus/pkg/nad"
	"github.com/plexus-cni/plexus/pkg/selection"
)

// DefaultNetworkAnnot overrides the cluster network for one pod (Multus's key).
const DefaultNetworkAnnot = "v1.multus-cni.io/default-network"

// attachments builds the pod's attachment list: the cluster network (or the
// pod's override) as the primary, then defaultNetworks (not in
// systemNamespaces), then the pod's k8s.v1.cni.cncf.io/networks elements,
// each resolved to its delegate conflist. It fails fast, naming the pod's
// element and field.
func (e *Engine) attachments(ctx context.Context, pod *Pod, req *Request) ([]cache.Attachment, error) {
	primary, primaryName, err := e.primary(ctx, pod)
	if err != nil {
		return nil, err
	}
	atts := []cache.Attachment{{
		Network: primaryName, IfName: req.IfName, Primary: true,
		ConfList: primary.Bytes, CNIArgs: delegateArgs(req.Args),
		CapabilityArgs: e.runtimeCapabilityArgs(),
	}}

	// Extra inline delegates (Multus: delegates[1:]) come first.
	var elems []*nadv1.NetworkSelectionElement
	extra := 0
	for i := 1; i < len(e.Conf.Delegates); i++ {
		l, err := nad.ConfList(e.Conf.Delegates[i], "delegate-"+strconv.Itoa(i), e.Conf.CNIVersion)
		if err != nil {
			return nil, fmt.Errorf("plexus config: key \"delegates\"[%d]: %v", i, err)
		}
		extra++
		atts = append(atts, cache.Attachment{Network: l.Name, IfName: "net" + strconv.Itoa(extra), ConfList: l.Bytes, CNIArgs: delegateArgs(req.Args)})
	}
	if !e.Conf.IsSystemNamespace(pod.Namespace) {
		for _, name := range e.Conf.DefaultNetworks {
			ds, err := selection.Parse(name, e.Conf.MultusNamespace)
			if err != nil {
				return nil, fmt.Errorf("plexus config: key \"defaultNetworks\": %v", err)
			}
			elems = append(elems, ds...)
		}
	}
	nDefault := len(elems)
	podElems, err := selection.Parse(pod.Annotations[nadv1.NetworkAttachmentAnnot], pod.Namespace)
	if err != nil {
		return nil, fmt.Errorf("annotation %s: %w", nadv1.NetworkAttachmentAnnot, err)
	}
	elems = append(elems, podElems...)

	for i, el := range elems {
		name := el.Namespace + "/" + el.Name
		if i >= nDefault && !e.Conf.MayReference(pod.Namespace, el.Namespace) {
			return nil, withNetwork(name, fmt.Errorf("network %q: namespaceIsolation forbids pods in namespace %q from using networks in namespace %q (globalNamespaces: %q)", name, pod.Namespace, el.Namespace, e.Conf.GlobalNamespaces))
		}
		n, err := e.NADs.NAD(ctx, el.Namespace, el.Name)
		if err != nil {
			return nil, withNetwork(name, fmt.Errorf("network %q: %w", name, err))
		}
		l, err := nad.DelegateConf(n, e.Conf.ConfDir, e.Conf.CNIVersion)
		if err != nil {
			return nil, withNetwork(name, err)
		}
		ifName := el.InterfaceRequest
		if ifName == "" {
			ifName = "net" + strconv.Itoa(extra+i+1)
		}
		a := cache.Attachment{
			Network: name, IfName: ifName, ConfList: l.Bytes, CNIArgs: delegateArgs(req.Args),
			ResourceName: n.Annotations[nad.ResourceNameAnnot],
		}
		if err := requestCapabilities(&a, el, l); err != nil {
			return nil, withNetwork(name, fmt.Errorf("network %q (interface %s): %w", name, ifName, err))
		}
		if el.CNIArgs != nil {
			b, err := delegate.Inject(l, "", *el.CNIArgs)
			if err != nil {
				return nil, withNetwork(name, err)
			}
			a.ConfList = b
		}
		for _, gw := range el.GatewayRequest {
			a.Gateways = append(a.Gateways, gw.String())
		}
		atts = append(atts, a)
	}
	if err := uniqueInterfaces(atts); err != nil {
		return nil, err
	}
	if err := oneGatewayPerFamily(atts); err != nil {
		return nil, err
	}
	return atts, nil
}

// primary resolves the cluster network: the pod's default-network override,
// the first inline delegate, or clusterNetwork (a NAD in multusNamespace, a
// file, a directory's first conf, or a conf name in confDir).
func (e *Engine) primary(ctx context.Context, pod *Pod) (*libcni.NetworkConfigList, string, error) {
	if pod != nil {
		if v := pod.Annotations[DefaultNetworkAnnot]; v != "" {
			els, err := selection.Parse(v, e.Conf.MultusNamespace)
			if err != nil || len(els) != 1 {
				if err == nil {
					err = fmt.Errorf("want exactly one network, got %d", len(els))
				}
				return nil, "", fmt.Errorf("annotation %s: %v", DefaultNetworkAnnot, err)
			}
			name := els[0].Namespace + "/" + els[0].Name
			n, err := e.NADs.NAD(ctx, els[0].Namespace, els[0].Name)
			if err != nil {
				return nil, "", withNetwork(name, fmt.Errorf("annotation %s: network %q: %w", DefaultNetworkAnnot, name, err))
			}
			l, err := nad.DelegateConf(n, e.Conf.ConfDir, e.Conf.CNIVersion)
			if err != nil {
				return nil, "", withNetwork(name, err)
			}
			return l, name, nil
		}
	}
	if len(e.Conf.Delegates) > 0 {
		l, err := nad.ConfList(e.Conf.Delegates[0], "delegate-0", e.Conf.CNIVersion)
		if err != nil {
			return nil, "", fmt.Errorf("plexus config: key \"delegates\"[0]: %v", err)
		}
		return l, l.Name, nil
	}
	cn := e.Conf.ClusterNetwork
	if filepath.IsAbs(cn) {
		fi, err := os.Stat(cn)
		if err != nil {
			return nil, "", fmt.Errorf("plexus config: key \"clusterNetwork\": %v", err)
		}
		if fi.IsDir() {
			l, _, err := nad.FirstConf(cn)
			if err != nil {
				return nil, "", fmt.Errorf("plexus config: key \"clusterNetwork\": %v", err)
			}
			return l, l.Name, nil
		}
		l, err := nad.ConfFile(cn)
		if err != nil {
			return nil, "", fmt.Errorf("plexus config: key \"clusterNetwork\": %v", err)
		}
		return l, l.Name, nil
	}
	// A conf of that name in confDir first: it costs no API request, and it
	// is what plexus-install and most clusters configure.
	l, confErr := nad.ConfByName(e.Conf.ConfDir, cn)
	if confErr == nil {
		return l, l.Name, nil
	}
	n, err := e.NADs.NAD(ctx, e.Conf.MultusNamespace, cn)
	if errors.Is(err, ErrNADNotFound) {
		return nil, "", fmt.Errorf("plexus config: key \"clusterNetwork\": %q is neither a CNI config (%v) nor a NAD in namespace %q", cn, confErr, e.Conf.MultusNamespace)
	}
	if err != nil {
		return nil, "", fmt.Errorf("plexus config: key \"clusterNetwork\": %w", err)
	}
	l, err = nad.DelegateConf(n, e.Conf.ConfDir, e.Conf.CNIVersion)
	if err != nil {
		return nil, "", fmt.Errorf("plexus config: key \"clusterNetwork\": %v", err)
	}
	return l, e.Conf.MultusNamespace + "/" + cn, nil
}

// requestCapabilities turns a selection element's requests into runtime
// config, refusing any the delegate does not declare (CNI spec: a runtime
// must not pass capability args a plugin did not ask for; silently dropping
// a requested static IP or MAC would be worse).
func requestCapabilities(a *cache.Attachment, el *nadv1.NetworkSelectionElement, l *libcni.NetworkConfigList) error {
	caps := delegate.Capabilities(l)
	args := map[string]any{}
	want := func(key, field string, v any) error {
		if !caps[key] {
			return fmt.Errorf("field %q requests capability %q, but delegate %q declares none (its capabilities: %v); add \"capabilities\": {%q: true} to a plugin that supports it", field, key, l.Name, delegate.SortedKeys(caps), key)
		}
		args[key] = v
		return nil
	}
	if len(el.IPRequest) > 0 {
		if err := want("ips", "ips", el.IPRequest); err != nil {
			return err
		}
	}
	if el.MacRequest != "" {
		if err := want("mac", "mac", el.MacRequest); err != nil {
			return err
		}
	}
	if el.InfinibandGUIDRequest != "" {
		if err := want("infinibandGUID", "infiniband-guid", el.InfinibandGUIDRequest); err != nil {
			return err
		}
	}
	if len(el.PortMappingsRequest) > 0 {
		if err := want("portMappings", "portMappings", el.PortMappingsRequest); err != nil {
			return err
		}
	}
	if el.BandwidthRequest != nil {
		if err := want("bandwidth", "bandwidth", el.BandwidthRequest); err != nil {
			return err
		}
	}
	if len(args) > 0 {
		a.CapabilityArgs = args
	}
	return nil
}

// runtimeCapabilityArgs passes the runtime's own runtimeConfig (port
// mappings, bandwidth, … that the runtime gave plexus) to the primary;
// libcni hands each key only to plugins that declare it.
func (e *Engine) runtimeCapabilityArgs() map[string]any {
	if len(e.Conf.RuntimeConfig) == 0 {
		return nil
	}
	out := make(map[string]any, len(e.Conf.RuntimeConfig))
	for k, v := range e.Conf.RuntimeConfig {
		var x any
		if json.Unmarshal(v, &x) == nil {
			out[k] = x
		}
	}
	return out
}

// delegateArgs passes CNI_ARGS on, with IgnoreUnknown=1 first so that
// plugins that parse CNI_ARGS strictly accept the K8S_* keys.
func delegateArgs(args [][2]string) [][2]string {
	out := [][2]string{{"IgnoreUnknown", "1"}}
	for _, kv := range args {
		if kv[0] != "IgnoreUnknown" {
			out = append(out, kv)
		}
	}
	return out
}

func uniqueInterfaces(atts []cache.Attachment) error {
	seen := map[string]string{}
	for _, a := range atts {
		if other, dup := seen[a.IfName]; dup {
			return withNetwork(a.Network, fmt.Errorf("network %q: interface %q is also assigned to network %q; request distinct names with \"interface\" or @name", a.Network, a.IfName, other))
		}
		seen[a.IfName] = a.Network
	}
	return nil
}

func oneGatewayPerFamily(atts []cache.Attachment) error {
	var v4, v6 string
	for _, a := range atts {
		for _, g := range a.Gateways {
			ip := net.ParseIP(g)
			slot := &v6
			if ip.To4() != nil {
				slot = &v4
			}
			if *slot != "" {
				return withNetwork(a.Network, fmt.Errorf("network %q: field \"default-route\": network %q already takes the default route for this IP family; at most one gateway per family", a.Network, *slot))
			}
			*slot = a.Network
		}
	}
	return nil
}
