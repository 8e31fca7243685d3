// Command ociimage builds plexus's container images as OCI image-layout
// tarballs without a Docker engine: per platform, a scratch base plus one
// layer holding the static binaries built for it, laid out as
// images/*/Dockerfile lays them out; the tarball's image is an OCI image
// index of those platforms (linux), named ghcr.io/plexus-cni/<image>:<tag>.
// `ctr images import` and `kind load image-archive` load the tarballs.
//
//	go run ./hack/ociimage --out bin/images --tag v0.2.0 \
//	    --platform amd64=bin/linux_amd64 --platform arm64=bin/linux_arm64
//	go run ./hack/ociimage --bin bin --out bin/images --tag v0.2.0   # host arch only
package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Repository is where plexus's images are published; the manifests in
// deployments/ name the same images.
const Repository = "ghcr.io/plexus-cni"

// File is one binary from the bin dir and its path in the image.
type File struct{ Bin, Path string }

// Spec describes one image.
type Spec struct {
	Name       string // repository name under Repository
	Entrypoint []string
	Files      []File
	// Nft: the image also holds the nft command (NftPath) and what it
	// needs to run, from each platform's NftRoot, as a layer of its own.
	Nft bool
}

// Specs are the images the project ships (see images/*/Dockerfile).
var Specs = []Spec{
	{
		Name:       "plexus",
		Entrypoint: []string{"/usr/bin/plexus-install"},
		Files: []File{
			{"plexus-install", "/usr/bin/plexus-install"},
			{"plexusd", "/usr/bin/plexusd"},
			{"plexus", "/usr/lib/plexus/plexus"},
			{"plexus-thin", "/usr/lib/plexus/plexus-thin"},
			{"sriov", "/usr/lib/plexus/sriov"},
			{"passthru", "/usr/lib/plexus/passthru"},
		},
		// plexusd --network-policy runs nft (docs/network-policy.md).
		Nft: true,
	},
	{
		Name:       "sriov-device-plugin",
		Entrypoint: []string{"/usr/bin/sriov-device-plugin"},
		Files: []File{
			{"sriov-device-plugin", "/usr/bin/sriov-device-plugin"},
			// The DRA driver (deployments/sriov-dra.yaml) ships in the same image.
			{"sriov-dra-driver", "/usr/bin/sriov-dra-driver"},
		},
	},
}

// Ref is the image reference of s with tag.
func (s Spec) Ref(tag string) string { return Repository + "/" + s.Name + ":" + tag }

// Platform is one architecture of the images (OS linux) and the directory
// holding the static binaries built for it; NftRoot holds Debian's nftables
// unpacked for it by hack/nft-rootfs.sh, for the images with Nft ("": those
// images are built without nft).
type Platform struct{ Arch, BinDir, NftRoot string }

// Options are the build's inputs.
type Options struct {
	Platforms []Platform // in the index's order; at least one
	OutDir    string
	Tag       string
	Created   time.Time // also every file's mtime: same inputs, same digests
}

func main() {
	var o Options
	bin, arch := "bin", runtime.GOARCH
	flag.StringVar(&bin, "bin", bin, "directory holding the built static binaries (one platform, --arch)")
	flag.StringVar(&arch, "arch", arch, "architecture of the --bin binaries")
	flag.Func("platform", "ARCH=DIR: the binaries in DIR are built for linux/ARCH (repeat for a multi-arch index; overrides --bin, --arch)", func(v string) error {
		a, d, ok := strings.Cut(v, "=")
		if !ok || a == "" || d == "" {
			return fmt.Errorf("want ARCH=DIR, got %q", v)
		}
		o.Platforms = append(o.Platforms, Platform{Arch: a, BinDir: d})
		return nil
	})
	nft := map[string]string{}
	flag.Func("nft", "ARCH=DIR: Debian's nftables unpacked for linux/ARCH by hack/nft-rootfs.sh (required for every platform)", func(v string) error {
		a, d, ok := strings.Cut(v, "=")
		if !ok || a == "" || d == "" {
			return fmt.Errorf("want ARCH=DIR, got %q", v)
		}
		nft[a] = d
		return nil
	})
	flag.StringVar(&o.OutDir, "out", "bin/images", "directory to write <name>.tar into")
	flag.StringVar(&o.Tag, "tag", "", "image tag (the release version, e.g. v0.2.0)")
	flag.Parse()
	if o.Tag == "" {
		fmt.Fprintln(os.Stderr, "ociimage: --tag is required (make images sets it to $(VERSION))")
		os.Exit(2)
	}
	if len(o.Platforms) == 0 {
		o.Platforms = []Platform{{Arch: arch, BinDir: bin}}
	}
	for i, p := range o.Platforms {
		if nft[p.Arch] == "" {
			fmt.Fprintf(os.Stderr, "ociimage: --nft %s=DIR is required: the plexus image ships nft (hack/images.sh stages it with hack/nft-rootfs.sh)\n", p.Arch)
			os.Exit(2)
		}
		o.Platforms[i].NftRoot = nft[p.Arch]
	}
	o.Created = sourceDate()
	for _, s := range Specs {
		out, err := Build(s, o)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ociimage:", err)
			os.Exit(1)
		}
		fmt.Printf("%s -> %s\n", s.Ref(o.Tag), out)
	}
}

// sourceDate is SOURCE_DATE_EPOCH when set, else the Unix epoch.
func sourceDate() time.Time {
	if v, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		return time.Unix(v, 0).UTC()
	}
	return time.Unix(0, 0).UTC()
}

