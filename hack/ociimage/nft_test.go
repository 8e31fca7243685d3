package main

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

var nftStage sync.Mutex

// nftRoot is Debian's nftables unpacked for linux/arch by
// hack/nft-rootfs.sh into bin/nft, as make images stages it (cached there:
// it fetches the pinned packages from the Debian archive once).
func nftRoot(t *testing.T, arch string) string {
	t.Helper()
	nftStage.Lock()
	defer nftStage.Unlock()
	dir := filepath.Join(testutil.BinDir(), "nft")
	cmd := exec.Command(filepath.Join(testutil.RepoRoot(), "hack", "nft-rootfs.sh"), dir, arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/nft-rootfs.sh %s %s: %v\n%s", dir, arch, err, b)
	}
	return filepath.Join(dir, "linux_"+arch)
}

// loaders are the ELF interpreter nft asks for per arch, a symlink in
// Debian's libc6 as on any Debian system.
var loaders = map[string]string{"amd64": "/lib64/ld-linux-x86-64.so.2", "arm64": "/lib/ld-linux-aarch64.so.1"}

// TestNftClosure: from the real Debian packages of each architecture, the
// layer holds nft, its loader (through the path nft names) and exactly the
// libraries it needs transitively, each an ELF of that architecture, and
// nothing else of the packages (docs, config, other binaries).
func TestNftClosure(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			root := nftRoot(t, arch)
			files, err := nftClosure(root, arch)
			if err != nil {
				t.Fatal(err)
			}
			byPath := map[string]rootFile{}
			for _, f := range files {
				byPath[f.Path] = f
			}
			nft, ok := byPath[NftPath]
			if !ok || nft.Link != "" || nft.Mode != 0o755 {
				t.Fatalf("%s: %+v, want the executable", NftPath, nft.Path)
			}
			ld, ok := byPath[loaders[arch]]
			if !ok || ld.Link == "" {
				t.Fatalf("loader %s: %q, want Debian's symlink", loaders[arch], ld.Link)
			}
			target := ld.Link
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(ld.Path), target)
			}
			if tf, ok := byPath[target]; !ok || tf.Link != "" || tf.Mode&0o111 == 0 {
				t.Errorf("loader %s -> %s: target %+v not an executable in the layer", ld.Path, ld.Link, tf.Path)
			}
			// Every ELF is arch's, and its every DT_NEEDED resolves in the
			// layer (soname symlinks included): what the loader will do.
			names := map[string]bool{}
			for _, f := range files {
				names[path.Base(f.Path)] = true
			}
			var libs []string
			for _, f := range files {
				if f.Link != "" {
					continue
				}
				e, err := elf.NewFile(bytes.NewReader(f.Data))
				if err != nil {
					t.Errorf("%s: not ELF: %v", f.Path, err)
					continue
				}
				if e.Machine != elfMachine[arch] {
					t.Errorf("%s: %s, want %s", f.Path, e.Machine, elfMachine[arch])
				}
				needed, _ := e.DynString(elf.DT_NEEDED)
				for _, n := range needed {
					if !names[n] {
						t.Errorf("%s needs %s, not in the layer", f.Path, n)
					}
				}
				libs = append(libs, needed...)
			}
			for _, want := range []string{"libnftables.so.1", "libnftnl.so.11", "libmnl.so.0", "libc.so.6", "libedit.so.2"} {
				if !names[want] {
					t.Errorf("%s missing from the layer", want)
				}
			}
			// Nothing beyond the closure: 13 ELF files (nft, loader, 11 libraries) and their links.
			for _, f := range files {
				if !strings.HasPrefix(f.Path, "/lib") && !strings.HasPrefix(f.Path, "/usr/lib") && f.Path != NftPath {
					t.Errorf("%s in the layer: not nft nor a library", f.Path)
				}
			}
			if n := len(files); n > 30 {
				t.Errorf("%d files in the layer, want only nft's closure", n)
			}
			var total int
			for _, f := range files {
				total += len(f.Data)
			}
			t.Logf("linux/%s: %d files, %d bytes, %d DT_NEEDED entries", arch, len(files), total, len(libs))
		})
	}
}

func TestNftClosureRefuses(t *testing.T) {
	amd := nftRoot(t, "amd64")
	// arm64's files staged as amd64's: a platform mix-up.
	if _, err := nftClosure(nftRoot(t, "arm64"), "amd64"); err == nil || !strings.Contains(err.Error(), "EM_AARCH64, not EM_X86_64") {
		t.Errorf("arm64 nft as amd64: %v", err)
	}
	// A library missing from the packages: named.
	broken := t.TempDir()
	if b, err := exec.Command("cp", "-a", amd+"/.", broken).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, b)
	}
	libs, _ := filepath.Glob(filepath.Join(broken, "usr/lib/x86_64-linux-gnu/libjansson.so.4*"))
	for _, l := range libs {
		os.Remove(l)
	}
	if _, err := nftClosure(broken, "amd64"); err == nil || !strings.Contains(err.Error(), "needs libjansson.so.4") {
		t.Errorf("without libjansson: %v", err)
	}
	if _, err := nftClosure(t.TempDir(), "amd64"); err == nil || !strings.Contains(err.Error(), "hack/nft-rootfs.sh") {
		t.Errorf("empty root: %v", err)
	}
}

// TestPlexusImageHoldsNft: each platform's plexus image has nft as a layer
// of its own under the binaries, from that platform's packages, and a
// PATH that finds it (knftables looks nft up); the device plugin image
// does not.
func TestPlexusImageHoldsNft(t *testing.T) {
	p := multiArch(t)
	for i := range p {
		p[i].NftRoot = nftRoot(t, p[i].Arch)
	}
	o := Options{Platforms: p, OutDir: t.TempDir(), Tag: "v1.0.0", Created: time.Unix(1700000000, 0).UTC()}
	for _, s := range Specs {
		path, err := Build(s, o)
		if err != nil {
			t.Fatal(err)
		}
		a := load(t, path)
		for _, arch := range a.archs {
			l := a.images[arch]
			h, ok := l.files[NftPath]
			if s.Name != "plexus" {
				if ok || strings.Join(l.config.Config.Env, " ") != "PATH=/usr/bin" {
					t.Errorf("%s linux/%s: nft %v, env %v: want neither", s.Name, arch, ok, l.config.Config.Env)
				}
				continue
			}
			if !ok || h.Mode != 0o755 || !h.ModTime.Equal(o.Created) {
				t.Fatalf("%s linux/%s: %s %+v", s.Name, arch, NftPath, h)
			}
			e, err := elf.NewFile(bytes.NewReader(l.data[NftPath]))
			if err != nil || e.Machine != elfMachine[arch] {
				t.Errorf("%s linux/%s: nft is %v (%v)", s.Name, arch, e, err)
			}
			if ld := l.files[loaders[arch]]; ld == nil || ld.Linkname == "" {
				t.Errorf("%s linux/%s: loader symlink %s missing", s.Name, arch, loaders[arch])
			}
			if env := strings.Join(l.config.Config.Env, " "); env != "PATH=/usr/bin:/usr/sbin" {
				t.Errorf("%s linux/%s: env %s does not find %s", s.Name, arch, env, NftPath)
			}
			if n := len(l.config.History); n != 2 || !strings.Contains(l.config.History[0].CreatedBy, "nft") {
				t.Errorf("%s linux/%s: history %+v, want the nft layer then the binaries", s.Name, arch, l.config.History)
			}
		}
	}
}
