package netpol

import (
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

const statusAnnot = "k8s.v1.cni.cncf.io/network-status"

func statusPod(ns, name string, phase corev1.PodPhase, status string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name},
			Annotations: map[string]string{statusAnnot: status}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{
			{Name: "web", ContainerPort: 8080}, {ContainerPort: 9999}}}}},
		Status: corev1.PodStatus{Phase: phase},
	}
}

func TestPeersOf(t *testing.T) {
	st := `[{"name":"cbr0","interface":"eth0","ips":["10.244.0.5"],"default":true},
	        {"name":"ns1/lan","interface":"net1","ips":["10.66.0.2","fd66::2"]},
	        {"name":"lan2","interface":"net2","ips":["192.168.0.9/24"]}]`
	got := PeersOf(statusPod("ns1", "b", corev1.PodRunning, st))
	want := map[NAD]Peer{
		{"ns1", "lan"}: {Namespace: "ns1", Name: "b", Labels: map[string]string{"app": "b"},
			IPs: []netip.Addr{netip.MustParseAddr("10.66.0.2"), netip.MustParseAddr("fd66::2")}, Ports: []NamedPort{{Name: "web", Port: 8080}}},
		{"ns1", "lan2"}: {Namespace: "ns1", Name: "b", Labels: map[string]string{"app": "b"},
			IPs: []netip.Addr{netip.MustParseAddr("192.168.0.9")}, Ports: []NamedPort{{Name: "web", Port: 8080}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PeersOf:\n got %+v\nwant %+v", got, want)
	}
	for _, p := range []*corev1.Pod{
		statusPod("ns1", "b", corev1.PodSucceeded, st),
		statusPod("ns1", "b", corev1.PodFailed, st),
		statusPod("ns1", "b", corev1.PodRunning, "{not json"),
	} {
		if got := PeersOf(p); len(got) != 0 {
			t.Errorf("phase %s, status %.10q: peers %v, want none", p.Status.Phase, p.Annotations[statusAnnot], got)
		}
	}
	idx := BuildIndex([]*corev1.Pod{statusPod("ns1", "b", corev1.PodRunning, st), statusPod("ns2", "c", corev1.PodRunning, st)},
		[]*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "ns2", Labels: map[string]string{"team": "y"}}}})
	if n := len(idx.Peers[NAD{"ns1", "lan"}]); n != 2 || idx.Namespaces["ns2"]["team"] != "y" {
		t.Errorf("BuildIndex: %d peers on ns1/lan, namespaces %v", n, idx.Namespaces)
	}
}

func TestAttachmentsOf(t *testing.T) {
	e := &podnet.Entry{Attachments: []podnet.Attachment{
		{Network: "cbr0", IfName: "eth0", Primary: true},
		{Network: "ns1/lan", IfName: "net1"},
		{Network: "ns1/sriov", IfName: "net2", DeviceID: "0000:01:00.2"},
	}}
	got := AttachmentsOf(e, func(a podnet.Attachment) bool { return a.DeviceID != "" })
	want := []Attachment{{NAD: NAD{"ns1", "lan"}, Interface: "net1"}, {NAD: NAD{"ns1", "sriov"}, Interface: "net2", VFIO: true}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AttachmentsOf: %+v, want %+v", got, want)
	}
}

// bigPod is a pod as an apiserver returns it: managed fields, three
// containers with env and mounts, conditions, and a network-status.
func bigPod(i int) *corev1.Pod {
	p := statusPod(fmt.Sprintf("ns%d", i%20), fmt.Sprintf("pod-%d", i), corev1.PodRunning,
		fmt.Sprintf(`[{"name":"cbr0","interface":"eth0","ips":["10.244.%d.%d"],"default":true},{"name":"ns1/lan","interface":"net1","ips":["10.66.%d.%d"],"mac":"02:00:00:00:00:01"}]`, i/250, i%250, i/250, i%250))
	p.UID = types.UID(fmt.Sprintf("uid-%08d-0000-0000-0000-000000000000", i))
	p.ResourceVersion = fmt.Sprint(100000 + i)
	p.Labels["pod-template-hash"] = "5d8f7c9b6"
	p.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = strings.Repeat("x", 1500)
	for j := 0; j < 6; j++ {
		p.ManagedFields = append(p.ManagedFields, metav1.ManagedFieldsEntry{Manager: "kubelet", Operation: "Update",
			APIVersion: "v1", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(strings.Repeat("{\"f:x\":{}}", 40))}})
	}
	for c := 0; c < 3; c++ {
		ctr := corev1.Container{Name: fmt.Sprintf("c%d", c), Image: "registry.example/app:v1.2.3"}
		for e := 0; e < 10; e++ {
			ctr.Env = append(ctr.Env, corev1.EnvVar{Name: fmt.Sprintf("VAR_%d", e), Value: "some-value-" + fmt.Sprint(e)})
		}
		ctr.VolumeMounts = []corev1.VolumeMount{{Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}}
		p.Spec.Containers = append(p.Spec.Containers, ctr)
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: ctr.Name, Image: ctr.Image,
			ImageID: "sha256:" + strings.Repeat("a", 64), ContainerID: "containerd://" + strings.Repeat("b", 64)})
	}
	for _, c := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady, corev1.PodInitialized, corev1.PodScheduled} {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue})
	}
	return p
}

func heapAfter(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
}

// TestTrimPodMemory: an informer store of 1000 pods trimmed by TrimPod
// holds what the index needs, in at most a quarter of the heap the
// untrimmed pods take and under 4 KiB a pod (measured: ~2.7 KiB, of
// which most is corev1.Pod's own struct; untrimmed ~14 KiB).
func TestTrimPodMemory(t *testing.T) {
	const n = 1000
	measure := func(trim bool) (uint64, cache.Store) {
		store := cache.NewStore(cache.MetaNamespaceKeyFunc)
		return heapAfter(func() {
			for i := 0; i < n; i++ {
				var obj any = bigPod(i)
				if trim {
					obj, _ = TrimPod(obj)
				}
				_ = store.Add(obj)
			}
		}), store
	}
	full, fullStore := measure(false)
	trimmed, store := measure(true)
	t.Logf("1000 pods in an informer store: %d KiB untrimmed, %d KiB trimmed (%d B/pod)", full>>10, trimmed>>10, trimmed/n)
	if trimmed*4 > full || trimmed > n*4096 {
		t.Errorf("trimmed pods take %d B, more than a quarter of untrimmed %d B or 4 KiB a pod", trimmed, full)
	}
	runtime.KeepAlive(fullStore)
	obj, ok, _ := store.GetByKey("ns7/pod-7")
	if !ok {
		t.Fatal("pod-7 not in the store")
	}
	if got, want := PeersOf(obj.(*corev1.Pod)), PeersOf(bigPod(7)); !reflect.DeepEqual(got, want) || len(got) != 1 {
		t.Errorf("trimmed pod's peers %+v, want %+v", got, want)
	}
	if p := obj.(*corev1.Pod); p.ResourceVersion == "" || p.UID == "" || len(p.ManagedFields) != 0 || len(p.Annotations) != 1 {
		t.Errorf("trimmed pod: %+v", p.ObjectMeta)
	}
}
