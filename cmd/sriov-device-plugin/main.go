// Command sriov-device-plugin advertises SR-IOV virtual functions to kubelet
// as extended resources; see docs/sriov-device-plugin.md.
package main

import (
	"os"

	"github.com/plexus-cni/plexus/pkg/deviceplugin"
)

func main() {
	os.Exit(deviceplugin.Main(os.Args[1:], os.Stderr))
}
