// Command plexus is the meta-CNI plugin the container runtime calls (the
// thin deployment: resolve, attach and publish in this process).
package main

import "github.com/plexus-cni/plexus/pkg/thin"

var version = "dev"

func main() { thin.Main(version) }
