package health

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/canaryline/canaryline/internal/runtime/evidence"
	"github.com/canaryline/canaryline/internal/runtime/kubeclient/kubeclienttest"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// valueQuerier answers every query with v: one sample of a vector, or a scalar (what 1/0 gives).
type valueQuerier struct {
	v      float64
	scalar bool
}

func (q valueQuerier) Query(_ context.Context, _ string, ts time.Time, _ ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	at := model.TimeFromUnixNano(ts.UnixNano())
	if q.scalar {
		return &model.Scalar{Value: model.SampleValue(q.v), Timestamp: at}, nil, nil, nil
	}
	return model.Vector{&model.Sample{Value: model.SampleValue(q.v), Timestamp: at}}, nil, nil, nil
}

func load(env map[string]string) (*Config, error) {
	cfg := &Config{}
	return cfg, step.Load(context.Background(), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, cfg)
}

// verify loads env (over APP exp, INTERVAL 1ms and COUNT 3; a value "-" unsets one) and runs verify-health
// in-process on a fake API server holding a release of exp, with d (Kube filled in). It returns the verdict, the
// log and the error.
func verify(t *testing.T, env map[string]string, d Deps) (Verdict, string, error) {
	t.Helper()
	all := map[string]string{"APP": "exp", "INTERVAL": "1ms", "COUNT": "3"}
	for k, v := range env {
		all[k] = v
		if v == "-" {
			delete(all, k)
		}
	}
	cfg, err := load(all)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if d.Kube == nil {
		d.Kube = kubeclienttest.Wrap(kubefake.NewSimpleClientset(releaseObjects(false)...))
	}
	var log bytes.Buffer
	v, err := Verify(context.Background(), cfg, "team", d, &bytes.Buffer{}, slog.New(slog.NewTextHandler(&log, nil)))
	return v, log.String(), err
}

const errorRate = "- {name: error-rate, query: 'sum(rate(errors{track=\"{{.CanaryTrack}}\"}[1m])) / sum(rate(requests{track=\"{{.CanaryTrack}}\"}[1m]))', threshold: '< 0.05'}\n"

