// Package shim is the plexus CNI binary of the daemon deployment
// (docs/architecture.md, "Two deployments"): plexusd resolves the pod's
// attachments from its informers, this process runs them (the attach stage,
// in the runtime's context and cgroup) and hands the results to plexusd's
// outbox, which publishes them.
//
// The shim never depends on plexusd. Without key "daemonSocket" (the thin
// deployment) it execs plexus-thin for ADD, DEL and STATUS; with it, when
// plexusd does not answer within "daemonTimeout" ms, it runs the thin path
// in full by exec'ing plexus-thin with the same stdin and environment, and
// says so in its log and in a fallback record plexusd counts. CHECK and GC
// need no resolution: the shim runs them from the cache itself.
package shim

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"golang.org/x/sys/unix"

	"github.com/plexus-cni/plexus/pkg/attach"
	"github.com/plexus-cni/plexus/pkg/config"
	"github.com/plexus-cni/plexus/pkg/logging"
	"github.com/plexus-cni/plexus/pkg/outbox"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/wire"
)

// ThinName is the binary of the thin path, looked up beside the shim, then
// in binDir and CNI_PATH.
const ThinName = "plexus-thin"

// notifyTimeout bounds the shim's "publish" notification to plexusd; the
// record is in the outbox already, plexusd finds it by itself if the
// notification is lost.
const notifyTimeout = 200 * time.Millisecond

// Main is the plexus binary.
func Main(buildVersion string) {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus},
		config.Versions, "plexus meta-plugin "+buildVersion)
}

// invocation is one CNI command in the shim.
type invocation struct {
	args     *skel.CmdArgs
	conf     *config.Conf
	req      *podnet.Request
	log      *slog.Logger
	closeLog func()
	att      *attach.Attacher
	box      outbox.Box
	start    time.Time
	// delegates are the delegate runs of this command, for plexusd's
	// metrics.
	delegates []wire.DelegateStats
	// held, when not nil, keeps the Warning records of a DEL until the
	// container's records are dropped.
	held *[]*outbox.Record
}

func load(args *skel.CmdArgs) (*invocation, error) {
	conf, err := config.Load(args.StdinData)
	if err != nil {
		return nil, err
	}
	req, err := podnet.NewRequest(args.ContainerID, args.Netns, args.IfName, args.Args)
	if err != nil {
		return nil, err
	}
	inv := &invocation{args: args, conf: conf, req: req, box: outbox.Box{Dir: outbox.Dir(conf.CNIDir)}, start: time.Now()}
	inv.log, inv.closeLog = logging.NewWithOptions(conf.Logging(), args.ContainerID, req.Pod.String())
	inv.att = attach.ForConfig(conf, inv.log, args.Path)
	inv.att.Runner.Observe = func(command, plugins string, d time.Duration, err error) {
		inv.delegates = append(inv.delegates, wire.DelegateStats{Command: command, Plugins: plugins, Result: result(err), Seconds: d.Seconds()})
	}
	inv.att.Warn = func(_ context.Context, pod *podnet.Pod, msg string) {
		// A Warning event, through plexusd (best effort).
		rec := &outbox.Record{Kind: outbox.KindWarned, ContainerID: args.ContainerID,
			Pod: podnet.PodRef{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}, Warnings: []string{msg}}
		if inv.held != nil {
			*inv.held = append(*inv.held, rec)
			return
		}
		inv.warn(rec)
	}
	return inv, nil
}

// warn hands a Warning record to plexusd.
func (inv *invocation) warn(rec *outbox.Record) {
	if err := inv.box.Write(rec); err != nil {
		inv.log.Warn("writing a warning to the outbox", "err", err)
		return
	}
	inv.notify(nil)
}

// thinDeployment: no plexusd is configured (or the config is clusterless,
// which plexusd does not serve): plexus-thin does ADD and DEL.
func (inv *invocation) thinDeployment() bool {
	return inv.conf.DaemonSocket == "" || inv.conf.Clusterless()
}