// Build writes the image of s as an OCI image-layout tarball
// <OutDir>/<name>.tar and returns its path: its index.json names one OCI
// image index, the image for every platform of o.
func Build(s Spec, o Options) (string, error) {
	idx, err := Index(s, o)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(o.OutDir, "."+s.Name+"-layout-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", s.Ref(o.Tag), err)
	}
	ref := s.Ref(o.Tag)
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          ref, // ctr images import
		"org.opencontainers.image.ref.name": o.Tag,
	})); err != nil {
		return "", fmt.Errorf("image %s: %w", ref, err)
	}
	out := filepath.Join(o.OutDir, s.Name+".tar")
	if err := tarDir(dir, out, o.Created); err != nil {
		return "", fmt.Errorf("image %s: %w", ref, err)
	}
	return out, nil
}

// Index builds s in memory for every platform of o: an OCI image index of
// one image per platform.
func Index(s Spec, o Options) (v1.ImageIndex, error) {
	if len(o.Platforms) == 0 {
		return nil, fmt.Errorf("image %s: no platform to build", s.Name)
	}
	var adds []mutate.IndexAddendum
	seen := map[string]bool{}
	for _, p := range o.Platforms {
		if seen[p.Arch] {
			return nil, fmt.Errorf("image %s: platform linux/%s given twice", s.Name, p.Arch)
		}
		seen[p.Arch] = true
		img, err := Image(s, p, o.Created)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "linux", Architecture: p.Arch},
		}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...), nil
}

// Image builds s for one platform in memory: scratch, then for an image
// with Nft and a platform with NftRoot a layer of nft and its libraries
// (it changes less often than the binaries), then one layer of its files
// from p.BinDir.
func Image(s Spec, p Platform, created time.Time) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	add := func(layerTar []byte, createdBy string) error {
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(layerTar)), nil
		}, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return fmt.Errorf("image %s (linux/%s): layer: %w", s.Name, p.Arch, err)
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
			Created: v1.Time{Time: created}, CreatedBy: createdBy,
		}})
		if err != nil {
			return fmt.Errorf("image %s: %w", s.Name, err)
		}
		return nil
	}
	path := "/usr/bin"
	if s.Nft && p.NftRoot != "" {
		files, err := nftClosure(p.NftRoot, p.Arch)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", s.Name, err)
		}
		nftTar, err := nftLayer(files, created)
		if err != nil {
			return nil, err
		}
		if err := add(nftTar, "hack/ociimage: nft from Debian 12 packages (hack/nft-rootfs.sh)"); err != nil {
			return nil, err
		}
		path = "/usr/bin:/usr/sbin"
	}
	layerTar, err := filesLayer(s, p, created)
	if err != nil {
		return nil, err
	}
	if err := add(layerTar, "hack/ociimage: "+strings.Join(binNames(s), " ")); err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", p.Arch
	cf.Created = v1.Time{Time: created}
	cf.Config.Entrypoint = s.Entrypoint
	cf.Config.Env = []string{"PATH=" + path}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.source":   "https://github.com/plexus-cni/plexus",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.title":    s.Name,
	}
	return mutate.ConfigFile(img, cf)
}

func binNames(s Spec) []string {
	var n []string
	for _, f := range s.Files {
		n = append(n, f.Bin)
	}
	return n
}

// filesLayer is the uncompressed layer tar: every parent directory, then
// each binary at its path, mode 0755, owned by root.
func filesLayer(s Spec, p Platform, created time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range s.Files {
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			dirs[strings.TrimPrefix(d, "/")+"/"] = true
		}
	}
	var dl []string
	for d := range dirs {
		dl = append(dl, d)
	}
	sort.Strings(dl) // parents before children
	for _, d := range dl {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: created, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	for _, f := range s.Files {
		src := filepath.Join(p.BinDir, f.Bin)
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("image %s (linux/%s): %s (run `make images`): %w", s.Name, p.Arch, f.Bin, err)
		}
		if err := checkBinary(data, p.Arch); err != nil {
			return nil, fmt.Errorf("image %s (linux/%s): %s: %w", s.Name, p.Arch, src, err)
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.Path, "/"), Mode: 0o755,
			Size: int64(len(data)), ModTime: created, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// elfMachine is the ELF machine of each GOARCH an image may be built for.
var elfMachine = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM, "386": elf.EM_386,
	"ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "riscv64": elf.EM_RISCV,
}

// checkBinary refuses an ELF executable that is dynamically linked or built
// for another architecture than arch (a bin dir given for the wrong
// platform). Other files are taken as they are.
func checkBinary(data []byte, arch string) error {
	if err := checkStatic(data); err != nil {
		return err
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil // not ELF
	}
	defer f.Close()
	if want, ok := elfMachine[arch]; ok && f.Machine != want {
		return fmt.Errorf("built for %s, not %s: build it with GOARCH=%s (make images)", f.Machine, arch, arch)
	}
	return nil
}

// checkStatic refuses a dynamically linked ELF executable: the image has
// no libc or loader (scratch). Other files are taken as they are.
func checkStatic(data []byte) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil // not ELF
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(p.Open())
			return fmt.Errorf("dynamically linked (interpreter %s), but the image has no libc: build it with CGO_ENABLED=0 (make build)",
				strings.TrimRight(string(interp), "\x00"))
		}
	}
	return nil
}

// tarDir writes the files under dir into the tar file out (atomically),
// with paths relative to dir, in a stable order.
func tarDir(dir, out string, mtime time.Time) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	tw := tar.NewWriter(tmp)
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: mtime})
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: int64(len(data)), ModTime: mtime}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	if err = tw.Close(); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}
