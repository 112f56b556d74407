package step

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func testTransport(slept *[]time.Duration) *retryTransport {
	rt := RetryTransport(http.DefaultTransport).(*retryTransport)
	rt.backoff.Jitter = 0
	rt.sleep = func(_ context.Context, d time.Duration) error { *slept = append(*slept, d); return nil }
	return rt
}

func TestRetryTransportRetriesTransientAnswersWithTheBody(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if string(body) != `{"spec":{}}` {
			t.Errorf("attempt %d got body %q", calls.Load()+1, body)
		}
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			w.WriteHeader(http.StatusCreated)
		}
	}))
	defer srv.Close()
	var slept []time.Duration
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{"spec":{}}`))
	resp, err := testTransport(&slept).RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusCreated || calls.Load() != 3 {
		t.Fatalf("resp %v err %v after %d calls; want 201 after 3", resp, err, calls.Load())
	}
	// The backoff's first step, then the server's longer Retry-After.
	if len(slept) != 2 || slept[0] != 200*time.Millisecond || slept[1] != 3*time.Second {
		t.Errorf("waited %v; want [200ms 3s]", slept)
	}
}

func TestRetryTransportGivesUpAndLeavesOthersAlone(t *testing.T) {
	for _, tc := range []struct {
		name      string
		code      int
		noRetry   bool
		wantCalls int32
	}{
		{"500 every time: 8 attempts", http.StatusInternalServerError, false, 8},
		{"404 is an answer", http.StatusNotFound, false, 1},
		{"409 is the caller's to handle", http.StatusConflict, false, 1},
		{"without transport retry", http.StatusServiceUnavailable, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.WriteHeader(tc.code)
			}))
			defer srv.Close()
			var slept []time.Duration
			ctx := context.Background()
			if tc.noRetry {
				ctx = WithoutTransportRetry(ctx)
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			resp, err := testTransport(&slept).RoundTrip(req)
			if err != nil || resp.StatusCode != tc.code || calls.Load() != tc.wantCalls {
				t.Errorf("status %v err %v after %d calls; want %d after %d", resp.StatusCode, err, calls.Load(), tc.code, tc.wantCalls)
			}
		})
	}
}

func TestRetryTransportRetriesAResetConnection(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	var slept []time.Duration
	req, _ := http.NewRequest(http.MethodDelete, srv.URL, nil)
	resp, err := testTransport(&slept).RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK || calls.Load() != 2 {
		t.Errorf("resp %v err %v after %d calls", resp, err, calls.Load())
	}
}

func TestIsTransient(t *testing.T) {
	gr := schema.GroupResource{Resource: "deployments"}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{apierrors.NewTooManyRequests("slow down", 1), true},
		{apierrors.NewInternalError(errors.New("boom")), true},
		{apierrors.NewServiceUnavailable("later"), true},
		{apierrors.NewServerTimeout(gr, "create", 1), true},
		{io.ErrUnexpectedEOF, true},
		{apierrors.NewConflict(gr, "shop", errors.New("modified")), false},
		{apierrors.NewNotFound(gr, "shop"), false},
		{apierrors.NewForbidden(gr, "shop", errors.New("no")), false},
		{context.Canceled, false},
		{nil, false},
	} {
		if got := IsTransient(tc.err); got != tc.want {
			t.Errorf("IsTransient(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
}