func cmdAdd(args *skel.CmdArgs) error {
	inv, err := load(args)
	if err != nil {
		return err
	}
	if inv.thinDeployment() {
		return inv.execThin()
	}
	defer inv.closeLog()
	ctx := context.Background()
	var steps []any
	last := inv.start
	mark := func(step string) {
		now := time.Now()
		steps = append(steps, step, now.Sub(last).String())
		last = now
	}
	defer func() { inv.log.Debug("ADD timing", append(steps, "total", time.Since(inv.start).String())...) }()
	mark("setup")
	unlock, err := inv.att.Lock(inv.req)
	if err != nil {
		return cniError(err)
	}
	mark("lock")
	resp, err := inv.resolve(ctx, "ADD")
	mark("resolve")
	if err != nil {
		unlock()
		return inv.fallback(err)
	}
	defer unlock()
	if resp.Error != nil {
		// plexusd has reported it in a Warning event.
		inv.observe(inv.stats("ADD", resp.Error))
		return types.NewError(orInternal(resp.Error.Code), resp.Error.Message, "")
	}
	fail := func(err error) error {
		err = fmt.Errorf("pod %s: %w", inv.req.Pod, err)
		inv.log.Error("ADD failed", "err", err)
		rec := &outbox.Record{Kind: outbox.KindFailed, ContainerID: args.ContainerID, Pod: inv.req.Pod,
			Network: podnet.NetworkOf(err), Error: strings.TrimPrefix(err.Error(), fmt.Sprintf("pod %s: ", inv.req.Pod))}
		if werr := inv.box.Write(rec); werr != nil {
			inv.log.Warn("writing the failure to the outbox", "err", werr)
		}
		inv.notify(inv.stats("ADD", err))
		return cniError(err)
	}
	entry := &podnet.Entry{
		ContainerID: args.ContainerID, NetNS: args.Netns, CNIVersion: inv.conf.CNIVersion,
		PodNamespace: inv.req.Pod.Namespace, PodName: inv.req.Pod.Name, PodUID: inv.req.Pod.UID,
		Attachments: resp.Attachments,
	}
	if len(entry.Attachments) == 0 {
		return fail(fmt.Errorf("plexusd resolved no attachment (not even the primary)"))
	}
	results, err := inv.att.Add(ctx, entry)
	if err != nil {
		return fail(err)
	}
	mark("attach")
	out, err := results[0].GetAsVersion(inv.conf.CNIVersion)
	if err != nil {
		inv.att.Rollback(ctx, entry)
		p := entry.Attachments[0].Network
		return fail(podnet.WithNetwork(p, fmt.Errorf("network %q: converting the primary's result to cniVersion %s: %v", p, inv.conf.CNIVersion, err)))
	}
	// Hand-off: the record is on disk before ADD returns; plexusd publishes
	// it (now, when notified, or after its restart).
	rec := &outbox.Record{Kind: outbox.KindAttached, ContainerID: args.ContainerID, Pod: inv.req.Pod, Entry: entry, Warnings: resp.Warnings}
	if err := inv.box.Write(rec); err != nil {
		inv.att.Rollback(ctx, entry)
		return fail(fmt.Errorf("writing network-status to the outbox %s: %v", inv.box.Dir, err))
	}
	mark("outbox")
	inv.notify(inv.stats("ADD", nil))
	mark("notify")
	inv.log.Info("attached", "interfaces", len(entry.Attachments))
	return out.Print()
}

func cmdDel(args *skel.CmdArgs) error {
	inv, err := load(args)
	if err != nil {
		return err
	}
	if inv.thinDeployment() {
		return inv.execThin()
	}
	defer inv.closeLog()
	ctx := context.Background()
	var unavailable error
	rebuild := func(ctx context.Context, req *podnet.Request) *podnet.Entry {
		if req.Pod.Name == "" {
			return nil
		}
		resp, err := inv.resolve(ctx, "DEL")
		if err != nil {
			unavailable = err
			return nil
		}
		if resp.Error != nil {
			inv.log.Info("no cache entry and the pod's networks do not resolve: nothing to delete", "err", resp.Error.Message)
			return nil
		}
		return &podnet.Entry{ContainerID: req.ContainerID, NetNS: req.NetNS, CNIVersion: inv.conf.CNIVersion, Attachments: resp.Attachments}
	}
	unlock, err := inv.att.Lock(inv.req)
	if err != nil {
		inv.log.Error("DEL failed", "err", err)
		inv.observe(inv.stats("DEL", err))
		return cniError(err)
	}
	var held []*outbox.Record
	inv.held = &held
	err = inv.att.DelLocked(ctx, inv.req, rebuild)
	// DEL drops what is pending for its container (a gone sandbox has no
	// status to publish), under the pod's lock and after the delegates'
	// DEL: a hot-plug pass that held the lock before may have written a
	// record, and none can be written after. Then the DEL's own warnings.
	if rerr := inv.box.RemoveContainer(inv.args.ContainerID); rerr != nil {
		inv.log.Warn("dropping the container's outbox records", "err", rerr)
	}
	inv.held = nil
	for _, rec := range held {
		inv.warn(rec)
	}
	unlock()
	if err != nil {
		inv.log.Error("DEL failed", "err", err)
	}
	if unavailable != nil && err == nil {
		// No cache entry, and only the API can say what to delete.
		return inv.fallback(unavailable)
	}
	inv.observe(inv.stats("DEL", err))
	return cniError(err)
}

