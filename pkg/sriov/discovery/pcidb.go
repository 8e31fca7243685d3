package discovery

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// pcidbEnv serialises the environment ghw's pcidb reads.
var pcidbEnv sync.Mutex

// pciDBCandidates are where distributions install pci.ids.
var pciDBCandidates = []string{
	"usr/share/hwdata/pci.ids",
	"usr/share/misc/pci.ids",
	"usr/share/hwdata/pci.ids.gz",
	"usr/share/misc/pci.ids.gz",
}

var (
	emptyDBOnce sync.Once
	emptyDB     string
	emptyDBErr  error
)

// pciDBPath picks the pci.ids file ghw reads: the one given, else the host
// root's, else the local one, else an empty database so that devices keep
// their raw vendor/device IDs (names read "unknown").
func pciDBPath(root, given string) (string, error) {
	if given != "" {
		if _, err := os.Stat(given); err != nil {
			return "", fmt.Errorf("discovery: pci.ids %q: %w", given, err)
		}
		return given, nil
	}
	for _, r := range []string{root, "/"} {
		for _, c := range pciDBCandidates {
			p := filepath.Join(r, c)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return emptyPCIDB()
}

// emptyPCIDB writes (once per process) an empty pci.ids file.
func emptyPCIDB() (string, error) {
	emptyDBOnce.Do(func() {
		f, err := os.CreateTemp("", "plexus-empty-pci-*.ids")
		if err != nil {
			emptyDBErr = fmt.Errorf("discovery: create empty pci.ids: %w", err)
			return
		}
		_, _ = f.WriteString("# no pci.ids on this host: raw IDs only\n")
		emptyDBErr = f.Close()
		emptyDB = f.Name()
	})
	if emptyDBErr == nil {
		if _, err := os.Stat(emptyDB); err != nil {
			// Something cleaned the temp dir; write it again.
			if err := os.WriteFile(emptyDB, []byte("# empty\n"), 0o644); err != nil {
				return "", fmt.Errorf("discovery: recreate empty pci.ids: %w", err)
			}
		}
	}
	return emptyDB, emptyDBErr
}

// setEnv sets the variables and returns a function restoring them.
func setEnv(vars map[string]string) func() {
	type old struct {
		v  string
		ok bool
	}
	saved := map[string]old{}
	for k, v := range vars {
		ov, ok := os.LookupEnv(k)
		saved[k] = old{ov, ok}
		_ = os.Setenv(k, v)
	}
	return func() {
		for k, o := range saved {
			if o.ok {
				_ = os.Setenv(k, o.v)
			} else {
				_ = os.Unsetenv(k)
			}
		}
	}
}
