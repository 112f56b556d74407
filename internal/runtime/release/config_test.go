package release

import (
	"context"
	"strings"
	"testing"

	"github.com/canaryline/canaryline/internal/runtime/step"
)

const img = "quay.io/team/shop@sha256:2222222222222222222222222222222222222222222222222222222222222222"

func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func with(base map[string]string, kv ...string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestShiftConfigValidation(t *testing.T) {
	t.Parallel()
	ok := map[string]string{"APP": "shop", "IMAGE": img, "WEIGHT": "10"}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		param string
	}{
		{"minimal", ok, ""},
		{"all", with(ok, "ROUTER", "httproute", "ROUTER_NAME", "shop-gw", "CANARY_REPLICAS", "25%", "BASELINE", "true",
			"READY_TIMEOUT", "2m", "RELEASE_ID", "shop-release-x", "LOCK_TTL", "15m", "CONTAINER", "app", "STABLE_SERVICE", "shop-svc",
			"TASKRUN_NAME", "shop-release-x-shift-1"), ""},
		{"match and mirror", with(ok, "ROUTER", "istio", "WEIGHT", "0", "MATCH", "header X-Canary: always\ncookie canary=always", "MIRROR", "20"), ""},
		{"test route", with(ok, "MATCH", "header X-Canary ~ ^(yes|1)$", "TEST_HOST", "shop-test.apps.example.com"), ""},
		{"bad match", with(ok, "MATCH", "X-Canary: always"), "MATCH"},
		{"match on replicas", with(ok, "ROUTER", "replicas", "MATCH", "header X-Canary: always"), "MATCH"},
		{"mirror over 100", with(ok, "ROUTER", "httproute", "MIRROR", "101"), "MIRROR"},
		{"mirror on route", with(ok, "MIRROR", "5"), "MIRROR"},
		{"test host without a domain", with(ok, "TEST_HOST", "shop-test"), "TEST_HOST"},
		{"test host on nginx", with(ok, "ROUTER", "nginx", "TEST_HOST", "shop-test.example.com"), "TEST_HOST"},
		{"no app", with(ok, "APP", ""), "APP"},
		{"bad app", with(ok, "APP", "Shop"), "APP"},
		{"app too long", with(ok, "APP", strings.Repeat("a", 51)), "APP"},
		{"no image", with(ok, "IMAGE", ""), "IMAGE"},
		{"image by tag", with(ok, "IMAGE", "quay.io/team/shop:v2"), "IMAGE"},
		{"short digest", with(ok, "IMAGE", "quay.io/team/shop@sha256:abc"), "IMAGE"},
		{"no weight", with(ok, "WEIGHT", ""), "WEIGHT"},
		{"weight over 100", with(ok, "WEIGHT", "101"), "WEIGHT"},
		{"negative weight", with(ok, "WEIGHT", "-1"), "WEIGHT"},
		{"fractional weight", with(ok, "WEIGHT", "2.5"), "WEIGHT"},
		{"unknown router", with(ok, "ROUTER", "traefik"), "ROUTER"},
		{"bad router name", with(ok, "ROUTER_NAME", "Shop Route"), "ROUTER_NAME"},
		{"baseline doubles the weight", with(ok, "BASELINE", "true", "WEIGHT", "60"), "WEIGHT"},
		{"replicas cannot reach 100", with(ok, "ROUTER", "replicas", "WEIGHT", "100"), "WEIGHT"},
		{"nginx has no baseline", with(ok, "ROUTER", "nginx", "BASELINE", "true"), "BASELINE"},
		{"zero replicas", with(ok, "CANARY_REPLICAS", "0"), "CANARY_REPLICAS"},
		{"replicas share over 100", with(ok, "CANARY_REPLICAS", "150%"), "CANARY_REPLICAS"},
		{"replicas words", with(ok, "CANARY_REPLICAS", "two"), "CANARY_REPLICAS"},
		{"zero ready timeout", with(ok, "READY_TIMEOUT", "0s"), "READY_TIMEOUT"},
		{"ready timeout without unit", with(ok, "READY_TIMEOUT", "300"), "READY_TIMEOUT"},
		{"lock ttl too short", with(ok, "LOCK_TTL", "1s"), "LOCK_TTL"},
		{"bad release id", with(ok, "RELEASE_ID", "$(context.pipelineRun.name)"), "RELEASE_ID"},
		{"baseline not a bool", with(ok, "BASELINE", "yes"), "BASELINE"},
		{"bad namespace", with(ok, "NAMESPACE", "Team"), "NAMESPACE"},
		{"taskrun name not substituted", with(ok, "TASKRUN_NAME", "$(context.taskRun.name)"), "TASKRUN_NAME"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkInvalid(t, step.Load(context.Background(), lookup(tc.env), &ShiftConfig{}), tc.param)
		})
	}
}

