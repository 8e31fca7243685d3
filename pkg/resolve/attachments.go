package resolve

import (
	"github.com/plexus-cni/plexus/pkg/podnet"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/libcni"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

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
func (e *Resolver) attachments(ctx context.Context, pod *podnet.Pod, req *podnet.Request) ([]podnet.Attachment, error) {
	primary, primaryName, err := e.primary(ctx, pod)
	if err != nil {
		return nil, err
	}
	atts := []podnet.Attachment{{
		Network: primaryName, IfName: req.IfName, Primary: true, Origin: podnet.OriginPrimary,
		ConfList: primary.Bytes, CNIArgs: delegate.Args(req.Args),
		CapabilityArgs: e.runtimeCapabilityArgs(),
	}}

	// Extra inline delegates (Multus: delegates[1:]) come first.
	var elems []*nadv1.NetworkSelectionElement
	extra := 0
	for i := 1; i < len(e.Conf.Delegates); i++ {
		l, err := delegate.ConfList(e.Conf.Delegates[i], "delegate-"+strconv.Itoa(i), e.Conf.CNIVersion)
		if err != nil {
			return nil, fmt.Errorf("plexus config: key \"delegates\"[%d]: %v", i, err)
		}
		extra++
		atts = append(atts, podnet.Attachment{Network: l.Name, IfName: "net" + strconv.Itoa(extra), ConfList: l.Bytes, CNIArgs: delegate.Args(req.Args), Origin: podnet.OriginDelegates})
	}
	if !e.Conf.IsSystemNamespace(pod.Namespace) {
		for _, name := range e.Conf.DefaultNetworks {
			ds, _, err := selection.ParseWithWarnings(name, e.Conf.MultusNamespace, true)
			if err != nil {
				return nil, fmt.Errorf("plexus config: key \"defaultNetworks\": %v", err)
			}
			elems = append(elems, ds...)
		}
	}
	nDefault := len(elems)
	podElems, warnings, err := selection.ParseWithWarnings(pod.Annotations[nadv1.NetworkAttachmentAnnot], pod.Namespace, strictAnnotations(e.Conf))
	if err != nil {
		return nil, fmt.Errorf("annotation %s: %w", nadv1.NetworkAttachmentAnnot, err)
	}
	for _, w := range warnings {
		e.warn("", "", fmt.Sprintf("annotation %s: %s", nadv1.NetworkAttachmentAnnot, w))
	}
	elems = append(elems, podElems...)

	for i, el := range elems {
		ifName := el.InterfaceRequest
		if ifName == "" {
			ifName = DefaultIfName(extra + i)
		}
		a, err := e.element(ctx, pod, req, el, ifName, i < nDefault)
		if err != nil {
			return nil, err
		}
		a.Origin = podnet.OriginAnnotation
		if i < nDefault {
			a.Origin = podnet.OriginDefaultNetworks
		}
		atts = append(atts, a)
	}
	// Multus's auxiliaryCNIChainName: a chain of the .conf files beside
	// clusterNetwork, run last with the next netN name.
	aux, err := e.Confs.Auxiliary()
	if err != nil {
		return nil, err
	}
	if aux != nil {
		atts = append(atts, podnet.Attachment{Network: aux.Name, IfName: "net" + strconv.Itoa(len(atts)), ConfList: aux.Bytes, CNIArgs: delegate.Args(req.Args), Origin: podnet.OriginAuxiliary})
	}
	if err := uniqueInterfaces(atts); err != nil {
		return nil, err
	}
	if err := oneGatewayPerFamily(atts); err != nil {
		return nil, err
	}
	return atts, nil
}

// DefaultIfName is the interface name of the secondary attachment at
// position i (0-based, after the primary) that requests none: net1, net2, …
func DefaultIfName(i int) string { return "net" + strconv.Itoa(i+1) }

// element resolves one selection element to its attachment named ifName:
// namespaceIsolation (not for the administrator's defaultNetworks), the NAD
// vetted as tenant input, the element's requests as runtime config.
func (e *Resolver) element(ctx context.Context, pod *podnet.Pod, req *podnet.Request, el *nadv1.NetworkSelectionElement, ifName string, admin bool) (podnet.Attachment, error) {
	name := el.Namespace + "/" + el.Name
	if !admin && !e.Conf.MayReference(pod.Namespace, el.Namespace) {
		return podnet.Attachment{}, podnet.AttachError(name, ifName, fmt.Errorf("namespaceIsolation forbids pods in namespace %q from using networks in namespace %q (globalNamespaces: %q)", pod.Namespace, el.Namespace, e.Conf.GlobalNamespaces))
	}
	n, l, err := e.resolveNAD(ctx, el.Namespace, el.Name, admin)
	if err != nil {
		return podnet.Attachment{}, podnet.AttachError(name, ifName, err)
	}
	a := podnet.Attachment{
		Network: name, IfName: ifName, ConfList: l.Bytes, CNIArgs: delegate.Args(req.Args),
		ResourceName:  nadAnnotation(n, nad.ResourceNameAnnot),
		ResourceClaim: nadAnnotation(n, ResourceClaimAnnot),
	}
	for _, w := range requestCapabilities(&a, el, l) {
		e.warn(name, ifName, w)
	}
	if el.CNIArgs != nil {
		a.CNIArgsConf = *el.CNIArgs
	}
	for _, gw := range el.GatewayRequest {
		a.Gateways = append(a.Gateways, gw.String())
	}
	return a, nil
}

// primary resolves the cluster network: the pod's default-network override,
// the first inline delegate, or clusterNetwork, in Multus's order: an
// absolute path is a file or a directory's first conf (no API request);
// any other value is a NAD in multusNamespace, else the conf of that name in
// confDir.
func (e *Resolver) primary(ctx context.Context, pod *podnet.Pod) (*libcni.NetworkConfigList, string, error) {
	if pod != nil {
		if v := pod.Annotations[DefaultNetworkAnnot]; v != "" {
			return e.defaultNetworkOverride(ctx, pod, v)
		}
	}
	if len(e.Conf.Delegates) > 0 {
		l, err := delegate.ConfList(e.Conf.Delegates[0], "delegate-0", e.Conf.CNIVersion)
		if err != nil {
			return nil, "", fmt.Errorf("plexus config: key \"delegates\"[0]: %v", err)
		}
		return l, l.Name, nil
	}
	cn := e.Conf.ClusterNetwork
	if filepath.IsAbs(cn) {
		l, err := e.Confs.Path(cn)
		if err != nil {
			return nil, "", fmt.Errorf("plexus config: key \"clusterNetwork\": %w", err)
		}
		return l, l.Name, nil
	}
	_, l, err := e.resolveNAD(ctx, e.Conf.MultusNamespace, cn, true)
	if err == nil {
		return l, e.Conf.MultusNamespace + "/" + cn, nil
	}
	if !errors.Is(err, podnet.ErrNADNotFound) {
		return nil, "", fmt.Errorf("plexus config: key \"clusterNetwork\": network %q: %w", e.Conf.MultusNamespace+"/"+cn, err)
	}
	l, confErr := e.Confs.ByName(cn)
	if confErr != nil {
		return nil, "", fmt.Errorf("plexus config: key \"clusterNetwork\": %q is neither a NAD in namespace %q nor a CNI config (%w)", cn, e.Conf.MultusNamespace, confErr)
	}
	return l, l.Name, nil
}

// defaultNetworkOverride resolves the pod's v1.multus-cni.io/default-network
// annotation: one NAD, by default in multusNamespace (as Multus). The
// namespaceIsolation rule applies to it as to every other network; NADs in
// multusNamespace stay allowed, since that is where the override's NADs
// live by default and tenants do not create NADs there.
func (e *Resolver) defaultNetworkOverride(ctx context.Context, pod *podnet.Pod, v string) (*libcni.NetworkConfigList, string, error) {
	els, _, err := selection.ParseWithWarnings(v, e.Conf.MultusNamespace, true)
	if err != nil || len(els) != 1 {
		if err == nil {
			err = fmt.Errorf("want exactly one network, got %d", len(els))
		}
		return nil, "", fmt.Errorf("annotation %s: %v", DefaultNetworkAnnot, err)
	}
	el := els[0]
	name := el.Namespace + "/" + el.Name
	if el.Namespace != e.Conf.MultusNamespace && !e.Conf.MayReference(pod.Namespace, el.Namespace) {
		return nil, "", podnet.WithNetwork(name, fmt.Errorf("network %q: annotation %s: namespaceIsolation forbids pods in namespace %q from using networks in namespace %q (globalNamespaces: %q)", name, DefaultNetworkAnnot, pod.Namespace, el.Namespace, e.Conf.GlobalNamespaces))
	}
	_, l, err := e.resolveNAD(ctx, el.Namespace, el.Name, false)
	if err != nil {
		return nil, "", podnet.WithNetwork(name, fmt.Errorf("network %q: annotation %s: %w", name, DefaultNetworkAnnot, err))
	}
	return l, name, nil
}

// resolveNAD looks a NAD up and returns its delegate conflist, vetted as
// tenant input (trust.go); what vetting removed becomes a warning.
func (e *Resolver) resolveNAD(ctx context.Context, namespace, name string, admin bool) (*nadv1.NetworkAttachmentDefinition, *libcni.NetworkConfigList, error) {
	n, err := e.NADs.NAD(ctx, namespace, name)
	if err != nil {
		return nil, nil, err
	}
	l, err := nad.DelegateConf(n, e.Confs.ByName, e.Conf.CNIVersion)
	if err != nil {
		return nil, nil, err
	}
	l, warnings, err := e.vetTenantConf(n, l, admin)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range warnings {
		e.warn(namespace+"/"+name, "", w)
	}
	return n, l, nil
}

// requestCapabilities turns a selection element's requests into runtime
// config the way Multus does, so that every NAD that works under Multus
// works here: each request goes into the capability args (libcni hands a key
// only to plugins that declare it), and "ips" and "mac" also go into the
// legacy CNI_ARGS IP= and MAC=, which the static IPAM and tuning plugins
// read. plexus then goes beyond Multus: after the delegate's ADD it checks
// that the pod got every requested IP and MAC (verifyRequests). Requests it
// cannot verify and that no plugin declares are reported as warnings.
func requestCapabilities(a *podnet.Attachment, el *nadv1.NetworkSelectionElement, l *libcni.NetworkConfigList) []string {
	caps := delegate.Capabilities(l)
	args := map[string]any{}
	var warnings []string
	unverified := func(key, field string, v any) {
		args[key] = v
		if !caps[key] {
			warnings = append(warnings, fmt.Sprintf("field %q: delegate %q declares no capability %q, so no plugin receives it (ignored, as Multus does); add \"capabilities\": {%q: true} to a plugin that supports it", field, l.Name, key, key))
		}
	}
	if len(el.IPRequest) > 0 {
		args["ips"] = el.IPRequest
		a.CNIArgs = append(a.CNIArgs, [2]string{"IP", strings.Join(el.IPRequest, ",")})
		a.WantIPs = el.IPRequest
	}
	if el.MacRequest != "" {
		args["mac"] = el.MacRequest
		a.CNIArgs = append(a.CNIArgs, [2]string{"MAC", el.MacRequest})
		a.WantMAC = el.MacRequest
	}
	if el.InfinibandGUIDRequest != "" {
		unverified("infinibandGUID", "infiniband-guid", el.InfinibandGUIDRequest)
	}
	if len(el.PortMappingsRequest) > 0 {
		unverified("portMappings", "portMappings", el.PortMappingsRequest)
	}
	if el.BandwidthRequest != nil {
		unverified("bandwidth", "bandwidth", el.BandwidthRequest)
	}
	if el.IPAMClaimReference != "" {
		args["ipam-claim-reference"] = el.IPAMClaimReference
		args["IPAMClaimReference"] = el.IPAMClaimReference
		if !caps["ipam-claim-reference"] && !caps["IPAMClaimReference"] {
			warnings = append(warnings, fmt.Sprintf("field \"ipam-claim-reference\": delegate %q declares no capability \"ipam-claim-reference\", so its IPAM does not receive the claim (ignored, as Multus does)", l.Name))
		}
	}
	if len(args) > 0 {
		a.CapabilityArgs = args
	}
	return warnings
}

// runtimeCapabilityArgs passes the runtime's own runtimeConfig (port
// mappings, bandwidth, … that the runtime gave plexus) to the primary;
// libcni hands each key only to plugins that declare it.
func (e *Resolver) runtimeCapabilityArgs() map[string]any {
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

func uniqueInterfaces(atts []podnet.Attachment) error {
	seen := map[string]string{}
	for _, a := range atts {
		if other, dup := seen[a.IfName]; dup {
			return podnet.WithNetwork(a.Network, fmt.Errorf("network %q: interface %q is also assigned to network %q; request distinct names with \"interface\" or @name", a.Network, a.IfName, other))
		}
		seen[a.IfName] = a.Network
	}
	return nil
}

func oneGatewayPerFamily(atts []podnet.Attachment) error {
	var v4, v6 string
	for _, a := range atts {
		for _, g := range a.Gateways {
			ip := net.ParseIP(g)
			slot := &v6
			if ip.To4() != nil {
				slot = &v4
			}
			if *slot != "" {
				return podnet.WithNetwork(a.Network, fmt.Errorf("network %q: field \"default-route\": network %q already takes the default route for this IP family; at most one gateway per family", a.Network, *slot))
			}
			*slot = a.Network
		}
	}
	return nil
}

// warn records a warning about the pod's networks; ADD reports them all in
// one Warning event and the log.
func (e *Resolver) warn(network, ifName, msg string) {
	switch {
	case network != "" && ifName != "":
		msg = fmt.Sprintf("network %q (interface %s): %s", network, ifName, msg)
	case network != "":
		msg = fmt.Sprintf("network %q: %s", network, msg)
	}
	for _, w := range e.warnings {
		if w == msg {
			return
		}
	}
	e.warnings = append(e.warnings, msg)
}
