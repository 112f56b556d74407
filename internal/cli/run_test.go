package cli

import (
	"bytes"
	"context"
	"os"
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
		args := append([]string{"run", "../../pipelines/canary-release-prebuilt.yaml", "--tasks", "../../tasks", "--steps", "/nonexistent",
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
