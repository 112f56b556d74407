package argorollouts

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/canaryline/canaryline/internal/dev/gobuild"
)

func TestReplaces(t *testing.T) {
	gomod := "module x\n\ngo 1.26.10\n\nreplace a => b v1\n\nreplace (\n\tk8s.io/api => k8s.io/api v0.34.5 // pinned\n\t// a comment\n\tk8s.io/kubelet => k8s.io/kubelet v0.34.5\n)\n"
	want := "replace a => b v1\nreplace k8s.io/api => k8s.io/api v0.34.5\nreplace k8s.io/kubelet => k8s.io/kubelet v0.34.5\n"
	if got := Replaces([]byte(gomod)); got != want {
		t.Errorf("Replaces = %q, want %q", got, want)
	}
}

func TestLowerGo(t *testing.T) {
	for _, c := range []struct{ in, local, want string }{
		{"module x\ngo 1.26.10\ntoolchain go1.26.10\n", "1.26.8", "module x\ngo 1.26.8\n"},
		{"module x\ngo 1.25.0\n", "1.26.8", "module x\ngo 1.25.0\n"},
		{"module x\ngo 1.26\n", "1.26.8", "module x\ngo 1.26\n"},
	} {
		if got := string(LowerGo([]byte(c.in), c.local)); got != c.want {
			t.Errorf("LowerGo(%q, %s) = %q, want %q", c.in, c.local, got, c.want)
		}
	}
}

// TestBuild builds (first run: minutes) or finds cached the controller, and checks that it runs and has the
// flags Start uses.
func TestBuild(t *testing.T) {
	if testing.Short() || os.Getenv(EnvTests) != "1" {
		t.Skip("builds Argo Rollouts from the Go module proxy (13 min cold): set " + EnvTests + "=1; make bench builds and runs it anyway")
	}
	cache, err := gobuild.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	b, err := Ensure(ctx, cache, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Help(ctx, b.Controller); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, b.Controller, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), strings.TrimPrefix(Version, "v")) {
		t.Errorf("%s --version = %q, %v; want %s", b.Controller, out, err, Version)
	}
}
