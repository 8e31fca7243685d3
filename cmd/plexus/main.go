// Command plexus is the meta-CNI plugin the container runtime calls: a lean
// shim. With plexusd configured (key "daemonSocket") it asks plexusd for the
// pod's attachments, runs the delegates itself and hands the results to
// plexusd's outbox; otherwise, or when plexusd does not answer, it execs
// plexus-thin, which does everything against the API. Its import graph holds
// no Kubernetes, grpc or protobuf package (main_test.go), so that it starts
// as fast as a hello-world Go program.
package main

import (
	"fmt"
	"os"

	"github.com/plexus-cni/plexus/pkg/shim"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("plexus", version)
		return
	}
	shim.Main(version)
}
