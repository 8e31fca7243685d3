// Command plexusctl inspects the state plexus keeps on a node: containers,
// interfaces, IPs, VFs, stale entries, and frees what gone sandboxes hold
// (docs/plexusctl.md).
package main

import (
	"fmt"
	"os"

	"github.com/plexus-cni/plexus/pkg/inspect"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("plexusctl", version)
		return
	}
	os.Exit(inspect.Main(os.Args[1:], os.Stdout, os.Stderr))
}
