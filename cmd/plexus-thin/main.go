// Command plexus-thin is the thin deployment of the plexus meta-plugin: one
// exec resolves, attaches and publishes against the API itself. The plexus
// shim execs it when no plexusd is configured, and when plexusd does not
// answer (the daemon deployment's fallback).
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
		fmt.Println("plexus-thin", version)
		return
	}
	thin.Main(version)
}
