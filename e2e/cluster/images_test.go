package cluster

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
)

// The image tarballs are valid OCI layouts: every blob matches its digest,
// the index names the image for containerd, and busybox has its applets.
func TestBuildImagesOCILayout(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static not installed (hack/deps.sh installs it)")
	}
	pause, busybox, err := buildImages(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, ref string
		files     []string
	}{
		{pause, PauseImage, []string{"pause"}},
		{busybox, BusyboxImage, []string{"bin/busybox", "bin/sh", "sbin/ip", "bin/sleep"}},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			blobs := map[string][]byte{}
			f, err := os.Open(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tr := tar.NewReader(f)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(tr)
				blobs[h.Name] = b
			}
			for name, b := range blobs {
				if strings.HasPrefix(name, "blobs/sha256/") && len(name) > len("blobs/sha256/") {
					sum := sha256.Sum256(b)
					if hex.EncodeToString(sum[:]) != strings.TrimPrefix(name, "blobs/sha256/") {
						t.Errorf("blob %s: digest mismatch", name)
					}
				}
			}
			var index struct {
				Manifests []struct {
					Digest      string
					Annotations map[string]string
				}
			}
			if err := json.Unmarshal(blobs["index.json"], &index); err != nil || len(index.Manifests) != 1 {
				t.Fatalf("index.json: %v %s", err, blobs["index.json"])
			}
			if got := index.Manifests[0].Annotations["io.containerd.image.name"]; got != tc.ref {
				t.Fatalf("image name %q, want %q", got, tc.ref)
			}
			var man struct{ Layers []struct{ Digest string } }
			if err := json.Unmarshal(blobs["blobs/sha256/"+strings.TrimPrefix(index.Manifests[0].Digest, "sha256:")], &man); err != nil || len(man.Layers) != 1 {
				t.Fatalf("manifest: %v", err)
			}
			layer := blobs["blobs/sha256/"+strings.TrimPrefix(man.Layers[0].Digest, "sha256:")]
			have := map[string]bool{}
			lr := tar.NewReader(bytes.NewReader(layer))
			for {
				h, err := lr.Next()
				if err != nil {
					break
				}
				have[h.Name] = true
			}
			for _, want := range tc.files {
				if !have[want] {
					t.Errorf("layer lacks %s", want)
				}
			}
		})
	}
}