// TestInfiniteValuesAreMeasurements: a query answering ±Inf (a ratio over zero) is a value held against the
// threshold, whatever NO_DATA says; only NaN (0/0, no traffic) is no data. The evidence keeps the value.
func TestInfiniteValuesAreMeasurements(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		q          valueQuerier
		noData     string
		verdict    string
		code       int
		reason     []string
		recordedAs string
	}{
		{"+Inf fails < 0.05 with NO_DATA=pass", valueQuerier{v: math.Inf(1)}, "pass", evidence.Unhealthy, step.ExitFailed,
			[]string{"error-rate: +Inf", "threshold < 0.05", "+Inf is not < 0.05"}, `"value": "+Inf"`},
		{"+Inf as a scalar (1/0)", valueQuerier{v: math.Inf(1), scalar: true}, "pass", evidence.Unhealthy, step.ExitFailed,
			[]string{"error-rate: +Inf"}, `"value": "+Inf"`},
		{"-Inf passes < 0.05 with NO_DATA=fail", valueQuerier{v: math.Inf(-1)}, "fail", evidence.Healthy, step.ExitOK,
			[]string{"error-rate passed 3 of 3"}, `"value": "-Inf"`},
		{"NaN is no data: NO_DATA=pass", valueQuerier{v: math.NaN()}, "pass", evidence.Healthy, step.ExitOK,
			[]string{"error-rate passed 0 of 3, 3 without data (counted as passes: NO_DATA=pass)"}, `"status": "nodata"`},
		{"NaN is no data: NO_DATA=inconclusive", valueQuerier{v: math.NaN()}, "inconclusive", evidence.Inconclusive, step.ExitInconclusive,
			[]string{"no data in 3 measurements"}, `"status": "nodata"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "evidence")
			v, _, err := verify(t, map[string]string{"PODS": "false", "PROMETHEUS_URL": "http://p:9090", "QUERIES": errorRate,
				"NO_DATA": tc.noData, "EVIDENCE_DIR": dir}, Deps{Prom: tc.q})
			if v.Verdict != tc.verdict || step.ExitCode(err) != tc.code {
				t.Fatalf("verdict %q, exit %d (%v); want %s, exit %d", v.Verdict, step.ExitCode(err), err, tc.verdict, tc.code)
			}
			for _, want := range tc.reason {
				if !strings.Contains(v.Reason, want) {
					t.Errorf("REASON %q lacks %q", v.Reason, want)
				}
			}
			data, err := os.ReadFile(filepath.Join(dir, evidence.JSONFile))
			if err != nil {
				t.Fatalf("the evidence is lost: %v", err)
			}
			if !strings.Contains(string(data), tc.recordedAs) {
				t.Errorf("evidence.json lacks %s:\n%s", tc.recordedAs, data)
			}
			ev, err := evidence.Read(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if m := ev.Measurements[0]; math.IsInf(tc.q.v, 0) && m.Value != tc.q.v {
				t.Errorf("evidence.json reads back %v, measured %v", m.Value, tc.q.v)
			}
			if math.IsInf(tc.q.v, 1) {
				for _, f := range []string{evidence.MarkdownFile, evidence.SVGFile} {
					if b, _ := os.ReadFile(filepath.Join(dir, f)); !strings.Contains(string(b), "+Inf") {
						t.Errorf("%s does not show +Inf:\n%s", f, b)
					}
				}
			}
		})
	}
}

// TestNonFiniteParamsAreRefused: NaN compares false with everything, so it passed every range check, and
// '< NaN' failed every release. NaN and ±Inf are bad input (exit 2) naming the param.
func TestNonFiniteParamsAreRefused(t *testing.T) {
	t.Parallel()
	query := func(threshold string) string {
		return "- {name: q, query: 'up', threshold: '" + threshold + "'}\n"
	}
	cmp := func(tolerance string) string {
		return "- {name: c, query: 'x{track=\"{{.Track}}\"}', tolerance: " + tolerance + "}\n"
	}
	prom := map[string]string{"PROMETHEUS_URL": "http://p:9090"}
	http := map[string]string{"HTTP_URLS": "http://127.0.0.1:1/"}
	for _, tc := range []struct {
		name  string
		base  map[string]string
		param string
		value string
		fix   string
	}{
		{"threshold < NaN", prom, "QUERIES", query("< NaN"), `threshold such as "< 0.01"`},
		{"threshold > -Inf", prom, "QUERIES", query("> -Inf"), `threshold such as "< 0.01"`},
		{"threshold <= +Inf", prom, "QUERIES", query("<= +Inf"), `threshold such as "< 0.01"`},
		{"COMPARE tolerance .nan", prom, "COMPARE", cmp(".nan"), "finite number"},
		{"COMPARE tolerance .inf", prom, "COMPARE", cmp(".inf"), "finite number"},
		{"CONFIDENCE NaN", nil, "CONFIDENCE", "NaN", "between 0.5 and 1"},
		{"TOLERANCE NaN", nil, "TOLERANCE", "NaN", "0 or more"},
		{"TOLERANCE +Inf", nil, "TOLERANCE", "+Inf", "0 or more"},
		{"HTTP_RATE NaN", http, "HTTP_RATE", "NaN", "between 0 and 1000"},
		{"HTTP_MIN_SUCCESS NaN", http, "HTTP_MIN_SUCCESS", "NaN", "between 0 and 1"},
		{"HTTP_LATENCY_PERCENTILE NaN", http, "HTTP_LATENCY_PERCENTILE", "nan", "between 0 and 100"},
		{"HTTP_LATENCY_PERCENTILE -Inf", http, "HTTP_LATENCY_PERCENTILE", "-Inf", "between 0 and 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"APP": "exp", tc.param: tc.value}
			for k, v := range tc.base {
				env[k] = v
			}
			_, err := load(env)
			if step.ExitCode(err) != step.ExitInvalid || !strings.Contains(err.Error(), "param "+tc.param+":") ||
				!strings.Contains(err.Error(), tc.fix) || !strings.Contains(err.Error(), "finite") {
				t.Errorf("%s=%q: error %v (exit %d); want exit 2 naming %s, saying finite and %q", tc.param, tc.value, err,
					step.ExitCode(err), tc.param, tc.fix)
			}
		})
	}
}

// TestUnreachableLimitsAreRefused: a check fails past FAILURE_LIMIT failures (or CONSECUTIVE_FAILURE_LIMIT in a
// row); a limit of the number of measurements or more can never be passed, so a check failing every measurement
// would be healthy. It is bad input naming the count to stay below.
func TestUnreachableLimitsAreRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		env   map[string]string
		param string // "" when valid
		below int
	}{
		{"FAILURE_LIMIT 10 of the default 10", map[string]string{"FAILURE_LIMIT": "10"}, "FAILURE_LIMIT", 10},
		{"FAILURE_LIMIT 9 of the default 10", map[string]string{"FAILURE_LIMIT": "9"}, "", 0},
		{"FAILURE_LIMIT over COUNT", map[string]string{"COUNT": "3", "FAILURE_LIMIT": "5"}, "FAILURE_LIMIT", 3},
		{"FAILURE_LIMIT of DURATION / INTERVAL", map[string]string{"DURATION": "2m", "INTERVAL": "30s", "FAILURE_LIMIT": "4"}, "FAILURE_LIMIT", 4},
		{"CONSECUTIVE_FAILURE_LIMIT at COUNT", map[string]string{"COUNT": "5", "FAILURE_LIMIT": "2", "CONSECUTIVE_FAILURE_LIMIT": "5"}, "CONSECUTIVE_FAILURE_LIMIT", 5},
		{"CONSECUTIVE_FAILURE_LIMIT below COUNT", map[string]string{"COUNT": "5", "CONSECUTIVE_FAILURE_LIMIT": "4"}, "", 0},
		{"one measurement, no failure allowed", map[string]string{"COUNT": "1"}, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"APP": "exp"}
			for k, v := range tc.env {
				env[k] = v
			}
			_, err := load(env)
			if tc.param == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if step.ExitCode(err) != step.ExitInvalid || !strings.Contains(err.Error(), "param "+tc.param+":") ||
				!strings.Contains(err.Error(), fmt.Sprintf("give less than %d", tc.below)) {
				t.Errorf("error %v (exit %d); want exit 2 naming %s and %d", err, step.ExitCode(err), tc.param, tc.below)
			}
		})
	}
}

// TestHealthyReasonCountsEveryMeasurement: a healthy REASON counts each check's failures, errors and measurements
// without data, the checks with any first, and never says "passed" of a check that failed.
func TestHealthyReasonCountsEveryMeasurement(t *testing.T) {
	t.Parallel()
	var many []Check
	for i := range 30 {
		many = append(many, &scripted{name: fmt.Sprintf("a-check-with-a-rather-long-name-%02d", i), steps: []string{"pass"}})
	}
	many = append(many, &scripted{name: "error-rate", steps: []string{"pass", "fail", "pass"}})
	for _, tc := range []struct {
		name   string
		cfg    Config
		checks []Check
		want   string
	}{
		{"a failure within the limit", Config{FailureLimit: 2}, []Check{
			&scripted{name: "pods", steps: []string{"pass"}},
			&scripted{name: "error-rate", steps: []string{"pass", "fail", "pass"}},
		}, "2 checks over 10 measurements: error-rate failed 1 of 10 (within FAILURE_LIMIT 2), pods passed 10 of 10"},
		{"errors", Config{}, []Check{
			&scripted{name: "http", steps: []string{"error", "pass", "error", "pass"}},
		}, "1 check over 10 measurements: http passed 8 of 10, 2 in error"},
		{"no data counted as passes", Config{NoData: "pass"}, []Check{
			&scripted{name: "q", steps: []string{"nodata"}},
		}, "1 check over 10 measurements: q passed 0 of 10, 10 without data (counted as passes: NO_DATA=pass)"},
		{"no data counted as failures", Config{NoData: "fail", FailureLimit: 3}, []Check{
			&scripted{name: "q", steps: []string{"nodata", "fail", "nodata", "pass"}},
		}, "1 check over 10 measurements: q failed 3 of 10 (within FAILURE_LIMIT 3), 2 without data (counted as failures: NO_DATA=fail)"},
		{"some no data", Config{}, []Check{
			&scripted{name: "pods", steps: []string{"pass"}},
			&scripted{name: "q", steps: []string{"nodata", "nodata", "pass"}},
		}, "2 checks over 10 measurements: q passed 8 of 10, 2 without data, pods passed 10 of 10"},
		{"too many checks for REASON", Config{FailureLimit: 2}, many,
			"31 checks over 10 measurements: error-rate failed 1 of 10 (within FAILURE_LIMIT 2), 30 more passed every measurement"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := runAnalysis(t, tc.cfg, tc.checks...)
			if ev.Verdict != evidence.Healthy || ev.Reason != tc.want {
				t.Errorf("verdict %s, reason\n  %q\nwant healthy, reason\n  %q", ev.Verdict, ev.Reason, tc.want)
			}
			if len(ev.Reason) > maxReason {
				t.Errorf("REASON is %d bytes, over %d", len(ev.Reason), maxReason)
			}
			for _, c := range ev.Checks {
				if c.Failures > 0 && strings.Contains(ev.Reason, c.Name+" passed") {
					t.Errorf("REASON says %s passed; it failed %d times", c.Name, c.Failures)
				}
			}
		})
	}
}

// TestCountIsExplained: COUNT 0 means DURATION / INTERVAL, or 10; the log's first analysis line and the evidence
// settings say which applied.
func TestCountIsExplained(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		env   map[string]string
		count string
		from  string
	}{
		{"COUNT", map[string]string{"COUNT": "2"}, "2", "COUNT"},
		{"DURATION / INTERVAL", map[string]string{"COUNT": "-", "DURATION": "4ms"}, "4", "DURATION 4ms / INTERVAL 1ms"},
		{"DURATION / INTERVAL, rounded down", map[string]string{"COUNT": "0", "DURATION": "3500us"}, "3", "DURATION 3.5ms / INTERVAL 1ms, rounded down"},
		{"the default", map[string]string{"COUNT": "0"}, "10", "COUNT 0 and no DURATION: the default 10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"EVIDENCE_DIR": t.TempDir()}
			for k, v := range tc.env {
				env[k] = v
			}
			v, log, err := verify(t, env, Deps{})
			if err != nil {
				t.Fatalf("verdict %s: %v", v.Verdict, err)
			}
			var first string
			for _, l := range strings.Split(log, "\n") {
				if strings.Contains(l, "analysing the canary") {
					first = l
					break
				}
			}
			if want := tc.count + " measurements (" + tc.from + ")"; !strings.Contains(first, want) {
				t.Errorf("the analysis starts with %q; want it to say %q", first, want)
			}
			data, err := os.ReadFile(filepath.Join(env["EVIDENCE_DIR"], evidence.JSONFile))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := evidence.Read(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if ev.Settings["count"] != tc.count || ev.Settings["countFrom"] != tc.from {
				t.Errorf("settings count %q countFrom %q; want %s from %q", ev.Settings["count"], ev.Settings["countFrom"], tc.count, tc.from)
			}
		})
	}
}

// TestUnwritableEvidenceDirIsRefusedFirst: an EVIDENCE_DIR the step cannot write is bad input when the config is
// read, before any request or measurement, naming the evidence workspace and how to fix it. A directory that
// is not there yet is created, and the check leaves nothing in it.
func TestUnwritableEvidenceDirIsRefusedFirst(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := load(map[string]string{"APP": "exp", "EVIDENCE_DIR": filepath.Join(file, "evidence")})
	if step.ExitCode(err) != step.ExitInvalid {
		t.Fatalf("error %v (exit %d); want exit 2", err, step.ExitCode(err))
	}
	for _, want := range []string{"param EVIDENCE_DIR:", "evidence workspace", "fsGroup", "taskRunTemplate.podTemplate.securityContext.fsGroup: 65532", "restricted-v2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}

	dir := filepath.Join(t.TempDir(), "a", "evidence")
	if _, err := load(map[string]string{"APP": "exp", "EVIDENCE_DIR": dir}); err != nil {
		t.Fatalf("a new directory: %v", err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("EVIDENCE_DIR after the check: %v %v; want it there and empty", entries, err)
	}
}

// TestResultsStaySmall: a REASON too long for the result is cut at a character, never inside one.
func TestResultsStaySmall(t *testing.T) {
	t.Parallel()
	for _, reason := range []string{strings.Repeat("é", 300), "x" + strings.Repeat("€", 200), strings.Repeat("a", 1000)} {
		r := Verdict{Verdict: evidence.Healthy, Reason: reason}.Results()["REASON"]
		if !utf8.ValidString(r) || len(r) > maxReason+len("…") || !strings.HasSuffix(r, "…") {
			t.Errorf("REASON of %d bytes cut to %d bytes %q", len(reason), len(r), r)
		}
	}
}
