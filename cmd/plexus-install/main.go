// Command plexus-install is the plexus DaemonSet's entrypoint: it installs
// plexus on the node and keeps its kubeconfig and config fresh.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/plexus-cni/plexus/pkg/install"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := install.Main(ctx, version, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
