package cli

import (
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/canaryline/canaryline/internal/tools/bundle"
)

const testDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

// TestCatalogCommand: `canaryline catalog ...` answers bad usage with exit 2 and the usage, help with exit 0, and a
// failing generation with exit 1 (catalog.Sync's own tests cover the generation).
func TestCatalogCommand(t *testing.T) {
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
			code, stdout, stderr := runMain(append([]string{"catalog"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tc.code, stderr)
			}
			if !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stdout %q stderr %q; want %q and %q", stdout, stderr, tc.stdout, tc.stderr)
			}
		})
	}
}

// TestBundleCommand pushes the bundle package's fixture to a registry on a loopback port with
// `canaryline bundle push`: the pinned reference is the only line on stdout, the push is idempotent, and bad usage
// exits 2 with nothing on stdout.
func TestBundleCommand(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	const fixture = "../bundle/testdata/fixture"
	run := func(args ...string) (int, string, string) { return runMain(append([]string{"bundle"}, args...)...) }
	ref := host + "/canaryline/tasks:0.1"
	code, out, errOut := run("push", "--root", fixture, "--ref", ref, "--insecure")
	if code != 0 {
		t.Fatalf("push: exit %d\n%s", code, errOut)
	}
	rs, err := bundle.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := bundle.Image(rs)
	d, _ := img.Digest()
	if out != ref+"@"+d.String()+"\n" {
		t.Errorf("stdout %q, want %q", out, ref+"@"+d.String())
	}
	for _, want := range []string{"task/hello", "pipeline/greet", "pushed 5 resources"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	// The push is idempotent.
	if code, out2, errOut := run("push", "--ref", ref, "--root", fixture); code != 0 || out2 != out {
		t.Errorf("second push: exit %d, %q\n%s", code, out2, errOut)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage:"},
		{[]string{"pull"}, 2, "unknown command"},
		{[]string{"push"}, 2, "--ref is required"},
		{[]string{"push", "--ref", ref, "extra"}, 2, "unexpected arguments"},
		{[]string{"push", "--nope"}, 2, "not defined"},
		{[]string{"push", "--ref", "UPPER/Case::x"}, 2, "bad image reference"},
		{[]string{"push", "--ref", ref + "@sha256:" + strings.Repeat("0", 64)}, 2, "give a tag"},
		{[]string{"push", "--ref", ref, "--root", t.TempDir()}, 1, "neither"},
		{[]string{"push", "--ref", "127.0.0.1:1/x:y", "--root", fixture}, 1, "push 127.0.0.1:1/x:y"},
	} {
		code, out, errOut := run(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("bundle %q = %d, stdout %q, stderr %q; want %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
	if code, out, _ := run("push", "--help"); code != 0 || !strings.Contains(out, "usage:") {
		t.Errorf("--help: %d %q", code, out)
	}
}
