package install

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// writeFileAtomic replaces path with data so that a reader (or exec) sees
// either the old file or the complete new one, never a partial one: the data
// goes to a hidden temp file in the same directory, is synced, and renamed
// over path. A temp name never carries a CNI config extension, so a runtime
// watching the directory never loads it. On failure nothing is left behind.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	return writeAtomic(path, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// copyFileAtomic installs src at dst the same way as writeFileAtomic. The
// rename gives dst a new inode, so a process still executing the old binary
// keeps it (no "text file busy") and the next exec gets the new one.
func copyFileAtomic(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeAtomic(dst, mode, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

func writeAtomic(path string, mode os.FileMode, fill func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-")
	if err != nil {
		return fmt.Errorf("create temp file for %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = fill(tmp); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp.Name(), path, err)
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename durable across a node crash; best effort.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// sameContent reports whether path holds exactly data (a missing file does not).
func sameContent(path string, data []byte) bool {
	cur, err := os.ReadFile(path)
	return err == nil && bytes.Equal(cur, data)
}

// sameFiles reports whether two files have identical contents and dst has mode.
func sameFiles(src, dst string, mode os.FileMode) bool {
	ds, err := os.Stat(dst)
	if err != nil || ds.Mode().Perm() != mode.Perm() {
		return false
	}
	ss, err := os.Stat(src)
	if err != nil || ss.Size() != ds.Size() {
		return false
	}
	a, err := os.ReadFile(src)
	if err != nil {
		return false
	}
	return sameContent(dst, a)
}
