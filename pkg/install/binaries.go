package install

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// ManifestName is the file plexus-install keeps in each bin dir it installs
// into: the name and SHA-256 of every binary it wrote there. A binary is
// plexus-install's to replace when the record matches it (nobody changed it
// since), when it is identical to the one to install, or when it is a build
// of the same Go main package (a plexus-install that kept no record put it
// there). Anything else belongs to someone else (upstream sriov-cni's
// /opt/cni/bin/sriov) and is left unless --force-binaries.
const ManifestName = ".plexus-install-manifest.json"

// manifest is ManifestName's content.
type manifest struct {
	Binaries map[string]manifestEntry `json:"binaries"`
}

type manifestEntry struct {
	SHA256 string `json:"sha256"`
}

const binaryMode os.FileMode = 0o755

// InstallBinaries copies each named binary from srcDir into destDir
// atomically (see copyFileAtomic), skipping those already identical and
// leaving those plexus-install did not install itself unless force. It
// returns the names it replaced and the names it left; it logs one line
// per binary left, naming its path and --force-binaries.
func InstallBinaries(log *slog.Logger, srcDir, destDir string, names []string, force bool) (installed, left []string, err error) {
	if err := os.MkdirAll(destDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("CNI bin dir %s: %w", destDir, err)
	}
	mpath := filepath.Join(destDir, ManifestName)
	man, merr := readManifest(mpath)
	if merr != nil {
		log.Warn("ignoring the record of installed binaries; only binaries identical to or built like the ones to install count as plexus-install's", "path", mpath, "error", merr.Error())
	}
	changed := false
	for _, name := range names {
		src := filepath.Join(srcDir, name)
		dst := filepath.Join(destDir, name)
		fi, err := os.Stat(src)
		if err != nil {
			return installed, left, fmt.Errorf("binary %q: source %s: %w", name, src, err)
		}
		if !fi.Mode().IsRegular() {
			return installed, left, fmt.Errorf("binary %q: source %s is not a regular file", name, src)
		}
		srcSum, err := fileSHA256(src)
		if err != nil {
			return installed, left, fmt.Errorf("binary %q: source %s: %w", name, src, err)
		}
		own, dstSum, why, err := owned(src, dst, srcSum, man.Binaries[name])
		if err != nil {
			return installed, left, fmt.Errorf("binary %q: %s: %w", name, dst, err)
		}
		if dstSum == srcSum && modeIs(dst, binaryMode) {
			log.Info("binary already up to date", "binary", name, "path", dst)
		} else {
			switch {
			case !own && !force:
				log.Warn("left a binary plexus-install did not install; --force-binaries overrides", "path", dst, "reason", why)
				left = append(left, name)
				continue
			case !own:
				log.Warn("replacing a binary plexus-install did not install (--force-binaries)", "path", dst, "reason", why)
			}
			if err := copyFileAtomic(src, dst, binaryMode); err != nil {
				return installed, left, fmt.Errorf("binary %q: install into %s: %w", name, destDir, err)
			}
			log.Info("installed binary", "binary", name, "path", dst, "bytes", fi.Size())
			installed = append(installed, name)
		}
		if man.Binaries[name].SHA256 != srcSum {
			man.Binaries[name] = manifestEntry{SHA256: srcSum}
			changed = true
		}
	}
	if changed || merr != nil {
		if err := writeManifest(mpath, man); err != nil {
			return installed, left, err
		}
	}
	return installed, left, nil
}

// owned decides whether dst may be replaced by src: it is missing, it is
// what the record says plexus-install wrote, it is identical to src, or it
// is a build of the same Go main package. It returns dst's SHA-256 ("" when
// missing or not a regular file) and, when not owned, why.
func owned(src, dst, srcSum string, rec manifestEntry) (ok bool, dstSum, why string, err error) {
	fi, err := os.Lstat(dst)
	if errors.Is(err, os.ErrNotExist) {
		return true, "", "", nil
	}
	if err != nil {
		return false, "", "", err
	}
	if !fi.Mode().IsRegular() {
		return false, "", fmt.Sprintf("not a regular file (%s)", fi.Mode().Type()), nil
	}
	if dstSum, err = fileSHA256(dst); err != nil {
		return false, "", "", err
	}
	switch {
	case dstSum == srcSum, rec.SHA256 == dstSum:
		return true, dstSum, "", nil
	case rec.SHA256 != "":
		return false, dstSum, "changed since plexus-install installed it (sha256 " + short(dstSum) + ", installed " + short(rec.SHA256) + ")", nil
	}
	if sp, dp := goMainPath(src), goMainPath(dst); sp != "" && sp == dp {
		return true, dstSum, "", nil
	}
	return false, dstSum, "not installed by plexus-install (no record in " + ManifestName + ") and not a build of the binary to install", nil
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// goMainPath is the main package path of a Go executable, "" for anything else.
func goMainPath(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return ""
	}
	return bi.Path
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func modeIs(path string, mode os.FileMode) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().Perm() == mode.Perm()
}

// readManifest reads the record; a missing file is an empty record, an
// unreadable one an empty record and an error.
func readManifest(path string) (manifest, error) {
	m := manifest{Binaries: map[string]manifestEntry{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return manifest{Binaries: map[string]manifestEntry{}}, fmt.Errorf("%s: %w", path, err)
	}
	if m.Binaries == nil {
		m.Binaries = map[string]manifestEntry{}
	}
	return m, nil
}

func writeManifest(path string, m manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("record of installed binaries: %w", err)
	}
	return nil
}
