// Package notify tells people how a release ended: promote-or-rollback (and verify-health on an unhealthy
// verdict) post one message per outcome to Slack, Microsoft Teams or a generic JSON webhook. The webhook's URL is
// a credential: it comes from a Secret (NOTIFY_URL, set by the Task from secretKeyRef), never from a param, and
// never appears in a log line, a result or an error. A notification that cannot be sent is a warning: it never
// fails a release.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/canaryline/canaryline/internal/runtime/step"
)

// Formats of the message.
const (
	FormatAuto    = "auto"    // from the URL's host: Slack's and Teams' (Power Automate or Office 365) webhooks, else webhook
	FormatSlack   = "slack"   // a Slack incoming webhook: text and Block Kit blocks
	FormatTeams   = "teams"   // a Microsoft Teams workflow webhook: an Adaptive Card
	FormatWebhook = "webhook" // canaryline's own JSON object (Event)
)

// Config is what promote-or-rollback and verify-health read about notifications.
type Config struct {
	// URL is the webhook, from a Secret: the Tasks set it from the key "url" of the Secret NOTIFY_SECRET names. Empty
	// sends nothing.
	URL string `env:"NOTIFY_URL"`
	// Format is the message's shape: auto, slack, teams or webhook.
	Format string `env:"NOTIFY_FORMAT, default=auto"`
	// ConsoleURL is the OpenShift web console's address, for a link to the PipelineRun (empty: no link).
	ConsoleURL string `env:"CONSOLE_URL"`
	// PipelineRun is the PipelineRun the step runs in ($(context.pipelineRun.name)); empty off Tekton.
	PipelineRun string `env:"PIPELINE_RUN"`
}

// Validate checks the params (NOTIFY_FORMAT, CONSOLE_URL) and, without ever printing it, the URL the Secret gave.
func (c *Config) Validate() error {
	switch c.Format {
	case FormatAuto, FormatSlack, FormatTeams, FormatWebhook:
	default:
		return step.Invalid("NOTIFY_FORMAT", `say "auto", "slack", "teams" or "webhook"`, "unknown format %q", c.Format)
	}
	if c.ConsoleURL != "" {
		if u, err := url.Parse(c.ConsoleURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return step.Invalid("CONSOLE_URL", "give the console's address, such as https://console-openshift-console.apps.example.com",
				"%q is not an absolute http(s) URL", c.ConsoleURL)
		}
	}
	if c.URL != "" {
		if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return step.Invalid("NOTIFY_URL", "put the webhook's absolute https URL under the key url of the Secret NOTIFY_SECRET names",
				"the Secret's url is not an absolute http(s) URL (not shown: it is a credential)")
		}
	}
	return nil
}

// Enabled says whether a webhook is configured.
func (c *Config) Enabled() bool { return c.URL != "" }

// Event is one outcome of a release, and the JSON object the webhook format posts.
type Event struct {
	// Kind is "promoted", "rolled-back", "unhealthy" (verify-health's verdict) or "awaiting-approval".
	Kind      string `json:"event"`
	App       string `json:"app"`
	Namespace string `json:"namespace"`
	Release   string `json:"release"`
	// Image is the released image; StableImage is the one the application runs after the outcome.
	Image       string `json:"image,omitempty"`
	StableImage string `json:"stableImage,omitempty"`
	// Weight is the canary's share when the verdict was given, for "unhealthy".
	Weight string `json:"weight,omitempty"`
	// Reason is the verdict's or the decision's reason.
	Reason      string    `json:"reason"`
	PipelineRun string    `json:"pipelineRun,omitempty"`
	Link        string    `json:"link,omitempty"`
	Time        time.Time `json:"time"`
}

// Event kinds.
const (
	Promoted   = "promoted"
	RolledBack = "rolled-back"
	Unhealthy  = "unhealthy"
	// AwaitingApproval is a healthy canary whose release waits for a person's answer (verify-health's gate).
	AwaitingApproval = "awaiting-approval"
)

// Sender posts events. Its client has a short timeout; Attempts bounds the tries of one event.
type Sender struct {
	Config
	Client   *http.Client
	Attempts int
	// Backoff is the wait before the second try, doubled before each next one.
	Backoff time.Duration
	Log     *slog.Logger
}

// New is a Sender for cfg: 10 s a request, 3 tries, 1 s then 2 s between them.
func New(cfg Config, log *slog.Logger) *Sender {
	return &Sender{Config: cfg, Client: &http.Client{Timeout: 10 * time.Second}, Attempts: 3, Backoff: time.Second, Log: log}
}

// Send posts e when a webhook is configured, and logs what happened. It never fails: an error is a warning.
func (s *Sender) Send(ctx context.Context, e Event) {
	if !s.Enabled() {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.PipelineRun == "" {
		e.PipelineRun = s.PipelineRun
	}
	e.Link = s.link(e)
	format := s.format()
	body, err := Payload(format, e)
	if err == nil {
		err = s.post(ctx, body)
	}
	if err != nil {
		s.Log.Warn("notification not sent (the release goes on): "+err.Error(), "format", format, "event", e.Kind)
		return
	}
	s.Log.Info("notification sent", "format", format, "event", e.Kind)
}

// link is the PipelineRun's page in the OpenShift console, when both are known.
func (s *Sender) link(e Event) string {
	if s.ConsoleURL == "" || e.PipelineRun == "" || e.Namespace == "" {
		return ""
	}
	return strings.TrimRight(s.ConsoleURL, "/") + "/k8s/ns/" + url.PathEscape(e.Namespace) + "/tekton.dev~v1~PipelineRun/" + url.PathEscape(e.PipelineRun)
}

// format is the configured format, or the one the URL's host says for auto.
func (s *Sender) format() string {
	if s.Format != FormatAuto && s.Format != "" {
		return s.Format
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return FormatWebhook
	}
	host := strings.ToLower(u.Hostname())
	switch {
	case host == "hooks.slack.com":
		return FormatSlack
	case strings.HasSuffix(host, ".webhook.office.com") || strings.HasSuffix(host, ".logic.azure.com") ||
		strings.HasSuffix(host, ".powerplatform.com"):
		return FormatTeams
	}
	return FormatWebhook
}

// post sends body, trying again after a connection error, 429 or 5xx, at most Attempts times. Errors never
// carry the URL.
func (s *Sender) post(ctx context.Context, body []byte) error {
	wait := s.Backoff
	var err error
	for i := 0; i < max(s.Attempts, 1); i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (after %d tries)", err, i)
			case <-time.After(wait):
			}
			wait *= 2
		}
		var again bool
		if again, err = s.postOnce(ctx, body); err == nil || !again {
			return err
		}
	}
	return fmt.Errorf("%w (after %d tries)", err, max(s.Attempts, 1))
}

// postOnce sends body once; again says whether the failure may pass.
func (s *Sender) postOnce(ctx context.Context, body []byte) (again bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return false, errors.New("the webhook URL cannot be requested")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error prints the URL, a credential
		}
		return true, fmt.Errorf("the webhook did not answer: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	again = resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
	return again, fmt.Errorf("the webhook answered HTTP %d", resp.StatusCode)
}

// Payload is e as format posts it.
func Payload(format string, e Event) ([]byte, error) {
	switch format {
	case FormatSlack:
		return json.Marshal(slack(e))
	case FormatTeams:
		return json.Marshal(teams(e))
	case FormatWebhook:
		return json.Marshal(e)
	}
	return nil, fmt.Errorf("unknown format %q", format)
}
