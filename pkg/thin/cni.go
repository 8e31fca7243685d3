// Package thin is the thin deployment of the plexus CNI plugin: one exec of
// the plexus binary does all three stages of an attach (resolve, attach,
// publish) itself. cni.go turns a CNI invocation into an Engine call: it
// loads the config and CNI_ARGS, sets up logging, picks the mode's sources
// (clusterless or Kubernetes) and prints the result; engine.go runs the
// stages.
package thin

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/plexus-cni/plexus/pkg/attach"
	"github.com/plexus-cni/plexus/pkg/cache"
	"github.com/plexus-cni/plexus/pkg/config"
	"github.com/plexus-cni/plexus/pkg/logging"
	"github.com/plexus-cni/plexus/pkg/nad"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/podresources"
	"github.com/plexus-cni/plexus/pkg/publish"
	"github.com/plexus-cni/plexus/pkg/resolve"
)

// Main is the plexus binary.
func Main(buildVersion string) {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus},
		config.Versions, "plexus meta-plugin "+buildVersion)
}

func cmdAdd(args *skel.CmdArgs) error {
	e, req, done, err := setup(args)
	if err != nil {
		return err
	}
	defer done()
	res, err := e.Add(context.Background(), req)
	if err != nil {
		e.Log.Error("ADD failed", "err", err)
		return cniError(err)
	}
	return res.Print()
}

func cmdDel(args *skel.CmdArgs) error {
	e, req, done, err := setup(args)
	if err != nil {
		return err
	}
	defer done()
	if err := e.Del(context.Background(), req); err != nil {
		e.Log.Error("DEL failed", "err", err)
		return cniError(err)
	}
	return nil
}

func cmdCheck(args *skel.CmdArgs) error {
	e, req, done, err := setup(args)
	if err != nil {
		return err
	}
	defer done()
	return cniError(e.Check(context.Background(), req))
}

func cmdGC(args *skel.CmdArgs) error {
	e, _, done, err := setup(args)
	if err != nil {
		return err
	}
	defer done()
	return cniError(e.GC(context.Background(), e.Conf.ValidAttachments))
}

func cmdStatus(args *skel.CmdArgs) error {
	e, _, done, err := setup(args)
	if err != nil {
		return err
	}
	defer done()
	if err := e.StatusCheck(context.Background()); err != nil {
		return types.NewError(errPluginNotAvailable, "plexus is not ready", err.Error())
	}
	return nil
}

// cniError is attach.CNIError.
var cniError = attach.CNIError

// errPluginNotAvailable is CNI 1.1's STATUS error code 50.
const errPluginNotAvailable uint = 50

// Sources are one mode's implementations of the stages' interfaces.
type Sources struct {
	Pods    PodSource
	NADs    resolve.NADSource
	Sink    publish.Sink
	Devices resolve.DeviceSource
	// Claims and Attributes read DRA ResourceClaims and other drivers'
	// devices (nil: not in this mode).
	Claims     resolve.ClaimSource
	Attributes resolve.DeviceAttributes
	// LocalNADs serves NADs without the API (clusterless mode), for STATUS.
	LocalNADs resolve.NADSource
	Close     func()
}

// kubeSources builds Kubernetes-mode sources; set by kube.go.
var kubeSources func(c *config.Conf, log *slog.Logger, containerID string) (*Sources, error)

func setup(args *skel.CmdArgs) (*Engine, *podnet.Request, func(), error) {
	conf, err := config.Load(args.StdinData)
	if err != nil {
		return nil, nil, nil, err
	}
	req, err := podnet.NewRequest(args.ContainerID, args.Netns, args.IfName, args.Args)
	if err != nil {
		return nil, nil, nil, err
	}
	log, closeLog := logging.NewWithOptions(conf.Logging(), args.ContainerID, req.Pod.String())
	store := cache.Store{Dir: conf.CNIDir}
	var src *Sources
	if conf.Clusterless() {
		// Devices come from kubelet's pod-resources socket in both modes;
		// it is dialled only when a NAD names a resource.
		dev := podresources.NewClient(conf.PodResourcesSocket)
		nads := DirNADs{Dir: &nad.DirSource{Dir: conf.NetworksDir}}
		src = &Sources{
			Pods:      ArgsPods{Networks: req.Networks},
			NADs:      nads,
			LocalNADs: nads,
			Sink:      publish.FileSink{Dir: store.ContainerDir, Log: log},
			Devices:   dev,
			Close:     func() { dev.Close() },
		}
	} else {
		if kubeSources == nil {
			closeLog()
			return nil, nil, nil, fmt.Errorf("plexus config: key \"kubeconfig\": this build has no Kubernetes mode")
		}
		src, err = kubeSources(conf, log, args.ContainerID)
		if err != nil {
			closeLog()
			return nil, nil, nil, err
		}
	}
	local := src.LocalNADs
	if local == nil {
		local = noNADs{}
	}
	e := &Engine{
		Conf: conf, Pods: src.Pods, Sink: src.Sink, Log: log,
		Resolver: resolve.New(conf, resolve.Sources{NADs: src.NADs, Devices: src.Devices, Claims: src.Claims, Attributes: src.Attributes}),
		Local:    resolve.New(conf, resolve.Sources{NADs: local}),
		Attacher: attach.ForConfig(conf, log, args.Path),
	}
	e.Attacher.Warn = func(ctx context.Context, pod *podnet.Pod, msg string) { src.Sink.Warned(ctx, pod, []string{msg}) }
	done := func() {
		if src.Close != nil {
			src.Close()
		}
		if log.Enabled(context.Background(), slog.LevelDebug) {
			log.Debug("peak RSS of plexus", "kib", peakRSSKiB())
		}
		closeLog()
	}
	return e, req, done, nil
}

// peakRSSKiB is this process's peak resident set (VmHWM), without the
// delegates it ran.
func peakRSSKiB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return n
		}
	}
	return 0
}
