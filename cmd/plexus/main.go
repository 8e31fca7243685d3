// Command plexus is the meta-CNI plugin the container runtime calls (the
// thin deployment: resolve, attach and publish in this process).
package main

import (
	"fmt"
	"os"

	"github.com/plexus-cni/plexus/pkg/thin"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("plexus", version)
		return
	}
	thin.Main(version)
}
