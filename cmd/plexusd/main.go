// Command plexusd is plexus's node daemon (the daemon deployment): it
// resolves pods' attachments for the plexus shim from informers, publishes
// network-status and Events from the outbox, collects the state of gone
// sandboxes, and serves /metrics and /readyz. See docs/configuration.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/plexus-cni/plexus/pkg/apiendpoint"
	"github.com/plexus-cni/plexus/pkg/config"
	"github.com/plexus-cni/plexus/pkg/daemon"
	"github.com/plexus-cni/plexus/pkg/k8s"
	"github.com/plexus-cni/plexus/pkg/podresources"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	var o daemon.Options
	var showVersion bool
	var logLevel, apiServer string
	fs := flag.NewFlagSet("plexusd", flag.ExitOnError)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig of plexusd's API credentials (default: in-cluster service account)")
	fs.StringVar(&apiServer, "api-server", "", "API server URL https://<host>:<port>, instead of KUBERNETES_SERVICE_HOST/PORT (clusters without kube-proxy); with --kubeconfig, replaces its server")
	fs.StringVar(&o.NodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	fs.StringVar(&o.Socket, "socket", daemon.DefaultSocket, "unix socket the plexus shim asks (plexus config key \"daemonSocket\")")
	fs.StringVar(&o.CNIDir, "cni-dir", config.DefaultCNIDir, "plexus's cniDir: its cache, and the outbox under it")
	fs.StringVar(&o.BinDir, "bin-dir", config.DefaultBinDir, "where GC finds the delegate plugins")
	fs.StringVar(&o.MetricsAddress, "metrics-address", ":9555", "address of /metrics, /readyz and /healthz (\"\" for none)")
	fs.StringVar(&o.PodResourcesSocket, "pod-resources-socket", podresources.DefaultSocket, "kubelet's pod-resources socket")
	fs.DurationVar(&o.GCInterval, "gc-interval", daemon.DefaultGCInterval, "how often to collect the state of sandboxes that are gone")
	fs.DurationVar(&o.GCGrace, "gc-grace", daemon.DefaultGCGrace, "how old such state must be before it is collected")
	fs.StringVar(&o.CNIConfig, "cni-config", daemon.DefaultCNIConfig, "plexus's conflist, read by hot-plug for plexus's config (\"-\": hot-plug off)")
	fs.BoolVar(&o.NetworkPolicy, "network-policy", false, "enforce MultiNetworkPolicy on this node's pods (docs/network-policy.md; needs the nft command)")
	fs.StringVar(&o.NetnsDir, "netns-dir", daemon.DefaultNetnsDir, "the runtime's netns directory: not ready while it is a mount that does not receive the host's new namespaces (\"\" skips the check)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	_ = fs.Parse(os.Args[1:])
	if showVersion {
		fmt.Println("plexusd", version)
		return
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "plexusd: --log-level: %v\n", err)
		os.Exit(2)
	}
	o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})).With("component", "plexusd")
	src, err := apiendpoint.Choose(o.Kubeconfig, apiServer, os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	if err == nil {
		o.RESTConfig, err = k8s.RESTConfig(src, k8s.ServiceAccountDir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "plexusd:", err)
		os.Exit(1)
	}
	d, err := daemon.New(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	o.Log.Info("starting", "version", version)
	if err := d.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
