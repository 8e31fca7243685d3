package devinfo

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPaths(t *testing.T) {
	if got, want := DPPath("/b", "intel.com/sriov_a", "0000:03:00.2"), "/b/dp/intel.com-sriov_a-0000:03:00.2-device.json"; got != want {
		t.Errorf("DPPath = %s, want %s", got, want)
	}
	if got, want := CNIPath("/b", "ns/net", "c1", "net1"), "/b/cni/ns-net-c1-net1-device.json"; got != want {
		t.Errorf("CNIPath = %s, want %s", got, want)
	}
}

func TestPoolsClaim(t *testing.T) {
	dir := t.TempDir()
	p := DPPath(dir, "intel.com/a", "0000:03:00.2")
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte(`{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:03:00.2"}}`), 0o644)
	os.WriteFile(filepath.Join(dir, "dp", "junk-device.json"), []byte(`{`), 0o644)
	pools := Pools{Dir: dir}
	if got := pools.Claim("0000:03:00.2"); got != p {
		t.Errorf("Claim(pool device) = %q, want %q", got, p)
	}
	for _, d := range []string{"0000:03:00.3", ""} {
		if got := pools.Claim(d); got != "" {
			t.Errorf("Claim(%q) = %q, want none", d, got)
		}
	}
}
