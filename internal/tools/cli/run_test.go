package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunWorkspaceFlagsRefused: a --workspace naming a workspace the Pipeline lacks, or written wrong, exits 2
// saying what to give, before anything runs.
func TestRunWorkspaceFlagsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--workspace", "nope=" + dir}, "--workspace nope=" + dir + ": Pipeline canary-release-prebuilt has no workspace nope; give one of: evidence, dockerconfig"},
		{[]string{"--workspace", dir, "--workspace", t.TempDir()}, "one DIR for all workspaces is " + dir + " already"},
		{[]string{"--workspace", "evidence=" + dir, "--workspace", "evidence=" + t.TempDir()}, "workspace evidence is bound to " + dir + " already"},
		{[]string{"--workspace", "evidence="}, "write DIR or name=DIR"},
		{[]string{"--workspace", "dockerconfig=" + filepath.Join(dir, "missing")}, "no such directory"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"run", "../../../pipelines/canary-release-prebuilt.yaml", "--tasks", "../../../tasks", "--steps", "/nonexistent",
			"--param", "app=shop"}, tc.flags...)
		if code := Main(context.Background(), args, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit 2 saying %q", tc.flags, code, stderr.String(), tc.want)
		}
		if strings.Contains(stderr.String(), ": Pipeline canary-release-prebuilt\n") {
			t.Errorf("%v: the run started", tc.flags)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the refused runs made %d entries in %s", len(entries), dir)
	}
}

// TestStepsBinaryBuiltFromTheRepositoryDispatches: without a canaryline-steps at hand, canaryline run builds one
// from the repository, named so that the multi-call binary dispatches to the step its first argument names.
func TestStepsBinaryBuiltFromTheRepositoryDispatches(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the step binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	t.Setenv("PATH", filepath.Dir(goBin)) // no canaryline-steps on PATH
	t.Chdir("../../..")
	bin, built, err := stepsBinary(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if built == "" || filepath.Dir(bin) != built {
		t.Errorf("stepsBinary built %s but reports its directory as %q: nobody would remove it", bin, built)
	}
	defer os.RemoveAll(built)
	out, err := exec.Command(bin, "shift-canary").CombinedOutput() // no params: a step's own refusal, exit 2
	if code := exitCodeOf(err); code != 2 || !strings.Contains(string(out), "param APP") {
		t.Errorf("%s shift-canary: exit %d\n%s\nwant shift-canary's own refusal of the missing APP", bin, code, out)
	}
}

func exitCodeOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
