package health

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canaryline/canaryline/internal/runtime/evidence"
)

func caFile(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHTTPCheckTLSAndHeaders probes an https server trusted only through HTTP_CA_FILE, with custom headers.
func TestHTTPCheckTLSAndHeaders(t *testing.T) {
	t.Parallel()
	var withHeader, hostSeen atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Canary") == "1" {
			withHeader.Add(1)
		}
		if r.Host == "shop.example.com" {
			hostSeen.Add(1)
		}
	}))
	defer srv.Close()
	client, err := newHTTPClient(caFile(t, srv), false, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL + "/healthz")
	p := &prober{client: client, urls: []*url.URL{u}, headers: map[string]string{"X-Canary": "1", "Host": "shop.example.com"}, rate: 50}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	p.run(ctx)
	h := &httpCheck{p: p, minSuccess: 0.99, percentile: 95, maxLatency: time.Second}
	m, err := h.Measure(context.Background(), time.Now())
	if err != nil || m.Status != evidence.Pass || withHeader.Load() == 0 || withHeader.Load() != hostSeen.Load() {
		t.Errorf("measurement %+v (%v); requests with the header %d, with the Host %d", m, err, withHeader.Load(), hostSeen.Load())
	}
	// Without the CA, every request fails TLS verification: a failure, measured, not an error.
	plain, _ := newHTTPClient("", false, 2*time.Second)
	p2 := &prober{client: plain, urls: []*url.URL{u}, rate: 50}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	p2.run(ctx2)
	m2, _ := (&httpCheck{p: p2, minSuccess: 0.99, percentile: 95, maxLatency: time.Second}).Measure(context.Background(), time.Now())
	if m2.Status != evidence.Fail || !strings.Contains(m2.Detail, "HTTP_CA_FILE") || !strings.Contains(m2.Detail, "INSECURE_SKIP_TLS_VERIFY") {
		t.Errorf("untrusted certificate: %+v; want a failure naming HTTP_CA_FILE and INSECURE_SKIP_TLS_VERIFY", m2)
	}
	// With verification skipped explicitly, the same server passes.
	insecure, _ := newHTTPClient("", true, 2*time.Second)
	p3 := &prober{client: insecure, urls: []*url.URL{u}, rate: 50}
	ctx3, cancel3 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel3()
	p3.run(ctx3)
	if m, _ := (&httpCheck{p: p3, minSuccess: 0.99, percentile: 95, maxLatency: time.Second}).Measure(context.Background(), time.Now()); m.Status != evidence.Pass {
		t.Errorf("INSECURE_SKIP_TLS_VERIFY: %+v; want a pass", m)
	}
}

// TestPrometheusThanosStyle: an https querier that wants a bearer token (read from a file on every request, so a
// rotated token is used) and is trusted through PROMETHEUS_CA_FILE.
func TestPrometheusThanosStyle(t *testing.T) {
	t.Parallel()
	tokenFile := filepath.Join(t.TempDir(), "token")
	_ = os.WriteFile(tokenFile, []byte("token-1\n"), 0o600)
	var want atomic.Value
	want.Store("token-1")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+want.Load().(string) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.004"]}]}}`)
	}))
	defer srv.Close()
	cfg := &Config{PrometheusURL: srv.URL, PrometheusCAFile: caFile(t, srv), PrometheusTokenFile: tokenFile}
	api, err := newQuerier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, ok, err := queryValue(context.Background(), api, "up", time.Now())
	if err != nil || !ok || v != 0.004 {
		t.Fatalf("query: %v %v %v", v, ok, err)
	}
	_ = os.WriteFile(tokenFile, []byte("token-2"), 0o600)
	want.Store("token-2")
	if _, _, err := queryValue(context.Background(), api, "up", time.Now()); err != nil {
		t.Errorf("after the token rotated: %v", err)
	}
	want.Store("other")
	if _, _, err := queryValue(context.Background(), api, "up", time.Now()); err == nil {
		t.Error("a refused token was not an error")
	}
}
