package install

import (
	"bytes"
	"io"
	"os"

	"github.com/plexus-cni/plexus/pkg/atomicfile"
)

// writeFileAtomic replaces path with data so that a reader (or exec) sees
// either the old file or the complete new one (atomicfile.WriteFile).
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	return atomicfile.WriteFile(path, data, mode)
}

// copyFileAtomic installs src at dst the same way. The rename gives dst a new
// inode, so a process still executing the old binary keeps it (no "text
// file busy") and the next exec gets the new one.
func copyFileAtomic(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, mode, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// sameContent reports whether path holds exactly data (a missing file does not).
func sameContent(path string, data []byte) bool {
	cur, err := os.ReadFile(path)
	return err == nil && bytes.Equal(cur, data)
}
