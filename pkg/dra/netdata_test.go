package dra

import (
	"reflect"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
)

func TestDeviceNetworkDataFromNetworkStatus(t *testing.T) {
	st := []nadv1.NetworkStatus{
		{Name: "pod-net", Interface: "eth0", IPs: []string{"10.0.0.5"}},
		{Name: "ns/a", Interface: "vf0", IPs: []string{"10.1.0.2", "fd00::2"}, Mac: "02:00:00:00:00:01",
			DeviceInfo: &nadv1.DeviceInfo{Type: "pci", Pci: &nadv1.PciDevice{PciAddress: "0000:3c:00.1"}}},
	}
	got := DeviceNetworkData(preparedDevice{PCI: "0000:3c:00.1"}, st)
	want := &resourceapi.NetworkDeviceData{InterfaceName: "vf0", HardwareAddress: "02:00:00:00:00:01", IPs: []string{"10.1.0.2/32", "fd00::2/128"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := DeviceNetworkData(preparedDevice{PCI: "0000:3c:00.2"}, st); got != nil {
		t.Errorf("a VF no interface is: %+v, want nil", got)
	}
}

func TestPodClaimNames(t *testing.T) {
	named, generated := "shared", "p-sriov-x"
	p := &corev1.Pod{Spec: corev1.PodSpec{ResourceClaims: []corev1.PodResourceClaim{{Name: "a", ResourceClaimName: &named}, {Name: "b"}}},
		Status: corev1.PodStatus{ResourceClaimStatuses: []corev1.PodResourceClaimStatus{{Name: "b", ResourceClaimName: &generated}}}}
	if got := podClaimNames(p); !reflect.DeepEqual(got, []string{"shared", "p-sriov-x"}) {
		t.Errorf("podClaimNames = %v", got)
	}
}
