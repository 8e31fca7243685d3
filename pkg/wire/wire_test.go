package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/plexus-cni/plexus/pkg/podnet"
)

// server listens on a unix socket in a temporary directory and hands every
// connection to handle (in a goroutine of its own). The listener and the
// connections still open are closed when the test ends.
func server(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return sock
}

// answer replies raw to every connection once the request is read.
func answer(t *testing.T, raw string) string {
	return server(t, func(c net.Conn) {
		io.Copy(io.Discard, c)
		c.Write([]byte(raw))
	})
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// A request read by ReadRequest is the one Call sent; the Response written
// by WriteResponse is the one Call returns.
func TestCallRoundTrip(t *testing.T) {
	got := make(chan *Request, 1)
	want := &Response{
		Attachments: []podnet.Attachment{
			{Network: "primary", IfName: "eth0", Primary: true, ConfList: json.RawMessage(`{"cniVersion":"1.0.0","name":"primary","plugins":[{"type":"bridge"}]}`)},
			{Network: "ns/net-a", IfName: "net1", ConfList: json.RawMessage(`{"cniVersion":"1.0.0","name":"net-a","plugins":[{"type":"macvlan"}]}`), DeviceID: "0000:3b:02.1",
				CNIArgs: [][2]string{{"IgnoreUnknown", "true"}}, WantIPs: []string{"10.1.1.5/24"}},
		},
		Warnings: []string{`network "ns/net-a": unknown field "interfce"`},
	}
	sock := server(t, func(c net.Conn) {
		req, err := ReadRequest(c)
		if err != nil {
			t.Errorf("ReadRequest: %v", err)
			return
		}
		got <- req
		resp := *want
		if err := WriteResponse(c, &resp); err != nil {
			t.Errorf("WriteResponse: %v", err)
		}
	})
	req := &Request{Op: OpResolve, Command: "ADD", Config: json.RawMessage(`{"cniVersion":"1.0.0","name":"plexus","type":"plexus"}`),
		ContainerID: "c0ffee", NetNS: "/var/run/netns/x", IfName: "eth0",
		Args:  [][2]string{{"K8S_POD_NAMESPACE", "ns"}, {"K8S_POD_NAME", "p"}, {"K8S_POD_UID", "u-1"}},
		Stats: &Stats{Command: "ADD", Result: "success", Seconds: 0.012, Delegates: []DelegateStats{{Command: "ADD", Plugins: "bridge", Result: "success", Seconds: 0.004}}}}
	resp, err := Call(ctxTimeout(t, 5*time.Second), sock, req)
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if req.Version != Version {
		t.Errorf("Call did not stamp the request's version: %d", req.Version)
	}
	r := <-got
	if !reflect.DeepEqual(r, req) {
		t.Errorf("server read\n  %+v\nclient sent\n  %+v", r, req)
	}
	want.Version = Version
	if !reflect.DeepEqual(resp, want) {
		t.Errorf("Call returned\n  %+v\nserver wrote\n  %+v", resp, want)
	}
}

// Send delivers the request and does not wait for an answer.
func TestSendDoesNotWaitForAnswer(t *testing.T) {
	got := make(chan *Request, 1)
	release := make(chan struct{})
	defer close(release)
	sock := server(t, func(c net.Conn) {
		req, err := ReadRequest(c)
		if err != nil {
			t.Errorf("ReadRequest: %v", err)
			return
		}
		got <- req
		<-release // never answers while Send could be waiting
	})
	if err := Send(ctxTimeout(t, 10*time.Second), sock, &Request{Op: OpPublish, ContainerID: "c1"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	select {
	case r := <-got:
		if r.Op != OpPublish || r.ContainerID != "c1" || r.Version != Version {
			t.Errorf("server read %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server never read the request Send wrote")
	}
}

// No socket at all: ErrUnavailable at once, not at the deadline.
func TestCallNoSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "absent.sock")
	start := time.Now()
	_, err := Call(ctxTimeout(t, time.Minute), sock, &Request{Op: OpPing})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Call without a socket: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Call without a socket took %v (the deadline was a minute): it should fail at once", d)
	}
	if err := Send(ctxTimeout(t, time.Minute), sock, &Request{Op: OpPublish}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Send without a socket: %v, want ErrUnavailable", err)
	}
}

// A socket file that nobody listens on (a plexusd that died): refused.
func TestCallSocketWithoutListener(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "dead.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	_, err = Call(ctxTimeout(t, time.Minute), sock, &Request{Op: OpPing})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Call to a dead socket: %v, want ErrUnavailable", err)
	}
}

