// Command sriov is the CNI plugin for "type": "sriov" networks.
package main

import "github.com/plexus-cni/plexus/pkg/sriov/cni"

func main() { cni.Run(cni.New()) }
