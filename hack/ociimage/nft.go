package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// NftPath is where the plexus image holds the nft command, as Debian's
// nftables package installs it; plexusd's MultiNetworkPolicy enforcement
// (pkg/netpol, through knftables) finds it through the image's PATH.
const NftPath = "/usr/sbin/nft"

// libTriplet is the Debian multiarch directory of each GOARCH nft may be
// staged for.
var libTriplet = map[string]string{
	"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "arm": "arm-linux-gnueabihf",
	"386": "i386-linux-gnu", "ppc64le": "powerpc64le-linux-gnu", "s390x": "s390x-linux-gnu", "riscv64": "riscv64-linux-gnu",
}

// rootFile is one entry of a staged root file system taken into a layer:
// a regular file (Data, Mode) or a symlink (Link).
type rootFile struct {
	Path string // absolute, in the image
	Mode int64
	Link string
	Data []byte
}

// nftClosure picks from root (Debian packages unpacked by
// hack/nft-rootfs.sh) what running NftPath needs and nothing else: the
// binary, its ELF interpreter and the shared libraries it needs, found by
// their DT_NEEDED entries transitively as the dynamic loader searches the
// multiarch dirs, with the symlinks on the way (the loader's /lib64 or /lib
// link, each soname's link). It reads the ELF files itself, never runs
// them (ldd would), so it works for any architecture; each must be built
// for arch.
func nftClosure(root, arch string) ([]rootFile, error) {
	triplet, ok := libTriplet[arch]
	if !ok {
		return nil, fmt.Errorf("nft for linux/%s: no Debian multiarch dir known", arch)
	}
	search := []string{"/lib/" + triplet, "/usr/lib/" + triplet, "/lib", "/usr/lib"}
	files := map[string]rootFile{}
	seen := map[string]bool{}
	queue := []string{NftPath}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		real, err := takePath(root, p, files)
		if err != nil {
			return nil, fmt.Errorf("nft for linux/%s (%s; run hack/nft-rootfs.sh): %w", arch, root, err)
		}
		f, err := elf.NewFile(bytes.NewReader(files[real].Data))
		if err != nil {
			return nil, fmt.Errorf("nft for linux/%s: %s: %w", arch, p, err)
		}
		if want := elfMachine[arch]; f.Machine != want {
			return nil, fmt.Errorf("nft for linux/%s: %s is built for %s, not %s", arch, p, f.Machine, want)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				b, _ := io.ReadAll(prog.Open())
				queue = append(queue, strings.TrimRight(string(b), "\x00"))
			}
		}
		needed, err := f.DynString(elf.DT_NEEDED)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("nft for linux/%s: %s: %w", arch, p, err)
		}
		for _, n := range needed {
			found := ""
			for _, d := range search {
				if _, err := os.Stat(filepath.Join(root, d, n)); err == nil {
					found = path.Join(d, n)
					break
				}
			}
			if found == "" {
				return nil, fmt.Errorf("nft for linux/%s: %s needs %s, in none of %v under %s (a package missing from hack/nft-rootfs.sh?)", arch, p, n, search, root)
			}
			queue = append(queue, found)
		}
	}
	var out []rootFile
	for _, f := range files {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// takePath adds p of root to files, following symlinks inside root (each
// symlink is added as one), and returns the regular file it ends at.
func takePath(root, p string, files map[string]rootFile) (string, error) {
	for hops := 0; hops < 16; hops++ {
		// Resolve symlinked parents first: p's own dir must be real.
		dir, err := realDir(root, path.Dir(p))
		if err != nil {
			return "", err
		}
		p = path.Join(dir, path.Base(p))
		host := filepath.Join(root, p)
		fi, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(host)
			if err != nil {
				return "", err
			}
			files[p] = rootFile{Path: p, Mode: 0o777, Link: target}
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(p), target)
			}
			p = target
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(host)
			if err != nil {
				return "", err
			}
			files[p] = rootFile{Path: p, Mode: int64(fi.Mode().Perm()), Data: data}
			return p, nil
		default:
			return "", fmt.Errorf("%s is not a file", p)
		}
	}
	return "", fmt.Errorf("%s: too many symlinks", p)
}

// realDir is dir with any symlinked component inside root resolved.
func realDir(root, dir string) (string, error) {
	out := "/"
	for _, c := range strings.Split(strings.TrimPrefix(path.Clean(dir), "/"), "/") {
		if c == "" {
			continue
		}
		next := path.Join(out, c)
		for hops := 0; ; hops++ {
			fi, err := os.Lstat(filepath.Join(root, next))
			if err != nil {
				return "", err
			}
			if fi.Mode()&os.ModeSymlink == 0 {
				break
			}
			if hops == 16 {
				return "", fmt.Errorf("%s: too many symlinks", next)
			}
			t, err := os.Readlink(filepath.Join(root, next))
			if err != nil {
				return "", err
			}
			if !path.IsAbs(t) {
				t = path.Join(path.Dir(next), t)
			}
			next = path.Clean(t)
		}
		out = next
	}
	return out, nil
}

// nftLayer is the uncompressed layer tar of files: their parent
// directories, then each file or symlink, owned by root.
func nftLayer(files []rootFile, created time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			dirs[strings.TrimPrefix(d, "/")+"/"] = true
		}
	}
	var dl []string
	for d := range dirs {
		dl = append(dl, d)
	}
	sort.Strings(dl)
	for _, d := range dl {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: created, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		h := &tar.Header{Name: strings.TrimPrefix(f.Path, "/"), Mode: f.Mode, ModTime: created, Format: tar.FormatPAX}
		if f.Link != "" {
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.Link
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