// A server that accepts and never answers: Call returns ErrUnavailable
// once the ctx's deadline passes (or the ctx is cancelled), it does not
// hang.
func TestCallServerNeverAnswers(t *testing.T) {
	release := make(chan struct{})
	accepted := make(chan struct{}, 2)
	sock := server(t, func(c net.Conn) {
		accepted <- struct{}{}
		<-release
	})
	t.Cleanup(func() { close(release) })
	for _, tc := range []struct {
		name string
		ctx  func() context.Context
	}{
		{"deadline", func() context.Context { return ctxTimeout(t, 200*time.Millisecond) }},
		{"cancel", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			go func() { <-accepted; time.Sleep(50 * time.Millisecond); cancel() }()
			return ctx
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for len(accepted) > 0 {
				<-accepted
			}
			errc := make(chan error, 1)
			go func() {
				_, err := Call(tc.ctx(), sock, &Request{Op: OpResolve})
				errc <- err
			}()
			select {
			case err := <-errc:
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("Call to a silent server: %v, want ErrUnavailable", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("Call to a silent server did not return a minute after its ctx ended")
			}
		})
	}
}

// Every answer that is not a usable Response is an unavailable daemon (the
// shim then runs the thin path), never a failed ADD.
func TestCallUnusableAnswers(t *testing.T) {
	for _, tc := range []struct{ name, raw, want string }{
		{"other protocol version", `{"version":2,"attachments":[{"network":"x","ifName":"net1","confList":{}}]}`, "protocol version 2, want 1"},
		{"no version", `{"attachments":[]}`, "protocol version 0, want 1"},
		{"unavailable error", `{"version":1,"error":{"message":"plexusd: informers not synced yet","unavailable":true}}`, "informers not synced yet"},
		{"not JSON", "HTTP/1.1 400 Bad Request\r\n\r\n", "reading the answer"},
		{"closed without answer", "", "reading the answer"},
		{"truncated", `{"version":1,"attachments":[{"net`, "reading the answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := answer(t, tc.raw)
			resp, err := Call(ctxTimeout(t, 10*time.Second), sock, &Request{Op: OpResolve})
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Call answered %q: (%+v, %v), want ErrUnavailable saying %q", tc.raw, resp, err, tc.want)
			}
			if resp != nil {
				t.Errorf("a Response came with the error: %+v", resp)
			}
		})
	}
}

// A final error (a missing NAD, a refused field) is the daemon's answer:
// Call returns it as a Response, not as ErrUnavailable.
func TestCallFinalErrorIsAResponse(t *testing.T) {
	msg := `pod ns/p: network "ns/missing" (interface net1): network-attachment-definition not found`
	sock := server(t, func(c net.Conn) {
		if _, err := ReadRequest(c); err != nil {
			t.Errorf("ReadRequest: %v", err)
		}
		WriteResponse(c, &Response{Error: &Error{Message: msg, Network: "ns/missing", Code: 7}})
	})
	resp, err := Call(ctxTimeout(t, 10*time.Second), sock, &Request{Op: OpResolve})
	if err != nil {
		t.Fatalf("Call: %v, want the final error as a Response", err)
	}
	if resp.Error == nil || resp.Error.Message != msg || resp.Error.Network != "ns/missing" || resp.Error.Code != 7 || resp.Error.Unavailable {
		t.Errorf("Response.Error = %+v", resp.Error)
	}
	if resp.Error.Error() != msg {
		t.Errorf("Error() = %q, want the message as it is", resp.Error.Error())
	}
}

