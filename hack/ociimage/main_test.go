package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
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

// fakeBins writes a distinct small file per binary the Specs need.
func fakeBins(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, s := range Specs {
		for _, f := range s.Files {
			if err := os.WriteFile(filepath.Join(dir, f.Bin), []byte("binary "+f.Bin), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// loaded is an image read back from a tarball the way a runtime reads it.
type loaded struct {
	ref    string
	config *v1.ConfigFile
	files  map[string]*tar.Header
	data   map[string][]byte
	media  types.MediaType
}

// load untars an OCI layout tarball and reads its single image.
func load(t *testing.T, tarPath string) loaded {
	t.Helper()
	dir := t.TempDir()
	untar(t, tarPath, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("%s is not an OCI image layout: %v", tarPath, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("%s: %d manifests in index, want 1", tarPath, len(im.Manifests))
	}
	desc := im.Manifests[0]
	img, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	l := loaded{ref: desc.Annotations["io.containerd.image.name"], files: map[string]*tar.Header{}, data: map[string][]byte{}, media: desc.MediaType}
	if l.config, err = img.ConfigFile(); err != nil {
		t.Fatal(err)
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
	return l
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
	bin, out := fakeBins(t), t.TempDir()
	o := Options{BinDir: bin, OutDir: out, Tag: "v9", Arch: "arm64", Created: time.Unix(1700000000, 0).UTC()}
	for _, s := range Specs {
		t.Run(s.Name, func(t *testing.T) {
			p, err := Build(s, o)
			if err != nil {
				t.Fatal(err)
			}
			if p != filepath.Join(out, s.Name+".tar") {
				t.Errorf("tarball at %s", p)
			}
			l := load(t, p)
			if l.ref != "ghcr.io/plexus-cni/"+s.Name+":v9" {
				t.Errorf("image name annotation %q", l.ref)
			}
			if l.media != types.OCIManifestSchema1 {
				t.Errorf("manifest media type %s, want OCI", l.media)
			}
			c := l.config
			if strings.Join(c.Config.Entrypoint, " ") != strings.Join(s.Entrypoint, " ") || c.OS != "linux" || c.Architecture != "arm64" ||
				!c.Created.Time.Equal(o.Created) {
				t.Errorf("config: entrypoint %v os %s arch %s created %v", c.Config.Entrypoint, c.OS, c.Architecture, c.Created)
			}
			if _, ok := l.files[s.Entrypoint[0]]; !ok {
				t.Errorf("entrypoint %s not in the image (files %v)", s.Entrypoint[0], keys(l.files))
			}
			for _, f := range s.Files {
				h, ok := l.files[f.Path]
				if !ok {
					t.Errorf("%s missing", f.Path)
					continue
				}
				if h.Mode != 0o755 || h.Uid != 0 || !h.ModTime.Equal(o.Created) {
					t.Errorf("%s: mode %o uid %d mtime %v", f.Path, h.Mode, h.Uid, h.ModTime)
				}
				if string(l.data[f.Path]) != "binary "+f.Bin {
					t.Errorf("%s holds %q", f.Path, l.data[f.Path])
				}
				for d := filepath.Dir(f.Path); d != "/"; d = filepath.Dir(d) {
					if h, ok := l.files[d]; !ok || h.Typeflag != tar.TypeDir {
						t.Errorf("parent dir %s of %s missing", d, f.Path)
					}
				}
			}
			assertNoTemp(t, out)
		})
	}
}

func TestBuildIsReproducible(t *testing.T) {
	bin := fakeBins(t)
	sum := func() [32]byte {
		out := t.TempDir()
		p, err := Build(Specs[0], Options{BinDir: bin, OutDir: out, Tag: "latest", Arch: "amd64", Created: time.Unix(0, 0)})
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

func TestBuildMissingBinary(t *testing.T) {
	bin, out := fakeBins(t), t.TempDir()
	os.Remove(filepath.Join(bin, "sriov"))
	_, err := Build(Specs[0], Options{BinDir: bin, OutDir: out, Tag: "latest", Arch: "amd64"})
	if err == nil || !strings.Contains(err.Error(), "image plexus: sriov (run `make build`)") {
		t.Fatalf("error %v, want it to name the binary", err)
	}
	if _, err := os.Stat(filepath.Join(out, "plexus.tar")); err == nil {
		t.Error("a tarball was written despite the error")
	}
	assertNoTemp(t, out)
}

// TestSpecsMatchManifestsAndDockerfiles: the DaemonSets run these images'
// names and entrypoints, plexus-install's --source-dir holds the binaries
// it installs, and each Dockerfile puts the same files at the same paths.
func TestSpecsMatchManifestsAndDockerfiles(t *testing.T) {
	root := testutil.RepoRoot()
	for _, s := range Specs {
		manifest := filepath.Join(root, "deployments", s.Name+".yaml")
		c := daemonSetContainer(t, manifest)
		if c.Image != s.Ref("latest") {
			t.Errorf("%s runs image %s, want %s", manifest, c.Image, s.Ref("latest"))
		}
		if strings.Join(c.Command, " ") != strings.Join(s.Entrypoint, " ") {
			t.Errorf("%s: command %v, image entrypoint %v", manifest, c.Command, s.Entrypoint)
		}
		paths := map[string]bool{}
		for _, f := range s.Files {
			paths[f.Path] = true
		}
		for _, a := range c.Args {
			if dir, ok := strings.CutPrefix(a, "--source-dir="); ok {
				for _, b := range []string{"plexus", "sriov"} {
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
	p, err := Build(Specs[0], Options{BinDir: testutil.BinDir(), OutDir: out, Tag: "latest", Arch: runtime.GOARCH})
	if err != nil {
		t.Fatal(err)
	}
	l := load(t, p)
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
	for _, b := range []string{"plexus", "sriov"} {
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
	Image   string   `json:"image"`
	Command []string `json:"command"`
	Args    []string `json:"args"`
}

func daemonSetContainer(t *testing.T, path string) container {
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
			return ds.Spec.Template.Spec.Containers[0]
		}
	}
	t.Fatalf("%s: no DaemonSet container", path)
	return container{}
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
