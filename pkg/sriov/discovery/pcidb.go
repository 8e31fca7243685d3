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

// emptyPCIDB is an empty pci.ids: /dev/null reads as one, and needs no
// writable directory (the plugin may run on a read-only root).
func emptyPCIDB() (string, error) {
	const devNull = "/dev/null"
	if _, err := os.Stat(devNull); err != nil {
		return "", fmt.Errorf("discovery: no pci.ids and no %s to stand for an empty one: %w", devNull, err)
	}
	return devNull, nil
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
