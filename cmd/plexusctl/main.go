// Command plexusctl inspects the state plexus keeps on a node: containers,
// interfaces, IPs, VFs, stale entries, and frees what gone sandboxes hold
// (docs/plexusctl.md).
package main

import (
	"os"

	"github.com/plexus-cni/plexus/pkg/inspect"
)

func main() {
	os.Exit(inspect.Main(os.Args[1:], os.Stdout, os.Stderr))
}
