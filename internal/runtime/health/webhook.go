package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/yaml"

	"github.com/canaryline/canaryline/internal/runtime/evidence"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// maxWebhookBody is how much of a webhook's answer is read: a longer body is cut there (and a field in it is not
// looked for).
const maxWebhookBody = 64 << 10

// defaultWebhookTimeout is a webhook's timeout when WEBHOOKS gives none.
const defaultWebhookTimeout = 10 * time.Second

// Webhook is one entry of WEBHOOKS: a URL that is sent the release's context each interval and judges it.
type Webhook struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Timeout is a Go duration (default 10s); a webhook that does not answer in time is an error, not a failure.
	Timeout string `json:"timeout"`
	// SuccessField, when set, is a field of the JSON answer (a dotted path such as status.ok, or a JSONPath such as
	// {.results[0].passed}) that must equal SuccessValue ("true" when SuccessValue is empty).
	SuccessField string `json:"successField"`
	SuccessValue string `json:"successValue"`
	// HeadersFile is a file of request headers, one "Name: value" a line (a mounted Secret): never printed.
	HeadersFile string `json:"headersFile"`

	u       *url.URL
	timeout time.Duration
	field   *jsonpath.JSONPath
	headers map[string]string
}

// validateWebhooks reads WEBHOOKS: each a name, an absolute http(s) URL, a timeout and an optional field.
func (c *Config) validateWebhooks() error {
	if c.Webhooks == "" {
		return nil
	}
	const fix = "give a YAML list of {name, url, timeout, successField, successValue, headersFile}, such as - {name: smoke, url: 'http://tests.team.svc/run'}"
	if err := yaml.UnmarshalStrict([]byte(c.Webhooks), &c.webhooks); err != nil {
		return step.Invalid("WEBHOOKS", fix, "%v", err)
	}
	if len(c.webhooks) == 0 {
		return step.Invalid("WEBHOOKS", fix, "the list is empty")
	}
	for i := range c.webhooks {
		if err := c.webhooks[i].validate(i); err != nil {
			return err
		}
		if err := c.claimName(c.webhooks[i].Name, "WEBHOOKS"); err != nil {
			return err
		}
	}
	return nil
}

// validate checks webhook i (from 0): its name, URL, timeout, field and headers file.
func (w *Webhook) validate(i int) error {
	if len(validation.IsDNS1123Label(w.Name)) > 0 {
		return step.Invalid("WEBHOOKS", "give each webhook a name of lower-case letters, digits and '-'", "entry %d: name %q is not valid", i+1, w.Name)
	}
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return step.Invalid("WEBHOOKS", "give an absolute http(s) URL, such as http://tests.team.svc:8080/canary", "webhook %s: %q is not an http(s) URL", w.Name, step.Redact(w.URL))
	}
	step.AddURLSecrets(u)
	w.u, w.timeout = u, defaultWebhookTimeout
	if w.Timeout != "" {
		if w.timeout, err = time.ParseDuration(w.Timeout); err != nil || w.timeout <= 0 || w.timeout > 5*time.Minute {
			return step.Invalid("WEBHOOKS", "give a Go duration above 0s and at most 5m, such as 10s", "webhook %s: timeout %q", w.Name, w.Timeout)
		}
	}
	if w.SuccessValue != "" && w.SuccessField == "" {
		return step.Invalid("WEBHOOKS", "name the field that must hold successValue in successField", "webhook %s: successValue without successField", w.Name)
	}
	if w.SuccessField != "" {
		if w.field, err = parseField(w.SuccessField); err != nil {
			return step.Invalid("WEBHOOKS", "give a dotted path such as status.ok, or a JSONPath such as {.results[0].passed}", "webhook %s: successField %q: %v", w.Name, w.SuccessField, err)
		}
	}
	if w.HeadersFile != "" {
		if w.headers, err = readHeaders(w.HeadersFile); err != nil {
			return step.Invalid("WEBHOOKS", `give a readable file of "Name: value" lines (a mounted Secret) as headersFile`, "webhook %s: %v", w.Name, err)
		}
	}
	return nil
}

// parseField parses a dotted path (status.ok) or a JSONPath ({.status.ok}).
func parseField(f string) (*jsonpath.JSONPath, error) {
	if !strings.HasPrefix(f, "{") {
		f = "{." + strings.TrimPrefix(f, ".") + "}"
	}
	jp := jsonpath.New("successField")
	if err := jp.Parse(f); err != nil {
		return nil, err
	}
	return jp, nil
}

// readHeaders reads a file of "Name: value" lines, and registers every value as a secret before anything prints.
func readHeaders(file string) (map[string]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, line := range lines(string(data)) {
		k, v, ok := strings.Cut(line, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		step.AddSecret(v)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			step.AddSecret(line)
			return nil, fmt.Errorf("%s line %d is not a header (no \"Name:\")", file, i+1)
		}
		out[k] = v
	}
	return out, nil
}

// WebhookContext is what a webhook is sent each interval, as JSON.
type WebhookContext struct {
	Namespace string `json:"namespace"`
	App       string `json:"app"`
	Release   string `json:"release,omitempty"`
	Check     string `json:"check"`
	Canary    Side   `json:"canary"`
	Stable    Side   `json:"stable"`
	Baseline  *Side  `json:"baseline,omitempty"`
	// Weight is the canary's traffic weight as the release records it (absent without a release).
	Weight *int32 `json:"weight,omitempty"`
	// Measurement counts the webhook's calls in this analysis, from 1.
	Measurement int       `json:"measurement"`
	Time        time.Time `json:"time"`
}

