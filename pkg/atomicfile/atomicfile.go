// Package atomicfile is the repository's one crash-safe file writer: data
// goes to a uniquely named hidden temp file in the target's directory, the
// file is fsynced, renamed over the target, and the directory is fsynced, so
// after a crash a reader finds either the old file or the whole new one,
// never a part, and two concurrent writers never share a temp file.
//
// It is written here rather than taken from a dependency: the candidates
// (renameio, natefinch/atomic) either skip the directory fsync or pull in
// more than this needs, and every binary (the CNI plugins included) uses it.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, with the given mode. Missing parent
// directories are created with mode 0700.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	return Write(path, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write replaces path with what fill writes, with the given mode. On any
// failure the temp file is removed and path is left as it was.
func Write(path string, mode os.FileMode, fill func(io.Writer) error) (err error) {
	return write(path, mode, fill, true)
}

// Replace replaces path with data atomically for every reader and against
// the death of the writing process (unique temp file, rename), without
// fsync: for state whose loss in a power failure is harmless because a
// reboot makes it moot (what a sandbox's delegates returned, a status not
// yet published), on the paths where two fsyncs would be most of the cost.
func Replace(path string, data []byte, mode os.FileMode) error {
	return write(path, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, false)
}

func write(path string, mode os.FileMode, fill func(io.Writer) error, durable bool) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// The temp name never ends in a config extension (.conf, .json), so a
	// runtime watching the directory never loads a half-written file.
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
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
	if durable {
		if err = tmp.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", tmp.Name(), err)
		}
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp.Name(), path, err)
	}
	if !durable {
		return nil
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making a rename or removal in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
