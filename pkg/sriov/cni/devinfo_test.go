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

// The device-info base may itself be reached through a symlink (/var/run
// is one to /run on most distributions): paths under it are accepted.
func TestConfineDeviceInfoPaths(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "run")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	p := &Plugin{DeviceInfoDir: filepath.Join(link, "devinfo")}
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(real, "devinfo", "cni"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(real, "devinfo", "cni", "out")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string // want "" means refused
	}{
		{filepath.Join(link, "devinfo/cni/net-c1-net1-device.json"), filepath.Join(real, "devinfo/cni/net-c1-net1-device.json")},
		{filepath.Join(real, "devinfo/cni/a.json"), filepath.Join(real, "devinfo/cni/a.json")},
		{filepath.Join(link, "devinfo/cni/sub/dir/a.json"), filepath.Join(real, "devinfo/cni/sub/dir/a.json")},
		{filepath.Join(link, "devinfo/cni/./x/../b.json"), filepath.Join(real, "devinfo/cni/b.json")},
		{filepath.Join(link, "devinfo/cni/out/a.json"), ""},
		{filepath.Join(link, "devinfo/cni/out/new/a.json"), ""},
		{filepath.Join(link, "devinfo/cni"), ""},
		{filepath.Join(link, "devinfo/dp/a.json"), ""},
		{filepath.Join(link, "devinfo/cni/../../etc/passwd"), ""},
		{"/etc/passwd", ""},
		{"devinfo/cni/a.json", ""},
	} {
		got, err := p.confineDeviceInfo(tc.path, true)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s accepted as %s", tc.path, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q %v, want %s", tc.path, got, err, tc.want)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("directories created through the escaping symlink: %v", ents)
	}
}
