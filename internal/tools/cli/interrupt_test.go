package cli

import (
	"bytes"
	"context"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/canaryline/canaryline/internal/tools/runner"
)

// TestInterruptsCancelReportThenForce: the first interrupt cancels the run, the second is reported, the third
// closes abort; SIGTERM counts as an interrupt.
func TestInterruptsCancelReportThenForce(t *testing.T) {
	sigs := make(chan os.Signal) // unbuffered: a send returns once the watcher took the signal, after the previous one
	var stderr bytes.Buffer
	ctx, in, stop := watchInterrupts(context.Background(), sigs, &stderr)
	sigs <- syscall.SIGINT
	sigs <- syscall.SIGTERM // the first was handled
	if ctx.Err() == nil {
		t.Error("the first interrupt did not cancel the run")
	}
	if forced, _ := in.wasForced(); forced {
		t.Error("forced after one interrupt")
	}
	sigs <- syscall.SIGINT
	stop()
	select {
	case <-in.abort:
	default:
		t.Error("the third interrupt did not close abort")
	}
	out := stderr.String()
	forced, _ := in.wasForced()
	if !forced || strings.Count(out, "\n") != 3 || !strings.Contains(out, "SIGTERM: ") ||
		!strings.Contains(out, "press Ctrl-C again to force exit") || !strings.Contains(out, "forcing exit") {
		t.Errorf("forced %v; messages:\n%s", forced, out)
	}
}

func TestInterruptMessages(t *testing.T) {
	now := runner.Running{RunName: "r1", Params: map[string]string{"app": "shop", "namespace": "ns", "lock-ttl": "1m"},
		Task: "end-release", Finally: true, TaskParams: map[string]string{"PIPELINE_STATUS": "Failed", "RELEASE_ID": "r1"}}
	if got := stopping(now); got != "the finally task end-release is rolling back release r1 of shop" {
		t.Errorf("in finally: %q", got)
	}
	if got := stopping(runner.Running{RunName: "r1", Params: now.Params, Task: "verify-1"}); !strings.Contains(got, "task verify-1 stops") {
		t.Errorf("in a task: %q", got)
	}
	if got := stopping(runner.Running{RunName: "r1", Params: now.Params, Ended: true}); got != "the run of release r1 of shop has ended; canaryline is stopping" {
		t.Errorf("after the run: %q", got)
	}
	shifted := &runner.Summary{Tasks: []*runner.TaskRun{{Task: "shift-canary", Attempts: 1, Status: runner.Succeeded}}}
	msg := forcedMessage(runner.Running{RunName: "r1", Params: now.Params}, shifted, "/bin/canaryline-steps", "/kc")
	for _, want := range []string{"release r1 of shop did not end", "stays recorded on its Lease canaryline-shop in namespace ns",
		"once LOCK_TTL (1m) has passed", "canaryline status shop --namespace ns",
		"KUBECONFIG=/kc APP=shop NAMESPACE=ns DECISION=rollback RELEASE_ID=r1 RESULTS_DIR=$(mktemp -d) /bin/canaryline-steps promote-or-rollback"} {
		if !strings.Contains(msg, want) {
			t.Errorf("forced message lacks %q:\n%s", want, msg)
		}
	}
	building := &runner.Summary{Tasks: []*runner.TaskRun{{Task: "wait-build", Attempts: 1}, {Task: "shift-canary", Status: runner.None}}}
	if msg := forcedMessage(runner.Running{RunName: "r1", Params: now.Params}, building, "steps", ""); !strings.Contains(msg, "changed nothing of shop") {
		t.Errorf("forced before any shift:\n%s", msg)
	}
}
