package daemon

import (
	"fmt"
	"strconv"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/resolve"
)

// The decision of a hot-plug pass (docs/hotplug.md), apart from its
// execution (hotplug.go): from the sandbox's cache entry and the pod's
// annotation alone — never plexus's config of the day — what to detach,
// what to attach under which name, and what to refuse. What plexus's
// config attached is told by the origin ADD recorded for each attachment
// (podnet.Attachment.Origin): a config edit, a renamed delegate or an
// unreadable directory cannot turn a config attachment into one the
// annotation lost.

// planInput is what a pass decides from.
type planInput struct {
	// atts are the entry's attachments, the primary first.
	atts []podnet.Attachment
	// elems are the annotation's elements; annotationErr, when set, says
	// the annotation does not parse (then nothing but unfinished
	// additions is touched).
	elems         []*nadv1.NetworkSelectionElement
	annotationErr string
	// primary is the network v1.multus-cni.io/default-network asks for
	// ("namespace/name"; "" when it asks for none).
	primary string
	// maxElements is how many of the annotation's elements hot-plug
	// attaches (the first ones); 0 for no limit.
	maxElements int
	// skip are the elements that failed earlier in the same state of the
	// pod (a pass cut short by its time budget goes on without them).
	skip map[int]bool
}

// addition is an element to attach, under ifName.
type addition struct {
	elem   int
	ifName string
}

// passPlan is what a pass does, in order: detach, then attach.
type passPlan struct {
	// detach are entry indexes: first the additions whose result was never
	// recorded (undone before anything else: plexusd died mid-pass), then
	// the attachments of elements the annotation lost, last attached
	// first.
	detach []int
	undo   int // how many of detach are unfinished additions
	attach []addition
	// refusals are Warning messages for what the pod asks and hot-plug
	// will not do; overLimit counts the elements refused by maxElements.
	refusals  []string
	overLimit int
}

// notReconciled is a pod hot-plug leaves alone: its entry cannot tell the
// config's attachments from the annotation's. reason is a metric label.
type notReconciled struct {
	reason string
	msg    string
}

func (n *notReconciled) Error() string { return n.msg }

// Reasons of notReconciled.
const (
	reasonNoOrigin      = "no-origin"
	reasonUnknownOrigin = "unknown-origin"
	reasonUnreadable    = "unreadable-entry"
)

