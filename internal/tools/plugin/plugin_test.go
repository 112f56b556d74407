package plugin

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/canaryline/canaryline/internal/tools/bundle"
)

func TestPluginProgName(t *testing.T) {
	for argv0, want := range map[string]string{"/usr/local/bin/kubectl-canaryline": "kubectl canaryline", "oc-canaryline": "oc canaryline",
		"canaryline": "canaryline"} {
		if got := Prog(argv0); got != want {
			t.Errorf("Prog(%q) = %q; want %q", argv0, got, want)
		}
	}
}

func TestPluginUsageAndBadInput(t *testing.T) {
	run := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := Main(context.Background(), "kubectl canaryline", args, &out, &errb)
		return out.String(), errb.String(), code
	}
	if out, _, code := run("--help"); code != 0 || !strings.Contains(out, "usage: kubectl canaryline COMMAND APP") || !strings.Contains(out, "approve") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	if _, errOut, code := run(); code != 2 || !strings.Contains(errOut, "usage:") {
		t.Errorf("no command: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := run("promote", "shop"); code != 2 || !strings.Contains(errOut, `unknown command "promote"`) {
		t.Errorf("unknown command: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := run("approve", "-n", "team"); code != 2 || !strings.Contains(errOut, "give one application") {
		t.Errorf("no APP: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := run("approve", "shop", "cart"); code != 2 || !strings.Contains(errOut, "give one application") {
		t.Errorf("two APPs: exit %d\n%s", code, errOut)
	}
	if out, _, code := run("reject", "--help"); code != 0 || !strings.Contains(out, "-reason") || !strings.Contains(out, "-kubeconfig") {
		t.Errorf("reject --help: exit %d\n%s", code, out)
	}
	// APP before or after the flags; no cluster is bad input naming the flag.
	_, errOut, code := run("status", "-n", "team", "shop", "--kubeconfig", filepath.Join(t.TempDir(), "missing"))
	if code != 2 || !strings.Contains(errOut, "--kubeconfig") {
		t.Errorf("status with a missing kubeconfig: exit %d\n%s", code, errOut)
	}
}

// TestPluginKrewInstallsTheRelease: a release build gives the same archive twice, and the real Krew (built from
// the Go module proxy) installs it from its manifest and archive, offline, as kubectl-canaryline in its bin.
func TestPluginKrewInstallsTheRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin and Krew")
	}
	ctx := context.Background()
	root, _ := filepath.Abs("../../..")
	host := Platform{runtime.GOOS, runtime.GOARCH}
	var log bytes.Buffer
	build := func(dir string) (string, []byte) {
		path, err := Release{Root: root, Dir: dir, Version: "v0.1.0", BaseURL: "https://example.com/rel", Platforms: []Platform{host}, Log: &log}.Build(ctx)
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		data, err := os.ReadFile(filepath.Join(dir, "kubectl-canaryline_v0.1.0_"+host.OS+"_"+host.Arch+".tar.gz"))
		if err != nil {
			t.Fatal(err)
		}
		return path, data
	}
	manifest, first := build(t.TempDir())
	if _, second := build(t.TempDir()); !bytes.Equal(first, second) {
		t.Error("two builds of the same tree gave different archives")
	}
	krew, err := bundle.KrewBinary(ctx, "", &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	krewRoot := t.TempDir()
	cmd := exec.CommandContext(ctx, krew, "install", "--manifest="+manifest,
		"--archive="+filepath.Join(filepath.Dir(manifest), "kubectl-canaryline_v0.1.0_"+host.OS+"_"+host.Arch+".tar.gz"))
	cmd.Env = []string{"KREW_ROOT=" + krewRoot, "HOME=" + t.TempDir(), "KREW_NO_UPGRADE_CHECK=1", "PATH=/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("krew install: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, filepath.Join(krewRoot, "bin", "kubectl-canaryline"), "--help").Output()
	if err != nil || !strings.Contains(string(out), "usage: kubectl canaryline COMMAND APP") {
		t.Errorf("the installed plugin: %v\n%s", err, out)
	}
}
