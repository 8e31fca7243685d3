package deviceplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/plexus-cni/plexus/pkg/atomicfile"
	"github.com/plexus-cni/plexus/pkg/sriov/dpconfig"
)

// Host paths of the character devices handed to containers.
const (
	vfioContainer = "/dev/vfio/vfio"
	vhostNet      = "/dev/vhost-net"
	tunDevice     = "/dev/net/tun"
	rdmaCM        = "/dev/infiniband/rdma_cm"
)

// Allocate answers kubelet for each container: the PCIDEVICE_ variables,
// device specs for vfio/vhost-net/RDMA devices, and a device-info file per
// device in the device-info directory.
func (s *Server) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &pluginapi.AllocateResponse{}
	for i, cr := range req.ContainerRequests {
		car, err := s.allocateContainer(cr.DevicesIds)
		if err != nil {
			if s.metrics != nil {
				s.metrics.allocationFailed(s.fullName)
			}
			return nil, status.Errorf(codes.InvalidArgument, "resource %s: container request %d: %v", s.fullName, i, err)
		}
		resp.ContainerResponses = append(resp.ContainerResponses, car)
	}
	if s.metrics != nil {
		n := 0
		for _, cr := range req.ContainerRequests {
			n += len(cr.DevicesIds)
		}
		s.metrics.allocated(s.fullName, n)
	}
	return resp, nil
}

// deviceEnvInfo is one device's entry in PCIDEVICE_<...>_INFO.
type deviceEnvInfo struct {
	Generic map[string]string `json:"generic"`
	VFIO    map[string]string `json:"vfio,omitempty"`
	RDMA    map[string]string `json:"rdma,omitempty"`
	Vhost   map[string]string `json:"vhost,omitempty"`
}

func (s *Server) allocateContainer(ids []string) (*pluginapi.ContainerAllocateResponse, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("no devices requested")
	}
	car := &pluginapi.ContainerAllocateResponse{Envs: map[string]string{}}
	specs := map[string]bool{}
	addSpec := func(host, container string) {
		if specs[container] {
			return
		}
		specs[container] = true
		car.Devices = append(car.Devices, &pluginapi.DeviceSpec{HostPath: host, ContainerPath: container, Permissions: "rw"})
	}
	info := map[string]deviceEnvInfo{}
	devs := make([]*dpconfig.Device, 0, len(ids))
	for _, id := range ids {
		d := s.devs[id]
		if d == nil {
			return nil, fmt.Errorf("device %q is not in this pool", id)
		}
		if d.IsVFIO() && d.IOMMUGroup == "" {
			return nil, fmt.Errorf("device %s: bound to vfio-pci but has no IOMMU group", d.Addr)
		}
		devs = append(devs, d)
	}
	for _, d := range devs {
		ei := deviceEnvInfo{Generic: map[string]string{"deviceID": d.Addr}}
		di := &nadv1.DeviceInfo{Type: nadv1.DeviceInfoTypePCI, Version: nadv1.DeviceInfoVersion,
			Pci: &nadv1.PciDevice{PciAddress: d.Addr, PfPciAddress: d.PFAddr}}
		if d.IsVFIO() {
			group := "/dev/vfio/" + d.IOMMUGroup
			addSpec(vfioContainer, vfioContainer)
			addSpec(group, group)
			ei.VFIO = map[string]string{"mount": vfioContainer, "dev-mount": group}
		}
		if d.NeedVhostNet {
			addSpec(vhostNet, vhostNet)
			addSpec(tunDevice, tunDevice)
			di.Pci.Vhostnet = vhostNet
			ei.Vhost = map[string]string{"net-mount": vhostNet, "tun-mount": tunDevice}
		}
		if len(d.RDMA) > 0 {
			di.Pci.RdmaDevice = strings.Join(d.RDMA, ",")
			ei.RDMA = map[string]string{"rdma_dev": di.Pci.RdmaDevice}
			addSpec(rdmaCM, rdmaCM)
			for _, uv := range d.Verbs {
				p := "/dev/infiniband/" + uv
				addSpec(p, p)
			}
		}
		info[d.Addr] = ei
		if err := s.writeDevInfo(d.Addr, di); err != nil {
			return nil, err
		}
	}
	env := EnvName(s.fullName)
	car.Envs[env] = strings.Join(ids, ",")
	b, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	car.Envs[env+"_INFO"] = string(b)
	return car, nil
}

// writeDevInfo writes (replacing) the device-info file of one device with
// atomicfile: a reader (plexus ADD) finds the old file or the whole new one,
// never none. A file this server wrote with the same content and still
// there is kept.
func (s *Server) writeDevInfo(id string, di *nadv1.DeviceInfo) error {
	if s.devinfoDir == "" {
		return nil
	}
	path := DevInfoPath(s.devinfoDir, s.fullName, id)
	b, err := json.Marshal(di)
	if err != nil {
		return err
	}
	if s.content[path] == string(b) {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
	}
	if err := os.MkdirAll(s.devinfoDir, 0o755); err != nil {
		return fmt.Errorf("device %s: device-info dir: %w", id, err)
	}
	if err := atomicfile.WriteFile(path, b, 0o444); err != nil {
		return fmt.Errorf("device %s: write device-info %s: %w", id, path, err)
	}
	s.written[path] = id
	s.content[path] = string(b)
	return nil
}
