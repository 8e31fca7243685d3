package install

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// InstallBinaries copies each named binary from srcDir into destDir
// atomically (see copyFileAtomic), skipping those already identical. It
// returns the names it actually replaced.
func InstallBinaries(log *slog.Logger, srcDir, destDir string, names []string) ([]string, error) {
	if err := os.MkdirAll(destDir, 0o755); err != nil {
		return nil, fmt.Errorf("CNI bin dir %s: %w", destDir, err)
	}
	var installed []string
	for _, name := range names {
		src := filepath.Join(srcDir, name)
		dst := filepath.Join(destDir, name)
		fi, err := os.Stat(src)
		if err != nil {
			return installed, fmt.Errorf("binary %q: source %s: %w", name, src, err)
		}
		if !fi.Mode().IsRegular() {
			return installed, fmt.Errorf("binary %q: source %s is not a regular file", name, src)
		}
		if sameFiles(src, dst, 0o755) {
			log.Info("binary already up to date", "binary", name, "path", dst)
			continue
		}
		if err := copyFileAtomic(src, dst, 0o755); err != nil {
			return installed, fmt.Errorf("binary %q: install into %s: %w", name, destDir, err)
		}
		log.Info("installed binary", "binary", name, "path", dst, "bytes", fi.Size())
		installed = append(installed, name)
	}
	return installed, nil
}
