package dra

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/dynamic-resource-allocation/resourceslice"

	"github.com/plexus-cni/plexus/pkg/apiendpoint"
	"github.com/plexus-cni/plexus/pkg/deviceplugin"
	"github.com/plexus-cni/plexus/pkg/devinfo"
	"github.com/plexus-cni/plexus/pkg/k8s"
	"github.com/plexus-cni/plexus/pkg/probe"
	"github.com/plexus-cni/plexus/pkg/sriov/discovery"
	"github.com/plexus-cni/plexus/pkg/sriov/dpconfig"
)

// Options configure the driver daemon.
type Options struct {
	DriverName  string
	NodeName    string
	Kubeconfig  string // empty: in-cluster
	APIServer   string // replaces KUBERNETES_SERVICE_HOST/PORT (or the kubeconfig's server)
	ConfigPath  string // the resourceList (sriov-device-plugin's format)
	Prefix      string // resourcePrefix default
	Discovery   discovery.Options
	DevInfoDir  string
	CDIDir      string // CDI specs of vfio-pci VFs
	RegistryDir string // kubelet's plugin registration directory
	PluginDir   string // this driver's socket and checkpoint
	Links       deviceplugin.LinkMonitor
	Log         *slog.Logger
	// HealthAddress serves /healthz and /readyz (ready: registered with
	// kubelet and the ResourceSlices published); "" for none.
	HealthAddress string
}

