// Package wire is the protocol between the plexus CNI shim and plexusd, on
// plexusd's unix socket (root only). One request per connection: the shim
// writes one JSON Request and closes its write half; plexusd answers one
// JSON Response and closes the connection.
//
// It is plain JSON over a stream socket rather than HTTP or gRPC because the
// shim links it: net/http and grpc would cost the shim milliseconds of
// package init on every exec (cmd/plexus's deps test keeps them out).
package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// Version is the protocol version; a Response of another version is an
// unavailable daemon (the shim then runs the thin path).
const Version = 1

// Operations.
const (
	// OpResolve asks for the attachments of a pod (ADD, or DEL without a
	// cache entry).
	OpResolve = "resolve"
	// OpPublish says the outbox holds a new record of ContainerID.
	OpPublish = "publish"
	// OpPing asks whether plexusd serves.
	OpPing = "ping"
	// OpObserve carries Stats of a command (DEL, CHECK, GC) for plexusd's
	// metrics; OpPublish carries those of its ADD.
	OpObserve = "observe"
)

// MaxMessage bounds a message on the socket (a Response with many
// attachments is tens of KiB).
const MaxMessage = 8 << 20

// Request is what the shim asks.
type Request struct {
	Version int    `json:"version"`
	Op      string `json:"op"`
	// Command is the CNI command the request serves (ADD, DEL).
	Command string `json:"command,omitempty"`
	// Config is plexus's config as the runtime passed it on stdin: plexusd
	// resolves with exactly the config the shim was called with.
	Config      json.RawMessage `json:"config,omitempty"`
	ContainerID string          `json:"containerID,omitempty"`
	NetNS       string          `json:"netns,omitempty"`
	IfName      string          `json:"ifName,omitempty"`
	// Args are the CNI_ARGS pairs, in order.
	Args [][2]string `json:"args,omitempty"`
	// Stats of the command (OpPublish, OpObserve).
	Stats *Stats `json:"stats,omitempty"`
}

// Stats is what a shim command measured: plexusd's metrics of ADD, DEL and
// CHECK are the shim's, handed over best effort.
type Stats struct {
	Command   string          `json:"command"`
	Result    string          `json:"result"` // "success" or "error"
	Seconds   float64         `json:"seconds"`
	Delegates []DelegateStats `json:"delegates,omitempty"`
}

// DelegateStats is one delegate run.
type DelegateStats struct {
	Command string  `json:"command"`
	Plugins string  `json:"plugins"`
	Result  string  `json:"result"`
	Seconds float64 `json:"seconds"`
}

// Response is plexusd's answer.
type Response struct {
	Version int    `json:"version"`
	Error   *Error `json:"error,omitempty"`
	// Attachments are the pod's resolved attachments, primary first, with
	// device IDs assigned.
	Attachments []podnet.Attachment `json:"attachments,omitempty"`
	// Warnings are what resolution accepted but did not do as asked.
	Warnings []string `json:"warnings,omitempty"`
}

// Error is a failed request.
type Error struct {
	// Message names the pod, the network and the field, as the thin path's
	// error does; the shim returns it to the runtime as it is.
	Message string `json:"message"`
	Network string `json:"network,omitempty"`
	// Code is the CNI error code (types.ErrInternal when 0).
	Code uint `json:"code,omitempty"`
	// Unavailable says plexusd cannot answer now (its caches are not
	// synced, the API is unreachable for a pod it does not know): the shim
	// runs the thin path instead of failing the ADD.
	Unavailable bool `json:"unavailable,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// ErrUnavailable wraps every failure to get an answer from plexusd: no
// socket, no listener, a timeout, a malformed or unavailable answer.
var ErrUnavailable = errors.New("plexusd unavailable")

// Call sends req to the socket and returns the answer. An error wraps
// ErrUnavailable; a Response carrying a final Error is returned as it is.
func Call(ctx context.Context, socket string, req *Request) (*Response, error) {
	req.Version = Version
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// A cancelled ctx ends a blocked read or write.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("%w: sending: %v", ErrUnavailable, err)
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	var resp Response
	if err := json.NewDecoder(io.LimitReader(conn, MaxMessage)).Decode(&resp); err != nil {
		return nil, fmt.Errorf("%w: reading the answer: %v", ErrUnavailable, err)
	}
	if resp.Version != Version {
		return nil, fmt.Errorf("%w: protocol version %d, want %d", ErrUnavailable, resp.Version, Version)
	}
	if resp.Error != nil && resp.Error.Unavailable {
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, resp.Error.Message)
	}
	return &resp, nil
}

// Send writes req to the socket without waiting for an answer (the shim's
// notifications: plexusd acts on them, the shim has nothing to learn).
func Send(ctx context.Context, socket string, req *Request) error {
	req.Version = Version
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return fmt.Errorf("%w: sending: %v", ErrUnavailable, err)
	}
	return nil
}

// ReadRequest reads one Request from conn (the server side). A malformed
// request is an error to answer with, not a reason to stop serving.
func ReadRequest(conn net.Conn) (*Request, error) {
	var req Request
	dec := json.NewDecoder(io.LimitReader(conn, MaxMessage))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("malformed request: %v", err)
	}
	if req.Version != Version {
		return nil, fmt.Errorf("malformed request: protocol version %d, want %d", req.Version, Version)
	}
	return &req, nil
}

// WriteResponse answers on conn.
func WriteResponse(conn net.Conn, resp *Response) error {
	resp.Version = Version
	return json.NewEncoder(conn).Encode(resp)
}
