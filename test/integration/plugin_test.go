package integration

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPluginActsOnARelease: the plugin binary, installed as oc-canaryline (as oc and kubectl run plugins), shows
// the release in progress, answers its approval gate and aborts it, on the local control plane with -n.
func TestPluginActsOnARelease(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	bin := filepath.Join(t.TempDir(), "oc-canaryline")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/canaryline/canaryline/cmd/kubectl-canaryline").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	plugin := func(args ...string) (string, int) {
		cmd := exec.Command(bin, append(args, "-n", a.ns, "--kubeconfig", a.kubeconfig)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		t.Logf("oc canaryline %s: exit %d\n%s", strings.Join(args, " "), code, out)
		return string(out), code
	}
	if r := a.shift(10, nil); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	if out, code := plugin("status", "shop"); code != 0 || !strings.Contains(out, "shop-release-1") || !strings.Contains(out, "10%") {
		t.Errorf("status: exit %d; want the release in progress at 10%%", code)
	}
	if out, code := plugin("approve", "shop", "--reason", "ok"); code != 0 || !strings.Contains(out, "approved by system:serviceaccount:"+a.ns+":pipeline: ok") {
		t.Errorf("approve: exit %d", code)
	}
	if got := a.answered(); got.Decision != "approve" || got.Release != "shop-release-1" {
		t.Errorf("recorded %+v", got)
	}
	if out, code := plugin("status", "shop"); code != 0 || !strings.Contains(out, "approval      approved by system:serviceaccount:"+a.ns+":pipeline: ok") {
		t.Errorf("status after the approval: exit %d; want the answer shown", code)
	}
	if out, code := plugin("abort", "shop"); code != 0 || !strings.Contains(out, "rolled back") || a.exists("deployment", "shop-canary") {
		t.Errorf("abort: exit %d; want the release rolled back", code)
	}
	if out, code := plugin("approve", "nope"); code != 2 || !strings.Contains(out, "oc canaryline: approve:") {
		t.Errorf("approve of an application with no release: exit %d; want 2", code)
	}
}
