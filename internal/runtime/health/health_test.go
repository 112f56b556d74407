package health

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/canaryline/canaryline/internal/runtime/evidence"
	"github.com/canaryline/canaryline/internal/runtime/stats"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// scripted is a check that returns a scripted status per measurement ("pass", "fail", "error", "nodata", "fatal").
type scripted struct {
	name  string
	steps []string
	i     int
}

func (s *scripted) Name() string      { return s.name }
func (s *scripted) Kind() string      { return "test" }
func (s *scripted) Query() string     { return "q" }
func (s *scripted) Threshold() string { return "< 1" }
func (s *scripted) Fatal(m evidence.Measurement) bool {
	return m.Detail == "fatal"
}
func (s *scripted) Measure(_ context.Context, now time.Time) (evidence.Measurement, error) {
	st := s.steps[min(s.i, len(s.steps)-1)]
	s.i++
	m := evidence.Measurement{Time: now, Check: s.name, Threshold: "< 1", Text: st}
	switch st {
	case "error":
		return m, errors.New("prometheus unreachable")
	case "fatal":
		m.Status, m.Detail = evidence.Fail, "fatal"
	default:
		m.Status = st
	}
	return m, nil
}

func runAnalysis(t *testing.T, cfg Config, checks ...Check) *evidence.Evidence {
	t.Helper()
	cfg.Interval = time.Millisecond
	if cfg.count == 0 {
		cfg.count = 10
	}
	if cfg.NoData == "" {
		cfg.NoData = "inconclusive"
	}
	if cfg.ConsecutiveErrorLimit == 0 {
		cfg.ConsecutiveErrorLimit = 4
	}
	a := &analysis{cfg: &cfg, checks: checks, log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	return a.run(context.Background())
}

func rep(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestAnalysisRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		cfg          Config
		steps        []string
		wantVerdict  string
		wantMeasured int
		wantReason   string
	}{
		{"all pass", Config{}, []string{"pass"}, evidence.Healthy, 10, "c passed 10 of 10"},
		{"one failure with limit 0 stops at once", Config{}, []string{"pass", "fail"}, evidence.Unhealthy, 2, "1 failures > FAILURE_LIMIT 0"},
		{"failures within the limit", Config{FailureLimit: 2}, []string{"fail", "pass", "fail", "pass"}, evidence.Healthy, 10, ""},
		{"failures past the limit", Config{FailureLimit: 2}, []string{"fail", "pass", "fail", "pass", "fail"}, evidence.Unhealthy, 5, "3 failures > FAILURE_LIMIT 2"},
		{"consecutive failures", Config{FailureLimit: 10, ConsecutiveFailureLimit: 2}, []string{"fail", "pass", "fail", "fail", "fail"}, evidence.Unhealthy, 5, "3 failures in a row"},
		{"errors are never failures", Config{}, []string{"error", "error", "error", "pass"}, evidence.Healthy, 10, ""},
		{"too many errors in a row", Config{ConsecutiveErrorLimit: 3}, rep("error", 10), evidence.Inconclusive, 4, "could not be evaluated 4 times in a row"},
		{"no data is inconclusive", Config{}, rep("nodata", 10), evidence.Inconclusive, 10, "no data in 10 measurements"},
		{"no data counted as failure", Config{NoData: "fail"}, rep("nodata", 10), evidence.Unhealthy, 1, "NO_DATA=fail"},
		{"no data counted as pass", Config{NoData: "pass"}, rep("nodata", 10), evidence.Healthy, 10, ""},
		{"some data is enough", Config{}, []string{"nodata", "nodata", "pass"}, evidence.Healthy, 10, ""},
		{"a fatal failure ignores the limit", Config{FailureLimit: 5}, []string{"pass", "fatal"}, evidence.Unhealthy, 2, "fatal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := runAnalysis(t, tc.cfg, &scripted{name: "c", steps: tc.steps})
			if ev.Verdict != tc.wantVerdict || len(ev.Measurements) != tc.wantMeasured || !strings.Contains(ev.Reason, tc.wantReason) {
				t.Errorf("verdict %s after %d measurements, reason %q; want %s after %d, reason containing %q",
					ev.Verdict, len(ev.Measurements), ev.Reason, tc.wantVerdict, tc.wantMeasured, tc.wantReason)
			}
			if ev.Checks[0].Failures+ev.Checks[0].Errors+ev.Checks[0].NoData > len(ev.Measurements) {
				t.Errorf("check counts %+v exceed the measurements", ev.Checks[0])
			}
		})
	}
}

