package cluster

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Images imported into the node's containerd (namespace k8s.io). Pods must
// use imagePullPolicy: Never (there is no registry).
const (
	PauseImage   = "plexus.local/e2e/pause:1"
	BusyboxImage = "plexus.local/e2e/busybox:1"
)

// imageFormat changes whenever the way images are built changes, so that
// cached tarballs are rebuilt.
const imageFormat = "1"

type layerEntry struct {
	name string // path inside the image, without leading slash
	dir  bool
	link string // symlink target
	data []byte
	mode int64
}

type imageConfig struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
}

// buildImages returns the paths of the pause and busybox OCI image-layout
// tarballs, building them into cacheDir unless they are cached there.
func buildImages(cacheDir string) (pause, busybox string, err error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", "", err
	}
	pauseSrc, err := os.ReadFile(filepath.Join(RepoRoot(), "e2e", "cluster", "pause", "main.go"))
	if err != nil {
		return "", "", err
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return "", "", fmt.Errorf("busybox image: %w (apt-get install busybox-static, or run hack/deps.sh)", err)
	}
	h := sha256.New()
	h.Write([]byte(imageFormat))
	h.Write(pauseSrc)
	h.Write(bb)
	key := hex.EncodeToString(h.Sum(nil))
	pause, busybox = filepath.Join(cacheDir, "pause.tar"), filepath.Join(cacheDir, "busybox.tar")
	keyFile := filepath.Join(cacheDir, ".key")
	if k, _ := os.ReadFile(keyFile); string(k) == key && exists(pause) && exists(busybox) {
		return pause, busybox, nil
	}
	pauseBin := filepath.Join(cacheDir, "pause")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", pauseBin, "./e2e/cluster/pause")
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build pause: %w\n%s", err, out)
	}
	pb, err := os.ReadFile(pauseBin)
	if err != nil {
		return "", "", err
	}
	if err := writeOCIImage(pause, PauseImage, []layerEntry{{name: "pause", data: pb, mode: 0o755}},
		imageConfig{Entrypoint: []string{"/pause"}}); err != nil {
		return "", "", err
	}
	bbEntries, err := busyboxEntries(bb)
	if err != nil {
		return "", "", err
	}
	if err := writeOCIImage(busybox, BusyboxImage, bbEntries,
		imageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}); err != nil {
		return "", "", err
	}
	return pause, busybox, os.WriteFile(keyFile, []byte(key), 0o644)
}

// busyboxEntries is a root filesystem of busybox-static with a symlink for
// every applet.
func busyboxEntries(bb []byte) ([]layerEntry, error) {
	out, err := exec.Command("/bin/busybox", "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list-full: %w", err)
	}
	es := []layerEntry{}
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "tmp", "proc", "sys", "dev", "root", "var", "run"} {
		es = append(es, layerEntry{name: d, dir: true, mode: 0o755})
	}
	es = append(es,
		layerEntry{name: "bin/busybox", data: bb, mode: 0o755},
		layerEntry{name: "etc/passwd", data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), mode: 0o644},
		layerEntry{name: "etc/group", data: []byte("root:x:0:\nnogroup:x:65534:\n"), mode: 0o644},
	)
	seen := map[string]bool{"bin/busybox": true}
	for _, l := range strings.Fields(string(out)) {
		l = strings.TrimPrefix(l, "/")
		if seen[l] || !strings.Contains(l, "/") {
			continue
		}
		seen[l] = true
		es = append(es, layerEntry{name: l, link: "/bin/busybox", mode: 0o777})
	}
	return es, nil
}

// writeOCIImage writes a single-layer OCI image-layout tarball whose index
// names the image ref (io.containerd.image.name) for `ctr images import`.
func writeOCIImage(path, ref string, entries []layerEntry, cfg imageConfig) error {
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	epoch := time.Unix(0, 0)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case e.dir:
			h.Typeflag, h.Name = tar.TypeDir, e.name+"/"
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerDesc := descriptor("application/vnd.oci.image.layer.v1.tar", layer.Bytes())
	config, _ := json.Marshal(map[string]interface{}{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]interface{}{"Entrypoint": cfg.Entrypoint, "Cmd": cfg.Cmd, "Env": cfg.Env},
		"rootfs":       map[string]interface{}{"type": "layers", "diff_ids": []string{layerDesc["digest"].(string)}},
	})
	configDesc := descriptor("application/vnd.oci.image.config.v1+json", config)
	manifest, _ := json.Marshal(map[string]interface{}{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        configDesc,
		"layers":        []interface{}{layerDesc},
	})
	manDesc := descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
	manDesc["annotations"] = map[string]string{
		"io.containerd.image.name":          ref,
		"org.opencontainers.image.ref.name": ref[strings.LastIndex(ref, ":")+1:],
	}
	manDesc["platform"] = map[string]string{"architecture": "amd64", "os": "linux"}
	index, _ := json.Marshal(map[string]interface{}{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     []interface{}{manDesc},
	})
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	defer f.Close()
	ow := tar.NewWriter(f)
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{blobPath(config), config},
		{blobPath(manifest), manifest},
		{blobPath(layer.Bytes()), layer.Bytes()},
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := ow.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	for _, fl := range files {
		if err := ow.WriteHeader(&tar.Header{Name: fl.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(fl.data)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := io.Copy(ow, bytes.NewReader(fl.data)); err != nil {
			return err
		}
	}
	if err := ow.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

func descriptor(mediaType string, data []byte) map[string]interface{} {
	sum := sha256.Sum256(data)
	return map[string]interface{}{"mediaType": mediaType, "digest": "sha256:" + hex.EncodeToString(sum[:]), "size": len(data)}
}

func blobPath(data []byte) string {
	sum := sha256.Sum256(data)
	return "blobs/sha256/" + hex.EncodeToString(sum[:])
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
