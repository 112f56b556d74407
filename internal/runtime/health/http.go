package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/canaryline/canaryline/internal/runtime/evidence"
	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// result is one probe request.
type result struct {
	at      time.Time
	ok      bool
	code    int
	latency time.Duration
	err     string
}

// prober sends requests to its URLs, in turn, at a fixed rate until its context ends, and keeps every result.
// Requests in flight are bounded, and each has a timeout.
type prober struct {
	client  *http.Client
	urls    []*url.URL
	headers map[string]string
	rate    float64
	// method and body are the requests' (GET without a body when empty).
	method, body string

	mu      sync.Mutex
	results []result
}

// newHTTPClient is the probes' client: TLS verified against the system roots plus caFile, unless insecure
// (INSECURE_SKIP_TLS_VERIFY) turns verification off.
func newHTTPClient(caFile string, insecure bool, timeout time.Duration) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	} else if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, step.Invalid("HTTP_CA_FILE", "give a readable PEM file (for example a mounted ConfigMap with the service CA)", "%v", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, step.Invalid("HTTP_CA_FILE", "give a PEM-encoded CA certificate", "%s holds no certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

func (p *prober) run(ctx context.Context) {
	every := time.Duration(float64(time.Second) / p.rate)
	t := time.NewTicker(every)
	defer t.Stop()
	inflight := make(chan struct{}, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select {
		case inflight <- struct{}{}:
		default:
			p.record(result{at: time.Now(), err: "skipped: too many requests in flight"})
			continue
		}
		u := p.urls[i%len(p.urls)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inflight }()
			p.record(p.probe(ctx, u))
		}()
	}
}

func (p *prober) probe(ctx context.Context, u *url.URL) result {
	start := time.Now()
	method := p.method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if p.body != "" {
		body = strings.NewReader(p.body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return result{at: start, err: err.Error()}
	}
	for k, v := range p.headers {
		if strings.EqualFold(k, "host") {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return result{} // the analysis ended: not a result
		}
		return result{at: start, latency: time.Since(start), err: step.Redact(tlsHint(err, "HTTP_CA_FILE"))}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return result{at: start, ok: resp.StatusCode < 400, code: resp.StatusCode, latency: time.Since(start)}
}

func (p *prober) record(r result) {
	if r.at.IsZero() {
		return
	}
	p.mu.Lock()
	p.results = append(p.results, r)
	p.mu.Unlock()
}

// since returns the results from index i on, and the next index.
func (p *prober) since(i int) ([]result, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]result(nil), p.results[i:]...), len(p.results)
}

// httpCheck holds each interval's probe results against a success ratio and a latency percentile.
type httpCheck struct {
	p          *prober
	next       int
	minSuccess float64
	percentile float64
	maxLatency time.Duration
}

var _ Check = (*httpCheck)(nil)

func (h *httpCheck) Name() string { return "http" }
func (h *httpCheck) Kind() string { return "http" }
func (h *httpCheck) Query() string {
	var us []string
	for _, u := range h.p.urls {
		us = append(us, step.RedactURL(u))
	}
	return strings.Join(us, " ")
}
func (h *httpCheck) Threshold() string {
	return fmt.Sprintf("success >= %g, p%g <= %s", h.minSuccess, h.percentile, h.maxLatency)
}

func (h *httpCheck) Measure(_ context.Context, now time.Time) (evidence.Measurement, error) {
	m := measurement(h, now)
	m.Query = h.Query()
	rs, next := h.p.since(h.next)
	h.next = next
	if len(rs) == 0 {
		m.Status, m.Detail = evidence.NoData, "no request finished in this interval"
		return m, nil
	}
	ok := 0
	codes := map[string]int{}
	var lat []float64
	lastErr := ""
	for _, r := range rs {
		switch {
		case r.err != "":
			codes["error"]++
			lastErr = r.err
		default:
			codes[fmt.Sprint(r.code)]++
		}
		if r.ok {
			ok++
			lat = append(lat, float64(r.latency))
		}
	}
	ratio := float64(ok) / float64(len(rs))
	pl := time.Duration(percentile(lat, h.percentile))
	m.Value = ratio
	m.Series = map[string]float64{naming.TrackCanary: ratio}
	m.Text = fmt.Sprintf("success %.4f of %d, p%g %s", ratio, len(rs), h.percentile, pl.Round(time.Millisecond))
	m.Detail = "responses " + formatCounts(codes)
	if lastErr != "" {
		m.Detail += "; last error: " + lastErr
	}
	switch {
	case ratio < h.minSuccess:
		m.Status = evidence.Fail
		m.Detail = fmt.Sprintf("success ratio %.4f < %g; %s", ratio, h.minSuccess, m.Detail)
	case ok > 0 && pl > h.maxLatency:
		m.Status = evidence.Fail
		m.Detail = fmt.Sprintf("p%g latency %s > %s; %s", h.percentile, pl.Round(time.Millisecond), h.maxLatency, m.Detail)
	default:
		m.Status = evidence.Pass
	}
	return m, nil
}

// tlsHint is err's message, with what to do when it is a failed certificate verification: trust the server's CA
// with caParam, or turn verification off explicitly.
func tlsHint(err error, caParam string) string {
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &invalid), errors.As(err, &hostname), errors.As(err, &verify):
		return err.Error() + " (TLS verification failed: trust the server's CA with " + caParam + ", or set INSECURE_SKIP_TLS_VERIFY=true to skip verification)"
	}
	return err.Error()
}

// percentile is the nearest-rank percentile of xs (0 for none).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	if rank < 1 {
		rank = 1
	}
	return s[rank-1]
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