func cmdCheck(args *skel.CmdArgs) error {
	inv, err := load(args)
	if err != nil {
		return err
	}
	defer inv.closeLog()
	err = inv.att.Check(context.Background(), inv.req)
	if inv.conf.DaemonSocket != "" {
		inv.observe(inv.stats("CHECK", err))
	}
	return cniError(err)
}

func cmdGC(args *skel.CmdArgs) error {
	inv, err := load(args)
	if err != nil {
		return err
	}
	defer inv.closeLog()
	return cniError(inv.att.GC(context.Background(), inv.conf.ValidAttachments))
}

// cmdStatus runs the thin path's STATUS, which makes no API request: a
// node whose plexusd is down still attaches pods, so it stays ready.
func cmdStatus(args *skel.CmdArgs) error {
	inv, err := load(args)
	if err != nil {
		return err
	}
	return inv.execThin()
}

func (inv *invocation) resolve(ctx context.Context, command string) (*wire.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(inv.conf.DaemonTimeout)*time.Millisecond)
	defer cancel()
	start := time.Now()
	resp, err := wire.Call(ctx, inv.conf.DaemonSocket, &wire.Request{
		Op: wire.OpResolve, Command: command, Config: inv.args.StdinData,
		ContainerID: inv.args.ContainerID, NetNS: inv.args.Netns, IfName: inv.args.IfName, Args: inv.req.Args,
	})
	inv.log.Debug("plexusd resolve", "took", time.Since(start).String(), "err", err)
	return resp, err
}

// notify tells plexusd that the outbox has a record, with the ADD's stats
// (best effort).
func (inv *invocation) notify(st *wire.Stats) {
	inv.send(&wire.Request{Op: wire.OpPublish, ContainerID: inv.args.ContainerID, Stats: st})
}

// observe hands a command's stats to plexusd (best effort).
func (inv *invocation) observe(st *wire.Stats) {
	inv.send(&wire.Request{Op: wire.OpObserve, ContainerID: inv.args.ContainerID, Stats: st})
}

func (inv *invocation) send(req *wire.Request) {
	ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
	defer cancel()
	if err := wire.Send(ctx, inv.conf.DaemonSocket, req); err != nil {
		inv.log.Debug("telling plexusd; it finds outbox records by itself", "op", req.Op, "err", err)
	}
}

func (inv *invocation) stats(command string, err error) *wire.Stats {
	return &wire.Stats{Command: command, Result: result(err), Seconds: time.Since(inv.start).Seconds(), Delegates: inv.delegates}
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "success"
}

// fallback runs the thin path in full because plexusd did not answer.
func (inv *invocation) fallback(reason error) error {
	inv.log.Warn("plexusd did not answer: running the thin path", "socket", inv.conf.DaemonSocket, "reason", reason, "fallback", true)
	rec := &outbox.Record{Kind: outbox.KindFallback, ContainerID: inv.args.ContainerID, Pod: inv.req.Pod, Reason: reason.Error(), Command: os.Getenv("CNI_COMMAND")}
	if err := inv.box.Write(rec); err != nil {
		inv.log.Warn("recording the fallback", "err", err)
	}
	return inv.execThin()
}

// execThin replaces this process with plexus-thin, giving it the same
// environment and, on a memfd, the same stdin. It returns only on failure.
func (inv *invocation) execThin() error {
	inv.closeLog()
	path, err := thinBinary(inv.conf.BinDir, inv.args.Path)
	if err != nil {
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	if err := stdinFrom(inv.args.StdinData); err != nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("running %s: stdin: %v", path, err), "")
	}
	err = syscall.Exec(path, []string{path}, os.Environ())
	return types.NewError(types.ErrInternal, fmt.Sprintf("running %s: %v", path, err), "")
}

// thinBinary finds plexus-thin: beside this executable, then in binDir and
// CNI_PATH.
func thinBinary(binDir, cniPath string) (string, error) {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	dirs = append(dirs, binDir)
	dirs = append(dirs, filepath.SplitList(cniPath)...)
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, ThinName)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("plexus: %s (the thin path) is not beside plexus, in binDir %s or in CNI_PATH", ThinName, binDir)
}

// stdinFrom makes fd 0 a memfd holding data, for the exec'd thin path.
func stdinFrom(data []byte) error {
	fd, err := unix.MemfdCreate("plexus-stdin", 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), "plexus-stdin")
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if _, err := f.Seek(0, 0); err != nil {
		return err
	}
	return unix.Dup3(fd, 0, 0)
}

// cniError is attach.CNIError.
var cniError = attach.CNIError

func orInternal(code uint) uint {
	if code == 0 {
		return types.ErrInternal
	}
	return code
}
