package cni

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

// A NAD naming a host file as CNIDeviceInfoFile gets neither a write (ADD
// is refused, naming the key) nor a removal (DEL leaves it alone).
func TestDeviceInfoPathConfined(t *testing.T) {
	f := newFixture(t, 1, "")
	vf := f.vfs[0]
	victimDir := t.TempDir()
	victim := filepath.Join(victimDir, "precious")
	if err := os.WriteFile(victim, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A symlink inside the device-info cni/ dir that points out of it.
	cniDir := filepath.Join(f.devinfoBase, "cni")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victimDir, filepath.Join(cniDir, "escape")); err != nil {
		t.Fatal(err)
	}
	bad := []string{
		victim,
		filepath.Join(cniDir, "..", "..", filepath.Base(victimDir), "precious"),
		cniDir + "/../../../" + strings.TrimPrefix(victim, "/"),
		filepath.Join(cniDir, "escape", "precious"),
		filepath.Join(f.devinfoBase, "dp", "x-device.json"), // the device plugin's, not ours
		cniDir,
	}
	for i, path := range bad {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			podNS := testutil.NewNS(t)
			conf := f.conf("1.0.0", vf.Addr, fmt.Sprintf(`"runtimeConfig":{"CNIDeviceInfoFile":%q}`, path))
			_, err := f.p.Add(args(podNS, "c1", "net1", conf))
			if err == nil || !strings.Contains(err.Error(), "CNIDeviceInfoFile") {
				t.Fatalf("ADD with device-info path %s: %v", path, err)
			}
			f.assertVFHome(t, vf)
			if err := f.p.Del(args(podNS, "c1", "net1", conf)); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if b, err := os.ReadFile(victim); err != nil || string(b) != "keep me" {
				t.Fatalf("victim file touched: %q %v", b, err)
			}
		})
	}
}
