package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/canaryline/canaryline/internal/runtime/evidence"
	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// querier is the one method the checks need from the Prometheus API.
type querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error)
}

// serviceAccountToken is where a pod's ServiceAccount token is mounted; OpenShift's Thanos querier accepts it.
const serviceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// newQuerier is a Prometheus API client for plain Prometheus or OpenShift's Thanos querier (a bearer token read
// from a file on every request, so a rotated token is picked up; a CA bundle).
func newQuerier(cfg *Config) (querier, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.InsecureSkipTLSVerify {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	} else if cfg.PrometheusCAFile != "" {
		pem, err := os.ReadFile(cfg.PrometheusCAFile)
		if err != nil {
			return nil, step.Invalid("PROMETHEUS_CA_FILE", "give a readable PEM file, e.g. the service CA", "%v", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, step.Invalid("PROMETHEUS_CA_FILE", "give a PEM-encoded CA certificate", "%s holds no certificate", cfg.PrometheusCAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	var rt http.RoundTripper = tr
	tokenFile := cfg.PrometheusTokenFile
	if tokenFile == "" && strings.HasPrefix(cfg.PrometheusURL, "https://") {
		if _, err := os.Stat(serviceAccountToken); err == nil {
			tokenFile = serviceAccountToken
		}
	}
	if tokenFile != "" {
		tok, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, step.Invalid("PROMETHEUS_TOKEN_FILE", "give a readable token file, or leave it empty", "%v", err)
		}
		step.AddSecret(string(tok))
		rt = &bearerFile{file: tokenFile, next: tr}
	}
	c, err := promapi.NewClient(promapi.Config{Address: cfg.PrometheusURL, RoundTripper: rt})
	if err != nil {
		return nil, step.Invalid("PROMETHEUS_URL", "give the Prometheus URL", "%v", err)
	}
	return promv1.NewAPI(c), nil
}

type bearerFile struct {
	file string
	next http.RoundTripper
}

func (b *bearerFile) RoundTrip(r *http.Request) (*http.Response, error) {
	tok, err := os.ReadFile(b.file)
	if err != nil {
		return nil, fmt.Errorf("read the bearer token %s: %w", b.file, err)
	}
	step.AddSecret(string(tok)) // a rotated token is a new secret
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	return b.next.RoundTrip(r)
}

// queryValue evaluates q at ts. It must give one number: an empty result or NaN (no traffic: 0/0) is no data;
// several series are an error (aggregate them). ±Inf (a ratio over zero) is a value, held against the threshold
// like any other.
func queryValue(ctx context.Context, api querier, q string, ts time.Time) (float64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, _, _, err := api.Query(ctx, q, ts)
	if err != nil {
		return 0, false, fmt.Errorf("query Prometheus: %s", step.Redact(tlsHint(err, "PROMETHEUS_CA_FILE")))
	}
	var x float64
	switch val := v.(type) {
	case model.Vector:
		switch len(val) {
		case 0:
			return 0, false, nil
		case 1:
			x = float64(val[0].Value)
		default:
			return 0, false, fmt.Errorf("the query returns %d series; aggregate it to one number (sum, avg, max)", len(val))
		}
	case *model.Scalar:
		x = float64(val.Value)
	default:
		return 0, false, fmt.Errorf("the query returns a %s; it must return one number", v.Type())
	}
	if math.IsNaN(x) {
		return 0, false, nil
	}
	return x, true, nil
}

// promCheck holds a PromQL query's value against a threshold.
type promCheck struct {
	api    querier
	q      Query
	tracks Tracks
}

var _ Check = (*promCheck)(nil)

func (p *promCheck) Name() string      { return p.q.Name }
func (p *promCheck) Kind() string      { return "prometheus" }
func (p *promCheck) Query() string     { s, _ := render(p.q.tmpl, p.tracks); return s }
func (p *promCheck) Threshold() string { return p.q.Threshold }

func (p *promCheck) Measure(ctx context.Context, now time.Time) (evidence.Measurement, error) {
	m := measurement(p, now)
	q, err := render(p.q.tmpl, p.tracks)
	if err != nil {
		return m, err
	}
	m.Query = q
	v, ok, err := queryValue(ctx, p.api, q, now)
	if err != nil {
		return m, err
	}
	if !ok {
		m.Status, m.Detail = evidence.NoData, "the query returned no number (no series, or 0/0: no traffic)"
		return m, nil
	}
	m.Value, m.Text, m.Series = v, fmt.Sprintf("%.6g", v), map[string]float64{naming.TrackCanary: v}
	if holds(p.q.op, v, p.q.limit) {
		m.Status = evidence.Pass
	} else {
		m.Status = evidence.Fail
		m.Detail = fmt.Sprintf("%.6g is not %s %g", v, p.q.op, p.q.limit)
	}
	return m, nil
}
