// Command sriov-device-plugin advertises SR-IOV virtual functions to kubelet
// as extended resources; see docs/sriov-device-plugin.md.
package main

import (
	"fmt"
	"os"

	"github.com/plexus-cni/plexus/pkg/deviceplugin"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("sriov-device-plugin", version)
		return
	}
	os.Exit(deviceplugin.Main(os.Args[1:], os.Stderr))
}
