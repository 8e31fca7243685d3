// Package podnet holds the few types every stage of an attach shares —
// resolve, attach and publish (docs/architecture.md, "Three stages") — and the
// adapters that feed them (pkg/k8s, pkg/podresources, pkg/nad): the pod an
// operation is for, and the errors that say something is not there. It
// imports nothing but the standard library, so any package may use it.
package podnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// Pod is what plexus needs to know of a pod.
type Pod struct {
	Namespace   string
	Name        string
	UID         string
	Annotations map[string]string
	// ResourceClaims are the pod's DRA claims (spec.resourceClaims, with
	// the names status.resourceClaimStatuses gives templates' claims), in
	// the pod's order.
	ResourceClaims []PodClaim
}

// PodRef names a pod as CNI_ARGS does.
type PodRef struct {
	Namespace string
	Name      string
	UID       string // may be empty
}

func (p PodRef) String() string { return p.Namespace + "/" + p.Name }

var (
	// ErrPodNotFound is wrapped by a pod source for a pod that is not there.
	ErrPodNotFound = errors.New("pod not found")
	// ErrNADNotFound is wrapped by a NAD source for a NAD that is not there.
	ErrNADNotFound = errors.New("network-attachment-definition not found")
	// ErrUnavailable is wrapped by a source that could not be asked now
	// (plexusd: the API did not answer for an object its informers lack).
	ErrUnavailable = errors.New("unavailable")
)

// Unavailable reports whether err says the answer could not be had here
// and now, rather than that the request is wrong: a source that could not
// be asked (ErrUnavailable), or a file or directory of the node that could
// not be read (an *fs.PathError: a clusterNetwork or confDir file, a
// device-info file). plexusd, which sees the node's files through its
// container's mounts, answers such a failure "unavailable" and the shim
// resolves in the runtime's own context instead (docs/architecture.md,
// "Three stages"); resolution never takes it for "none".
func Unavailable(err error) bool {
	var pe *fs.PathError
	return errors.Is(err, ErrUnavailable) || errors.As(err, &pe)
}