// Main is the sriov-dra-driver daemon: flags, then Run until SIGINT or
// SIGTERM.
func Main(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("sriov-dra-driver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	var logLevel string
	fs.StringVar(&o.DriverName, "driver-name", DefaultDriverName, "DRA driver name (ResourceSlices, DeviceClasses, attribute domain)")
	fs.StringVar(&o.NodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig (default: in-cluster)")
	fs.StringVar(&o.APIServer, "api-server", "", "API server URL https://<host>:<port>, instead of KUBERNETES_SERVICE_HOST/PORT (clusters without kube-proxy); with --kubeconfig, replaces its server")
	fs.StringVar(&o.ConfigPath, "config", deviceplugin.DefaultConfigPath, "resourceList configuration (sriov-device-plugin's format): one pool attribute per resource")
	fs.StringVar(&o.Prefix, "resource-prefix", dpconfig.DefaultPrefix, "resource prefix for resources without resourcePrefix")
	fs.StringVar(&o.Discovery.Root, "host-root", "/", "directory holding the host's /sys")
	fs.StringVar(&o.Discovery.PCIDBPath, "pcidb", "", "pci.ids file (default: look under --host-root and /)")
	fs.StringVar(&o.DevInfoDir, "devinfo-dir", devinfo.DefaultDir, "device-info base directory")
	fs.StringVar(&o.CDIDir, "cdi-dir", DefaultCDIDir, "directory for the CDI specs of vfio-pci VFs (the runtime's CDI spec dir)")
	fs.StringVar(&o.RegistryDir, "registry-dir", kubeletplugin.KubeletRegistryDir, "kubelet's plugin registration directory")
	fs.StringVar(&o.PluginDir, "plugin-dir", "", "this driver's socket and checkpoint directory (default: kubelet's plugins dir/<driver-name>)")
	fs.StringVar(&o.HealthAddress, "health-address", DefaultHealthAddress, "serve /healthz and /readyz (ready: registered with kubelet, ResourceSlices published) on this host:port (off when empty)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(stderr, "sriov-dra-driver: --log-level %q: %v\n", logLevel, err)
		return 2
	}
	o.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	o.Links = deviceplugin.NetlinkMonitor{}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, o); err != nil {
		fmt.Fprintf(stderr, "sriov-dra-driver: %v\n", err)
		return 1
	}
	return 0
}

// Run discovers the VFs, registers with kubelet, publishes the node's
// ResourceSlices, withdraws the VFs of PFs whose link goes down, reports
// network data into claims, and stops when ctx ends.
func Run(ctx context.Context, o Options) error {
	start := time.Now()
	if o.NodeName == "" {
		return fmt.Errorf("--node-name (or $NODE_NAME) is required")
	}
	if o.PluginDir == "" {
		o.PluginDir = filepath.Join(kubeletplugin.KubeletPluginsDir, o.DriverName)
	}
	ready := &readiness{driver: o.DriverName, node: o.NodeName, timeout: 3 * time.Second}
	if o.HealthAddress != "" {
		addr, errc, err := probe.Serve(ctx, o.HealthAddress, ready.NotReady)
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
	cfg, err := dpconfig.LoadFile(o.ConfigPath, o.Prefix)
	if err != nil {
		return err
	}
	pfs, err := discovery.Discover(o.Discovery)
	if err != nil {
		return err
	}
	o.Log.Debug("discovered", "pfs", len(pfs), "since start", time.Since(start))
	src, err := apiendpoint.Choose(o.Kubeconfig, o.APIServer, os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	if err != nil {
		return err
	}
	var rc *rest.Config
	if src.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags(src.Server, src.Kubeconfig)
	} else {
		rc, err = k8s.RESTConfig(src, k8s.ServiceAccountDir)
	}
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	// A start publishes, registers and lists at once: client-go's default
	// 5 QPS would throttle it by seconds.
	rc.QPS, rc.Burst = 50, 100
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	ready.client = client
	if err := os.MkdirAll(o.PluginDir, 0o750); err != nil {
		return err
	}
	d, err := NewDriver(o.DriverName, o.NodeName, o.DevInfoDir, filepath.Join(o.PluginDir, "checkpoint.json"), dpconfig.Pools(cfg, pfs), o.Log)
	if err != nil {
		return err
	}
	d.CDIDir = o.CDIDir
	// Before kubelet's first call: the files match the checkpoint again.
	if err := d.Reconcile(); err != nil {
		o.Log.Error("reconciling device-info files and CDI specs with the checkpoint", "err", err)
	}
	rep := newReporter(d, client)
	d.onChange = rep.trigger
	helper, err := kubeletplugin.Start(ctx, d,
		kubeletplugin.DriverName(o.DriverName), kubeletplugin.NodeName(o.NodeName), kubeletplugin.KubeClient(client),
		kubeletplugin.RegistrarDirectoryPath(o.RegistryDir), kubeletplugin.PluginDataDirectoryPath(o.PluginDir),
		kubeletplugin.HealthService(false))
	if err != nil {
		return fmt.Errorf("kubelet plugin: %w", err)
	}
	defer helper.Stop()
	ready.pluginStarted(helper.RegistrationStatus)
	o.Log.Debug("kubelet plugin started", "since start", time.Since(start))
	publish := func(res resourceslice.DriverResources) error {
		ready.published(res)
		return helper.PublishResources(ctx, res)
	}
	down := pfsDown(pfs)
	if err := publish(d.Resources(down)); err != nil {
		return err
	}
	o.Log.Info("publishing", "driver", o.DriverName, "node", o.NodeName, "pfs", len(pfs), "since start", time.Since(start))
	go rep.run(ctx, o.NodeName)
	if o.Links != nil {
		go watchLinks(ctx, o, pfs, func(down map[string]bool) {
			if err := publish(d.Resources(down)); err != nil {
				o.Log.Error("republishing", "err", err)
			}
		})
	}
	<-ctx.Done()
	return nil
}

// pfsDown is the PFs whose netdev sysfs reports a down link.
func pfsDown(pfs []*discovery.PF) map[string]bool {
	down := map[string]bool{}
	for _, pf := range pfs {
		if pf.Netdev != "" && pf.OperState == "down" {
			down[pf.Addr] = true
		}
	}
	return down
}

// watchLinks follows the PFs' link states and calls publish with the new
// set of down PFs whenever it changes.
func watchLinks(ctx context.Context, o Options, pfs []*discovery.PF, publish func(map[string]bool)) {
	byName := map[string]string{}
	for _, pf := range pfs {
		if pf.Netdev != "" {
			byName[pf.Netdev] = pf.Addr
		}
	}
	down := pfsDown(pfs)
	events := make(chan deviceplugin.LinkEvent, 64)
	go func() {
		if err := o.Links.Watch(ctx, events); err != nil {
			o.Log.Error("link monitor", "err", err)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			addr, ok := byName[ev.Name]
			if !ok || down[addr] == !ev.Up {
				continue
			}
			next := map[string]bool{}
			for k, v := range down {
				next[k] = v
			}
			if ev.Up {
				delete(next, addr)
			} else {
				next[addr] = true
			}
			down = next
			o.Log.Info("PF link", "pf", ev.Name, "up", ev.Up)
			publish(down)
		}
	}
}
