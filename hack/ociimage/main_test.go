package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sigs.k8s.io/yaml"

	"github.com/plexus-cni/plexus/pkg/testutil"
)

// fakeBins writes a distinct small file per binary the Specs need, naming
// the binary and arch.
func fakeBins(t *testing.T, arch string) string {
	t.Helper()
	dir := t.TempDir()
	for _, s := range Specs {
		for _, f := range s.Files {
			if err := os.WriteFile(filepath.Join(dir, f.Bin), []byte(fakeBin(f.Bin, arch)), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func fakeBin(name, arch string) string { return "binary " + name + " for " + arch }

// multiArch is two platforms of fake binaries.
func multiArch(t *testing.T) []Platform {
	return []Platform{{Arch: "amd64", BinDir: fakeBins(t, "amd64")}, {Arch: "arm64", BinDir: fakeBins(t, "arm64")}}
}

// archive is an OCI layout tarball read back the way a runtime reads it:
// index.json names one image index, which holds an image per platform.
type archive struct {
	ref, refName string          // the index.json entry's annotations
	media        types.MediaType // of the index.json entry
	archs        []string        // platforms in the index's order
	images       map[string]loaded
}

// loaded is one platform's image.
type loaded struct {
	config *v1.ConfigFile
	files  map[string]*tar.Header
	data   map[string][]byte
	media  types.MediaType
}

// load untars an OCI layout tarball and reads its index and every image.
func load(t *testing.T, tarPath string) archive {
	t.Helper()
	dir := t.TempDir()
	untar(t, tarPath, dir)
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("%s is not an OCI image layout: %v", tarPath, err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 {
		t.Fatalf("%s: %d manifests in index.json, want 1", tarPath, len(tm.Manifests))
	}
	desc := tm.Manifests[0]
	a := archive{ref: desc.Annotations["io.containerd.image.name"], refName: desc.Annotations["org.opencontainers.image.ref.name"],
		media: desc.MediaType, images: map[string]loaded{}}
	if desc.MediaType != types.OCIImageIndex {
		t.Fatalf("%s: index.json names a %s, want an OCI image index", tarPath, desc.MediaType)
	}
	idx, err := top.ImageIndex(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex {
		t.Errorf("%s: image index media type %q", tarPath, im.MediaType)
	}
	for _, d := range im.Manifests {
		if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture == "" {
			t.Fatalf("%s: index entry %s has platform %+v, want linux/<arch>", tarPath, d.Digest, d.Platform)
		}
		arch := d.Platform.Architecture
		if _, dup := a.images[arch]; dup {
			t.Fatalf("%s: linux/%s twice in the index", tarPath, arch)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		l := loaded{files: map[string]*tar.Header{}, data: map[string][]byte{}, media: d.MediaType}
		if l.config, err = img.ConfigFile(); err != nil {
			t.Fatal(err)
		}
		if l.config.OS != "linux" || l.config.Architecture != arch {
			t.Errorf("%s: the linux/%s entry's config says %s/%s", tarPath, arch, l.config.OS, l.config.Architecture)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, layer := range layers {
			// Digest checks: the compressed blob and the diff ID in the config.
			rc, err := layer.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(rc)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("layer: %v", err)
				}
				b, _ := io.ReadAll(tr)
				l.files["/"+strings.TrimSuffix(h.Name, "/")] = h
				l.data["/"+h.Name] = b
			}
			rc.Close()
		}
		a.archs = append(a.archs, arch)
		a.images[arch] = l
	}
	return a
}

func untar(t *testing.T, tarPath, dir string) {
	t.Helper()
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, b, os.FileMode(h.Mode)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBuildLoads(t *testing.T) {
	out := t.TempDir()
	o := Options{Platforms: multiArch(t), OutDir: out, Tag: "v9.8.7", Created: time.Unix(1700000000, 0).UTC()}
	for _, s := range Specs {
		t.Run(s.Name, func(t *testing.T) {
			p, err := Build(s, o)
			if err != nil {
				t.Fatal(err)
			}
			if p != filepath.Join(out, s.Name+".tar") {
				t.Errorf("tarball at %s", p)
			}
			a := load(t, p)
			if a.ref != "ghcr.io/plexus-cni/"+s.Name+":v9.8.7" || a.refName != "v9.8.7" {
				t.Errorf("image name annotations %q, %q", a.ref, a.refName)
			}
			if strings.Join(a.archs, ",") != "amd64,arm64" {
				t.Fatalf("index platforms %v, want amd64,arm64", a.archs)
			}
			for _, arch := range a.archs {
				l := a.images[arch]
				if l.media != types.OCIManifestSchema1 {
					t.Errorf("%s: manifest media type %s, want OCI", arch, l.media)
				}
				c := l.config
				if strings.Join(c.Config.Entrypoint, " ") != strings.Join(s.Entrypoint, " ") || !c.Created.Time.Equal(o.Created) {
					t.Errorf("%s: config: entrypoint %v created %v", arch, c.Config.Entrypoint, c.Created)
				}
				if _, ok := l.files[s.Entrypoint[0]]; !ok {
					t.Errorf("%s: entrypoint %s not in the image (files %v)", arch, s.Entrypoint[0], keys(l.files))
				}
				for _, f := range s.Files {
					h, ok := l.files[f.Path]
					if !ok {
						t.Errorf("%s: %s missing", arch, f.Path)
						continue
					}
					if h.Mode != 0o755 || h.Uid != 0 || !h.ModTime.Equal(o.Created) {
						t.Errorf("%s: %s: mode %o uid %d mtime %v", arch, f.Path, h.Mode, h.Uid, h.ModTime)
					}
					if got := string(l.data[f.Path]); got != fakeBin(f.Bin, arch) {
						t.Errorf("%s: %s holds %q, want the %s binary", arch, f.Path, got, arch)
					}
					for d := filepath.Dir(f.Path); d != "/"; d = filepath.Dir(d) {
						if h, ok := l.files[d]; !ok || h.Typeflag != tar.TypeDir {
							t.Errorf("%s: parent dir %s of %s missing", arch, d, f.Path)
						}
					}
				}
			}
			assertNoTemp(t, out)
		})
	}
}

func TestBuildIsReproducible(t *testing.T) {
	platforms := multiArch(t)
	sum := func() [32]byte {
		out := t.TempDir()
		p, err := Build(Specs[0], Options{Platforms: platforms, OutDir: out, Tag: "v1.0.0", Created: time.Unix(0, 0)})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		return sha256.Sum256(b)
	}
	if a, b := sum(), sum(); a != b {
		t.Error("two builds from the same binaries differ")
	}
}

func TestBuildRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, p []Platform) []Platform
		want  string
	}{
		{"missing binary", func(t *testing.T, p []Platform) []Platform {
			os.Remove(filepath.Join(p[1].BinDir, "sriov"))
			return p
		}, "image plexus (linux/arm64): sriov (run `make images`)"},
		{"binary of another arch", func(t *testing.T, p []Platform) []Platform {
			os.WriteFile(filepath.Join(p[1].BinDir, "plexus"), elfFor(t, elf.EM_X86_64), 0o755)
			return p
		}, "plexus: built for EM_X86_64, not arm64: build it with GOARCH=arm64"},
		{"platform twice", func(t *testing.T, p []Platform) []Platform {
			return append(p, Platform{Arch: "amd64", BinDir: p[1].BinDir})
		}, "image plexus: platform linux/amd64 given twice"},
		{"no platform", func(t *testing.T, p []Platform) []Platform { return nil }, "image plexus: no platform to build"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			_, err := Build(Specs[0], Options{Platforms: tc.setup(t, multiArch(t)), OutDir: out, Tag: "v1.0.0"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(out, "plexus.tar")); err == nil {
				t.Error("a tarball was written despite the error")
			}
			assertNoTemp(t, out)
		})
	}
}

// elfFor is a minimal static ELF executable header for machine m.
func elfFor(t *testing.T, m elf.Machine) []byte {
	t.Helper()
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(m), Version: uint32(elf.EV_CURRENT),
		Ehsize: 64, Phentsize: 56, Shentsize: 64}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, h); err != nil {
		t.Fatal(err)
	}
	if f, err := elf.NewFile(bytes.NewReader(b.Bytes())); err != nil || f.Machine != m {
		t.Fatalf("test ELF does not parse: %v", err)
	}
	return b.Bytes()
}

func TestCheckBinaryAcceptsItsArch(t *testing.T) {
	for arch, m := range elfMachine {
		if err := checkBinary(elfFor(t, m), arch); err != nil {
			t.Errorf("%s: %v", arch, err)
		}
	}
}

// release is the version the VERSION file names: the manifests' tag.
func release(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestMakeImages: `make images` cross-compiles every command for each
// architecture with the version stamped, and hack/images.sh tags the
// images with that version and puts each architecture's binaries in.
func TestMakeImages(t *testing.T) {
	const version = "v9.8.7-test.1"
	root := testutil.RepoRoot()
	mk := exec.Command("make", "-n", "images", "VERSION="+version, "BIN=/b")
	mk.Dir = root
	mk.Env = append(os.Environ(), "MAKEFLAGS=")
	out, err := mk.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n images: %v\n%s", err, out)
	}
	mains, _ := filepath.Glob(filepath.Join(root, "cmd", "*", "main.go"))
	if len(mains) < 4 {
		t.Fatalf("commands: %v", mains)
	}
	lines := strings.Split(string(out), "\n")
	has := func(parts ...string) bool {
		for _, l := range lines {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(l, p)
			}
			if ok {
				return true
			}
		}
		return false
	}
	for _, arch := range []string{"amd64", "arm64"} {
		for _, m := range mains {
			c := filepath.Base(filepath.Dir(m))
			if !has("GOOS=linux GOARCH="+arch+" ", "-X main.version="+version+"'", " -o /b/linux_"+arch+"/"+c+" ./cmd/"+c) {
				t.Errorf("make images does not build %s for %s with version %s:\n%s", c, arch, version, out)
			}
		}
	}
	if !has("IMAGE_TAG="+version+" NFT_DIR=/b/nft hack/images.sh /b/images", " amd64=/b/linux_amd64", " arm64=/b/linux_arm64") {
		t.Errorf("make images does not run hack/images.sh with both platforms and tag %s:\n%s", version, out)
	}

	// hack/images.sh as make runs it, on fake binaries.
	p := multiArch(t)
	dest := t.TempDir()
	sh := exec.Command(filepath.Join(root, "hack/images.sh"), dest, "amd64="+p[0].BinDir, "arm64="+p[1].BinDir)
	sh.Env = append(os.Environ(), "IMAGE_TAG="+version)
	if b, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("hack/images.sh: %v\n%s", err, b)
	}
	for _, s := range Specs {
		a := load(t, filepath.Join(dest, s.Name+".tar"))
		if a.ref != s.Ref(version) || strings.Join(a.archs, ",") != "amd64,arm64" {
			t.Errorf("%s: %s with %v, want %s with amd64,arm64", s.Name, a.ref, a.archs, s.Ref(version))
		}
		for _, arch := range a.archs {
			f := s.Files[0]
			if got := string(a.images[arch].data[f.Path]); got != fakeBin(f.Bin, arch) {
				t.Errorf("%s linux/%s: %s holds %q", s.Name, arch, f.Path, got)
			}
			// The plexus image's nft, staged from arch's Debian packages.
			nft, ok := a.images[arch].data[NftPath]
			if ok != (s.Name == "plexus") {
				t.Errorf("%s linux/%s: has %s: %v", s.Name, arch, NftPath, ok)
			}
			if ok {
				e, err := elf.NewFile(bytes.NewReader(nft))
				if err != nil || e.Machine != elfMachine[arch] {
					t.Errorf("%s linux/%s: %s is %v (%v)", s.Name, arch, NftPath, e, err)
				}
			}
		}
	}
}

