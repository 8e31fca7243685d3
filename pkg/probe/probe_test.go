package probe

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// /readyz follows the check, with its reason in a 503's body; /healthz
// answers regardless.
func TestServe(t *testing.T) {
	var reason atomic.Pointer[string]
	r := "resource plexus.io/a: not registered with kubelet"
	reason.Store(&r)
	ctx, cancel := context.WithCancel(context.Background())
	addr, errc, err := Serve(ctx, "127.0.0.1:0", func() error {
		if p := reason.Load(); p != nil {
			return errors.New(*p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr.String()
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, r) {
		t.Fatalf("not ready: got %d %q", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("healthz: %d", code)
	}
	reason.Store(nil)
	if code, body := get(t, base+"/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("ready: got %d %q", code, body)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("server end: %v", err)
	}
}

func TestServeBadAddress(t *testing.T) {
	if _, _, err := Serve(context.Background(), "no-such-host-x:99999", func() error { return nil }); err == nil || !strings.Contains(err.Error(), "health address") {
		t.Fatalf("got %v", err)
	}
}
