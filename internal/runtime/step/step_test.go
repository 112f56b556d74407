package step

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Common
	Name    string        `env:"NAME"`
	Count   int           `env:"COUNT, default=3"`
	Wait    time.Duration `env:"WAIT, default=1m"`
	Enabled bool          `env:"ENABLED, default=true"`
}

func (c *testConfig) Validate() error {
	if c.Name == "" {
		return Invalid("NAME", "give a name", "is required")
	}
	return nil
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    testConfig
		wantErr string
	}{
		{"defaults", map[string]string{"NAME": "x"}, testConfig{Common: Common{ResultsDir: "/tekton/results"}, Name: "x", Count: 3, Wait: time.Minute, Enabled: true}, ""},
		{"empty is unset", map[string]string{"NAME": "x", "COUNT": "", "WAIT": " "}, testConfig{Common: Common{ResultsDir: "/tekton/results"}, Name: "x", Count: 3, Wait: time.Minute, Enabled: true}, ""},
		{"values", map[string]string{"NAME": " x ", "COUNT": "5", "ENABLED": "false", "DEBUG": "true", "RESULTS_DIR": "/r"}, testConfig{Common: Common{ResultsDir: "/r", Debug: true}, Name: "x", Count: 5, Wait: time.Minute}, ""},
		{"validation", map[string]string{}, testConfig{}, "param NAME: is required; give a name"},
		{"bad int names the param", map[string]string{"NAME": "x", "COUNT": "three"}, testConfig{}, "param COUNT: "},
		{"bad duration names the param", map[string]string{"NAME": "x", "WAIT": "10"}, testConfig{}, "param WAIT: "},
		{"bad bool names the param and the fix", map[string]string{"NAME": "x", "DEBUG": "yes"}, testConfig{}, `say "true" or "false"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got testConfig
			err := Load(context.Background(), env(tc.env), &got)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || ExitCode(err) != ExitInvalid {
					t.Fatalf("error %v (exit %d); want exit 2 containing %q", err, ExitCode(err), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v; want %+v", got, tc.want)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	for err, want := range map[error]int{
		nil:                ExitOK,
		errors.New("boom"): ExitError,
		fmt.Errorf("x: %w", Invalid("A", "", "")): ExitInvalid,
		fmt.Errorf("x: %w", Failed("unhealthy")):  ExitFailed,
	} {
		if got := ExitCode(err); got != want {
			t.Errorf("ExitCode(%v) = %d; want %d", err, got, want)
		}
	}
}

func TestResults(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := (Results{Dir: dir}).Write(map[string]string{"A": "1", "B": "two"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "B")); string(b) != "two" {
		t.Errorf("B = %q", b)
	}
	if err := (Results{Dir: dir}).Write(map[string]string{"BIG": strings.Repeat("x", 2000)}); err == nil {
		t.Error("a 2000-byte result was written; results must stay small")
	}
	if err := (Results{Dir: dir}).Write(map[string]string{"A": strings.Repeat("x", 1000), "B": strings.Repeat("x", 1000),
		"C": strings.Repeat("x", 1000), "D": strings.Repeat("x", 1000)}); err == nil {
		t.Error("4000 bytes of results were written; together they must stay under 3072")
	}
	if err := (Results{}).Write(map[string]string{"A": "1"}); err != nil {
		t.Errorf("no results dir: %v", err)
	}
}

func TestMainMapsOutcomes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		env      map[string]string
		runErr   error
		wantCode int
		wantLog  string
		args     []string
	}{
		{"ok", map[string]string{"NAME": "x"}, nil, ExitOK, "ran name=x\n", nil},
		{"bad input never runs", map[string]string{}, nil, ExitInvalid, "ERROR param NAME: is required; give a name\n", nil},
		{"verdict", map[string]string{"NAME": "x"}, Failed("canary unhealthy"), ExitFailed, "ERROR failed: canary unhealthy\n", nil},
		{"error", map[string]string{"NAME": "x"}, errors.New("api down"), ExitError, "ERROR api down\n", nil},
		{"arguments are refused before anything runs", map[string]string{"NAME": "x"}, nil, ExitInvalid,
			"ERROR unexpected arguments \"--app\" \"shop\"; the steps take no arguments: set their params as environment variables (APP=shop, not --app shop)\n",
			[]string{"--app", "shop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tc.env["RESULTS_DIR"] = dir
			var stderr bytes.Buffer
			code := Main(context.Background(), IO{Stdout: &bytes.Buffer{}, Stderr: &stderr, Env: env(tc.env), Args: tc.args}, &testConfig{},
				func(ctx context.Context, c *testConfig, log *slog.Logger) (map[string]string, error) {
					if tc.args != nil {
						t.Error("ran with arguments")
					}
					if tc.runErr == nil {
						log.Info("ran", "name", c.Name)
					}
					return map[string]string{"OUT": "v"}, tc.runErr
				})
			if code != tc.wantCode || !strings.HasSuffix(stderr.String(), tc.wantLog) {
				t.Errorf("exit %d log %q; want %d %q", code, stderr.String(), tc.wantCode, tc.wantLog)
			}
		})
	}
}

func TestLoggerLines(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	log := NewLogger(&b, false).With("app", "shop")
	log.Info("set weight", "weight", 10, "route", "shop")
	log.Debug("hidden")
	log.Warn("share differs", "message", "a b")
	want := "set weight app=shop weight=10 route=shop\nWARN share differs app=shop message=\"a b\"\n"
	if b.String() != want {
		t.Errorf("got %q; want %q", b.String(), want)
	}
}
