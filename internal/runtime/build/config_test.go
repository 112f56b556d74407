package build

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"
	corev1 "k8s.io/api/core/v1"

	"github.com/canaryline/canaryline/internal/runtime/step"
)

func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestStartConfigValidation(t *testing.T) {
	t.Parallel()
	sha := strings.Repeat("a1", 20)
	tests := []struct {
		name      string
		env       map[string]string
		wantParam string // "" = valid
	}{
		{"minimal", map[string]string{"BUILD_CONFIG": "shop"}, ""},
		{"everything", map[string]string{"BUILD_CONFIG": "shop", "COMMIT": sha, "COMMIT_AUTHOR": "A <a@b.c>", "COMMIT_MESSAGE": "m",
			"BUILD_ENV": "A=1\n\n# x\nB=", "BUILD_ARGS": "V=2", "NO_CACHE": "true", "INCREMENTAL": "false",
			"PIPELINE_RUN": "shop-release-abc12", "TASK_RUN": "shop-release-abc12-start-build", "NAMESPACE": "team-a"}, ""},
		{"short sha", map[string]string{"BUILD_CONFIG": "shop", "COMMIT": "abc1234"}, ""},
		{"sha256 commit", map[string]string{"BUILD_CONFIG": "shop", "COMMIT": strings.Repeat("f", 64)}, ""},
		{"empty params are unset", map[string]string{"BUILD_CONFIG": "shop", "COMMIT": "", "INCREMENTAL": " ", "NO_CACHE": ""}, ""},
		{"no buildconfig", map[string]string{}, "BUILD_CONFIG"},
		{"uppercase name", map[string]string{"BUILD_CONFIG": "Shop"}, "BUILD_CONFIG"},
		{"name too long", map[string]string{"BUILD_CONFIG": strings.Repeat("a", 254)}, "BUILD_CONFIG"},
		{"invalid app as the buildconfig", map[string]string{"APP": "Shop"}, "param APP"},
		{"branch as commit", map[string]string{"BUILD_CONFIG": "shop", "COMMIT": "main"}, "COMMIT"},
		{"uppercase sha", map[string]string{"BUILD_CONFIG": "shop", "COMMIT": strings.ToUpper(sha)}, "COMMIT"},
		{"41 hex digits", map[string]string{"BUILD_CONFIG": "shop", "COMMIT": sha + "a"}, "COMMIT"},
		{"author without commit", map[string]string{"BUILD_CONFIG": "shop", "COMMIT_AUTHOR": "A"}, "COMMIT"},
		{"env line without =", map[string]string{"BUILD_CONFIG": "shop", "BUILD_ENV": "A=1\nB"}, "BUILD_ENV"},
		{"env bad name", map[string]string{"BUILD_CONFIG": "shop", "BUILD_ENV": "1A=1"}, "BUILD_ENV"},
		{"arg bad name", map[string]string{"BUILD_CONFIG": "shop", "BUILD_ARGS": "A B=1"}, "BUILD_ARGS"},
		{"incremental yes", map[string]string{"BUILD_CONFIG": "shop", "INCREMENTAL": "yes"}, "INCREMENTAL"},
		{"bad namespace", map[string]string{"BUILD_CONFIG": "shop", "NAMESPACE": "Team_A"}, "NAMESPACE"},
		{"bad pipelinerun", map[string]string{"BUILD_CONFIG": "shop", "PIPELINE_RUN": "$(context.pipelineRun.name)"}, "PIPELINE_RUN"},
		{"no-cache not a bool", map[string]string{"BUILD_CONFIG": "shop", "NO_CACHE": "sure"}, "NO_CACHE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := step.Load(context.Background(), lookup(tc.env), &StartConfig{})
			checkInvalid(t, err, tc.wantParam)
		})
	}
}

func TestWaitConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		env       map[string]string
		wantParam string
	}{
		{"build", map[string]string{"BUILD_NAME": "shop-3"}, ""},
		{"image by tag", map[string]string{"IMAGE": "quay.io/team/shop:v1.2"}, ""},
		{"image by digest", map[string]string{"IMAGE": "quay.io/team/shop@sha256:" + strings.Repeat("0", 64)}, ""},
		{"timeout", map[string]string{"BUILD_NAME": "shop-3", "TIMEOUT": "90s", "CANCEL_ON_STOP": "false"}, ""},
		{"neither", map[string]string{}, "BUILD_NAME"},
		{"both", map[string]string{"BUILD_NAME": "shop-3", "IMAGE": "quay.io/team/shop:v1"}, "IMAGE"},
		{"bad build name", map[string]string{"BUILD_NAME": "shop 3"}, "BUILD_NAME"},
		{"image not a reference", map[string]string{"IMAGE": "team shop"}, "IMAGE"},
		{"image without a tag", map[string]string{"IMAGE": "quay.io/team/shop"}, "IMAGE"},
		{"zero timeout", map[string]string{"BUILD_NAME": "shop-3", "TIMEOUT": "0s"}, "TIMEOUT"},
		{"negative timeout", map[string]string{"BUILD_NAME": "shop-3", "TIMEOUT": "-5m"}, "TIMEOUT"},
		{"timeout without unit", map[string]string{"BUILD_NAME": "shop-3", "TIMEOUT": "30"}, "TIMEOUT"},
		{"cancel not a bool", map[string]string{"BUILD_NAME": "shop-3", "CANCEL_ON_STOP": "maybe"}, "CANCEL_ON_STOP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := step.Load(context.Background(), lookup(tc.env), &WaitConfig{})
			checkInvalid(t, err, tc.wantParam)
		})
	}
}

// checkInvalid: a parse error (go-envconfig) or a validation error must name the param and be exit code 2.
func checkInvalid(t *testing.T, err error, param string) {
	t.Helper()
	if param == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error; want one naming %s", param)
	}
	if step.ExitCode(err) != step.ExitInvalid {
		t.Errorf("exit code %d for %v; want 2", step.ExitCode(err), err)
	}
	if !strings.Contains(err.Error(), param) {
		t.Errorf("error %q does not name %s", err, param)
	}
	var inv *step.InvalidError
	if errors.As(err, &inv) && inv.Param != "" && inv.Fix == "" {
		t.Errorf("error %q says no fix", err)
	}
}

func TestBuildRequest(t *testing.T) {
	t.Parallel()
	cfg := &StartConfig{BuildConfig: "shop", Commit: "abc1234", CommitAuthor: "Dev One <dev@example.com>", CommitMessage: "fix",
		BuildEnv: "A=1", BuildArgs: "V=2", NoCache: true, Incremental: "true", PipelineRun: "shop-release-1"}
	req, err := buildRequest(cfg, "shop", runKey("team", cfg))
	if err != nil {
		t.Fatal(err)
	}
	if g := req.Revision.Git; g.Commit != "abc1234" || g.Author.Name != "Dev One" || g.Author.Email != "dev@example.com" || g.Message != "fix" {
		t.Errorf("revision %+v", g)
	}
	if d := cmp.Diff([]corev1.EnvVar{{Name: "A", Value: "1"}}, req.Env); d != "" {
		t.Errorf("env: %s", d)
	}
	if o := req.DockerStrategyOptions; o == nil || !*o.NoCache || o.BuildArgs[0].Value != "2" {
		t.Errorf("docker options %+v", o)
	}
	if o := req.SourceStrategyOptions; o == nil || !*o.Incremental {
		t.Errorf("source options %+v", o)
	}
	if req.TriggeredBy[0].Message != "PipelineRun shop-release-1" || req.Labels[PipelineRunLabel] != "shop-release-1" {
		t.Errorf("triggeredBy %v labels %v", req.TriggeredBy, req.Labels)
	}
	if k := req.Labels[RunKeyLabel]; len(k) != 40 || k != runKey("team", cfg) {
		t.Errorf("run key %q", k)
	}
	other := *cfg
	other.Commit = "def5678"
	if runKey("team", &other) == runKey("team", cfg) || runKey("team", &StartConfig{BuildConfig: "shop"}) != "" {
		t.Error("the run key must change with the commit, and be empty without a run name")
	}
}

// The envconfig lookuper the steps use treats empty values as unset, so Tekton's empty defaults take the
// Config's defaults.
var _ envconfig.Lookuper = envconfig.LookuperFunc(nil)
