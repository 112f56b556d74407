// Package health is the verify-health step: it measures the canary with any combination of checks (pods, http,
// prometheus, compare), applies the analysis rules (interval, limits, no-data policy, minimum samples, early
// stop), and gives a verdict with the evidence behind it.
package health

import (
	"fmt"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/notify"
	"github.com/canaryline/canaryline/internal/runtime/release"
	"github.com/canaryline/canaryline/internal/runtime/stats"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// Config is verify-health's configuration.
type Config struct {
	step.Common
	App       string `env:"APP"`
	Namespace string `env:"NAMESPACE"`
	ReleaseID string `env:"RELEASE_ID"`
	// TaskRun is the step's TaskRun ($(context.taskRun.name), not a Task param); empty off Tekton. A step stopped
	// in a PipelineRun whose finally tasks will not run rolls the release back itself (release.AfterStop).
	TaskRun string `env:"TASKRUN_NAME"`

	// The analysis.
	Interval     time.Duration `env:"INTERVAL, default=30s"`
	Count        int           `env:"COUNT, default=0"`     // measurements; or
	Duration     time.Duration `env:"DURATION, default=0s"` // how long (COUNT = DURATION / INTERVAL)
	InitialDelay time.Duration `env:"INITIAL_DELAY, default=0s"`
	// FailureLimit: a check fails the analysis when it has more failures than this.
	FailureLimit int `env:"FAILURE_LIMIT, default=0"`
	// ConsecutiveFailureLimit: ... or more failures in a row than this (0 = not used).
	ConsecutiveFailureLimit int `env:"CONSECUTIVE_FAILURE_LIMIT, default=0"`
	// ConsecutiveErrorLimit: a check that cannot be evaluated this many times in a row more ends the analysis as
	// inconclusive. Errors are never failures.
	ConsecutiveErrorLimit int `env:"CONSECUTIVE_ERROR_LIMIT, default=4"`
	// NoData is what a check with nothing to measure counts as: inconclusive, fail or pass.
	NoData string `env:"NO_DATA, default=inconclusive"`

	// pods
	Pods             bool   `env:"PODS, default=true"`
	CanaryDeployment string `env:"CANARY_DEPLOYMENT"`
	// BaselineDeployment is the baseline (shift-canary's BASELINE_DEPLOYMENT); when empty, APP-baseline if it is
	// canaryline's baseline (it carries the track label), else none.
	BaselineDeployment string `env:"BASELINE_DEPLOYMENT"`
	// Container is the released container, for the evidence; when empty, the one whose image differs between the
	// stable and the canary Deployment.
	Container   string `env:"CONTAINER"`
	MaxRestarts int    `env:"MAX_RESTARTS, default=0"`

	// http
	HTTPURLs        string        `env:"HTTP_URLS"` // one URL a line
	HTTPRate        float64       `env:"HTTP_RATE, default=5"`
	HTTPHeaders     string        `env:"HTTP_HEADERS"` // one "Name: value" a line
	HTTPCAFile      string        `env:"HTTP_CA_FILE"`
	HTTPTimeout     time.Duration `env:"HTTP_TIMEOUT, default=5s"`
	HTTPMinSuccess  float64       `env:"HTTP_MIN_SUCCESS, default=0.99"`
	HTTPPercentile  float64       `env:"HTTP_LATENCY_PERCENTILE, default=95"`
	HTTPMaxLatency  time.Duration `env:"HTTP_MAX_LATENCY, default=500ms"`
	HTTPBaselineURL string        `env:"HTTP_BASELINE_URL"` // compares per-request latencies with the canary's
	// HTTPMethod and HTTPBody are the probes' requests: GET without a body by default; POST, PUT or PATCH with a
	// body make the probes synthetic load (HTTP_URLS may name {{.CanaryService}} and {{.Namespace}}).
	HTTPMethod string `env:"HTTP_METHOD, default=GET"`
	HTTPBody   string `env:"HTTP_BODY"`
	// InsecureSkipTLSVerify turns TLS certificate verification off for the HTTP probes and Prometheus. It is
	// logged as a warning; HTTP_CA_FILE and PROMETHEUS_CA_FILE are the way to trust a private CA.
	InsecureSkipTLSVerify bool `env:"INSECURE_SKIP_TLS_VERIFY, default=false"`

	// prometheus
	PrometheusURL       string `env:"PROMETHEUS_URL"`
	PrometheusTokenFile string `env:"PROMETHEUS_TOKEN_FILE"`
	PrometheusCAFile    string `env:"PROMETHEUS_CA_FILE"`
	Queries             string `env:"QUERIES"` // YAML: [{name, query, threshold}]
	Compare             string `env:"COMPARE"` // YAML: [{name, query, direction, tolerance}]
	CompareAgainst      string `env:"COMPARE_AGAINST, default=auto"`

	// webhooks and jobs
	Webhooks string `env:"WEBHOOKS"` // YAML: [{name, url, timeout, successField, successValue, headersFile}]
	Jobs     string `env:"JOBS"`     // YAML: [{name, configMap, key, timeout}]

	// Approval is "required" for a gate: after a healthy analysis the step waits, renewing the release's lock, for a
	// person's answer recorded on the release (canaryline approve APP, canaryline reject APP); "none" does not wait.
	Approval        string        `env:"APPROVAL, default=none"`
	ApprovalTimeout time.Duration `env:"APPROVAL_TIMEOUT, default=1h"`

	// Notify posts an unhealthy verdict (and a gate's wait) to the team's webhook.
	Notify notify.Config

	// statistics
	// Statistics is how comparisons decide: "sequential" (anytime-valid tests evaluated every interval, one error
	// budget ALPHA per release) or "fixed" (a Mann-Whitney test of the window at CONFIDENCE, as Kayenta).
	Statistics string  `env:"STATISTICS, default=sequential"`
	Alpha      float64 `env:"ALPHA, default=0.01"`
	// StopWhenEquivalent ends the analysis early as healthy once every comparison has shown no regression beyond
	// its tolerance (sequential only), and no other check has failed.
	StopWhenEquivalent bool    `env:"STOP_WHEN_EQUIVALENT, default=false"`
	Confidence         float64 `env:"CONFIDENCE, default=0.98"`
	Tolerance          float64 `env:"TOLERANCE, default=0.1"`
	MinSamples         int     `env:"MIN_SAMPLES, default=10"`

	// EvidenceDir is where evidence.json, report.md and chart.svg go (a workspace); nothing is written when empty.
	EvidenceDir string `env:"EVIDENCE_DIR"`

	urls     []*url.URL
	urlLines []string
	headers  map[string]string
	queries  []Query
	compares []Comparison
	webhooks []Webhook
	jobs     []JobSpec
	// names are the checks' names so far, and the param that named each.
	names map[string]string
	count int
	// countFrom says where count came from: COUNT, DURATION / INTERVAL, or the default.
	countFrom string
}

// Query is a PromQL query held against a threshold.
type Query struct {
	Name      string `json:"name"`
	Query     string `json:"query"`
	Threshold string `json:"threshold"`
	op        string
	limit     float64
	tmpl      *queryTemplate
}

// Comparison is a metric compared between the canary and the baseline (or stable). Its queries are templated
// with {{.Track}} (and {{.Hash}}) for each side. It is either a value (Query: one value a side each interval) or
// counts (Errors among Requests: counters, whose increase over each interval is taken).
type Comparison struct {
	Name       string   `json:"name"`
	Query      string   `json:"query"`
	Errors     string   `json:"errors"`
	Requests   string   `json:"requests"`
	Direction  string   `json:"direction"`
	Tolerance  *float64 `json:"tolerance"`
	dir        stats.Direction
	tmpl       *queryTemplate
	errs, reqs *queryTemplate
}

// counts says whether the comparison counts errors among requests.
func (m *Comparison) counts() bool { return m.Errors != "" }

// Validate checks every param before anything is measured, in the order the Task lists them: the application,
// the analysis, the statistics, the checks, and the evidence workspace.
func (c *Config) Validate() error {
	for _, validate := range []func() error{c.validateTarget, c.validateCount, c.validateLimits, c.validateStats,
		c.validateHTTP, c.validatePrometheus, c.validateWebhooks, c.validateJobs, c.validateChecks, c.validateApproval, c.Notify.Validate} {
		if err := validate(); err != nil {
			return err
		}
	}
	return checkEvidenceDir(c.EvidenceDir)
}

// validateTarget checks the application and its release, and names the canary Deployment when it is not named.
func (c *Config) validateTarget() error {
	if c.App == "" {
		return step.Invalid("APP", "give the name of the application's stable Deployment", "is required")
	}
	if errs := validation.IsDNS1123Label(c.App); len(errs) > 0 {
		return step.Invalid("APP", "give the stable Deployment's name", "%q is not a valid name", c.App)
	}
	if c.Namespace != "" && len(validation.IsDNS1123Label(c.Namespace)) > 0 {
		return step.Invalid("NAMESPACE", "give a namespace name, or leave it empty for the step's own", "%q is not a valid namespace", c.Namespace)
	}
	if err := release.CheckTaskRun(c.TaskRun); err != nil {
		return err
	}
	if c.CanaryDeployment == "" {
		c.CanaryDeployment = naming.Canary(c.App)
	}
	for _, n := range []struct{ param, value string }{{"CANARY_DEPLOYMENT", c.CanaryDeployment}, {"BASELINE_DEPLOYMENT", c.BaselineDeployment}, {"CONTAINER", c.Container}} {
		if n.value != "" && len(validation.IsDNS1123Label(n.value)) > 0 {
			return step.Invalid(n.param, "give a name as the API has it (oc get deploy), or leave it empty", "%q is not a valid name", n.value)
		}
	}
	return nil
}

// validateCount checks INTERVAL, and works out the number of measurements from COUNT or DURATION, and where it
// came from.
func (c *Config) validateCount() error {
	if c.Interval <= 0 {
		return step.Invalid("INTERVAL", "give a positive Go duration such as 30s", "%s is not positive", c.Interval)
	}
	switch {
	case c.Count < 0:
		return step.Invalid("COUNT", "give a number of measurements, or DURATION", "%d is negative", c.Count)
	case c.Duration < 0:
		return step.Invalid("DURATION", "give a positive Go duration, or COUNT", "%s is negative", c.Duration)
	case c.Count > 0 && c.Duration > 0:
		return step.Invalid("DURATION", "give COUNT or DURATION, not both", "is set together with COUNT %d", c.Count)
	case c.Count > 0:
		c.count, c.countFrom = c.Count, "COUNT"
	case c.Duration > 0:
		c.count = int(c.Duration / c.Interval)
		if c.count < 1 {
			return step.Invalid("DURATION", "make DURATION at least one INTERVAL", "%s is shorter than INTERVAL %s", c.Duration, c.Interval)
		}
		c.countFrom = fmt.Sprintf("DURATION %s / INTERVAL %s", c.Duration, c.Interval)
		if c.Duration%c.Interval != 0 {
			c.countFrom += ", rounded down"
		}
	default:
		c.count, c.countFrom = 10, "COUNT 0 and no DURATION: the default 10"
	}
	return nil
}

// validateLimits checks INITIAL_DELAY, the failure and error limits against the number of measurements, and the
// NO_DATA policy.
func (c *Config) validateLimits() error {
	if c.InitialDelay < 0 {
		return step.Invalid("INITIAL_DELAY", "give a Go duration of 0s or more", "%s is negative", c.InitialDelay)
	}
	for param, v := range map[string]int{"FAILURE_LIMIT": c.FailureLimit, "CONSECUTIVE_FAILURE_LIMIT": c.ConsecutiveFailureLimit,
		"CONSECUTIVE_ERROR_LIMIT": c.ConsecutiveErrorLimit, "MAX_RESTARTS": c.MaxRestarts} {
		if v < 0 {
			return step.Invalid(param, "give 0 or more", "%d is negative", v)
		}
	}
	// A check fails past its limits: a limit of count or more could never be passed, and a check failing every
	// measurement would pass.
	for _, l := range []struct {
		param string
		v     int
	}{{"FAILURE_LIMIT", c.FailureLimit}, {"CONSECUTIVE_FAILURE_LIMIT", c.ConsecutiveFailureLimit}} {
		if l.v >= c.count && l.v > 0 {
			return step.Invalid(l.param, fmt.Sprintf("give less than %d, the number of measurements (%s), or take more measurements", c.count, c.countFrom),
				"%d can never be exceeded in %d measurements: a check failing every one would pass", l.v, c.count)
		}
	}
	switch c.NoData {
	case naming.NoDataInconclusive, naming.NoDataFail, naming.NoDataPass:
	default:
		return step.Invalid("NO_DATA", `say "inconclusive", "fail" or "pass"`, "unknown policy %q", c.NoData)
	}
	return nil
}

// validateStats checks the float params, then the statistics: CONFIDENCE, TOLERANCE and MIN_SAMPLES.
func (c *Config) validateStats() error {
	if err := c.validateFloats(); err != nil {
		return err
	}
	if c.Statistics != naming.StatsSequential && c.Statistics != naming.StatsFixed {
		return step.Invalid("STATISTICS", `say "sequential" (anytime-valid, one error budget per release) or "fixed" (Kayenta's Mann-Whitney)`, "unknown %q", c.Statistics)
	}
	if c.Alpha <= 0 || c.Alpha > 0.5 {
		return step.Invalid("ALPHA", "give the false-alarm probability per release, above 0 and at most 0.5, such as 0.01", "%v is out of range", c.Alpha)
	}
	if c.Confidence <= 0.5 || c.Confidence >= 1 {
		return step.Invalid("CONFIDENCE", "give a confidence between 0.5 and 1, such as 0.98", "%v is out of range", c.Confidence)
	}
	if c.Tolerance < 0 {
		return step.Invalid("TOLERANCE", "give a relative tolerance of 0 or more, such as 0.1 (10%)", "%v is negative", c.Tolerance)
	}
	if c.MinSamples < 3 {
		return step.Invalid("MIN_SAMPLES", "give at least 3 samples per side (Kayenta suggests 50)", "%d is too few", c.MinSamples)
	}
	return nil
}

// validateChecks checks COMPARE_AGAINST, and that at least one check is configured.
func (c *Config) validateChecks() error {
	switch c.CompareAgainst {
	case againstAuto, naming.TrackBaseline, naming.TrackStable:
	default:
		return step.Invalid("COMPARE_AGAINST", `say "baseline", "stable" or "auto" (baseline when there is one)`, "unknown %q", c.CompareAgainst)
	}
	if !c.Pods && len(c.urls) == 0 && len(c.queries) == 0 && len(c.compares) == 0 && len(c.webhooks) == 0 && len(c.jobs) == 0 {
		return step.Invalid("PODS", "configure at least one check: PODS, HTTP_URLS, QUERIES, COMPARE, WEBHOOKS or JOBS", "no check is configured")
	}
	return nil
}

// claimName records a webhook's or a job's check name, named by param: check names are unique, so that the
// evidence tells them apart.
func (c *Config) claimName(name, param string) error {
	if c.names == nil {
		c.names = map[string]string{"pods": "PODS", "http": "HTTP_URLS", "http-errors": "HTTP_BASELINE_URL", "http-latency": "HTTP_BASELINE_URL"}
		for _, q := range c.queries {
			c.names[q.Name] = "QUERIES"
		}
		for _, m := range c.compares {
			c.names[m.Name] = "COMPARE"
		}
	}
	if other, ok := c.names[name]; ok {
		return step.Invalid(param, "give each check its own name", "%q is already the name of a check of %s", name, other)
	}
	c.names[name] = param
	return nil
}

// againstAuto is COMPARE_AGAINST's default: the baseline when there is one, else stable.
const againstAuto = "auto"

// validateFloats refuses NaN and infinities in the float params: NaN compares false with everything, so it
// would slip through every range check below.
func (c *Config) validateFloats() error {
	for _, f := range []struct {
		param, fix string
		v          float64
	}{
		{"ALPHA", "give the false-alarm probability per release, above 0 and at most 0.5, such as 0.01", c.Alpha},
		{"CONFIDENCE", "give a confidence between 0.5 and 1, such as 0.98", c.Confidence},
		{"TOLERANCE", "give a relative tolerance of 0 or more, such as 0.1 (10%)", c.Tolerance},
		{"HTTP_RATE", "give requests per second between 0 and 1000", c.HTTPRate},
		{"HTTP_MIN_SUCCESS", "give a ratio between 0 and 1, such as 0.99", c.HTTPMinSuccess},
		{"HTTP_LATENCY_PERCENTILE", "give a percentile between 0 and 100, such as 95", c.HTTPPercentile},
	} {
		if !finite(f.v) {
			return step.Invalid(f.param, f.fix, "%v is not a finite number", f.v)
		}
	}
	return nil
}

// checkEvidenceDir makes sure the evidence can be written before anything is measured: it creates dir when
// needed, and a file in it, which it removes. A workspace the step's user cannot write (a volume whose root is
// root's, 0755, without fsGroup) is bad input, refused before the analysis rather than after the verdict.
func checkEvidenceDir(dir string) error {
	if dir == "" {
		return nil
	}
	err := os.MkdirAll(dir, 0o755)
	if err == nil {
		var f *os.File
		if f, err = os.CreateTemp(dir, ".canaryline-write-check-*"); err == nil {
			_ = f.Close()
			err = os.Remove(f.Name())
		}
	}
	if err != nil {
		return step.Invalid("EVIDENCE_DIR", "on Kubernetes, let the step's group write the volume: set fsGroup in the PipelineRun's podTemplate, "+
			"e.g. taskRunTemplate.podTemplate.securityContext.fsGroup: 65532 (on OpenShift the restricted-v2 SCC sets it), or bind another volume",
			"the evidence workspace %s is not writable by the step (uid %d, gid %d): %v", dir, os.Getuid(), os.Getgid(), err)
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func (c *Config) validateHTTP() error {
	// Credentials in headers and URLs are registered for redaction first, so that no message below prints one.
	c.headers = map[string]string{}
	for i, line := range lines(c.HTTPHeaders) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) == "" || strings.ContainsAny(strings.TrimSpace(k), " \t") {
			step.AddSecret(line)
			return step.Invalid("HTTP_HEADERS", `write one "Name: value" a line, such as "Authorization: Bearer ..."`, "line %d is not a header (no \"Name:\")", i+1)
		}
		c.headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
		step.AddHeaderSecret(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	ns := c.Namespace
	if ns == "" {
		ns = "default" // the step's own namespace, known once connected (ExpandURLs)
	}
	if err := c.ExpandURLs(ns); err != nil {
		return err
	}
	if err := c.validateLoad(); err != nil {
		return err
	}
	if c.HTTPBaselineURL != "" {
		u, err := url.Parse(c.HTTPBaselineURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return step.Invalid("HTTP_BASELINE_URL", "give an absolute http(s) URL of the baseline (or stable) Service", "%q is not an http(s) URL", step.Redact(c.HTTPBaselineURL))
		}
		step.AddURLSecrets(u)
		if len(c.urls) == 0 {
			return step.Invalid("HTTP_BASELINE_URL", "set HTTP_URLS to the canary's URL too", "needs HTTP_URLS")
		}
	}
	if len(c.urls) > 0 {
		if c.HTTPRate <= 0 || c.HTTPRate > 1000 {
			return step.Invalid("HTTP_RATE", "give requests per second between 0 and 1000", "%v is out of range", c.HTTPRate)
		}
		if c.HTTPMinSuccess < 0 || c.HTTPMinSuccess > 1 {
			return step.Invalid("HTTP_MIN_SUCCESS", "give a ratio between 0 and 1, such as 0.99", "%v is out of range", c.HTTPMinSuccess)
		}
		if c.HTTPPercentile <= 0 || c.HTTPPercentile > 100 {
			return step.Invalid("HTTP_LATENCY_PERCENTILE", "give a percentile between 0 and 100, such as 95", "%v is out of range", c.HTTPPercentile)
		}
		if c.HTTPMaxLatency <= 0 {
			return step.Invalid("HTTP_MAX_LATENCY", "give a positive Go duration such as 500ms", "%s is not positive", c.HTTPMaxLatency)
		}
		if c.HTTPTimeout <= 0 {
			return step.Invalid("HTTP_TIMEOUT", "give a positive Go duration such as 5s", "%s is not positive", c.HTTPTimeout)
		}
	}
	if c.InsecureSkipTLSVerify && (c.HTTPCAFile != "" || c.PrometheusCAFile != "") {
		return step.Invalid("INSECURE_SKIP_TLS_VERIFY", "give a CA file (HTTP_CA_FILE, PROMETHEUS_CA_FILE) to verify against it, or INSECURE_SKIP_TLS_VERIFY=true to verify nothing, not both",
			"is true while a CA file is given")
	}
	return nil
}

// urlFields are the placeholders HTTP_URLS may use.
var urlFields = map[string]func(c *Config, ns string) string{
	".Namespace":     func(_ *Config, ns string) string { return ns },
	".App":           func(c *Config, _ string) string { return c.App },
	".CanaryService": func(c *Config, _ string) string { return naming.Canary(c.App) },
}

// ExpandURLs reads HTTP_URLS, with {{.CanaryService}}, {{.Namespace}} and {{.App}} filled in for namespace ns.
func (c *Config) ExpandURLs(ns string) error {
	c.urls, c.urlLines = nil, lines(c.HTTPURLs)
	for i, line := range c.urlLines {
		var unknown string
		expanded := placeholder.ReplaceAllStringFunc(line, func(s string) string {
			f, ok := urlFields[placeholder.FindStringSubmatch(s)[1]]
			if !ok {
				unknown = s
				return s
			}
			return f(c, ns)
		})
		if unknown != "" {
			return step.Invalid("HTTP_URLS", "use {{.CanaryService}}, {{.Namespace}} or {{.App}}", "line %d: unknown placeholder %s", i+1, unknown)
		}
		u, err := url.Parse(expanded)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return step.Invalid("HTTP_URLS", "give one absolute http(s) URL a line, such as http://{{.CanaryService}}.{{.Namespace}}.svc:8080/healthz", "line %d %q is not an http(s) URL", i+1, step.Redact(line))
		}
		step.AddURLSecrets(u)
		c.urls = append(c.urls, u)
	}
	return nil
}

// maxHTTPBody bounds HTTP_BODY.
const maxHTTPBody = 64 << 10

// validateLoad checks HTTP_METHOD and HTTP_BODY: a body goes with POST, PUT or PATCH, and with HTTP_URLS.
func (c *Config) validateLoad() error {
	switch c.HTTPMethod {
	case "GET", "HEAD", "OPTIONS", "DELETE", "POST", "PUT", "PATCH":
	default:
		return step.Invalid("HTTP_METHOD", "say GET, HEAD, OPTIONS, DELETE, POST, PUT or PATCH (upper case)", "unknown method %q", c.HTTPMethod)
	}
	if c.HTTPMethod != "GET" && len(c.urls) == 0 {
		return step.Invalid("HTTP_METHOD", "set HTTP_URLS to the URLs to send requests to, or leave HTTP_METHOD at GET", "is %s without HTTP_URLS", c.HTTPMethod)
	}
	if c.HTTPBody == "" {
		return nil
	}
	switch {
	case c.HTTPMethod != "POST" && c.HTTPMethod != "PUT" && c.HTTPMethod != "PATCH":
		return step.Invalid("HTTP_BODY", "set HTTP_METHOD to POST, PUT or PATCH to send a body, or leave HTTP_BODY empty", "a %s request has no body", c.HTTPMethod)
	case len(c.HTTPBody) > maxHTTPBody:
		return step.Invalid("HTTP_BODY", "give a body of at most 64 KiB", "%d bytes is too long", len(c.HTTPBody))
	}
	return nil
}

// validatePrometheus checks QUERIES, COMPARE and PROMETHEUS_URL: a URL when there is a query, none without.
func (c *Config) validatePrometheus() error {
	if err := c.validateQueries(); err != nil {
		return err
	}
	if err := c.validateCompares(); err != nil {
		return err
	}
	if len(c.queries)+len(c.compares) > 0 {
		u, err := url.Parse(c.PrometheusURL)
		if c.PrometheusURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return step.Invalid("PROMETHEUS_URL", "give the Prometheus (or OpenShift Thanos querier) URL, such as https://thanos-querier.openshift-monitoring.svc:9091",
				"%q is not an http(s) URL", step.Redact(c.PrometheusURL))
		}
		step.AddURLSecrets(u)
	} else if c.PrometheusURL != "" {
		return step.Invalid("QUERIES", "give QUERIES or COMPARE to use PROMETHEUS_URL, or leave PROMETHEUS_URL empty", "PROMETHEUS_URL is set but no query is")
	}
	return nil
}

// validateQueries reads QUERIES: each a name, a templated PromQL query and a threshold.
func (c *Config) validateQueries() error {
	if c.Queries == "" {
		return nil
	}
	if err := yaml.UnmarshalStrict([]byte(c.Queries), &c.queries); err != nil {
		return step.Invalid("QUERIES", "give a YAML list of {name, query, threshold}, such as - {name: errors, query: 'sum(...)', threshold: '< 0.01'}", "%v", err)
	}
	for i := range c.queries {
		q := &c.queries[i]
		if q.Name == "" || q.Query == "" {
			return step.Invalid("QUERIES", "give each query a name and a query", "entry %d has no name or no query", i+1)
		}
		op, limit, err := parseThreshold(q.Threshold)
		if err != nil {
			return step.Invalid("QUERIES", `give a threshold such as "< 0.01" or ">= 0.99"`, "query %s: %v", q.Name, err)
		}
		q.op, q.limit = op, limit
		if q.tmpl, err = parseTemplate(q.Name, q.Query); err != nil {
			return step.Invalid("QUERIES", "fix the query's template ({{.Namespace}}, {{.App}}, {{.CanaryTrack}}, {{.CanaryHash}}, ...)", "query %s: %v", q.Name, err)
		}
		if err := checkPromQL(q.Query); err != nil {
			return step.Invalid("QUERIES", "fix the PromQL", "query %s: %v", q.Name, err)
		}
	}
	return nil
}

// validateCompares reads COMPARE: each a name, a PromQL query templated by track, a direction and a tolerance.
func (c *Config) validateCompares() error {
	if c.Compare == "" {
		return nil
	}
	if err := yaml.UnmarshalStrict([]byte(c.Compare), &c.compares); err != nil {
		if strings.Contains(err.Error(), "unsupported value") { // .nan or .inf, which JSON cannot hold
			return step.Invalid("COMPARE", "give each tolerance as a finite number of 0 or more, such as 0.1", "%v", err)
		}
		return step.Invalid("COMPARE", "give a YAML list of {name, query (or errors and requests), direction, tolerance}", "%v", err)
	}
	for i := range c.compares {
		if err := c.compares[i].validate(i); err != nil {
			return err
		}
	}
	return nil
}

// validate checks comparison i (from 0) of COMPARE, and fills in its direction and template.
func (m *Comparison) validate(i int) error {
	if err := m.validateShape(i); err != nil {
		return err
	}
	if m.Direction == "" {
		m.Direction = "increase"
	}
	d, err := stats.ParseDirection(m.Direction)
	if err != nil {
		return step.Invalid("COMPARE", `say direction "increase", "decrease" or "either"`, "comparison %s: %v", m.Name, err)
	}
	m.dir = d
	if m.Tolerance != nil && (!finite(*m.Tolerance) || *m.Tolerance < 0) {
		return step.Invalid("COMPARE", "give a finite tolerance of 0 or more", "comparison %s: tolerance %v", m.Name, *m.Tolerance)
	}
	for _, q := range []struct {
		text string
		tmpl **queryTemplate
	}{{m.Query, &m.tmpl}, {m.Errors, &m.errs}, {m.Requests, &m.reqs}} {
		if q.text == "" {
			continue
		}
		if !strings.Contains(q.text, "{{") {
			return step.Invalid("COMPARE", "select each side's pods in the query with {{.Hash}}, e.g. pod_template_hash=\"{{.Hash}}\" (or {{.Pods}}, a regex of their names)", "comparison %s does not tell the canary from the baseline", m.Name)
		}
		if *q.tmpl, err = parseTemplate(m.Name, q.text); err != nil {
			return step.Invalid("COMPARE", "fix the query's template ({{.Track}}, {{.Hash}}, {{.Namespace}}, {{.App}})", "comparison %s: %v", m.Name, err)
		}
		if err := checkPromQL(q.text); err != nil {
			return step.Invalid("COMPARE", "fix the PromQL", "comparison %s: %v", m.Name, err)
		}
	}
	return nil
}

// validateShape checks that comparison i has a name, and a query or both counters (not both kinds).
func (m *Comparison) validateShape(i int) error {
	switch {
	case m.Name == "":
		return step.Invalid("COMPARE", "give each comparison a name and a query", "entry %d has no name", i+1)
	case m.Query == "" && m.Errors == "" && m.Requests == "":
		return step.Invalid("COMPARE", "give each comparison a query, or errors and requests (counters)", "comparison %s has no query", m.Name)
	case m.Query != "" && (m.Errors != "" || m.Requests != ""):
		return step.Invalid("COMPARE", "give a query (a value) or errors and requests (counters), not both", "comparison %s has both", m.Name)
	case m.Query == "" && (m.Errors == "" || m.Requests == ""):
		return step.Invalid("COMPARE", "give both errors and requests: counters such as sum(http_requests_total{pod_template_hash=\"{{.Hash}}\",code=~\"5..\"}) and the same without the code",
			"comparison %s has only one of errors and requests", m.Name)
	}
	return nil
}

// templatesUse reports whether any query or comparison uses any of the placeholders.
func (c *Config) templatesUse(fields ...string) bool {
	for _, q := range c.queries {
		if q.tmpl != nil && q.tmpl.uses(fields...) {
			return true
		}
	}
	return c.comparesUse(fields...)
}

// comparesUse reports whether any comparison uses any of the placeholders.
func (c *Config) comparesUse(fields ...string) bool {
	for _, m := range c.compares {
		for _, t := range []*queryTemplate{m.tmpl, m.errs, m.reqs} {
			if t != nil && t.uses(fields...) {
				return true
			}
		}
	}
	return false
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// parseThreshold reads "< 0.01", "<= 300", "> 0.99", ">= 0.5".
func parseThreshold(s string) (string, float64, error) {
	s = strings.TrimSpace(s)
	for _, op := range []string{"<=", ">=", "<", ">"} {
		if rest, ok := strings.CutPrefix(s, op); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				return "", 0, fmt.Errorf("threshold %q: %q is not a number", s, strings.TrimSpace(rest))
			}
			if !finite(v) { // nothing is < NaN, and nothing passes < -Inf or > +Inf
				return "", 0, fmt.Errorf("threshold %q: %v is not a finite number", s, v)
			}
			return op, v, nil
		}
	}
	return "", 0, fmt.Errorf("threshold %q does not start with <, <=, > or >=", s)
}

func holds(op string, v, limit float64) bool {
	switch op {
	case "<":
		return v < limit
	case "<=":
		return v <= limit
	case ">":
		return v > limit
	case ">=":
		return v >= limit
	}
	return false
}

// Approval gate settings.
const (
	ApprovalNone     = "none"
	ApprovalRequired = "required"
)

// validateApproval checks APPROVAL and APPROVAL_TIMEOUT: a gate answers one release, named by RELEASE_ID.
func (c *Config) validateApproval() error {
	switch c.Approval {
	case ApprovalNone:
		return nil
	case ApprovalRequired:
	default:
		return step.Invalid("APPROVAL", `say "none" or "required"`, "unknown setting %q", c.Approval)
	}
	if c.ReleaseID == "" {
		return step.Invalid("RELEASE_ID", "pass $(context.pipelineRun.name): an approval answers one release", "is required with APPROVAL=required")
	}
	if c.ApprovalTimeout <= 0 || c.ApprovalTimeout > 24*time.Hour {
		return step.Invalid("APPROVAL_TIMEOUT", "give a Go duration between 1s and 24h, such as 1h", "%s is out of range", c.ApprovalTimeout)
	}
	return nil
}