// A Response larger than MaxMessage is not read to the end: unavailable.
func TestCallAnswerTooLarge(t *testing.T) {
	sock := server(t, func(c net.Conn) {
		io.Copy(io.Discard, c)
		big := `{"version":1,"warnings":["` + strings.Repeat("x", MaxMessage) + `"]}`
		c.Write([]byte(big))
	})
	_, err := Call(ctxTimeout(t, 30*time.Second), sock, &Request{Op: OpResolve})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Call with an answer over MaxMessage: %v, want ErrUnavailable", err)
	}
}

// readRaw writes raw on a connection to a server that runs ReadRequest and
// returns what ReadRequest returned.
func readRaw(t *testing.T, raw []byte) (*Request, error) {
	t.Helper()
	type result struct {
		req *Request
		err error
	}
	res := make(chan result, 1)
	sock := server(t, func(c net.Conn) {
		req, err := ReadRequest(c)
		res <- result{req, err}
	})
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		// The server may stop reading before the end (a message over
		// MaxMessage): the write then fails, which is the point.
		c.Write(raw)
		c.(*net.UnixConn).CloseWrite()
	}()
	select {
	case r := <-res:
		return r.req, r.err
	case <-time.After(30 * time.Second):
		t.Fatal("ReadRequest did not return")
		return nil, nil
	}
}

// ReadRequest refuses what is not a Request of this version with an error
// that says so; the server answers it instead of stopping.
func TestReadRequestMalformed(t *testing.T) {
	for _, tc := range []struct{ name, raw, want string }{
		{"not JSON", "not json at all", "malformed request: invalid character"},
		{"unknown field", `{"version":1,"op":"resolve","bogus":1}`, `malformed request: json: unknown field "bogus"`},
		{"wrong version", `{"version":99,"op":"ping"}`, "malformed request: protocol version 99, want 1"},
		{"no version", `{"op":"ping"}`, "malformed request: protocol version 0, want 1"},
		{"wrong type", `{"version":1,"op":["resolve"]}`, "malformed request: json: cannot unmarshal array"},
		{"empty", "", "malformed request: EOF"},
		{"truncated", `{"version":1,"op":"reso`, "malformed request: unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := readRaw(t, []byte(tc.raw))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadRequest(%q) = (%+v, %v), want an error containing %q", tc.raw, req, err, tc.want)
			}
			if req != nil {
				t.Errorf("a Request came with the error: %+v", req)
			}
		})
	}
}

// A request over MaxMessage is refused without reading it to the end.
func TestReadRequestTooLarge(t *testing.T) {
	var raw bytes.Buffer
	raw.WriteString(`{"version":1,"op":"resolve","config":{"pad":"`)
	raw.WriteString(strings.Repeat("x", MaxMessage))
	raw.WriteString(`"}}`)
	req, err := readRaw(t, raw.Bytes())
	if err == nil || !strings.Contains(err.Error(), "malformed request") {
		t.Fatalf("ReadRequest of %d bytes = (%v, %v), want a malformed request error", raw.Len(), req != nil, err)
	}
	// Just under the bound is accepted: the limit is MaxMessage, not less.
	raw.Reset()
	raw.WriteString(`{"version":1,"op":"resolve","config":{"pad":"`)
	raw.WriteString(strings.Repeat("x", MaxMessage-100))
	raw.WriteString(`"}}`)
	req, err = readRaw(t, raw.Bytes())
	if err != nil || req.Op != OpResolve || len(req.Config) < MaxMessage-100 {
		t.Fatalf("ReadRequest of %d bytes (under MaxMessage): %v", raw.Len(), err)
	}
}

// WriteResponse stamps the version whatever the caller left in it.
func TestWriteResponseStampsVersion(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		WriteResponse(b, &Response{Version: 42, Warnings: []string{"w"}})
		b.Close()
	}()
	var resp Response
	if err := json.NewDecoder(a).Decode(&resp); err != nil {
		t.Fatal(err)
	}
	if resp.Version != Version || len(resp.Warnings) != 1 {
		t.Errorf("written %+v", resp)
	}
}
