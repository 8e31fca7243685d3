package k8s

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestIsTransient(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	refused := &url.Error{Op: "Get", URL: "https://127.0.0.1:1", Err: fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED)}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"net timeout", &url.Error{Op: "Get", URL: "x", Err: timeoutErr{}}, true},
		{"500", apierrors.NewInternalError(errors.New("boom")), true},
		{"503", apierrors.NewServiceUnavailable("starting"), true},
		{"429", apierrors.NewTooManyRequests("slow down", 1), true},
		{"504 server timeout", apierrors.NewServerTimeout(pods, "get", 1), true},
		{"404", apierrors.NewNotFound(pods, "p"), false},
		{"403", apierrors.NewForbidden(pods, "p", errors.New("rbac")), false},
		{"401", apierrors.NewUnauthorized("bad token"), false},
		{"409", apierrors.NewConflict(pods, "p", errors.New("changed")), false},
		{"422", apierrors.NewBadRequest("bad"), false},
		{"canceled", context.Canceled, false},
		{"nil", nil, false},
	}
	for _, tc := range cases {
		if got := isTransient(tc.err); got != tc.want {
			t.Errorf("%s: isTransient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestRetryAttempts(t *testing.T) {
	c := &Client{opts: Options{Attempts: 3}.withDefaults()}
	pods := schema.GroupResource{Resource: "pods"}
	cases := []struct {
		name          string
		errs          []error // returned by successive attempts, then nil
		retryConflict bool
		wantCalls     int
		wantErr       bool
	}{
		{"success", nil, false, 1, false},
		{"transient then success", []error{apierrors.NewServiceUnavailable("x")}, false, 2, false},
		{"transient exhausts attempts", []error{syscall.ECONNREFUSED, syscall.ECONNREFUSED, syscall.ECONNREFUSED, syscall.ECONNREFUSED}, false, 3, true},
		{"not found is final", []error{apierrors.NewNotFound(pods, "p")}, false, 1, true},
		{"conflict final for reads", []error{apierrors.NewConflict(pods, "p", errors.New("x"))}, false, 1, true},
		{"conflict retried for writes", []error{apierrors.NewConflict(pods, "p", errors.New("x"))}, true, 2, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := c.retry(context.Background(), tc.retryConflict, func(context.Context) error {
				calls++
				if calls <= len(tc.errs) {
					return tc.errs[calls-1]
				}
				return nil
			})
			if calls != tc.wantCalls || (err != nil) != tc.wantErr {
				t.Fatalf("calls=%d err=%v; want calls=%d err=%v", calls, err, tc.wantCalls, tc.wantErr)
			}
		})
	}
}

// TestRetryStopsAtDeadline: no sleep is started that would outlast the
// operation's budget.
func TestRetryStopsAtDeadline(t *testing.T) {
	c := &Client{opts: Options{Attempts: 100}.withDefaults()}
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	calls := 0
	err := c.retry(ctx, false, func(context.Context) error { calls++; return syscall.ECONNREFUSED })
	if err == nil {
		t.Fatal("no error")
	}
	// 100ms + 200ms backoff > 250ms: two attempts, and no third sleep.
	if calls != 2 {
		t.Fatalf("%d attempts within a 250ms budget, want 2", calls)
	}
}
