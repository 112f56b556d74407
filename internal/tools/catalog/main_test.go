package catalog

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSyncGenerateAndCheck runs what `canaryline catalog generate [--image-digest D] [--check]` runs (the command
// line itself is tested in internal/tools/cli): exit code 1 is an error, whose message is what stderr says.
func TestSyncGenerateAndCheck(t *testing.T) {
	t.Parallel()
	root := fixtureRoot(t, nil)
	run := func(args ...string) (int, string, string) {
		o, check := Options{Root: root}, false
		for i := 0; i < len(args); i++ {
			switch args[i] {
			case "--check":
				check = true
			case "--image-digest":
				i++
				o.ImageDigest = args[i]
			default:
				t.Fatalf("test flag %q", args[i])
			}
		}
		var stdout bytes.Buffer
		if err := Sync(o, check, &stdout); err != nil {
			return 1, stdout.String(), err.Error()
		}
		return 0, stdout.String(), ""
	}
	steps := []struct {
		name   string
		before func()
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{name: "no digest refuses", code: 1, stderr: []string{"pin the step image: run make image, or give --image-digest"}},
		{name: "check before generating", args: []string{"--image-digest", testDigest, "--check"}, code: 1,
			stdout: []string{"missing catalog/task/alpha/0.1/alpha.yaml\n"}, stderr: []string{"stale, missing or extra"}},
		{name: "generate", args: []string{"--image-digest", testDigest}, code: 0,
			stdout: []string{"added catalog/task/alpha/0.1/alpha.yaml\n", "catalog: 11 files, 11 changed\n"}},
		{name: "check current (digest from the file)", before: func() {
			writeTestFile(t, filepath.Join(root, "catalog", DigestFile), testDigest+"\n")
		}, args: []string{"--check"}, code: 0, stdout: []string{"catalog is current (11 files)"}},
		{name: "check stale", before: func() {
			writeTestFile(t, filepath.Join(root, "catalog", "task", "beta", "0.1", "README.md"), "edited\n")
			writeTestFile(t, filepath.Join(root, "catalog", "old.md"), "old\n")
		}, args: []string{"--check"}, code: 1, stdout: []string{"extra catalog/old.md\nstale catalog/task/beta/0.1/README.md\n"}},
		{name: "check stale leaves the files", args: []string{"--check"}, code: 1, stdout: []string{"stale catalog/task/beta/0.1/README.md"}},
		{name: "check with another digest", args: []string{"--check", "--image-digest", otherDigest}, code: 1,
			stdout: []string{"stale catalog/task/alpha/0.1/alpha.yaml"}},
		{name: "regenerate", code: 0, stdout: []string{"removed catalog/old.md\n", "updated catalog/task/beta/0.1/README.md\n", "catalog: 11 files, 2 changed\n"}},
		{name: "check after regenerating", args: []string{"--check"}, code: 0},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		code, stdout, stderr := run(s.args...)
		if code != s.code {
			t.Errorf("%s: exit code %d, want %d; stdout %q stderr %q", s.name, code, s.code, stdout, stderr)
		}
		for _, w := range s.stdout {
			if !strings.Contains(stdout, w) {
				t.Errorf("%s: stdout %q has no %q", s.name, stdout, w)
			}
		}
		for _, w := range s.stderr {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr %q has no %q", s.name, stderr, w)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(root, "catalog", "old.md")); !os.IsNotExist(err) {
		t.Errorf("catalog/old.md survived the regeneration: %v", err)
	}
}
