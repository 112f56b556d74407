package steps

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestNamesPipelineOrder(t *testing.T) {
	t.Parallel()
	want := []string{"start-build", "wait-build", "shift-canary", "verify-health", "promote-or-rollback"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %q, want %q", got, want)
	}
	// Names returns a copy: callers cannot reorder the steps.
	Names()[0] = "mutated"
	if got := Names()[0]; got != StartBuild {
		t.Fatalf("Names()[0] after mutating a previous result = %q, want %q", got, StartBuild)
	}
}

// echoStep records how it was called so tests can see the dispatch result.
func echoStep(name string, code int) Func {
	return func(_ context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
		v, ok := env("CANARYLINE_TEST")
		fmt.Fprintf(stdout, "%s %q env=%q,%t", name, args, v, ok)
		return code
	}
}

func TestDispatch(t *testing.T) {
	t.Parallel()
	reg := Table{ShiftCanary: echoStep(ShiftCanary, 0), VerifyHealth: echoStep(VerifyHealth, 7)}
	env := func(k string) (string, bool) {
		if k == "CANARYLINE_TEST" {
			return "yes", true
		}
		return "", false
	}

	tests := []struct {
		name       string
		argv0      string
		args       []string
		env        func(string) (string, bool)
		wantCode   int
		wantStdout string
		wantStderr string // substring; "" means stderr must be empty
	}{
		{
			name:       "symlink basename",
			argv0:      "/usr/local/bin/shift-canary",
			args:       []string{"--weight", "10"},
			env:        env,
			wantCode:   0,
			wantStdout: `shift-canary ["--weight" "10"] env="yes",true`,
		},
		{
			name:       "relative basename",
			argv0:      "verify-health",
			env:        env,
			wantCode:   7,
			wantStdout: `verify-health [] env="yes",true`,
		},
		{
			name:       "multi-call first argument",
			argv0:      "/usr/local/bin/canaryline-steps",
			args:       []string{"shift-canary", "a", "b"},
			env:        env,
			wantCode:   0,
			wantStdout: `shift-canary ["a" "b"] env="yes",true`,
		},
		{
			name:       "nil env is empty",
			argv0:      "canaryline-steps",
			args:       []string{"shift-canary"},
			wantCode:   0,
			wantStdout: `shift-canary [] env="",false`,
		},
		{
			name:       "list",
			argv0:      "./canaryline-steps",
			args:       []string{"--list", "ignored"},
			wantCode:   0,
			wantStdout: "start-build\nwait-build\nshift-canary\nverify-health\npromote-or-rollback\n",
		},
		{
			name:       "help",
			argv0:      "canaryline-steps",
			args:       []string{"--help"},
			wantCode:   0,
			wantStdout: "usage: canaryline-steps STEP [ARG...]",
		},
		{
			name:       "missing step name",
			argv0:      "canaryline-steps",
			wantCode:   ExitUsage,
			wantStderr: "canaryline: missing step name",
		},
		{
			name:       "unknown step via multi-call",
			argv0:      "canaryline-steps",
			args:       []string{"deploy"},
			wantCode:   ExitUsage,
			wantStderr: `canaryline: unknown step "deploy"; valid steps: start-build, wait-build, shift-canary, verify-health, promote-or-rollback`,
		},
		{
			name:       "unknown argv0",
			argv0:      "/tmp/go-build123/exe/main",
			args:       []string{"shift-canary"},
			wantCode:   ExitUsage,
			wantStderr: `canaryline: unknown step "main"; valid steps:`,
		},
		{
			name:       "empty argv0",
			argv0:      "",
			wantCode:   ExitUsage,
			wantStderr: `canaryline: unknown step "."`,
		},
		{
			name:       "multi-call name is not a step argument",
			argv0:      "canaryline-steps",
			args:       []string{"canaryline-steps", "shift-canary"},
			wantCode:   ExitUsage,
			wantStderr: `unknown step "canaryline-steps"`,
		},
		{
			name:       "known step without implementation",
			argv0:      "/usr/local/bin/start-build",
			wantCode:   ExitNotImplemented,
			wantStderr: `canaryline: step "start-build" is not implemented in this build`,
		},
		{
			name:       "not implemented via multi-call",
			argv0:      "canaryline-steps",
			args:       []string{"promote-or-rollback", "--dry-run"},
			wantCode:   ExitNotImplemented,
			wantStderr: `canaryline: step "promote-or-rollback" is not implemented in this build`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := reg.Dispatch(t.Context(), tt.argv0, tt.args, tt.env, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout = %q, want it to contain %q", stdout.String(), tt.wantStdout)
			}
			if tt.wantStdout == "" && stdout.Len() != 0 {
				t.Errorf("stdout = %q, want empty", stdout.String())
			}
			if tt.wantStderr == "" && stderr.Len() != 0 {
				t.Errorf("stderr = %q, want empty", stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

func TestEmptyTableReportsUnimplementedSteps(t *testing.T) {
	t.Parallel()
	// A table without the step must say so honestly instead of succeeding.
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := Table{}.Dispatch(t.Context(), "/usr/local/bin/"+name, nil, nil, &stdout, &stderr)
			if code != ExitNotImplemented {
				t.Fatalf("exit code = %d, want %d", code, ExitNotImplemented)
			}
			want := fmt.Sprintf("canaryline: step %q is not implemented in this build\n", name)
			if stderr.String() != want {
				t.Fatalf("stderr = %q, want %q", stderr.String(), want)
			}
			if stdout.Len() != 0 {
				t.Fatalf("stdout = %q, want empty", stdout.String())
			}
		})
	}
}

func TestDispatchPassesContext(t *testing.T) {
	t.Parallel()
	type key struct{}
	var got any
	reg := Table{WaitBuild: func(ctx context.Context, _ []string, _ func(string) (string, bool), _, _ io.Writer) int {
		got = ctx.Value(key{})
		return 0
	}}
	ctx := context.WithValue(t.Context(), key{}, "marker")
	if code := reg.Dispatch(ctx, "wait-build", nil, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("exit code = %d, want 0", code)
	}
	if got != "marker" {
		t.Fatalf("step saw context value %v, want %q", got, "marker")
	}
}

func TestTableCheck(t *testing.T) {
	t.Parallel()
	noop := func(context.Context, []string, func(string) (string, bool), io.Writer, io.Writer) int { return 0 }
	full := func() Table {
		t := Table{}
		for _, n := range Names() {
			t[n] = noop
		}
		return t
	}
	tests := []struct {
		name   string
		modify func(Table)
		want   string // "" means no error
	}{
		{name: "every step", modify: func(Table) {}},
		{name: "unknown step", modify: func(t Table) { t["deploy"] = noop }, want: `"deploy": unknown step`},
		{name: "nil func", modify: func(t Table) { t[StartBuild] = nil }, want: `"start-build": nil step func`},
		{name: "missing step", modify: func(t Table) { delete(t, WaitBuild); delete(t, VerifyHealth) }, want: `not in the table: wait-build, verify-health`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tab := full()
			tt.modify(tab)
			err := tab.Check()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check() = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestIsStep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want bool
	}{
		{"start-build", true},
		{"promote-or-rollback", true},
		{"canaryline-steps", false},
		{"", false},
		{"Start-Build", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := IsStep(tt.name); got != tt.want {
				t.Fatalf("IsStep(%q) = %t, want %t", tt.name, got, tt.want)
			}
		})
	}
}
