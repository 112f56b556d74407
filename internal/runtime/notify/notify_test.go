package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canaryline/canaryline/internal/runtime/step"
)

// hook is a webhook on 127.0.0.1 that answers with codes in turn (the last one from then on) and keeps the bodies.
type hook struct {
	*httptest.Server
	mu     sync.Mutex
	codes  []int
	bodies [][]byte
}

func newHook(t *testing.T, codes ...int) *hook {
	h := &hook{codes: codes}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.bodies = append(h.bodies, body)
		code := h.codes[min(len(h.bodies), len(h.codes))-1]
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			code = http.StatusBadRequest
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) got() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bodies
}

func sender(url, format string, log *bytes.Buffer) *Sender {
	s := New(Config{URL: url, Format: format, ConsoleURL: "https://console.apps.example.com/", PipelineRun: "shop-run-1"},
		slog.New(slog.NewTextHandler(log, nil)))
	s.Backoff = time.Millisecond
	return s
}

var rolledBack = Event{Kind: RolledBack, App: "shop", Namespace: "team", Release: "shop-run-1", Image: "registry/shop@sha256:2",
	StableImage: "registry/shop@sha256:1", Reason: "verify-health found the canary unhealthy"}

func TestNotifyWebhookPostsTheEventOnce(t *testing.T) {
	h := newHook(t, http.StatusNoContent)
	var log bytes.Buffer
	sender(h.URL+"/secret-path-token", FormatAuto, &log).Send(context.Background(), rolledBack)
	bodies := h.got()
	if len(bodies) != 1 {
		t.Fatalf("%d posts; want 1", len(bodies))
	}
	var e Event
	if err := json.Unmarshal(bodies[0], &e); err != nil {
		t.Fatal(err)
	}
	if e.Kind != RolledBack || e.App != "shop" || e.Release != "shop-run-1" || e.StableImage != "registry/shop@sha256:1" ||
		e.Reason != rolledBack.Reason || e.Time.IsZero() ||
		e.Link != "https://console.apps.example.com/k8s/ns/team/tekton.dev~v1~PipelineRun/shop-run-1" {
		t.Errorf("posted %+v", e)
	}
	if !strings.Contains(log.String(), "notification sent") || strings.Contains(log.String(), "secret-path-token") {
		t.Errorf("log: %s", log.String())
	}
}

func TestNotifySlackAndTeamsShapes(t *testing.T) {
	e := rolledBack
	e.Link = "https://console/x"
	var slack struct {
		Text   string
		Blocks []struct {
			Type     string
			Elements []struct{ URL string }
		}
	}
	data, _ := Payload(FormatSlack, e)
	if err := json.Unmarshal(data, &slack); err != nil {
		t.Fatal(err)
	}
	if slack.Text != "shop in team: release shop-run-1 rolled back" || len(slack.Blocks) != 3 || slack.Blocks[2].Elements[0].URL != e.Link {
		t.Errorf("slack: %s", data)
	}
	var teams struct {
		Type        string
		Attachments []struct {
			ContentType string
			Content     struct {
				Type string
				Body []struct {
					Type, Text string
					Facts      []struct{ Title, Value string }
				}
				Actions []struct{ Type, URL string }
			}
		}
	}
	data, _ = Payload(FormatTeams, e)
	if err := json.Unmarshal(data, &teams); err != nil {
		t.Fatal(err)
	}
	card := teams.Attachments[0].Content
	if teams.Type != "message" || teams.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" || card.Type != "AdaptiveCard" ||
		card.Body[0].Text != slack.Text || card.Body[1].Facts[0].Value != e.Reason || card.Actions[0].URL != e.Link {
		t.Errorf("teams: %s", data)
	}
}

func TestNotifyAutoFormatFromTheHost(t *testing.T) {
	for url, want := range map[string]string{
		"https://hooks.slack.com/services/T/B/x":                         FormatSlack,
		"https://team.webhook.office.com/webhookb2/x":                    FormatTeams,
		"https://prod-1.westeurope.logic.azure.com:443/workflows/x":      FormatTeams,
		"https://default1.environment.api.powerplatform.com/powerauto/x": FormatTeams,
		"https://alerts.example.com/hook":                                FormatWebhook,
	} {
		if got := (&Sender{Config: Config{URL: url, Format: FormatAuto}}).format(); got != want {
			t.Errorf("%s: %s; want %s", url, got, want)
		}
	}
	if got := (&Sender{Config: Config{URL: "https://hooks.slack.com/x", Format: FormatWebhook}}).format(); got != FormatWebhook {
		t.Errorf("an explicit format is %s", got)
	}
}

func TestNotifyFailureIsAWarningAndTriesABoundedNumberOfTimes(t *testing.T) {
	h := newHook(t, http.StatusServiceUnavailable)
	var log bytes.Buffer
	sender(h.URL+"/secret-path-token", FormatWebhook, &log).Send(context.Background(), rolledBack)
	if n := len(h.got()); n != 3 {
		t.Errorf("%d tries on 503; want 3", n)
	}
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "HTTP 503") || strings.Contains(log.String(), "secret-path-token") {
		t.Errorf("log: %s", log.String())
	}

	h = newHook(t, http.StatusServiceUnavailable, http.StatusOK)
	log.Reset()
	sender(h.URL, FormatWebhook, &log).Send(context.Background(), rolledBack)
	if n := len(h.got()); n != 2 || !strings.Contains(log.String(), "notification sent") {
		t.Errorf("%d tries, log %s; want sent on the second", n, log.String())
	}

	h = newHook(t, http.StatusForbidden)
	log.Reset()
	sender(h.URL, FormatWebhook, &log).Send(context.Background(), rolledBack)
	if n := len(h.got()); n != 1 {
		t.Errorf("%d tries on 403; want 1 (it will not pass)", n)
	}

	// Nothing listens: the error says so without the URL.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	log.Reset()
	sender(dead.URL+"/secret-path-token", FormatWebhook, &log).Send(context.Background(), rolledBack)
	if !strings.Contains(log.String(), "did not answer") || strings.Contains(log.String(), "secret-path-token") {
		t.Errorf("log: %s", log.String())
	}
}

func TestNotifyNothingWithoutAURL(t *testing.T) {
	var log bytes.Buffer
	sender("", FormatAuto, &log).Send(context.Background(), rolledBack)
	if log.Len() != 0 {
		t.Errorf("log: %s", log.String())
	}
}

func TestNotifyValidateNamesTheParamAndHidesTheURL(t *testing.T) {
	for _, c := range []struct {
		cfg   Config
		param string
	}{
		{Config{Format: "email"}, "NOTIFY_FORMAT"},
		{Config{Format: FormatAuto, ConsoleURL: "console.example.com"}, "CONSOLE_URL"},
		{Config{Format: FormatAuto, URL: "hooks.slack.com/services/secret-path-token"}, "NOTIFY_URL"},
	} {
		err := c.cfg.Validate()
		if step.ExitCode(err) != step.ExitInvalid || !strings.Contains(err.Error(), c.param) || strings.Contains(err.Error(), "secret-path-token") {
			t.Errorf("%+v: %v (exit %d); want exit 2 naming %s", c.cfg, err, step.ExitCode(err), c.param)
		}
	}
	if err := (&Config{Format: FormatAuto, URL: "https://hooks.slack.com/x"}).Validate(); err != nil {
		t.Error(err)
	}
}
