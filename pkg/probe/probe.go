// Package probe serves the /healthz and /readyz endpoints kubelet's
// httpGet probes ask of a node agent (sriov-device-plugin, sriov-dra-driver):
// /healthz answers 200 while the process serves HTTP at all; /readyz
// answers 200 "ok" when the agent's readiness check passes, and 503 with
// the check's reason otherwise, so `kubectl describe pod` shows why.
package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Check returns nil when the agent is ready, else why it is not. It is
// called once per /readyz request and must not block for long.
type Check func() error

// Handler serves /healthz and /readyz with ready.
func Handler(ready Check) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Serve listens on addr and serves Handler(ready) until ctx ends. It
// returns the address listened on and a channel that receives the server's
// end (nil after ctx ends).
func Serve(ctx context.Context, addr string, ready Check) (net.Addr, <-chan error, error) {
	return ServeHTTP(ctx, "health", addr, Handler(ready))
}

// ServeHTTP listens on addr and serves h until ctx ends, as Serve does;
// what names the address in a listen error ("health", "metrics").
func ServeHTTP(ctx context.Context, what, addr string, h http.Handler) (net.Addr, <-chan error, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("%s address %q: %w", what, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() {
		err := srv.Serve(lis)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return lis.Addr(), errc, nil
}
