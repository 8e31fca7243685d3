package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

func TestRefusesDynamicBinary(t *testing.T) {
	bin := fakeBins(t, "amd64")
	dyn := ""
	for _, p := range []string{"/bin/true", "/usr/bin/true"} {
		if b, err := os.ReadFile(p); err == nil && checkStatic(b) != nil {
			dyn = p
			break
		}
	}
	if dyn == "" {
		t.Fatal("no dynamically linked /bin/true to test with")
	}
	b, _ := os.ReadFile(dyn)
	os.WriteFile(filepath.Join(bin, "plexus"), b, 0o755)
	_, err := Build(Specs[0], Options{Platforms: []Platform{{Arch: runtime.GOARCH, BinDir: bin}}, OutDir: t.TempDir(), Tag: "v1.0.0"})
	if err == nil || !strings.Contains(err.Error(), "dynamically linked (interpreter /lib") || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("error %v, want a refusal of the dynamic binary", err)
	}
}

// privateContainerd starts a containerd of its own (socket, root and state
// in a temp dir) and returns a ctr runner for it.
func privateContainerd(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	testutil.RequireRoot(t)
	binDir := filepath.Join(testutil.BinDir(), "k8s") // the node harness's containerd, if built
	find := func(name string) string {
		if p := filepath.Join(binDir, name); fileExists(p) {
			return p
		}
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("%s not found in %s or PATH (make k8s, or apt-get install containerd runc)", name, binDir)
		}
		return p
	}
	containerd, ctr := find("containerd"), find("ctr")
	find("runc")
	dir, err := os.MkdirTemp("", "plexus-ociimage-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "containerd.sock")
	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(cfg, []byte("version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"), 0o644)
	log, _ := os.Create(filepath.Join(dir, "containerd.log"))
	cmd := exec.Command(containerd, "--config", cfg, "--address", sock, "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"))
	cmd.Stdout, cmd.Stderr = log, log
	// The shim and runc are found through PATH.
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(containerd)+":"+os.Getenv("PATH"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		exec.Command("umount", "-R", filepath.Join(dir, "root")).Run()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			t.Logf("containerd log:\n%s", tail(string(b), 30))
		}
		os.RemoveAll(dir)
	})
	run := func(args ...string) (string, error) {
		c := exec.Command(ctr, append([]string{"--address", sock, "--namespace", "k8s.io"}, args...)...)
		c.Env = cmd.Env
		out, err := c.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("ctr %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := run("version"); err == nil {
			return run
		} else if time.Now().After(deadline) {
			t.Fatalf("containerd did not come up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestImportAndRunInContainerd imports the real images into a real
// containerd as the node e2e and `kind load` do, and runs the plexus
// image's entrypoint as the DaemonSet runs it: host networking, the host's
// CNI dirs mounted at the same paths, installing into them.
func TestImportAndRunInContainerd(t *testing.T) {
	for _, s := range Specs {
		for _, f := range s.Files {
			testutil.Binary(t, f.Bin)
		}
	}
	ctr := privateContainerd(t)
	out := t.TempDir()
	// A multi-arch index as make images writes it: the host's real binaries
	// and another architecture's (fake: containerd imports and unpacks only
	// the host's platform).
	other := map[string]string{"amd64": "arm64"}[runtime.GOARCH]
	if other == "" {
		other = "amd64"
	}
	o := Options{Platforms: []Platform{{Arch: runtime.GOARCH, BinDir: testutil.BinDir(), NftRoot: nftRoot(t, runtime.GOARCH)}, {Arch: other, BinDir: fakeBins(t, other)}},
		OutDir: out, Tag: fmt.Sprintf("test%d", rand.Uint32())}
	for _, s := range Specs {
		p, err := Build(s, o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ctr("images", "import", p); err != nil {
			t.Fatal(err)
		}
		ls, err := ctr("images", "ls", "-q")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(ls, s.Ref(o.Tag)+"\n") {
			t.Fatalf("containerd lists %q, want %s", ls, s.Ref(o.Tag))
		}
	}

	host := t.TempDir()
	binDir, confDir, cacheDir := filepath.Join(host, "bin"), filepath.Join(host, "net.d"), filepath.Join(host, "cache")
	for _, d := range []string{binDir, confDir, cacheDir} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(filepath.Join(confDir, "10-br.conflist"), []byte(`{"cniVersion":"1.0.0","name":"br","plugins":[{"type":"bridge"}]}`), 0o644)
	mount := func(d string) string { return "type=bind,src=" + d + ",dst=" + d + ",options=rbind:rw" }
	c := daemonSetContainer(t, filepath.Join(testutil.RepoRoot(), "deployments", "plexus.yaml"))
	// As deployments/plexus.yaml runs it: root, no capabilities, read-only
	// root filesystem.
	args := []string{"run", "--rm", "--net-host", "--snapshotter", "native", "--read-only", "--user", "0",
		"--mount", mount(binDir), "--mount", mount(confDir), "--mount", mount(cacheDir),
	}
	// containerd's default capabilities, all dropped (ctr has no "ALL").
	for _, c := range []string{"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
		"SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"} {
		args = append(args, "--cap-drop", "CAP_"+c)
	}
	args = append(args, Specs[0].Ref(o.Tag), fmt.Sprintf("plexus-install-%d", rand.Uint32()))
	args = append(args, c.Command...)
	args = append(args, "--once", "--clusterless", "--source-dir=/usr/lib/plexus",
		"--cni-bin-dir="+binDir, "--cni-conf-dir="+confDir, "--cni-dir="+cacheDir)
	if _, err := ctr(args...); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"plexus", "plexus-thin", "sriov", "passthru"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			t.Errorf("the image's plexus-install did not install %s: %v", b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(confDir, "00-plexus.conflist")); err != nil {
		t.Errorf("the image's plexus-install wrote no config: %v", err)
	}

	// The image's nft (found through its PATH, as knftables finds it) runs
	// from its own libraries and programs the kernel: plexusd's
	// MultiNetworkPolicy enforcement. In a network namespace of the
	// container's own, with NET_ADMIN as plexusd has it.
	if outp, err := ctr("run", "--rm", "--snapshotter", "native", "--read-only", Specs[0].Ref(o.Tag),
		fmt.Sprintf("nft-version-%d", rand.Uint32()), "nft", "--version"); err != nil || !strings.Contains(outp, "nftables v1.") {
		t.Errorf("nft --version in the plexus image: %q %v", outp, err)
	}
	rules := filepath.Join(host, "rules.nft")
	os.WriteFile(rules, []byte("table inet plexus {\n  chain ingress {\n    type filter hook input priority 0; policy accept;\n    ip saddr 10.9.8.0/24 tcp dport 8080 drop\n  }\n}\n"), 0o644)
	outp, err := ctr("run", "--rm", "--snapshotter", "native", "--read-only", "--cap-add", "CAP_NET_ADMIN",
		"--mount", "type=bind,src="+rules+",dst=/rules.nft,options=rbind:ro", Specs[0].Ref(o.Tag),
		fmt.Sprintf("nft-apply-%d", rand.Uint32()), "nft", "--echo", "--handle", "-f", "/rules.nft")
	// The kernel's handle on the echoed rule: committed, not just parsed.
	if err != nil || !strings.Contains(outp, "add rule inet plexus ingress ip saddr 10.9.8.0/24 tcp dport 8080 drop # handle ") {
		t.Errorf("nft -f in the plexus image: %q %v", outp, err)
	}

	// The device plugin image starts and knows its flags.
	outp, _ = ctr("run", "--rm", "--net-host", "--snapshotter", "native", Specs[1].Ref(o.Tag),
		fmt.Sprintf("sriov-dp-%d", rand.Uint32()), "/usr/bin/sriov-device-plugin", "--help")
	if !strings.Contains(outp, "-config") {
		t.Errorf("sriov-device-plugin --help in its image:\n%s", outp)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
