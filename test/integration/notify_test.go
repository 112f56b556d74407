package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// webhook is a team's chat webhook on 127.0.0.1: it keeps what is posted to its secret path and answers code.
type webhook struct {
	*httptest.Server
	mu    sync.Mutex
	posts []map[string]any
}

const webhookPath = "/services/T0/B0/secret-path-token"

func newWebhook(t *testing.T, code int) *webhook {
	w := &webhook{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		if r.Method != http.MethodPost || r.URL.Path != webhookPath || json.Unmarshal(body, &m) != nil {
			rw.WriteHeader(http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.posts = append(w.posts, m)
		w.mu.Unlock()
		rw.WriteHeader(code)
	}))
	t.Cleanup(w.Close)
	return w
}

func (w *webhook) got() []map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]map[string]any{}, w.posts...)
}

// noURL fails the test when a step printed the webhook's URL, a credential.
func noURL(t *testing.T, r stepRun) {
	t.Helper()
	if strings.Contains(r.stderr+r.stdout+strings.Join(mapValues(r.results), " "), "secret-path-token") {
		t.Errorf("the step printed the webhook's URL:\n%s%s", r.stderr, r.stdout)
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestNotifyTellsTheTeamOfEachOutcome: an unhealthy verdict, the rollback it leads to and a promotion are each
// posted once to the team's webhook (a rerun of promote-or-rollback posts nothing more), with the application, the
// release, the reason and a link to the PipelineRun in the console; the webhook's URL appears in no output.
func TestNotifyTellsTheTeamOfEachOutcome(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	hook := newWebhook(t, http.StatusOK)
	notifyEnv := map[string]string{"NOTIFY_URL": hook.URL + webhookPath, "NOTIFY_FORMAT": "webhook",
		"CONSOLE_URL": "https://console.apps.example.com", "PIPELINE_RUN": "shop-run-1"}
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	defer failing.Close()

	if r := a.shift(10, nil); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	verify := map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1", "INTERVAL": "1s", "COUNT": "3", "HTTP_URLS": failing.URL + "/"}
	for k, v := range notifyEnv {
		verify[k] = v
	}
	r := runStep(t, "verify-health", a.kubeconfig, verify)
	noURL(t, r)
	if r.code != 4 || r.results["VERDICT"] != "unhealthy" {
		t.Fatalf("verify-health: exit %d, %v; want 4, unhealthy", r.code, r.results)
	}
	decide := map[string]string{"DECISION": "auto", "PIPELINE_STATUS": "Failed", "VERDICT": "unhealthy"}
	for k, v := range notifyEnv {
		decide[k] = v
	}
	for i := 0; i < 2; i++ { // the second run finds the release ended and tells no one again
		r = a.decide(decide)
		noURL(t, r)
		if r.code != 0 || r.results["DECISION"] != "rollback" {
			t.Fatalf("decide #%d: exit %d, %v; want rollback", i+1, r.code, r.results)
		}
	}
	posts := hook.got()
	if len(posts) != 2 {
		t.Fatalf("%d posts: %v; want 2 (unhealthy, rolled-back)", len(posts), posts)
	}
	link := "https://console.apps.example.com/k8s/ns/" + a.ns + "/tekton.dev~v1~PipelineRun/shop-run-1"
	for i, want := range []map[string]any{
		{"event": "unhealthy", "app": "shop", "namespace": a.ns, "release": "shop-release-1", "weight": "10", "image": canaryImage, "link": link},
		{"event": "rolled-back", "app": "shop", "release": "shop-release-1", "image": canaryImage, "stableImage": stableImage, "link": link},
	} {
		for k, v := range want {
			if posts[i][k] != v {
				t.Errorf("post %d: %s = %v; want %v (%v)", i+1, k, posts[i][k], v, posts[i])
			}
		}
	}
	if reason, _ := posts[0]["reason"].(string); !strings.Contains(reason, "http") {
		t.Errorf("the unhealthy post's reason %q does not name the failed check", reason)
	}
	if reason, _ := posts[1]["reason"].(string); !strings.Contains(reason, "unhealthy") {
		t.Errorf("the rollback's reason %q does not say why", reason)
	}

	// A second release is promoted: one Slack message.
	slack := newWebhook(t, http.StatusOK)
	if r := a.shift(10, map[string]string{"RELEASE_ID": "shop-release-2"}); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	r = a.decide(map[string]string{"RELEASE_ID": "shop-release-2", "DECISION": "promote", "NOTIFY_URL": slack.URL + webhookPath, "NOTIFY_FORMAT": "slack"})
	noURL(t, r)
	if r.code != 0 || len(slack.got()) != 1 || slack.got()[0]["text"] != "shop in "+a.ns+": release shop-release-2 promoted" {
		t.Fatalf("promote: exit %d, Slack got %v", r.code, slack.got())
	}
}

// TestNotifyFailingWebhookNeverFailsTheRelease: a webhook that answers 500 is tried a bounded number of times and
// the rollback ends anyway, with a warning that does not show the URL; bad notification settings under
// DECISION=auto (a finally task) are a warning too, while an explicit decision refuses them with exit 2 and no
// change.
func TestNotifyFailingWebhookNeverFailsTheRelease(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	down := newWebhook(t, http.StatusInternalServerError)
	if r := a.shift(10, map[string]string{"RELEASE_ID": "shop-release-2"}); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	state := a.routerState()
	r := a.decide(map[string]string{"RELEASE_ID": "shop-release-2", "DECISION": "rollback", "NOTIFY_FORMAT": "email"})
	if r.code != 2 || !strings.Contains(r.stderr, "NOTIFY_FORMAT") || a.routerState() != state {
		t.Fatalf("explicit rollback with NOTIFY_FORMAT=email: exit %d; want 2 naming NOTIFY_FORMAT, the router unchanged", r.code)
	}
	r = a.decide(map[string]string{"RELEASE_ID": "shop-release-2", "DECISION": "auto", "PIPELINE_STATUS": "Failed",
		"NOTIFY_FORMAT": "webhook", "NOTIFY_URL": "not-a-url/secret-path-token"})
	noURL(t, r)
	if r.code != 0 || r.results["DECISION"] != "rollback" || !strings.Contains(r.stderr, "no notification") {
		t.Fatalf("finally with a bad NOTIFY_URL: exit %d, %v; want the rollback done and a warning", r.code, r.results)
	}

	if r := a.shift(10, map[string]string{"RELEASE_ID": "shop-release-3"}); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	r = a.decide(map[string]string{"RELEASE_ID": "shop-release-3", "DECISION": "auto", "PIPELINE_STATUS": "Failed",
		"NOTIFY_URL": down.URL + webhookPath})
	noURL(t, r)
	if r.code != 0 || r.results["DECISION"] != "rollback" || !strings.Contains(r.stderr, "notification not sent") || !strings.Contains(r.stderr, "HTTP 500") {
		t.Fatalf("rollback with the webhook down: exit %d, %v; want the rollback done and a warning", r.code, r.results)
	}
	if n := len(down.got()); n != 3 {
		t.Errorf("%d tries of the failing webhook; want 3", n)
	}
}