// TestSpecsMatchManifestsAndDockerfiles: the DaemonSets run these images'
// names and entrypoints, plexus-install's --source-dir holds the binaries
// it installs, and each Dockerfile puts the same files at the same paths.
func TestSpecsMatchManifestsAndDockerfiles(t *testing.T) {
	root := testutil.RepoRoot()
	for _, s := range Specs {
		manifest := filepath.Join(root, "deployments", s.Name+".yaml")
		c := daemonSetContainer(t, manifest)
		if want := s.Ref(release(t)); c.Image != want {
			t.Errorf("%s runs image %s, want %s (the VERSION file's release)", manifest, c.Image, want)
		}
		if strings.Join(c.Command, " ") != strings.Join(s.Entrypoint, " ") {
			t.Errorf("%s: command %v, image entrypoint %v", manifest, c.Command, s.Entrypoint)
		}
		paths := map[string]bool{}
		for _, f := range s.Files {
			paths[f.Path] = true
		}
		// Every container of the DaemonSet (plexus-install, plexusd) runs
		// this image and a binary in it.
		for _, o := range daemonSetContainers(t, manifest) {
			if o.Image != c.Image || len(o.Command) == 0 || !paths[o.Command[0]] {
				t.Errorf("%s: container %s runs %v from %s; the image %s has %v", manifest, o.Name, o.Command, o.Image, c.Image, s.Files)
			}
		}
		for _, a := range c.Args {
			if dir, ok := strings.CutPrefix(a, "--source-dir="); ok {
				for _, b := range []string{"plexus", "plexus-thin", "sriov", "passthru"} {
					if !paths[dir+"/"+b] {
						t.Errorf("%s: --source-dir %s has no %s in the image", manifest, dir, b)
					}
				}
			}
		}
		df, err := os.ReadFile(filepath.Join(root, "images", s.Name, "Dockerfile"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range s.Files {
			re := regexp.MustCompile(`(?m)^COPY --from=\S+ /out/` + regexp.QuoteMeta(f.Bin) + ` ` + regexp.QuoteMeta(f.Path) + `$`)
			if !re.Match(df) {
				t.Errorf("images/%s/Dockerfile does not COPY %s to %s", s.Name, f.Bin, f.Path)
			}
		}
		// nft: the same Debian version as hack/nft-rootfs.sh pins, on the
		// PATH; the image without nft keeps PATH=/usr/bin.
		env := "ENV PATH=/usr/bin\n"
		if s.Nft {
			env = "ENV PATH=/usr/bin:/usr/sbin\n"
			script, _ := os.ReadFile(filepath.Join(root, "hack", "nft-rootfs.sh"))
			pin := regexp.MustCompile(`(?m)^  (nftables=\S+)$`).FindSubmatch(script)
			if pin == nil || !bytes.Contains(df, append(pin[1], ' ')) || !bytes.Contains(df, []byte("\nCOPY --from=nft /nftroot/ /\n")) {
				t.Errorf("images/%s/Dockerfile does not install hack/nft-rootfs.sh's %q and COPY its nft", s.Name, pin)
			}
		}
		if !bytes.Contains(df, []byte(env)) {
			t.Errorf("images/%s/Dockerfile lacks %q", s.Name, env)
		}
		ep := `ENTRYPOINT ["` + strings.Join(s.Entrypoint, `", "`) + `"]`
		if !bytes.Contains(df, []byte(ep)) {
			t.Errorf("images/%s/Dockerfile lacks %s", s.Name, ep)
		}
	}
}

// TestRealPlexusImageInstalls builds the plexus image from the real bin/
// and runs what the DaemonSet runs, from the image's own files: its
// plexus-install installs its plexus and sriov into a host bin dir.
func TestRealPlexusImageInstalls(t *testing.T) {
	for _, f := range Specs[0].Files {
		testutil.Binary(t, f.Bin)
	}
	out := t.TempDir()
	p, err := Build(Specs[0], Options{Platforms: []Platform{{Arch: runtime.GOARCH, BinDir: testutil.BinDir()}}, OutDir: out, Tag: "v1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	l := load(t, p).images[runtime.GOARCH]
	rootfs := t.TempDir()
	for name, data := range l.data {
		if strings.HasSuffix(name, "/") {
			continue
		}
		dst := filepath.Join(rootfs, name)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	host := t.TempDir()
	conf := filepath.Join(host, "etc/cni/net.d")
	os.MkdirAll(conf, 0o755)
	os.WriteFile(filepath.Join(conf, "10-br.conflist"), []byte(`{"cniVersion":"1.0.0","name":"br","plugins":[{"type":"bridge"}]}`), 0o644)
	c := daemonSetContainer(t, filepath.Join(testutil.RepoRoot(), "deployments", "plexus.yaml"))
	args := []string{"--once", "--clusterless", "--source-dir=" + filepath.Join(rootfs, "usr/lib/plexus"),
		"--cni-bin-dir=" + filepath.Join(host, "opt/cni/bin"), "--cni-conf-dir=" + conf, "--cni-dir=" + filepath.Join(host, "cache")}
	cmd := exec.Command(filepath.Join(rootfs, c.Command[0]), args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("image's plexus-install: %v\n%s", err, b)
	}
	for _, b := range []string{"plexus", "plexus-thin", "sriov", "passthru"} {
		got, err := os.ReadFile(filepath.Join(host, "opt/cni/bin", b))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(filepath.Join(testutil.BinDir(), b))
		if !bytes.Equal(got, want) {
			t.Errorf("installed %s differs from bin/%s", b, b)
		}
	}
	if _, err := os.Stat(filepath.Join(conf, "00-plexus.conflist")); err != nil {
		t.Error(err)
	}
}

type container struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Command []string `json:"command"`
	Args    []string `json:"args"`
}

func daemonSetContainer(t *testing.T, path string) container {
	t.Helper()
	return daemonSetContainers(t, path)[0]
}

// daemonSetContainers are every container of the file's DaemonSet.
func daemonSetContainers(t *testing.T, path string) []container {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		var ds struct {
			Kind string `json:"kind"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []container `json:"containers"`
					} `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &ds); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if ds.Kind == "DaemonSet" && len(ds.Spec.Template.Spec.Containers) > 0 {
			return ds.Spec.Template.Spec.Containers
		}
	}
	t.Fatalf("%s: no DaemonSet container", path)
	return nil
}

func keys(m map[string]*tar.Header) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temp %s left in %s", e.Name(), dir)
		}
	}
}
