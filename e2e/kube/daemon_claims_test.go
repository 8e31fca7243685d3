package kube_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plexus-cni/plexus/e2e/cluster"
	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/wire"
)

// TestDaemonResolvesClaimNAD: plexusd (the built binary, from its
// informers) gives a NAD naming one of the pod's DRA claims a VF of that
// claim, also when the NAD has a resourceName that VFs of another of the
// pod's claims match, exactly as the thin path does.
func TestDaemonResolvesClaimNAD(t *testing.T) {
	k := newKubeEnv(t)
	// plexus's ServiceAccount reads claims (deployments/sriov-dra.yaml).
	if err := k.cp.ApplyFile(filepath.Join(cluster.RepoRoot(), "deployments", "sriov-dra.yaml")); err != nil {
		t.Fatal(err)
	}
	di := filepath.Join(k.Dir, "devinfo")
	k.Extra["deviceInfoDir"] = di
	d := k.startPlexusd()
	ctx := context.Background()

	// Two claims of the pod, one VF each, both of resource plexus.io/vf,
	// allocated (as the scheduler does, through status) and prepared (the
	// DRA driver's records).
	claims := map[string]string{"sriov": "vf-a", "other": "vf-b"}
	pci := map[string]string{"vf-a": "0000:3c:00.0", "vf-b": "0000:3c:00.1"}
	names := map[string]string{}
	for ref, dev := range claims {
		name := "dc-" + ref + "-" + k.Suffix
		c, err := k.cs.ResourceV1().ResourceClaims("default").Create(ctx, &resourcev1.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{Name: "vfs",
				Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: "sriov-vf.plexus.io", AllocationMode: resourcev1.DeviceAllocationModeExactCount, Count: 1}}}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			k.cs.ResourceV1().ResourceClaims("default").Delete(context.Background(), name, metav1.DeleteOptions{})
		})
		c.Status.Allocation = &resourcev1.AllocationResult{Devices: resourcev1.DeviceAllocationResult{Results: []resourcev1.DeviceRequestAllocationResult{
			{Request: "vfs", Driver: "sriov.plexus.io", Pool: "n1", Device: dev}}}}
		if c, err = k.cs.ResourceV1().ResourceClaims("default").UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		rec, _ := json.Marshal(devinfo.DRADevice{Driver: "sriov.plexus.io", Pool: "n1", Device: dev, PCIAddress: pci[dev], ResourceName: "plexus.io/vf", ClaimUID: string(c.UID), Request: "vfs"})
		p := devinfo.DRAPath(di, "sriov.plexus.io", "n1", dev)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		k.WriteFile(p, string(rec))
		names[ref] = name
	}
	for name, ann := range map[string]map[string]string{
		"dc-claim": {"plexus.io/resourceClaim": "sriov"},
		"dc-both":  {"plexus.io/resourceClaim": "other", "k8s.v1.cni.cncf.io/resourceName": "plexus.io/vf"},
	} {
		if _, err := k.nads.NetworkAttachmentDefinitions("default").Create(ctx, &nadv1.NetworkAttachmentDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
			Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: `{"cniVersion":"1.0.0","name":"` + name + `","type":"sriov"}`}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			k.nads.NetworkAttachmentDefinitions("default").Delete(context.Background(), name, metav1.DeleteOptions{})
		})
	}
	sriov, other, no := names["sriov"], names["other"], false
	pod, err := k.cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "dc-" + k.Suffix, Annotations: map[string]string{nadv1.NetworkAttachmentAnnot: "dc-both,dc-claim"}},
		Spec: corev1.PodSpec{NodeName: k.node, AutomountServiceAccountToken: &no,
			ResourceClaims: []corev1.PodResourceClaim{{Name: "sriov", ResourceClaimName: &sriov}, {Name: "other", ResourceClaimName: &other}},
			Containers:     []corev1.Container{{Name: "c", Image: "busybox", ImagePullPolicy: corev1.PullNever}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.cs.CoreV1().Pods("default").Delete(context.Background(), pod.Name, metav1.DeleteOptions{}) })

	// The shim's request for the pod's ADD, with the plugin config the
	// runtime would pass (name and cniVersion inserted, as libcni does).
	var plugin map[string]any
	l := k.PlexusConf()
	if err := json.Unmarshal(l.Plugins[0].Bytes, &plugin); err != nil {
		t.Fatal(err)
	}
	plugin["name"], plugin["cniVersion"] = l.Name, l.CNIVersion
	conf, _ := json.Marshal(plugin)
	// From the informers: a NAD the informer lacks is fetched whole by a
	// miss, which would hide what the informer's transform drops. Asked
	// again until both NADs were hits.
	var resp *wire.Response
	for i := 0; ; i++ {
		misses := d.Metric("plexus_cache_lookups_total", `kind="nad"`, `outcome="miss"`)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err = wire.Call(cctx, filepath.Join(k.Dir, "run", "plexusd.sock"), &wire.Request{Op: wire.OpResolve, Command: "ADD", Config: conf,
			ContainerID: "c-" + k.Suffix, NetNS: "/var/run/netns/none", IfName: "eth0",
			Args: [][2]string{{"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", pod.Name}, {"K8S_POD_UID", string(pod.UID)}}})
		cancel()
		if err != nil {
			t.Fatalf("resolve: %v\nplexusd log:\n%s", err, d.Log())
		}
		if d.Metric("plexus_cache_lookups_total", `kind="nad"`, `outcome="miss"`) == misses {
			break
		}
		if i == 50 {
			t.Fatal("the NADs never came from plexusd's informer")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp.Error != nil {
		t.Fatalf("plexusd: %+v\nplexusd log:\n%s", resp.Error, d.Log())
	}
	got := map[string]string{}
	for _, a := range resp.Attachments {
		got[a.Network] = a.DeviceID
	}
	if got["default/dc-both"] != pci["vf-b"] || got["default/dc-claim"] != pci["vf-a"] {
		t.Errorf("devices by network %v, want default/dc-both: %s (claim \"other\"), default/dc-claim: %s (claim \"sriov\")", got, pci["vf-b"], pci["vf-a"])
	}
}
