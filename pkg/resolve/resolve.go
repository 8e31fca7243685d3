// Package resolve is the first stage of an attach (docs/architecture.md,
// "Three stages"): it turns a pod's metadata, the NADs it names, plexus's config
// and the devices kubelet gave the pod into the attachment list — each
// delegate's conflist, interface name, CNI args and runtime config. It has
// no file, network or API access of its own: what it reads comes through
// the small interfaces below (the API or a NAD directory, kubelet's
// pod-resources, the administrator's CNI configs, device-plugin pools).
package resolve

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/containernetworking/cni/libcni"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/plexus-cni/plexus/pkg/config"
	"github.com/plexus-cni/plexus/pkg/delegate"
	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/nad"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/selection"
)

// NADSource resolves a NetworkAttachmentDefinition by namespace and name; a
// missing one is an error wrapping podnet.ErrNADNotFound.
type NADSource interface {
	NAD(ctx context.Context, namespace, name string) (*nadv1.NetworkAttachmentDefinition, error)
}

// DeviceSource tells which devices of an extended resource (e.g. SR-IOV VFs)
// kubelet allocated to the pod's containers, in a stable order.
type DeviceSource interface {
	Devices(ctx context.Context, pod *podnet.Pod, resourceName string) ([]string, error)
}

// AdminConfs reads the CNI configs the node's administrator wrote.
type AdminConfs interface {
	// ByName is the conf or conflist in confDir whose network name is name.
	ByName(name string) (*libcni.NetworkConfigList, error)
	// Path is a conf file, or the first conf of a directory.
	Path(path string) (*libcni.NetworkConfigList, error)
	// Auxiliary is Multus's auxiliary chain (nil when not configured).
	Auxiliary() (*libcni.NetworkConfigList, error)
}

// DevicePools tells which device-plugin pool on this node claims a device:
// the evidence (a device-info file) or "". A file or directory it cannot
// read is an error (wrapping the *fs.PathError): the guard it serves fails
// closed.
type DevicePools interface {
	Claim(device string) (string, error)
}

// Sources are what a Resolver reads the cluster and the node through,
// each passed by the deployment that builds it. A nil source is one that
// deployment does not have: nothing is found by probing another source.
type Sources struct {
	NADs NADSource
	// Devices: kubelet's device assignments (nil: a NAD naming a resource
	// fails).
	Devices DeviceSource
	// Claims reads the pod's ResourceClaims (nil: a NAD naming a claim
	// fails, and resourceName matches against claimed VFs are skipped).
	Claims ClaimSource
	// Attributes reads other DRA drivers' devices (nil: only the VFs
	// plexus's own DRA driver prepared are found). See claims.go.
	Attributes DeviceAttributes
	// Mounted says the node's files are read through a container's mounts
	// (plexusd): a missing deviceInfoDir is then a mount that is not there
	// (unreadable, podnet.Unavailable), not an empty directory.
	Mounted bool
}

// Resolver resolves the networks of one pod.
type Resolver struct {
	Conf    *config.Conf
	NADs    NADSource
	Devices DeviceSource // nil when no device lookups are possible
	Confs   AdminConfs
	Pools   DevicePools
	// Claims reads the pod's ResourceClaims, DRADevices the DRA driver's
	// prepared VFs (its records under DeviceInfoDir), Attributes other DRA
	// drivers' devices; nil Claims or Attributes: none (see Sources).
	Claims     ClaimSource
	DRADevices DRADeviceSource
	Attributes DeviceAttributes
	// DeviceInfoDir is the base of device-info files (devinfo.DefaultDir
	// when empty).
	DeviceInfoDir string

	warnings []string
}

// New is the Resolver of plexus's config c over src, with the node's admin
// configs (confDir, clusterNetwork files), its device-plugin pools and its
// DRA driver's records read from the node's files.
func New(c *config.Conf, src Sources) *Resolver {
	base := devinfo.Base(c.DeviceInfoDir)
	return &Resolver{Conf: c, NADs: src.NADs, Devices: src.Devices, Claims: src.Claims, Attributes: src.Attributes,
		Confs: nad.LocalConfs{Conf: c}, Pools: devinfo.Pools{Dir: base, Mounted: src.Mounted}, DRADevices: devinfo.DRARecords{Dir: base, Mounted: src.Mounted},
		DeviceInfoDir: c.DeviceInfoDir}
}

// Attachments builds the pod's attachment list (see attachments.go).
func (e *Resolver) Attachments(ctx context.Context, pod *podnet.Pod, req *podnet.Request) ([]podnet.Attachment, error) {
	return e.attachments(ctx, pod, req)
}

// Warnings are what resolution accepted but reports: unknown annotation
// fields, keys removed from NADs, requests no plugin receives.
func (e *Resolver) Warnings() []string { return e.warnings }

// StatusNetworks is every network every pod needs, for CNI STATUS: the
// primary, the other inline delegates and the defaultNetworks. A
// defaultNetwork that the NAD source does not have is looked for as a conf
// of that name in confDir, else skipped (named in the returned list of
// skipped networks).
func (e *Resolver) StatusNetworks(ctx context.Context) (lists []*libcni.NetworkConfigList, names, skipped []string, err error) {
	l, name, err := e.primary(ctx, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	lists, names = append(lists, l), append(names, name)
	for i := 1; i < len(e.Conf.Delegates); i++ {
		l, err := delegate.ConfList(e.Conf.Delegates[i], "delegate-"+strconv.Itoa(i), e.Conf.CNIVersion)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("plexus config: key \"delegates\"[%d]: %v", i, err)
		}
		lists, names = append(lists, l), append(names, l.Name)
	}
	for _, dn := range e.Conf.DefaultNetworks {
		els, _, err := selection.ParseWithWarnings(dn, e.Conf.MultusNamespace, true)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("plexus config: key \"defaultNetworks\": %v", err)
		}
		for _, el := range els {
			full := el.Namespace + "/" + el.Name
			_, l, err := e.resolveNAD(ctx, el.Namespace, el.Name, true)
			if errors.Is(err, podnet.ErrNADNotFound) {
				l, err = e.Confs.ByName(el.Name)
				if err != nil {
					skipped = append(skipped, full)
					continue
				}
			}
			if err != nil {
				return nil, nil, nil, fmt.Errorf("network %q: %w", full, err)
			}
			lists, names = append(lists, l), append(names, full)
		}
	}
	return lists, names, skipped, nil
}
