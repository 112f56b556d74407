package catalog

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMainUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "no command", args: nil, code: 2, stderr: "usage: canaryline catalog generate"},
		{name: "help", args: []string{"--help"}, code: 0, stdout: "usage: canaryline catalog generate"},
		{name: "generate help", args: []string{"generate", "-h"}, code: 0, stdout: "--image-digest"},
		{name: "unknown command", args: []string{"publish"}, code: 2, stderr: `unknown command "publish"`},
		{name: "unknown flag", args: []string{"generate", "--force"}, code: 2, stderr: "flag provided but not defined: -force"},
		{name: "extra argument", args: []string{"generate", "now"}, code: 2, stderr: "unexpected arguments"},
		{name: "bad digest", args: []string{"generate", "--root", t.TempDir(), "--image-digest", "sha256:x"}, code: 1, stderr: "want sha256: and 64"},
		{name: "no sources", args: []string{"generate", "--root", t.TempDir(), "--image-digest", testDigest}, code: 1, stderr: "no Tekton Tasks or Pipelines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			if code := Main(tc.args, &stdout, &stderr); code != tc.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stdout %q stderr %q; want %q and %q", stdout.String(), stderr.String(), tc.stdout, tc.stderr)
			}
		})
	}
}

func TestMainGenerateAndCheck(t *testing.T) {
	t.Parallel()
	root := fixtureRoot(t, nil)
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := Main(append([]string{"generate", "--root", root}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
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