// planPass decides a pass. It fails with a *notReconciled when an
// attachment of the entry does not say where it came from.
func planPass(in planInput) (passPlan, error) {
	var p passPlan
	fixed := map[string]string{} // interface -> whose it is
	offset := 0                  // secondaries ADD put before the annotation's
	var mine []int               // the annotation's finished attachments
	for i, a := range in.atts {
		switch {
		case a.Origin == "":
			return p, &notReconciled{reasonNoOrigin, fmt.Sprintf("interface %s (network %q) does not record where it came from (the entry was written by plexus v0.1 or v0.2, which did not record it); its interfaces are left as they are (recreate the pod to hot-plug its networks)", a.IfName, a.Network)}
		case i == 0 && a.Origin != podnet.OriginPrimary, i > 0 && a.Origin == podnet.OriginPrimary:
			return p, &notReconciled{reasonUnknownOrigin, fmt.Sprintf("interface %s (network %q): origin %q out of place (the primary comes first, once); its interfaces are left as they are", a.IfName, a.Network, a.Origin)}
		case podnet.FromConfig(a.Origin):
			fixed[a.IfName] = whose(a)
			if a.Origin == podnet.OriginDelegates || a.Origin == podnet.OriginDefaultNetworks {
				offset++
			}
		case a.Origin == podnet.OriginAnnotation:
			if !a.Added || len(a.Result) == 0 {
				p.detach = append([]int{i}, p.detach...) // last first
				continue
			}
			mine = append(mine, i)
		default:
			return p, &notReconciled{reasonUnknownOrigin, fmt.Sprintf("interface %s (network %q): unknown origin %q (written by a newer plexus?); its interfaces are left as they are", a.IfName, a.Network, a.Origin)}
		}
	}
	p.undo = len(p.detach)
	if in.primary != "" && len(in.atts) > 0 && in.primary != in.atts[0].Network {
		p.refusals = append(p.refusals, fmt.Sprintf("annotation %s: the primary (%s, network %q) cannot be changed on a running pod; recreate the pod", resolve.DefaultNetworkAnnot, in.atts[0].IfName, in.atts[0].Network))
	}
	if in.annotationErr != "" {
		p.refusals = append(p.refusals, fmt.Sprintf("annotation %s: %s; nothing attached or detached", nadv1.NetworkAttachmentAnnot, in.annotationErr))
		return p, nil
	}

	// Match the elements to what is attached: a named interface to the
	// annotation's attachment of that network and name; an unnamed one
	// to one of that network, preferring the name ADD would give it.
	match := make([]int, len(in.elems))
	taken := map[int]bool{}
	for k := range match {
		match[k] = -1
	}
	find := func(k int, ok func(a *podnet.Attachment) bool) {
		el := in.elems[k]
		for _, i := range mine {
			a := &in.atts[i]
			if !taken[i] && a.Network == el.Namespace+"/"+el.Name && ok(a) {
				match[k], taken[i] = i, true
				return
			}
		}
	}
	for k, el := range in.elems {
		if el.InterfaceRequest != "" {
			find(k, func(a *podnet.Attachment) bool { return a.IfName == el.InterfaceRequest })
		}
	}
	for k, el := range in.elems {
		if el.InterfaceRequest == "" {
			find(k, func(a *podnet.Attachment) bool { return a.IfName == resolve.DefaultIfName(offset+k) })
		}
	}
	for k, el := range in.elems {
		if el.InterfaceRequest == "" && match[k] < 0 {
			find(k, func(*podnet.Attachment) bool { return true })
		}
	}
	// Removals, last attached first.
	for j := len(mine) - 1; j >= 0; j-- {
		if !taken[mine[j]] {
			p.detach = append(p.detach, mine[j])
		}
	}
	// Additions, in annotation order, within the limit.
	for k, el := range in.elems {
		if match[k] >= 0 || in.skip[k] {
			continue
		}
		if in.maxElements > 0 && k >= in.maxElements {
			p.overLimit++
			continue
		}
		ifName := el.InterfaceRequest
		if ifName == "" {
			ifName = resolve.DefaultIfName(offset + k)
		}
		if who, ok := fixed[ifName]; ok {
			p.refusals = append(p.refusals, fmt.Sprintf("network %q: field \"interface\": %q is %s: what plexus's config attached cannot be changed on a running pod", el.Namespace+"/"+el.Name, ifName, who))
			continue
		}
		p.attach = append(p.attach, addition{elem: k, ifName: ifName})
	}
	if p.overLimit > 0 {
		p.refusals = append(p.refusals, fmt.Sprintf("annotation %s: %d elements; hot-plug attaches only the first %d of a pod's elements (limit %d per pod): %d not attached (attached ones are kept)",
			nadv1.NetworkAttachmentAnnot, len(in.elems), in.maxElements, in.maxElements, p.overLimit))
	}
	return p, nil
}

// whose names the config attachment a for a refusal.
func whose(a podnet.Attachment) string {
	switch a.Origin {
	case podnet.OriginPrimary:
		return "the primary's"
	case podnet.OriginDelegates:
		return "network " + strconv.Quote(a.Network) + "'s, attached to every pod by plexus's config (delegates)"
	case podnet.OriginAuxiliary:
		return "network " + strconv.Quote(a.Network) + "'s, attached to every pod by plexus's config (auxiliaryCNIChainName)"
	}
	return "network " + strconv.Quote(a.Network) + "'s, attached to every pod by plexus's config (defaultNetworks)"
}
