package resolve

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/config"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

// A file of the node that resolution cannot read is an error that says so
// (podnet.Unavailable: plexusd then lets the shim resolve in the runtime's
// context), never taken for "none"; an error about the request is not.
func TestNodeFilesUnreadable(t *testing.T) {
	dir := t.TempDir()
	load := func(keys string) *config.Conf {
		c, err := config.Load([]byte(`{"cniVersion":"1.0.0","name":"plexus-net","type":"plexus",` + keys + `}`))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	pod := &podnet.Pod{Namespace: "a", Name: "p", Annotations: map[string]string{}}
	req := &podnet.Request{ContainerID: "c1", IfName: "eth0", Pod: podnet.PodRef{Namespace: "a", Name: "p"}, Args: podArgs}
	hd := conflist("hd", `{"type":"host-device","deviceID":"0000:81:00.5"}`)
	writeFile(t, filepath.Join(dir, "confs", "pri.conflist"), priConf)
	pri := `"clusterNetwork":"` + filepath.Join(dir, "confs", "pri.conflist") + `"`
	tests := []struct {
		name, keys  string
		mounted     bool
		networks    string
		unavailable bool
		wantErr     string // prefix; "" for success
	}{
		{name: "clusterNetwork file missing", keys: `"clusterNetwork":"` + filepath.Join(dir, "nope", "pri.conflist") + `"`,
			unavailable: true, wantErr: `plexus config: key "clusterNetwork": stat ` + filepath.Join(dir, "nope")},
		{name: "clusterNetwork directory missing", keys: `"clusterNetwork":"` + filepath.Join(dir, "nope") + `"`,
			unavailable: true, wantErr: `plexus config: key "clusterNetwork": stat `},
		{name: "clusterNetwork by name, confDir missing", keys: `"clusterNetwork":"pri-by-name","confDir":"` + filepath.Join(dir, "nope") + `"`,
			unavailable: true, wantErr: `plexus config: key "clusterNetwork": "pri-by-name" is neither a NAD`},
		{name: "empty spec.config, confDir missing", keys: pri + `,"confDir":"` + filepath.Join(dir, "nope") + `"`, networks: "a/empty",
			unavailable: true, wantErr: `network "a/empty" (interface net1): field "spec.config" is empty and no CNI config named "empty": stat `},
		{name: "empty spec.config, no such conf: the request's fault", keys: pri + `,"confDir":"` + filepath.Join(dir, "confs") + `"`, networks: "a/empty",
			wantErr: `network "a/empty" (interface net1): field "spec.config" is empty and no CNI config named "empty" in `},
		{name: "hard-coded device, deviceInfoDir missing on the node: no pool", keys: pri + `,"deviceInfoDir":"` + filepath.Join(dir, "nope") + `"`,
			networks: "a/hd"},
		{name: "hard-coded device, mounted deviceInfoDir missing", keys: pri + `,"deviceInfoDir":"` + filepath.Join(dir, "nope") + `"`, mounted: true,
			networks: "a/hd", unavailable: true, wantErr: `network "a/hd" (interface net1): field "deviceID": device 0000:81:00.5: cannot tell whether a device-plugin pool on this node owns it: stat `},
		{name: "hard-coded device, mounted deviceInfoDir there", keys: pri + `,"deviceInfoDir":"` + filepath.Join(dir, "confs") + `"`, mounted: true,
			networks: "a/hd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := nads(newNAD("a", "empty", "", nil), newNAD("a", "hd", hd, nil))
			e := New(load(tc.keys), Sources{NADs: src, Mounted: tc.mounted})
			pod.Annotations["k8s.v1.cni.cncf.io/networks"] = tc.networks
			_, err := e.Attachments(context.Background(), pod, req)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Attachments: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Fatalf("Attachments: %v, want an error starting %q", err, tc.wantErr)
			}
			if got := podnet.Unavailable(err); got != tc.unavailable {
				t.Errorf("podnet.Unavailable(%v) = %v, want %v", err, got, tc.unavailable)
			}
		})
	}
}

// A DRA record resolution cannot read may be the VF a resourceName NAD
// gets from the pod's claim: the error is not waved through to the
// device plugin's VFs.
func TestClaimRecordUnreadable(t *testing.T) {
	e, pod := claimWorld()
	dir := t.TempDir()
	e.DRADevices = nil
	e.DeviceInfoDir = dir
	p := filepath.Join(dir, "dra", "sriov.plexus.io_n1_vf-a.json")
	writeFile(t, p, "")
	os.Remove(p)
	if err := os.Symlink(filepath.Base(p), p); err != nil {
		t.Fatal(err)
	}
	atts := []podnet.Attachment{{Network: "ns/d", IfName: "net1", ResourceName: "plexus.io/vf"}}
	err := e.AssignDevices(context.Background(), pod, &podnet.Request{}, atts)
	if err == nil || !podnet.Unavailable(err) || !strings.HasPrefix(err.Error(), `network "ns/d" (interface net1): resourceClaim "sriov": device vf-a: open `+p) {
		t.Fatalf("AssignDevices: %v, want the unreadable record's error", err)
	}
}
