// Command sriov-dra-driver is plexus's SR-IOV DRA driver: a kubelet plugin
// that publishes the node's VFs as ResourceSlices and prepares the VFs of
// ResourceClaims; see docs/sriov-dra.md.
package main

import (
	"fmt"
	"os"

	"github.com/plexus-cni/plexus/pkg/dra"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("sriov-dra-driver", version)
		return
	}
	os.Exit(dra.Main(os.Args[1:], os.Stderr))
}
