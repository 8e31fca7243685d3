package attach

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/podnet"
)

func devInfoFixture(t testing.TB) (*Attacher, *podnet.Attachment, []byte) {
	base := t.TempDir()
	e := &Attacher{DeviceInfoDir: base, Log: slog.New(slog.DiscardHandler)}
	want := []byte(`{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.1"}}`)
	src := devinfo.DPPath(base, "intel.com/sriov", "0000:3b:02.1")
	if err := os.MkdirAll(filepath.Dir(src), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, want, 0o600); err != nil {
		t.Fatal(err)
	}
	a := &podnet.Attachment{Network: "sriov-a", ResourceName: "intel.com/sriov", DeviceID: "0000:3b:02.1",
		DeviceInfoFile: filepath.Join(base, "cni", "pod-net1.json")}
	return e, a, want
}

// TestCopyDeviceInfo: the device plugin's device-info of the attachment's
// device is copied to the attachment's file before its delegate runs, and
// removed after its DEL.
func TestCopyDeviceInfo(t *testing.T) {
	e, a, want := devInfoFixture(t)
	if err := e.copyDeviceInfo(a); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(a.DeviceInfoFile)
	if err != nil || string(got) != string(want) {
		t.Fatalf("device-info file: %q, %v; want %q", got, err, want)
	}
	if fi, err := os.Stat(a.DeviceInfoFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("device-info file mode: %v, %v; want 0600", fi, err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(a.DeviceInfoFile), ".*"))
	if len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
	e.removeDeviceInfo(a)
	if _, err := os.Stat(a.DeviceInfoFile); !os.IsNotExist(err) {
		t.Fatalf("device-info file after DEL: %v", err)
	}
}

// BenchmarkCopyDeviceInfo: the per-delegate cost of an SR-IOV attachment's
// device-info copy on the ADD path (docs/observability.md).
func BenchmarkCopyDeviceInfo(b *testing.B) {
	e, a, _ := devInfoFixture(b)
	for b.Loop() {
		if err := e.copyDeviceInfo(a); err != nil {
			b.Fatal(err)
		}
	}
}
