// Command sriov is the CNI plugin for "type": "sriov" networks.
package main

import (
	"fmt"
	"os"

	"github.com/plexus-cni/plexus/pkg/sriov/cni"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("sriov", version)
		return
	}
	cni.Run(cni.New(), version)
}
