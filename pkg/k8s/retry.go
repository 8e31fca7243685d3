package k8s

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Backoff between attempts: firstBackoff, doubling, at most maxBackoff.
const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = time.Second
)

// retry runs op until it succeeds, fails with an error that is not
// transient, has been tried opts.Attempts times, or ctx ends. retryConflict
// also treats 409 Conflict as transient (writes racing another writer).
func (c *Client) retry(ctx context.Context, retryConflict bool, op func(context.Context) error) error {
	delay := firstBackoff
	var err error
	for attempt := 1; ; attempt++ {
		err = op(ctx)
		if err == nil {
			return nil
		}
		if attempt >= c.opts.Attempts || !(isTransient(err) || retryConflict && apierrors.IsConflict(err)) {
			return err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
			return err
		}
		if !sleep(ctx, delay) {
			return err
		}
		delay = min(2*delay, maxBackoff)
	}
}

// isTransient tells errors worth another try: the server unreachable or
// overloaded, or a request that timed out. 4xx answers (NotFound,
// Forbidden, Invalid, ...) are final.
func isTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		code := status.Status().Code
		return code == 429 || code >= 500 ||
			apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err)
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var nerr net.Error
	return errors.As(err, &nerr) && nerr.Timeout()
}

// sleep waits d or until ctx ends; it reports whether the full d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
