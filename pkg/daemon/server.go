package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/plexus-cni/plexus/pkg/config"
	"github.com/plexus-cni/plexus/pkg/outbox"
	"github.com/plexus-cni/plexus/pkg/podnet"
	"github.com/plexus-cni/plexus/pkg/resolve"
	"github.com/plexus-cni/plexus/pkg/wire"
)

// connTimeout bounds one connection on the socket (the shim gives up much
// earlier, after its daemonTimeout).
const connTimeout = 10 * time.Second

func (d *Daemon) serve(ctx context.Context, ln net.Listener) {
	d.serving.Store(true)
	defer d.serving.Store(false)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			d.log.Warn("socket accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go d.handle(ctx, conn)
	}
}

func (d *Daemon) handle(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(connTimeout))
	req, err := wire.ReadRequest(conn)
	if err != nil {
		// A malformed request gets a clear answer; plexusd keeps serving.
		d.metrics.socketErrors.Inc()
		d.log.Warn("bad request on the socket", "err", err)
		_ = wire.WriteResponse(conn, &wire.Response{Error: &wire.Error{Message: "plexusd: " + err.Error()}})
		return
	}
	ctx, cancel := context.WithTimeout(ctx, connTimeout)
	defer cancel()
	var resp *wire.Response
	switch req.Op {
	case wire.OpResolve:
		resp = d.Resolve(ctx, req)
	case wire.OpPublish:
		d.metrics.observeStats(req.Stats)
		d.wake()
		resp = &wire.Response{}
	case wire.OpObserve:
		d.metrics.observeStats(req.Stats)
		resp = &wire.Response{}
	case wire.OpPing:
		resp = &wire.Response{}
		if !d.Synced() {
			resp.Error = &wire.Error{Message: "plexusd: informers not synced yet", Unavailable: true}
		}
	default:
		d.metrics.socketErrors.Inc()
		resp = &wire.Response{Error: &wire.Error{Message: fmt.Sprintf("plexusd: unknown op %q", req.Op)}}
	}
	if req.Op == wire.OpPublish || req.Op == wire.OpObserve {
		return // the shim does not wait for an answer
	}
	if err := wire.WriteResponse(conn, resp); err != nil {
		d.log.Debug("answering on the socket", "op", req.Op, "err", err)
	}
}

// Resolve answers a shim's resolve request: the pod's attachments, with
// devices assigned for ADD, from the informers. An error about the request
// (a bad annotation, a NAD that does not exist) is final and, for ADD,
// reported in a Warning event; not knowing (caches not synced, the API not
// answering for a pod the informer does not hold) is Unavailable, and the
// shim runs the thin path.
func (d *Daemon) Resolve(ctx context.Context, req *wire.Request) *wire.Response {
	start := time.Now()
	resp, werr := d.resolve(ctx, req)
	// A nil *wire.Error must not become a non-nil error interface.
	var err error
	if werr != nil {
		err = werr
	}
	d.metrics.resolved(time.Since(start), err)
	if werr != nil {
		return &wire.Response{Error: werr}
	}
	return resp
}

func (d *Daemon) resolve(ctx context.Context, req *wire.Request) (*wire.Response, *wire.Error) {
	if !d.Synced() {
		return nil, &wire.Error{Message: "plexusd: informers not synced yet", Unavailable: true}
	}
	conf, err := config.Load(req.Config)
	if err != nil {
		return nil, &wire.Error{Message: err.Error()}
	}
	preq := podnet.RequestFromArgs(req.ContainerID, req.NetNS, req.IfName, req.Args)
	final := func(err error) *wire.Error { return answer(preq.Pod, err) }
	pod, err := d.podSrc.Pod(ctx, preq.Pod)
	if err != nil {
		return nil, final(err)
	}
	r := resolve.New(conf, d.sources)
	failed := func(err error) *wire.Error {
		werr := final(err)
		if req.Command == "ADD" && !werr.Unavailable {
			d.failedEvent(preq, werr)
		}
		return werr
	}
	atts, err := r.Attachments(ctx, pod, preq)
	if err != nil {
		return nil, failed(err)
	}
	if req.Command == "ADD" {
		if err := r.AssignDevices(ctx, pod, preq, atts); err != nil {
			return nil, failed(err)
		}
		// With --network-policy, the pod's table is in its netns before
		// the shim runs a delegate (docs/network-policy.md); a pod that
		// a policy selects is not attached unfiltered: fail closed.
		if d.policy != nil {
			if err := d.policy.Prepare(ctx, req.ContainerID, req.NetNS, preq.Pod, atts); err != nil {
				return nil, failed(err)
			}
		}
	}
	return &wire.Response{Attachments: atts, Warnings: r.Warnings()}, nil
}

// answer is a failed resolution's answer to the shim: "unavailable" when
// plexusd could not tell (the API did not answer, or a file of the node
// could not be read through plexusd's mounts: podnet.Unavailable), so that
// the shim resolves in the runtime's own context; else final, naming the
// pod and the network.
func answer(pod podnet.PodRef, err error) *wire.Error {
	msg := fmt.Sprintf("pod %s: %v", pod, err)
	if podnet.Unavailable(err) {
		return &wire.Error{Message: msg, Unavailable: true}
	}
	return &wire.Error{Message: msg, Network: podnet.NetworkOf(err)}
}

// failedEvent queues the Warning event of an ADD that failed in
// resolution.
func (d *Daemon) failedEvent(req *podnet.Request, e *wire.Error) {
	rec := &outbox.Record{Kind: outbox.KindFailed, ContainerID: req.ContainerID, Pod: req.Pod, Network: e.Network,
		Error: trimPodPrefix(e.Message, req.Pod)}
	if err := d.box.Write(rec); err != nil {
		d.log.Warn("queueing a Warning event", "pod", req.Pod.String(), "err", err)
		return
	}
	d.wake()
}

func trimPodPrefix(msg string, pod podnet.PodRef) string {
	p := fmt.Sprintf("pod %s: ", pod)
	if len(msg) > len(p) && msg[:len(p)] == p {
		return msg[len(p):]
	}
	return msg
}

// wake makes the publisher look at the outbox now.
func (d *Daemon) wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}
