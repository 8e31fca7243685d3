package deviceplugin

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/plexus-cni/plexus/pkg/probe"
	"github.com/plexus-cni/plexus/pkg/sriov/dpconfig"
)

// Main is the sriov-device-plugin daemon: it parses args, serves until
// SIGINT or SIGTERM, removes its sockets (device-info files stay for the
// pods holding the devices) and returns the exit code.
func Main(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("sriov-device-plugin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o            Options
		metrics      string
		health       string
		podResources string
		logLevel     string
	)
	fs.StringVar(&o.ConfigPath, "config", DefaultConfigPath, "resourceList configuration file (reloaded on change)")
	fs.StringVar(&o.ResourcePrefix, "resource-prefix", dpconfig.DefaultPrefix, "resource prefix for resources without resourcePrefix")
	fs.StringVar(&o.Discovery.Root, "host-root", "/", "directory holding the host's /sys (and /dev)")
	fs.StringVar(&o.Discovery.PCIDBPath, "pcidb", "", "pci.ids file for device names (default: look under --host-root and /; raw IDs without one)")
	fs.StringVar(&o.PluginDir, "device-plugin-dir", DefaultPluginDir, "kubelet's device plugin directory (holds kubelet.sock)")
	fs.StringVar(&o.DevInfoDir, "devinfo-dir", DefaultDevInfoDir, "directory for device-info files")
	fs.StringVar(&metrics, "metrics-address", "", "serve Prometheus metrics on this host:port (off when empty)")
	fs.StringVar(&health, "health-address", DefaultHealthAddress, "serve /healthz and /readyz (ready: every pool registered with kubelet) on this host:port (off when empty)")
	fs.StringVar(&podResources, "pod-resources-socket", "", "kubelet's pod-resources socket: with --metrics-address, plexus_sriov_vfs counts the allocated devices (none when empty)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sriov-device-plugin: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(stderr, "sriov-device-plugin: --log-level %q: %v\n", logLevel, err)
		return 2
	}
	o.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	o.Links = NetlinkMonitor{}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, metrics, health, podResources); err != nil {
		fmt.Fprintf(stderr, "sriov-device-plugin: %v\n", err)
		return 1
	}
	o.Log.Info("stopped; sockets removed, device-info files kept")
	return 0
}

// DefaultHealthAddress is where /healthz and /readyz are served: the
// plugin runs on the host's network, so this is the node's port 9557
// (plexusd has 9555, the plugin's metrics 9556, sriov-dra-driver 9558).
const DefaultHealthAddress = ":9557"

func run(ctx context.Context, o Options, metricsAddr, healthAddr, podResources string) error {
	if _, err := os.Stat(o.Discovery.Root); err != nil {
		return fmt.Errorf("--host-root %q: %w", o.Discovery.Root, err)
	}
	if metricsAddr != "" {
		o.Metrics = NewMetrics()
		if podResources != "" {
			o.Metrics.SetAssigned(PodResourcesAssigned(podResources))
		}
		addr, errc, err := o.Metrics.Serve(ctx, metricsAddr)
		if err != nil {
			return err
		}
		o.Log.Info("serving metrics", "address", addr.String())
		go func() {
			if err := <-errc; err != nil {
				o.Log.Error("metrics server stopped", "err", err)
			}
		}()
	}
	m, err := NewManager(o)
	if err != nil {
		return err
	}
	if healthAddr != "" {
		addr, errc, err := probe.Serve(ctx, healthAddr, m.NotReady)
		if err != nil {
			return err
		}
		o.Log.Info("serving /healthz and /readyz", "address", addr.String())
		go func() {
			if err := <-errc; err != nil {
				o.Log.Error("health server stopped", "err", err)
			}
		}()
	}
	return m.Run(ctx)
}