// fakeSampler gives one sample per side per interval from two distributions.
type fakeSampler struct {
	r                *rand.Rand
	canary, baseline float64
}

func (f *fakeSampler) sample(context.Context, time.Time) ([]float64, []float64, string, error) {
	noise := func(m float64) float64 { return m * (1 + 0.2*f.r.NormFloat64()) }
	return []float64{noise(f.canary)}, []float64{noise(f.baseline)}, "q", nil
}

func TestComparisonDecidesAtTheEndOrWhenCertain(t *testing.T) {
	t.Parallel()
	opts := stats.Options{Confidence: 0.98, Tolerance: 0.1, MinSamples: 10}
	for _, tc := range []struct {
		name             string
		canary, baseline float64
		count            int
		want             string
		early            bool
	}{
		{"same", 0.01, 0.01, 20, evidence.Healthy, false},
		{"much worse: stops early", 0.05, 0.01, 40, evidence.Unhealthy, true},
		{"too few samples", 0.01, 0.01, 5, evidence.Inconclusive, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &compareCheck{name: "error-ratio", against: "baseline", dir: stats.Increase, opts: opts,
				src: &fakeSampler{r: rand.New(rand.NewPCG(1, 2)), canary: tc.canary, baseline: tc.baseline}, unit: func(v float64) string { return "x" }}
			ev := runAnalysis(t, Config{count: tc.count}, c)
			if ev.Verdict != tc.want {
				t.Fatalf("verdict %s (%s); want %s", ev.Verdict, ev.Reason, tc.want)
			}
			if stopped := len(ev.Measurements) < tc.count; stopped != tc.early {
				t.Errorf("%d measurements of %d: early stop %v, want %v", len(ev.Measurements), tc.count, stopped, tc.early)
			}
			for _, m := range ev.Measurements[:len(ev.Measurements)-1] {
				if m.Status == evidence.Fail && !tc.early {
					t.Errorf("an interim measurement failed: %+v", m)
				}
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	ok := map[string]string{"APP": "shop"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"APP": "shop"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	q := "- name: errors\n  query: 'sum(rate(x{track=\"{{.CanaryTrack}}\"}[1m]))'\n  threshold: '< 0.01'\n"
	cmp := "- name: errors\n  query: 'sum(rate(x{track=\"{{.Track}}\"}[1m]))'\n"
	for _, tc := range []struct {
		name  string
		env   map[string]string
		param string
	}{
		{"pods only", ok, ""},
		{"everything", with("HTTP_URLS", "http://shop-canary:8080/\nhttps://shop-canary:8443/", "HTTP_HEADERS", "Host: shop.example.com\nX-Canary: 1",
			"PROMETHEUS_URL", "https://thanos:9091", "QUERIES", q, "COMPARE", cmp, "HTTP_BASELINE_URL", "http://shop-baseline:8080/", "DURATION", "5m"), ""},
		{"no app", map[string]string{}, "APP"},
		{"on Tekton", with("TASKRUN_NAME", "shop-run-x7k2p-verify-1", "RELEASE_ID", "shop-run-x7k2p"), ""},
		{"taskrun name not substituted", with("TASKRUN_NAME", "$(context.taskRun.name)"), "TASKRUN_NAME"},
		{"no check", with("PODS", "false"), "PODS"},
		{"zero interval", with("INTERVAL", "0s"), "INTERVAL"},
		{"count and duration", with("COUNT", "5", "DURATION", "1m"), "DURATION"},
		{"duration shorter than interval", with("DURATION", "10s"), "DURATION"},
		{"negative failure limit", with("FAILURE_LIMIT", "-1"), "FAILURE_LIMIT"},
		{"unknown no-data policy", with("NO_DATA", "ignore"), "NO_DATA"},
		{"confidence 1", with("CONFIDENCE", "1"), "CONFIDENCE"},
		{"negative tolerance", with("TOLERANCE", "-0.1"), "TOLERANCE"},
		{"min samples 1", with("MIN_SAMPLES", "1"), "MIN_SAMPLES"},
		{"relative url", with("HTTP_URLS", "/healthz"), "HTTP_URLS"},
		{"ftp url", with("HTTP_URLS", "ftp://x/"), "HTTP_URLS"},
		{"bad header", with("HTTP_URLS", "http://x/", "HTTP_HEADERS", "NoColon"), "HTTP_HEADERS"},
		{"rate 0", with("HTTP_URLS", "http://x/", "HTTP_RATE", "0"), "HTTP_RATE"},
		{"success over 1", with("HTTP_URLS", "http://x/", "HTTP_MIN_SUCCESS", "2"), "HTTP_MIN_SUCCESS"},
		{"baseline url alone", with("HTTP_BASELINE_URL", "http://x/"), "HTTP_BASELINE_URL"},
		{"queries not yaml", with("PROMETHEUS_URL", "http://p:9090", "QUERIES", "errors: [unclosed"), "QUERIES"},
		{"query without threshold", with("PROMETHEUS_URL", "http://p:9090", "QUERIES", "- name: a\n  query: up\n"), "QUERIES"},
		{"threshold not a number", with("PROMETHEUS_URL", "http://p:9090", "QUERIES", "- name: a\n  query: up\n  threshold: '< low'\n"), "QUERIES"},
		{"malformed promql", with("PROMETHEUS_URL", "http://p:9090", "QUERIES", "- name: a\n  query: 'sum(rate(x[1m])'\n  threshold: '< 1'\n"), "QUERIES"},
		{"unknown placeholder", with("PROMETHEUS_URL", "http://p:9090", "QUERIES", "- name: a\n  query: 'up{x=\"{{.Cluster}}\"}'\n  threshold: '< 1'\n"), "QUERIES"},
		{"queries without prometheus", with("QUERIES", q), "PROMETHEUS_URL"},
		{"prometheus without queries", with("PROMETHEUS_URL", "http://p:9090"), "QUERIES"},
		{"comparison without track", with("PROMETHEUS_URL", "http://p:9090", "COMPARE", "- name: a\n  query: up\n"), "COMPARE"},
		{"comparison direction", with("PROMETHEUS_URL", "http://p:9090", "COMPARE", strings.TrimSuffix(cmp, "\n")+"\n  direction: up\n"), "COMPARE"},
		{"compare against what", with("COMPARE_AGAINST", "prod"), "COMPARE_AGAINST"},
		{"zero http timeout", with("HTTP_URLS", "http://x/", "HTTP_TIMEOUT", "0s"), "param HTTP_TIMEOUT"},
		{"zero max latency", with("HTTP_URLS", "http://x/", "HTTP_MAX_LATENCY", "-1ms"), "param HTTP_MAX_LATENCY"},
		{"insecure", with("HTTP_URLS", "https://x/", "INSECURE_SKIP_TLS_VERIFY", "true"), ""},
		{"insecure with a CA file", with("HTTP_URLS", "https://x/", "INSECURE_SKIP_TLS_VERIFY", "true", "HTTP_CA_FILE", "/ca.crt"), "INSECURE_SKIP_TLS_VERIFY"},
		{"insecure not a bool", with("INSECURE_SKIP_TLS_VERIFY", "yes"), "INSECURE_SKIP_TLS_VERIFY"},
		{"webhooks and jobs only", with("PODS", "false", "WEBHOOKS", "- {name: smoke, url: 'http://tests:8080/run', timeout: 3s, successField: status.ok}\n- {name: gate, url: 'https://gate/x', successField: '{.results[0].state}', successValue: passed}",
			"JOBS", "- {name: e2e, configMap: e2e-job}\n- {name: load, configMap: load-job, key: job.yml, timeout: 20m}"), ""},
		{"webhooks not yaml", with("WEBHOOKS", "- {name: a"), "WEBHOOKS"},
		{"webhook relative url", with("WEBHOOKS", "- {name: a, url: /run}"), "WEBHOOKS"},
		{"webhook ftp url", with("WEBHOOKS", "- {name: a, url: 'ftp://x/'}"), "WEBHOOKS"},
		{"webhook without name", with("WEBHOOKS", "- {url: 'http://x/'}"), "WEBHOOKS"},
		{"webhook timeout", with("WEBHOOKS", "- {name: a, url: 'http://x/', timeout: 0s}"), "WEBHOOKS"},
		{"webhook value without field", with("WEBHOOKS", "- {name: a, url: 'http://x/', successValue: ok}"), "WEBHOOKS"},
		{"webhook bad jsonpath", with("WEBHOOKS", "- {name: a, url: 'http://x/', successField: '{.a[}'}"), "WEBHOOKS"},
		{"webhook unknown key", with("WEBHOOKS", "- {name: a, url: 'http://x/', method: GET}"), "WEBHOOKS"},
		{"webhook headers file missing", with("WEBHOOKS", "- {name: a, url: 'http://x/', headersFile: /no/such/file}"), "WEBHOOKS"},
		{"two checks of one name", with("WEBHOOKS", "- {name: a, url: 'http://x/'}", "JOBS", "- {name: a, configMap: c}"), "JOBS"},
		{"webhook named pods", with("WEBHOOKS", "- {name: pods, url: 'http://x/'}"), "WEBHOOKS"},
		{"jobs not a list", with("JOBS", "e2e"), "JOBS"},
		{"job without configmap", with("JOBS", "- {name: e2e}"), "JOBS"},
		{"job timeout", with("JOBS", "- {name: e2e, configMap: c, timeout: soon}"), "JOBS"},
		{"load generation", with("HTTP_URLS", "http://{{.CanaryService}}.{{.Namespace}}.svc:8080/orders", "HTTP_METHOD", "POST", "HTTP_BODY", `{"item": 1}`), ""},
		{"url placeholder unknown", with("HTTP_URLS", "http://{{.Canary}}:8080/"), "HTTP_URLS"},
		{"method lower case", with("HTTP_URLS", "http://x/", "HTTP_METHOD", "post"), "HTTP_METHOD"},
		{"method without urls", with("HTTP_METHOD", "POST"), "HTTP_METHOD"},
		{"body with GET", with("HTTP_URLS", "http://x/", "HTTP_BODY", "{}"), "HTTP_BODY"},
		{"body too long", with("HTTP_URLS", "http://x/", "HTTP_METHOD", "PUT", "HTTP_BODY", strings.Repeat("x", 65<<10)), "HTTP_BODY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := step.Load(context.Background(), func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }, &Config{})
			if tc.param == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || step.ExitCode(err) != step.ExitInvalid || !strings.Contains(err.Error(), tc.param) {
				t.Errorf("error %v (exit %d); want exit 2 naming %s", err, step.ExitCode(err), tc.param)
			}
		})
	}
}

// TestConfigNeverPrintsCredentials: the credentials in HTTP_HEADERS and in URLs are registered for redaction as the
// config is read, and an invalid header line is not quoted back.
func TestConfigNeverPrintsCredentials(t *testing.T) {
	t.Parallel()
	env := map[string]string{"APP": "shop", "HTTP_URLS": "https://probe:pw-4e5f6a7b@shop:8443/healthz?access_token=at-8c9d0e1f",
		"HTTP_HEADERS": "Authorization: Bearer bt-0a1b2c3d\nX-Webhook-Secret: ws-1a2b3c4d\nX-Canary: cv-5e6f7a8b"}
	cfg := &Config{}
	if err := step.Load(context.Background(), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, cfg); err != nil {
		t.Fatal(err)
	}
	shown := step.Redact(strings.Join([]string{env["HTTP_URLS"], env["HTTP_HEADERS"]}, "\n")) + (&httpCheck{p: &prober{urls: cfg.urls}}).Query()
	for _, secret := range []string{"pw-4e5f6a7b", "at-8c9d0e1f", "bt-0a1b2c3d", "ws-1a2b3c4d"} {
		if strings.Contains(shown, secret) {
			t.Errorf("%q is printed: %s", secret, shown)
		}
	}
	if !strings.Contains(shown, "cv-5e6f7a8b") {
		t.Errorf("a header that is no credential was redacted: %s", shown)
	}
	bad := map[string]string{"APP": "shop", "HTTP_URLS": "http://x/", "HTTP_HEADERS": "Authorization Bearer bt-9f8e7d6c"}
	err := step.Load(context.Background(), func(k string) (string, bool) { v, ok := bad[k]; return v, ok }, &Config{})
	if err == nil || strings.Contains(err.Error(), "bt-9f8e7d6c") || !strings.Contains(err.Error(), "param HTTP_HEADERS") {
		t.Errorf("bad header line: %v", err)
	}
}

func TestCheckPromQL(t *testing.T) {
	t.Parallel()
	for q, ok := range map[string]bool{
		`sum(rate(http_requests_total{code=~"5..|4.."}[1m]))`: true,
		`up{job="a}b"}`: true,
		`histogram_quantile(0.95, sum by (le) (rate(x_bucket{track="{{.Track}}"}[5m])))`: true,
		`sum(rate(x[1m])`: false,
		`up{job="a"`:      false,
		`up{job="a}`:      false,
		`rate(x[1m)]`:     false,
		`   `:             false,
		`up{{.Namespace}`: false,
	} {
		if err := checkPromQL(q); (err == nil) != ok {
			t.Errorf("checkPromQL(%q) = %v; want ok %v", q, err, ok)
		}
	}
}

func TestRenderPlaceholders(t *testing.T) {
	t.Parallel()
	tm, err := parseTemplate("q", `x{ns="{{.Namespace}}",track="{{ .Track }}",pod=~"{{.Pods}}"}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := render(tm, Tracks{Namespace: "team", Track: "canary", Pods: "shop-canary-abc-.*"})
	if got != `x{ns="team",track="canary",pod=~"shop-canary-abc-.*"}` {
		t.Errorf("render = %s", got)
	}
	if _, err := parseTemplate("q", `x{a="{{.Nope}}"}`); err == nil || !strings.Contains(err.Error(), "{{.Track}}") {
		t.Errorf("unknown placeholder: %v; want an error listing the known ones", err)
	}
}

func TestThresholds(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{"< 0.01": true, "<=300": true, ">= 0.99": true, "> 5": true, "0.01": false, "<": false, "== 1": false} {
		if _, _, err := parseThreshold(s); (err == nil) != want {
			t.Errorf("parseThreshold(%q): %v", s, err)
		}
	}
	if !holds("<", 0.005, 0.01) || holds("<", 0.01, 0.01) || !holds("<=", 0.01, 0.01) || !holds(">=", 0.99, 0.99) || holds(">", 1, 1) {
		t.Error("holds")
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	xs := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for p, want := range map[float64]float64{50: 5, 90: 9, 95: 10, 100: 10, 1: 1} {
		if got := percentile(xs, p); got != want {
			t.Errorf("p%v = %v; want %v", p, got, want)
		}
	}
	if percentile(nil, 95) != 0 {
		t.Error("empty")
	}
}
