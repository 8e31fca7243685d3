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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := install.Main(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