// Attachment is one interface of a container: the delegate plexus runs for it.
type Attachment struct {
	Network  string          `json:"network"` // "namespace/name" of the NAD, or the primary conf name
	IfName   string          `json:"ifName"`
	Primary  bool            `json:"primary,omitempty"`
	ConfList json.RawMessage `json:"confList"` // the delegate conflist, as run
	CNIArgs  [][2]string     `json:"cniArgs,omitempty"`
	// CNIArgsConf is the selection's cni-args, set as "args": {"cni": …}
	// in every plugin of ConfList when the delegate runs.
	CNIArgsConf    map[string]any `json:"cniArgsConf,omitempty"`
	CapabilityArgs map[string]any `json:"capabilityArgs,omitempty"`
	ResourceName   string         `json:"resourceName,omitempty"`
	// ResourceClaim names the pod's DRA claim (and request) whose VFs this
	// attachment takes ("claim" or "claim/request"), from the NAD.
	ResourceClaim  string   `json:"resourceClaim,omitempty"`
	DeviceID       string   `json:"deviceID,omitempty"`
	DeviceInfoFile string   `json:"deviceInfoFile,omitempty"`
	Gateways       []string `json:"gateways,omitempty"` // default-route request
	// WantIPs and WantMAC are the selection's requests, checked against the
	// pod's interface after ADD.
	WantIPs []string        `json:"wantIPs,omitempty"`
	WantMAC string          `json:"wantMAC,omitempty"`
	Added   bool            `json:"added,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	// Origin is where the attachment came from when it was attached (one
	// of the Origin constants): hot-plug tells what plexus's config
	// attached from what the pod's annotation did by it alone, never by
	// the config of the day (docs/hotplug.md). Empty in entries written
	// before plexus recorded it (v0.1, v0.2): DEL does not need it.
	Origin string `json:"origin,omitempty"`
}

// Origins of an attachment (Attachment.Origin).
const (
	// OriginPrimary: the cluster network, or the pod's default-network
	// annotation.
	OriginPrimary = "primary"
	// OriginDelegates: an extra inline delegate of plexus's config
	// (delegates[1:]).
	OriginDelegates = "delegates"
	// OriginDefaultNetworks: one of the config's defaultNetworks.
	OriginDefaultNetworks = "defaultNetworks"
	// OriginAuxiliary: the config's auxiliaryCNIChainName chain.
	OriginAuxiliary = "auxiliary"
	// OriginAnnotation: an element of the pod's k8s.v1.cni.cncf.io/networks
	// annotation, attached by ADD or by hot-plug.
	OriginAnnotation = "annotation"
)

// FromConfig reports whether origin is one of plexus's config (or the
// primary): such an attachment is never detached by hot-plug.
func FromConfig(origin string) bool {
	switch origin {
	case OriginPrimary, OriginDelegates, OriginDefaultNetworks, OriginAuxiliary:
		return true
	}
	return false
}

// Entry is the whole state of one container.
type Entry struct {
	// Version is the schema version of the cache file (cache.EntryVersion);
	// 0 (absent) is round 1's layout, read as version 1.
	Version      int          `json:"version"`
	ContainerID  string       `json:"containerID"`
	NetNS        string       `json:"netns"`
	PodNamespace string       `json:"podNamespace,omitempty"`
	PodName      string       `json:"podName,omitempty"`
	PodUID       string       `json:"podUID,omitempty"`
	CNIVersion   string       `json:"cniVersion"`
	Attachments  []Attachment `json:"attachments"`
	// Incomplete marks an entry whose rollback or DEL left something
	// behind: a later DEL or GC finishes the job.
	Incomplete bool `json:"incomplete,omitempty"`
	// DelAttempts counts DELs that failed; LastDelError is the latest.
	DelAttempts  int    `json:"delAttempts,omitempty"`
	LastDelError string `json:"lastDelError,omitempty"`
}

// Request is one CNI invocation.
type Request struct {
	ContainerID string
	NetNS       string
	IfName      string
	Pod         PodRef
	// Networks is the short-form network list from CNI_ARGS
	// (K8S_POD_NETWORKS), used in clusterless mode.
	Networks string
	// Args are the CNI_ARGS pairs, passed on to every delegate.
	Args [][2]string
}

// LockKey is the key of the per-pod lock of a request: the pod, or the
// container when the pod is unknown.
func (r *Request) LockKey() string {
	if r.Pod.Name != "" {
		return r.Pod.Namespace + "/" + r.Pod.Name
	}
	return r.ContainerID
}

// NetworkError tags an error with the network it is about, for the
// Warning event of a failed ADD.
type NetworkError struct {
	Network string
	Err     error
}

func (n *NetworkError) Error() string { return n.Err.Error() }
func (n *NetworkError) Unwrap() error { return n.Err }

// WithNetwork tags err with network.
func WithNetwork(network string, err error) error { return &NetworkError{Network: network, Err: err} }

// NetworkOf is the network an error is about, "" when none.
func NetworkOf(err error) string {
	var ne *NetworkError
	if errors.As(err, &ne) {
		return ne.Network
	}
	return ""
}

// AttachError is an error about one attachment: it names the network and
// the interface once, in that order, before what went wrong.
func AttachError(network, ifName string, err error) error {
	return WithNetwork(network, fmt.Errorf("network %q (interface %s): %w", network, ifName, err))
}

// NewRequest is the Request of one CNI invocation: its container, netns,
// interface and CNI_ARGS (the pod is read from K8S_POD_NAMESPACE,
// K8S_POD_NAME and K8S_POD_UID, the short-form networks from
// K8S_POD_NETWORKS).
func NewRequest(containerID, netns, ifName, cniArgs string) (*Request, error) {
	pairs, err := ParseArgs(cniArgs)
	if err != nil {
		return nil, err
	}
	return RequestFromArgs(containerID, netns, ifName, pairs), nil
}

// RequestFromArgs is NewRequest with CNI_ARGS already split.
func RequestFromArgs(containerID, netns, ifName string, pairs [][2]string) *Request {
	req := &Request{ContainerID: containerID, NetNS: netns, IfName: ifName, Args: pairs}
	for _, kv := range pairs {
		switch kv[0] {
		case "K8S_POD_NAMESPACE":
			req.Pod.Namespace = kv[1]
		case "K8S_POD_NAME":
			req.Pod.Name = kv[1]
		case "K8S_POD_UID":
			req.Pod.UID = kv[1]
		case "K8S_POD_NETWORKS":
			req.Networks = kv[1]
		}
	}
	return req
}

// ParseArgs splits CNI_ARGS ("K=V;K=V") into pairs. libcni's types.LoadArgs
// fills a struct of known keys; plexus needs every pair, in order, to pass
// them on to its delegates, so it splits them itself.
func ParseArgs(s string) ([][2]string, error) {
	if s == "" {
		return nil, nil
	}
	var out [][2]string
	for _, kv := range strings.Split(s, ";") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("CNI_ARGS: %q is not KEY=VALUE", kv)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}
