package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/canaryline/canaryline/internal/tools/runner"
)

// exitInterrupted is the exit code of a run forced to end by a third interrupt (128 + SIGINT, as a shell's).
const exitInterrupted = 130

// interrupter handles SIGINT and SIGTERM while `canaryline run` or the demo runs a Pipeline. The steps run in
// process groups of their own, so a terminal's Ctrl-C reaches canaryline only, which counts:
//   - the first cancels the run: the running step gets SIGINT and stops what it started, no new task starts, and
//     the finally tasks run;
//   - the second is reported, and does not stop the finally tasks;
//   - the third forces exit: abort is closed, the runner kills the running steps' process groups, and the
//     command exits 130 saying what was left behind.
type interrupter struct {
	progress *runner.Progress
	abort    chan struct{}
	stderr   io.Writer
	cancel   context.CancelFunc

	mu     sync.Mutex
	n      int
	forced bool
	atExit runner.Running // what the run was doing at the third interrupt
}

// notifyInterrupts delivers SIGINT and SIGTERM to the returned channel until stop is called.
func notifyInterrupts() (sigs <-chan os.Signal, stop func()) {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	return ch, func() { signal.Stop(ch) }
}

// watchInterrupts counts the signals on sigs until stop is called; the returned context ends at the first.
func watchInterrupts(ctx context.Context, sigs <-chan os.Signal, stderr io.Writer) (_ context.Context, _ *interrupter, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	in := &interrupter{progress: &runner.Progress{}, abort: make(chan struct{}), stderr: stderr, cancel: cancel}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case s := <-sigs:
				in.interrupt(s)
			}
		}
	}()
	return ctx, in, func() { close(done); wg.Wait(); cancel() }
}

func (in *interrupter) interrupt(s os.Signal) {
	now := in.progress.Running()
	in.mu.Lock()
	in.n++
	n := in.n
	if n == 3 {
		in.forced, in.atExit = true, now
		close(in.abort)
	}
	in.mu.Unlock()
	name := "interrupt"
	if s == syscall.SIGTERM {
		name = "SIGTERM"
	}
	switch {
	case n == 1:
		in.cancel()
		goesOn := ""
		if now.Finally {
			goesOn = ", and is not stopped"
		}
		fmt.Fprintf(in.stderr, "canaryline: %s: %s%s (press Ctrl-C twice more to force exit)\n", name, stopping(now), goesOn)
	case n == 2:
		left := ""
		if now.Params["app"] != "" && !now.Ended {
			left = " (the release then stays on its Lease, for the next release to roll back)"
		}
		fmt.Fprintf(in.stderr, "canaryline: %s: %s; press Ctrl-C again to force exit%s\n", name, stopping(now), left)
	case n == 3 && now.Ended:
		fmt.Fprintf(in.stderr, "canaryline: %s: forcing exit\n", name)
	case n == 3:
		fmt.Fprintf(in.stderr, "canaryline: %s: forcing exit: killing the running steps\n", name)
	}
}

// wasForced says whether the third interrupt came, and what the run was doing then.
func (in *interrupter) wasForced() (bool, runner.Running) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.forced, in.atExit
}

// stopping says what the run does after an interrupt.
func stopping(now runner.Running) string {
	switch {
	case now.Ended:
		return "the run of " + releaseName(now) + " has ended; canaryline is stopping"
	case now.Finally:
		verb := "is ending"
		if now.TaskParams["DECISION"] == "rollback" || now.TaskParams["PIPELINE_STATUS"] == runner.Failed {
			verb = "is rolling back"
		}
		return fmt.Sprintf("the finally task %s %s %s", now.Task, verb, releaseName(now))
	case now.Task != "":
		return fmt.Sprintf("cancelling the run: task %s stops what it started, no new task starts, then the finally tasks end %s",
			now.Task, releaseName(now))
	default:
		return "cancelling the run: no new task starts, then the finally tasks end " + releaseName(now)
	}
}

// releaseName names the run's release: the release id is the run's name (RELEASE_ID in canaryline's Pipelines).
func releaseName(now runner.Running) string {
	id := now.RunName
	if v := now.TaskParams["RELEASE_ID"]; v != "" {
		id = v
	}
	if id == "" {
		return "the run" // not started yet
	}
	if app := now.Params["app"]; app != "" {
		return "release " + id + " of " + app
	}
	return "run " + id
}

// forcedMessage says what a forced exit left behind and how to end it. sum is the run's summary (nil when unknown);
// steps and kubeconfig are what the run used.
func forcedMessage(now runner.Running, sum *runner.Summary, steps, kubeconfig string) string {
	app, ns := now.Params["app"], now.Params["namespace"]
	switch {
	case now.Ended:
		return "canaryline: forced exit: the run of " + releaseName(now) + " had ended\n"
	case app == "":
		return "canaryline: forced exit: the running steps were killed; what they and the finally tasks had not done stays undone\n"
	}
	id := now.RunName
	if sum != nil && !shifted(sum) {
		return fmt.Sprintf("canaryline: forced exit: the running steps were killed before any traffic shift: %s changed nothing of %s "+
			"(a build it started may still run)\n", releaseName(now), app)
	}
	where, status := "", "canaryline status "+app
	env := []string{}
	if kubeconfig != "" {
		env = append(env, "KUBECONFIG="+kubeconfig)
	}
	env = append(env, "APP="+app)
	if ns != "" {
		where, status = " in namespace "+ns, status+" --namespace "+ns
		env = append(env, "NAMESPACE="+ns)
	}
	env = append(env, "DECISION=rollback", "RELEASE_ID="+id, "RESULTS_DIR=$(mktemp -d)") // its results, outside a TaskRun
	ttl := now.Params["lock-ttl"]
	if ttl == "" {
		ttl = "10m"
	}
	return fmt.Sprintf("canaryline: forced exit: the running steps were killed, and %s did not end.\n"+
		"  It stays recorded on its Lease canaryline-%s%s: the next release of %s rolls it back once LOCK_TTL (%s) has passed\n"+
		"  (%s shows it). To roll it back now, run promote-or-rollback with DECISION=rollback RELEASE_ID=%s:\n"+
		"    %s %s promote-or-rollback\n",
		releaseName(now), app, where, app, ttl, status, id, strings.Join(env, " "), steps)
}

// shifted says whether a traffic shift (shift-canary) started: only then is a release recorded on its Lease.
func shifted(sum *runner.Summary) bool {
	for _, t := range sum.Tasks {
		if t.Task == "shift-canary" && t.Attempts > 0 {
			return true
		}
	}
	return false
}