func TestDecideConfigValidation(t *testing.T) {
	t.Parallel()
	ok := map[string]string{"APP": "shop", "DECISION": "auto", "PIPELINE_STATUS": "Succeeded"}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		param string
	}{
		{"auto", ok, ""},
		{"promote without status", map[string]string{"APP": "shop", "DECISION": "promote"}, ""},
		{"rollback with reason", map[string]string{"APP": "shop", "DECISION": "rollback", "REASON": "manual"}, ""},
		{"unknown decision", with(ok, "DECISION", "abort"), "DECISION"},
		{"auto without status", map[string]string{"APP": "shop"}, "PIPELINE_STATUS"},
		{"unknown status", with(ok, "PIPELINE_STATUS", "Success"), "PIPELINE_STATUS"},
		{"unknown verdict", with(ok, "VERDICT", "pass"), "VERDICT"},
		{"zero rollout timeout", with(ok, "ROLLOUT_TIMEOUT", "0s"), "ROLLOUT_TIMEOUT"},
		{"long reason", with(ok, "REASON", strings.Repeat("x", 501)), "REASON"},
		{"no app", with(ok, "APP", ""), "APP"},
		{"unknown notify format, asked to promote", map[string]string{"APP": "shop", "DECISION": "promote", "NOTIFY_FORMAT": "email"}, "NOTIFY_FORMAT"},
		{"relative console URL, asked to roll back", map[string]string{"APP": "shop", "DECISION": "rollback", "CONSOLE_URL": "console"}, "CONSOLE_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkInvalid(t, step.Load(context.Background(), lookup(tc.env), &DecideConfig{}), tc.param)
		})
	}
}

// TestDecideNotifySettingsNeverStopAFinallyTask: under DECISION=auto (the finally task that must end the
// release), bad notification settings are set aside with the reason, and nothing will be posted.
func TestDecideNotifySettingsNeverStopAFinallyTask(t *testing.T) {
	t.Parallel()
	cfg := &DecideConfig{}
	env := map[string]string{"APP": "shop", "DECISION": "auto", "PIPELINE_STATUS": "Failed", "NOTIFY_URL": "hooks/secret-token",
		"NOTIFY_FORMAT": "slack", "CONSOLE_URL": "https://console.example.com", "PIPELINE_RUN": "shop-run-1"}
	if err := step.Load(context.Background(), lookup(env), cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.NotifyProblem == nil || !strings.Contains(cfg.NotifyProblem.Error(), "NOTIFY_URL") || cfg.Notify.Enabled() {
		t.Errorf("problem %v, enabled %v; want NOTIFY_URL set aside", cfg.NotifyProblem, cfg.Notify.Enabled())
	}
	if cfg.Notify.Format != "slack" || cfg.Notify.ConsoleURL != "https://console.example.com" || cfg.Notify.PipelineRun != "shop-run-1" {
		t.Errorf("notify config %+v: the env did not reach it", cfg.Notify)
	}
}

func checkInvalid(t *testing.T, err error, param string) {
	t.Helper()
	if param == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil || step.ExitCode(err) != step.ExitInvalid || !strings.Contains(err.Error(), param) {
		t.Fatalf("error %v (exit %d); want exit 2 naming %s", err, step.ExitCode(err), param)
	}
}

func TestAutoDecision(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status, verdict, reason, want string
	}{
		{"Succeeded", "healthy", "", DecisionPromote},
		{"Completed", "", "", DecisionPromote},
		{"Succeeded", "unhealthy", "", DecisionRollback},
		{"Succeeded", "inconclusive", "", DecisionRollback},
		{"Failed", "healthy", "", DecisionRollback},
		{"None", "", "", DecisionRollback},
		{"Failed", "", "error rate", DecisionRollback},
	} {
		cfg := &DecideConfig{Decision: DecisionAuto, PipelineStatus: tc.status, Verdict: tc.verdict, Reason: tc.reason}
		got, why := decision(cfg)
		if got != tc.want || why == "" || (tc.reason != "" && !strings.HasPrefix(why, tc.reason)) {
			t.Errorf("auto(%s, %q) = %s (%s); want %s", tc.status, tc.verdict, got, why, tc.want)
		}
	}
	if got, _ := decision(&DecideConfig{Decision: DecisionRollback, PipelineStatus: "Succeeded", Verdict: "healthy"}); got != DecisionRollback {
		t.Errorf("an explicit rollback was overridden: %s", got)
	}
}

func TestReplicasFor(t *testing.T) {
	t.Parallel()
	for spec, want := range map[string]int32{"1": 1, "3": 3, "25%": 3, "10%": 1, "1%": 1, "100%": 10} {
		if got := replicasFor(spec, 10); got != want {
			t.Errorf("replicasFor(%q, 10) = %d; want %d", spec, got, want)
		}
	}
}
