package devinfo

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
	os.WriteFile(filepath.Join(dir, "dp", "other.txt"), []byte(`{`), 0o644) // not a device-info name
	pools := Pools{Dir: dir}
	if got, err := pools.Claim("0000:03:00.2"); got != p || err != nil {
		t.Errorf("Claim(pool device) = %q, %v, want %q", got, err, p)
	}
	for _, d := range []string{"0000:03:00.3", ""} {
		if got, err := pools.Claim(d); got != "" || err != nil {
			t.Errorf("Claim(%q) = %q, %v, want none", d, got, err)
		}
	}
}

// Claim fails closed: what it cannot read or parse may be the claim.
// Without a dp/ directory no device plugin wrote one (no pool), unless
// Dir is a container's mount, which must then be there.
func TestPoolsClaimFailsClosed(t *testing.T) {
	dir := t.TempDir()
	if got, err := (Pools{Dir: dir}).Claim("0000:03:00.2"); got != "" || err != nil {
		t.Errorf("no dp/: %q, %v, want no pool", got, err)
	}
	if got, err := (Pools{Dir: filepath.Join(dir, "missing")}).Claim("0000:03:00.2"); got != "" || err != nil {
		t.Errorf("no Dir on the node: %q, %v, want no pool", got, err)
	}
	var pe *fs.PathError
	if _, err := (Pools{Dir: filepath.Join(dir, "missing"), Mounted: true}).Claim("0000:03:00.2"); !errors.As(err, &pe) {
		t.Errorf("mounted Dir missing: %v, want an *fs.PathError", err)
	}
	if got, err := (Pools{Dir: dir, Mounted: true}).Claim("0000:03:00.2"); got != "" || err != nil {
		t.Errorf("mounted Dir without dp/: %q, %v, want no pool", got, err)
	}
	dp := filepath.Join(dir, "dp")
	os.MkdirAll(dp, 0o755)
	loop := filepath.Join(dp, "a-0000:03:00.9-device.json")
	os.Symlink(filepath.Base(loop), loop) // root opens any mode, not a loop
	if _, err := (Pools{Dir: dir}).Claim("0000:03:00.2"); !errors.As(err, &pe) || !strings.Contains(err.Error(), loop) {
		t.Errorf("unreadable file: %v, want an *fs.PathError naming it", err)
	}
	os.Remove(loop)
	junk := filepath.Join(dp, "junk-device.json")
	os.WriteFile(junk, []byte(`{`), 0o644)
	if _, err := (Pools{Dir: dir}).Claim("0000:03:00.2"); err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("unparsable file: %v, want an error naming it", err)
	}
}

func TestDRARecords(t *testing.T) {
	dir := t.TempDir()
	r := DRARecords{Dir: dir}
	if d, err := r.Record("drv", "pool", "dev"); d != nil || err != nil {
		t.Errorf("no record: %+v, %v, want none", d, err)
	}
	p := DRAPath(dir, "drv", "pool", "dev")
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte(`{"driver":"drv","pool":"pool","device":"dev","pciAddress":"0000:03:00.2"}`), 0o644)
	if d, err := r.Record("drv", "pool", "dev"); err != nil || d == nil || d.PCIAddress != "0000:03:00.2" {
		t.Errorf("record: %+v, %v", d, err)
	}
	os.Remove(p)
	os.Symlink(filepath.Base(p), p)
	var pe *fs.PathError
	if _, err := r.Record("drv", "pool", "dev"); !errors.As(err, &pe) {
		t.Errorf("unreadable record: %v, want an *fs.PathError", err)
	}
	if _, err := (DRARecords{Dir: filepath.Join(dir, "missing"), Mounted: true}).Record("drv", "pool", "dev"); !errors.As(err, &pe) {
		t.Errorf("mounted Dir missing: %v, want an *fs.PathError", err)
	}
	if d, err := (DRARecords{Dir: filepath.Join(dir, "missing")}).Record("drv", "pool", "dev"); d != nil || err != nil {
		t.Errorf("no Dir on the node: %+v, %v, want none", d, err)
	}
}
