// Command plexus is the meta-CNI plugin the container runtime calls.
package main

import "github.com/plexus-cni/plexus/pkg/cnicmd"

var version = "dev"

func main() { cnicmd.Main(version) }
