package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/canaryline/canaryline/internal/runtime/steps"
)

// forbiddenDeps are import path prefixes the step binary must not link.
var forbiddenDeps = []struct {
	prefix string
	why    string
}{
	{"github.com/tektoncd/", "the Tekton pipeline module would blow the 32 MB step image budget; steps talk to the API with client-go only"},
	{"k8s.io/client-go/kubernetes", "its typed clients link k8s.io/client-go/kubernetes/scheme, every API group (about 9 MB of the step image); use internal/runtime/kubeclient"},
	{"github.com/openshift/client-go/", "its clients link k8s.io/client-go/kubernetes/scheme through their apply configurations and discovery; use internal/runtime/osclient"},
	{"k8s.io/client-go/applyconfigurations/", "apply configurations link k8s.io/client-go/discovery and k8s.io/client-go/kubernetes/scheme"},
}

func TestNoForbiddenDependencies(t *testing.T) {
	t.Parallel()
	for _, dep := range goListDeps(t, ".") {
		for _, f := range forbiddenDeps {
			if strings.HasPrefix(dep, f.prefix) || strings.Contains(dep, "/vendor/"+f.prefix) {
				t.Errorf("cmd/canaryline-steps depends on %s: %s", dep, f.why)
			}
		}
	}
}

// module is this repository's module path.
const module = "github.com/canaryline/canaryline"

// runtimePackages are the step runtime: the only packages of this module that the step image links. The final
// layout keeps them under internal/runtime/; both places are accepted.
var runtimePackages = []string{"step", "steps", "release", "health", "build", "traffic", "stats", "evidence",
	"kubeclient", "osclient", "naming", "notify"}

// isRuntimePackage reports whether pkg (a package of this module) is a step-runtime package or one under it.
func isRuntimePackage(pkg string) bool {
	rel, ok := strings.CutPrefix(pkg, module+"/internal/")
	if !ok {
		return false
	}
	rel = strings.TrimPrefix(rel, "runtime/")
	top, _, _ := strings.Cut(rel, "/")
	return slices.Contains(runtimePackages, top)
}

// TestOnlyStepRuntimePackages keeps the tools and the development infrastructure out of the step image: of this
// module, cmd/canaryline-steps links only the step-runtime packages (plus the standard library and third-party
// modules).
func TestOnlyStepRuntimePackages(t *testing.T) {
	t.Parallel()
	for _, dep := range goListDeps(t, ".") {
		if dep == module+"/cmd/canaryline-steps" || !strings.HasPrefix(dep, module+"/") {
			continue
		}
		if !isRuntimePackage(dep) {
			t.Errorf("cmd/canaryline-steps depends on %s, which is not a step-runtime package (%s)", dep, strings.Join(runtimePackages, ", "))
		}
	}
}

// TestCanarylineShipsNoTestSupport keeps test support out of the shipped canaryline binary: no testing package,
// nothing under test/ and no devclustertest.
func TestCanarylineShipsNoTestSupport(t *testing.T) {
	t.Parallel()
	for _, dep := range goListDeps(t, "../canaryline") {
		switch {
		case dep == "testing" || strings.HasPrefix(dep, "testing/"):
			t.Errorf("cmd/canaryline links the %s package (test support belongs in _test.go files and devclustertest)", dep)
		case strings.HasPrefix(dep, module+"/test/"):
			t.Errorf("cmd/canaryline links %s, a package under test/", dep)
		case strings.HasSuffix(dep, "/devclustertest"):
			t.Errorf("cmd/canaryline links %s, test support for the local control plane", dep)
		}
	}
}

// TestTableHasEveryStep makes a step missing from the step image a test failure rather than exit 3 at run time.
func TestTableHasEveryStep(t *testing.T) {
	t.Parallel()
	if err := table.Check(); err != nil {
		t.Fatal(err)
	}
	for _, name := range steps.Names() {
		if table[name] == nil {
			t.Errorf("the step table lacks %s", name)
		}
	}
}

// goListDeps returns `go list -deps pkg` for linux without cgo, as the step image is built.
func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), goTool(t), "list", "-deps", pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr.String())
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatalf("go list -deps %s printed no packages", pkg)
	}
	return deps
}

// TestBinaryDispatch builds the real command and runs it the ways the step
// image does: as canaryline-steps STEP and through links named after steps.
func TestBinaryDispatch(t *testing.T) {
	t.Parallel()
	bin := buildCommand(t)
	dir := filepath.Dir(bin)

	tests := []struct {
		name       string
		path       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{
			name:       "list",
			path:       bin,
			args:       []string{"--list"},
			wantStdout: "start-build\nwait-build\nshift-canary\nverify-health\npromote-or-rollback\n",
		},
		{
			name:       "shift-canary by argument validates first",
			path:       bin,
			args:       []string{"shift-canary"},
			wantCode:   2,
			wantStderr: "ERROR param APP: is required; give the name of the application's stable Deployment\n",
		},
		{
			name:       "step by symlink",
			path:       filepath.Join(dir, "verify-health"),
			wantCode:   2,
			wantStderr: "ERROR param APP: is required; give the name of the application's stable Deployment\n",
		},
		{
			name:       "step by hardlink reaches the step, which validates its params first",
			path:       filepath.Join(dir, "wait-build"),
			wantCode:   2,
			wantStderr: "ERROR param BUILD_NAME: BUILD_NAME and IMAGE are both empty; pass start-build's BUILD_NAME result, or IMAGE for an image built elsewhere\n",
		},
		{
			name:       "step by argument",
			path:       bin,
			args:       []string{"start-build"},
			wantCode:   2,
			wantStderr: "ERROR param BUILD_CONFIG: is required; give the name of the application's BuildConfig (oc get bc), or APP when they share it\n",
		},
		{
			name:       "stray arguments are refused",
			path:       bin,
			args:       []string{"shift-canary", "--app", "shop"},
			wantCode:   2,
			wantStderr: "ERROR unexpected arguments \"--app\" \"shop\"; the steps take no arguments: set their params as environment variables (APP=shop, not --app shop)\n",
		},
		{
			name:       "unknown step",
			path:       bin,
			args:       []string{"deploy"},
			wantCode:   2,
			wantStderr: "canaryline: unknown step \"deploy\"; valid steps: start-build, wait-build, shift-canary, verify-health, promote-or-rollback\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), tt.path, tt.args...)
			cmd.Env = []string{"PATH=/usr/bin:/bin"} // no params from the test's own environment
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if exitErr := (*exec.ExitError)(nil); errors.As(err, &exitErr) {
				code = exitErr.ExitCode()
			} else if err != nil {
				t.Fatalf("run %s: %v", tt.path, err)
			}
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d", code, tt.wantCode)
			}
			if stdout.String() != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout.String(), tt.wantStdout)
			}
			if stderr.String() != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

// buildCommand compiles this package for the host into a temporary
// directory, next to a symlink and a hardlink named after steps.
func buildCommand(t *testing.T) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the multi-call binary targets linux; links behave differently on windows")
	}
	goBin := goTool(t)
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "canaryline-steps-test-")
		if buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "canaryline-steps")
		cmd := exec.Command(goBin, "build", "-o", builtBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New("go build ./cmd/canaryline-steps: " + err.Error() + "\n" + string(out))
			return
		}
		if err := os.Symlink("canaryline-steps", filepath.Join(buildDir, "verify-health")); err != nil {
			buildErr = err
			return
		}
		buildErr = os.Link(builtBin, filepath.Join(buildDir, "wait-build"))
	})
	if buildErr != nil {
		t.Fatalf("build test binary: %v", buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("find the go command: %v", err)
	}
	return p
}
