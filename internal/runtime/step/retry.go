package step

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
)

// APIBackoff is how a request to the Kubernetes API that failed for a passing reason is retried: 8 attempts over
// about 15 s (0.2 s doubling to at most 5 s, with jitter). A Retry-After the server sends is honoured when longer.
var APIBackoff = wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 8, Cap: 5 * time.Second}

// noRetryKey marks a request context whose requests must not be repeated by the transport.
type noRetryKey struct{}

// WithoutTransportRetry returns a context whose API requests the transport sends once: for a call that is not
// idempotent (starting a build), whose caller checks, before trying again, whether the first attempt took effect.
func WithoutTransportRetry(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRetryKey{}, true)
}

// retryTransport sends an API request again when it failed for a passing reason: a connection refused or reset or
// cut short, 429 Too Many Requests, 500, 502, 503 or 504. Writes stay safe to repeat because the steps write
// conflict-safely: a create that took effect before its answer was lost comes back AlreadyExists, an update
// Conflict (it carries the resourceVersion it read), a delete NotFound, and the callers converge on those.
// Watches and log streams are retried only until they start; once a stream is cut, the caller lists and watches
// again (client-go's reflector, or the log follower).
type retryTransport struct {
	next    http.RoundTripper
	backoff wait.Backoff
	log     func() *slog.Logger
	sleep   func(context.Context, time.Duration) error
}

// RetryTransport wraps rt with retryTransport; it fits rest.Config.WrapTransport.
func RetryTransport(rt http.RoundTripper) http.RoundTripper {
	return &retryTransport{next: rt, backoff: APIBackoff, log: slog.Default, sleep: sleepCtx}
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Context().Value(noRetryKey{}) != nil {
		return t.next.RoundTrip(req)
	}
	backoff := t.backoff
	for attempt := 1; ; attempt++ {
		resp, err := t.next.RoundTrip(req)
		reason, after := transient(resp, err)
		if reason == "" || attempt >= t.backoff.Steps || req.Context().Err() != nil {
			return resp, err
		}
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return resp, err // the body cannot be sent again
			}
			body, berr := req.GetBody()
			if berr != nil {
				return resp, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		delay := backoff.Step()
		if after > delay {
			delay = after
		}
		t.log().Warn("Kubernetes API request failed, retrying", "method", req.Method, "path", req.URL.Path,
			"reason", reason, "attempt", attempt, "of", t.backoff.Steps, "in", delay.Round(time.Millisecond))
		if err := t.sleep(req.Context(), delay); err != nil {
			return nil, err
		}
	}
}

// transient says why a request may succeed when sent again ("" when it would not), and the Retry-After asked.
func transient(resp *http.Response, err error) (string, time.Duration) {
	if err != nil {
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return "", 0
		case utilnet.IsConnectionReset(err), errors.Is(err, syscall.ECONNRESET):
			return "connection reset", 0
		case utilnet.IsConnectionRefused(err):
			return "connection refused", 0
		case utilnet.IsProbableEOF(err), errors.Is(err, io.ErrUnexpectedEOF):
			return "connection closed", 0
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "timeout", 0
		}
		return "", 0
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable,
		http.StatusGatewayTimeout:
		var after time.Duration
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			after = min(time.Duration(s)*time.Second, 30*time.Second)
		}
		return resp.Status, after
	}
	return "", 0
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// IsTransient says whether an API call's error is one that may pass when the call is made again: the server
// overloaded or failing (429, 500, 503, 504, a server timeout) or the connection lost.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if apierrors.IsTooManyRequests(err) || apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) ||
		apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsUnexpectedServerError(err) {
		return true
	}
	if status, ok := err.(apierrors.APIStatus); ok {
		switch status.Status().Code {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
	}
	reason, _ := transient(nil, err)
	return reason != ""
}