// Side is one version of the application: its Deployment and its pods' pod-template-hash.
type Side struct {
	Deployment string `json:"deployment"`
	Hash       string `json:"hash,omitempty"`
}

// webhookCheck posts the release's context to a webhook and judges its answer.
type webhookCheck struct {
	w       Webhook
	client  *http.Client
	context WebhookContext
	n       int
}

var _ Check = (*webhookCheck)(nil)

func (w *webhookCheck) Name() string  { return w.w.Name }
func (w *webhookCheck) Kind() string  { return "webhook" }
func (w *webhookCheck) Query() string { return "POST " + step.RedactURL(w.w.u) }
func (w *webhookCheck) Threshold() string {
	if w.w.field == nil {
		return "2xx"
	}
	return fmt.Sprintf("2xx and %s == %s", w.w.SuccessField, w.want())
}

// want is the value the field must hold.
func (w *webhookCheck) want() string {
	if w.w.SuccessValue == "" {
		return "true"
	}
	return w.w.SuccessValue
}

// Measure posts the context once: a 2xx answer (with the field, when named, holding its value) passes; any other
// status fails; no answer (refused, timed out) or an answer that cannot be judged is an error.
func (w *webhookCheck) Measure(ctx context.Context, now time.Time) (evidence.Measurement, error) {
	m := measurement(w, now)
	m.Query = w.Query()
	w.n++
	body, err := w.body(now)
	if err != nil {
		return m, err
	}
	start := time.Now()
	code, answer, long, err := w.post(ctx, body)
	latency := time.Since(start).Round(time.Millisecond)
	if err != nil {
		return m, fmt.Errorf("webhook %s: %s (after %s)", w.w.Name, step.Redact(tlsHint(err, "HTTP_CA_FILE")), latency)
	}
	m.Value = float64(code)
	m.Text = fmt.Sprintf("%d in %s", code, latency)
	if code < 200 || code > 299 {
		m.Status, m.Detail = evidence.Fail, fmt.Sprintf("webhook %s answered %d (not 2xx) in %s: %s", w.w.Name, code, latency, snippet(answer))
		return m, nil
	}
	if w.w.field == nil {
		m.Status = evidence.Pass
		return m, nil
	}
	if long {
		return m, fmt.Errorf("webhook %s: the answer is longer than %d KiB: %s is not looked for", w.w.Name, maxWebhookBody>>10, w.w.SuccessField)
	}
	got, err := fieldValue(w.w.field, answer)
	if err != nil {
		return m, fmt.Errorf("webhook %s answered %d, but %s: %v; answer: %s", w.w.Name, code, w.w.SuccessField, err, snippet(answer))
	}
	m.Text += fmt.Sprintf(", %s = %s", w.w.SuccessField, got)
	if got != w.want() {
		m.Status, m.Detail = evidence.Fail, fmt.Sprintf("webhook %s: %s is %q, not %q", w.w.Name, w.w.SuccessField, got, w.want())
		return m, nil
	}
	m.Status = evidence.Pass
	return m, nil
}

// body is the JSON context of measurement n.
func (w *webhookCheck) body(now time.Time) ([]byte, error) {
	c := w.context
	c.Measurement, c.Time = w.n, now.UTC()
	return json.Marshal(c)
}

// post sends body, and returns the status and the answer read up to maxWebhookBody (cut says it was longer).
func (w *webhookCheck) post(ctx context.Context, body []byte) (code int, answer []byte, cut bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.w.u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range w.w.headers {
		req.Header.Set(k, v)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, nil, false, err
	}
	defer resp.Body.Close()
	answer, err = io.ReadAll(io.LimitReader(resp.Body, maxWebhookBody+1))
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, nil, false, fmt.Errorf("read the answer: %w", err)
	}
	if len(answer) > maxWebhookBody {
		answer, cut = answer[:maxWebhookBody], true
	}
	return resp.StatusCode, answer, cut, nil
}

// fieldValue is the field's value in the JSON answer, as text ("true", "ok", "3").
func fieldValue(jp *jsonpath.JSONPath, answer []byte) (string, error) {
	var doc any
	if err := json.Unmarshal(answer, &doc); err != nil {
		return "", fmt.Errorf("the answer is not JSON: %v", err)
	}
	results, err := jp.FindResults(doc)
	if err != nil {
		return "", err
	}
	var vals []string
	for _, rs := range results {
		for _, r := range rs {
			if !r.IsValid() || !r.CanInterface() {
				continue
			}
			switch v := r.Interface().(type) {
			case string:
				vals = append(vals, v)
			default:
				b, _ := json.Marshal(v)
				vals = append(vals, string(b))
			}
		}
	}
	if len(vals) == 0 {
		return "", fmt.Errorf("not in the answer")
	}
	return strings.Join(vals, " "), nil
}

// snippet is the start of a webhook's answer, for the evidence.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "(empty answer)"
	}
	return cut(strings.Join(strings.Fields(s), " "), 200)
}

// newWebhookClient is the webhooks' client: TLS as the HTTP probes' (HTTP_CA_FILE, INSECURE_SKIP_TLS_VERIFY), and
// no redirects followed (a redirect is an answer that is not 2xx).
func newWebhookClient(cfg *Config) (*http.Client, error) {
	c, err := newHTTPClient(cfg.HTTPCAFile, cfg.InsecureSkipTLSVerify, 0)
	if err != nil {
		return nil, err
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c, nil
}
