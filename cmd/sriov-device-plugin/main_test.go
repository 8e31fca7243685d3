package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plexus-cni/plexus/pkg/testutil"
	"github.com/plexus-cni/plexus/pkg/testutil/fakesysfs"
	"github.com/plexus-cni/plexus/pkg/testutil/kubeletstub"
)

// The built daemon, exec'd as a DaemonSet would run it, against a fake
// sysfs root and the test kubelet: registers, allocates, and on SIGTERM
// exits 0 leaving no socket behind, and the allocated device's device-info
// file in place.
func TestDaemon(t *testing.T) {
	bin := testutil.Binary(t, "sriov-device-plugin")
	tr := fakesysfs.New(t)
	if _, err := tr.AddPF(fakesysfs.PF{Addr: "0000:3b:00.0", Netdev: "plxdp0", NumVFs: 4}); err != nil {
		t.Fatal(err)
	}
	short, err := os.MkdirTemp("", "dpd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(short)
	dir, devinfo, cfg := filepath.Join(short, "dp"), filepath.Join(short, "devinfo"), filepath.Join(short, "dp.json")
	if err := os.WriteFile(cfg, []byte(`{"resourceList":[{"resourceName":"vfs","selectors":[{"pfNames":["plxdp0#0-2"]}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	k := kubeletstub.Start(t, dir)
	health := testutil.FreeAddr(t)
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--config", cfg, "--host-root", tr.Root, "--device-plugin-dir", dir,
		"--devinfo-dir", devinfo, "--resource-prefix", "test.plexus.io", "--metrics-address", "127.0.0.1:0",
		"--health-address", health)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	p := k.WaitPlugin(t, "test.plexus.io/vfs", 1, 10*time.Second)
	// Registered: /readyz says so (the probe of deployments/sriov-device-plugin.yaml).
	waitReadyz(t, "http://"+health+"/readyz", &stderr)
	resp, err := p.Allocate(context.Background(), []string{"0000:3c:00.1"})
	if err != nil {
		t.Fatalf("allocate: %v\n%s", err, stderr.String())
	}
	if got := resp.ContainerResponses[0].Envs["PCIDEVICE_TEST_PLEXUS_IO_VFS"]; got != "0000:3c:00.1" {
		t.Fatalf("env %q", got)
	}
	if _, err := os.Stat(filepath.Join(devinfo, "test.plexus.io-vfs-0000:3c:00.1-device.json")); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no exit 10s after SIGTERM\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "test.plexus.io_vfs.sock")); !os.IsNotExist(err) {
		t.Fatalf("plugin socket left: %v", err)
	}
	// The device-info file of the allocated device stays for the pod.
	if left, _ := filepath.Glob(filepath.Join(devinfo, "*")); len(left) != 1 || filepath.Base(left[0]) != "test.plexus.io-vfs-0000:3c:00.1-device.json" {
		t.Fatalf("device-info files after SIGTERM: %v, want the allocated device's only", left)
	}
}

func TestDaemonRejectsBadStart(t *testing.T) {
	bin := testutil.Binary(t, "sriov-device-plugin")
	tr := fakesysfs.New(t)
	cfg := filepath.Join(t.TempDir(), "dp.json")
	if err := os.WriteFile(cfg, []byte(`{"resourceList":[{"resourceName":"vfs","selectors":[{"pfNames":["x#2-1"]}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", cfg, "--host-root", tr.Root}, `pfNames[0] "x#2-1": VF range "2-1": start 2 is greater than end 1`},
		{[]string{"--config", cfg, "--host-root", "/nonexistent-root"}, `--host-root "/nonexistent-root"`},
		{[]string{"--config", cfg + ".missing", "--host-root", tr.Root}, "no such file"},
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		out, err := exec.Command(bin, append(tc.args, "--device-plugin-dir", t.TempDir(), "--health-address", "")...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: err=%v, output lacks %q:\n%s", tc.args, err, tc.want, out)
		}
	}
}

// waitReadyz waits up to 10s for url to answer 200.
func waitReadyz(t *testing.T, url string, stderr *bytes.Buffer) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			last = err.Error()
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return
		}
		last = fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	t.Fatalf("%s not ready in 10s: %s\n%s", url, last, stderr.String())
}
