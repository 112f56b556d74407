package runner

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stepScript is the steps binary of these tests: a shell script that acts by the step's name ($1).
const stepScript = `#!/bin/sh
case "$1" in
quick) exit 0 ;;
sleeper) sleep 600 & echo $! > "$DIR/child"; wait ;;
waiter) touch "$DIR/started"; while [ ! -e "$DIR/go" ]; do sleep 0.05; done ;;
esac
`

func task(name string) string {
	return `apiVersion: tekton.dev/v1
kind: Task
metadata: {name: ` + name + `}
spec:
  steps:
    - {name: ` + name + `, image: busybox, command: ["/usr/local/bin/` + name + `"]}
`
}

// scriptRun writes the Tasks quick, sleeper and waiter and pipeline, and returns Options that run it with stepScript.
func scriptRun(t *testing.T, pipeline string) (Options, string) {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"quick", "sleeper", "waiter"} {
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(task(name)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.WriteFile(filepath.Join(dir, "steps"), []byte(stepScript), 0o755)
	_ = os.WriteFile(filepath.Join(dir, "pipeline.yaml"), []byte(pipeline), 0o644)
	return Options{Pipeline: filepath.Join(dir, "pipeline.yaml"), TasksDir: dir, Steps: filepath.Join(dir, "steps"),
		Env: []string{"DIR=" + dir, "PATH=/usr/bin:/bin"}, Out: &bytes.Buffer{}}, dir
}

// waitFile waits until path exists or the run ends.
func waitFile(t *testing.T, path string, ended <-chan struct{}) {
	t.Helper()
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-ended:
			t.Fatalf("the run ended before %s was written", filepath.Base(path))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func taskStatus(sum *Summary, name string) (string, string) {
	for _, tr := range sum.Tasks {
		if tr.Name == name {
			return tr.Status, tr.Reason
		}
	}
	return "absent", ""
}

// TestFinallyIsNotStoppedByACancelledRun: a run cancelled (an interrupt) while its finally task runs lets it finish.
func TestFinallyIsNotStoppedByACancelledRun(t *testing.T) {
	o, dir := scriptRun(t, `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: finally-test}
spec:
  tasks:
    - {name: a, taskRef: {name: quick}}
  finally:
    - {name: f, taskRef: {name: waiter}}
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ended := make(chan struct{})
	var sum *Summary
	var err error
	go func() { defer close(ended); sum, err = Run(ctx, o) }()
	waitFile(t, filepath.Join(dir, "started"), ended)
	cancel()
	_ = os.WriteFile(filepath.Join(dir, "go"), nil, 0o644)
	<-ended
	if st, reason := taskStatus(sum, "f"); err != nil || st != Succeeded {
		t.Errorf("run: %v; finally task f %s (%s); want it Succeeded\n%s", err, st, reason, o.Out)
	}
}

// TestAbortKillsTheStepsProcessGroups: closing Abort kills the running step and what it started (its process
// group), and nothing else starts, not even finally.
func TestAbortKillsTheStepsProcessGroups(t *testing.T) {
	o, dir := scriptRun(t, `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: abort-test}
spec:
  tasks:
    - {name: a, taskRef: {name: sleeper}}
    - {name: b, taskRef: {name: quick}, runAfter: [a]}
  finally:
    - {name: f, taskRef: {name: waiter}}
`)
	abort := make(chan struct{})
	o.Abort, o.Progress = abort, &Progress{}
	ended := make(chan struct{})
	var sum *Summary
	var err error
	go func() { defer close(ended); sum, err = Run(context.Background(), o) }()
	waitFile(t, filepath.Join(dir, "child"), ended)
	if now := o.Progress.Running(); now.Task != "a" || now.Finally || !strings.HasPrefix(now.RunName, "abort-test-run-") {
		t.Errorf("progress while a runs: %+v", now)
	}
	close(abort)
	<-ended
	if !errors.Is(err, ErrAborted) || sum == nil || sum.Status != Failed {
		t.Fatalf("aborted run: %v, %+v; want ErrAborted and a Failed summary", err, sum)
	}
	if !o.Progress.Running().Ended {
		t.Error("progress after the run: not ended")
	}
	for name, want := range map[string]string{"a": Failed, "b": None, "f": None} {
		if st, reason := taskStatus(sum, name); st != want {
			t.Errorf("task %s: %s (%s); want %s", name, st, reason, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "started")); err == nil {
		t.Error("the finally task started after the abort")
	}
	data, _ := os.ReadFile(filepath.Join(dir, "child"))
	child, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	for alive(child) { // SIGKILL was sent to its group: it dies (the loop ends) unless it was not
		select {
		case <-time.After(20 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatalf("the step's child %d still runs", child)
		}
	}
}

// alive is true for a process that exists and is not a zombie.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	return i < 0 || i+2 >= len(data) || data[i+2] != 'Z'
}

// TestResultsNotProduced: a Pipeline result, or a task's param, using the result of a task that did not run is
// reported as not produced, never as its $(tasks...) text.
func TestResultsNotProduced(t *testing.T) {
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(`apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: results-test}
spec:
  params:
    - {name: go, type: string, default: "no"}
  results:
    - {name: decision, value: $(tasks.guarded.results.DECISION)}
    - {name: id, value: $(tasks.guarded.results.RELEASE_ID)}
  tasks:
    - name: guarded
      when: [{input: "$(params.go)", operator: in, values: ["yes"]}]
      taskRef: {name: promote-or-rollback}
      params: [{name: APP, value: shop}]
    - name: uses-result
      runAfter: [guarded]
      taskRef: {name: promote-or-rollback}
      params: [{name: APP, value: shop}, {name: PIPELINE_STATUS, value: "$(tasks.guarded.results.DECISION)"}]
`), 0o644)
	sum, err := Run(context.Background(), Options{Pipeline: filepath.Join(dir, "p.yaml"), TasksDir: "../../tasks", Out: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	text := sum.Table() + sum.ResultsText()
	for _, want := range []string{"result decision: not produced (task guarded did not run)\n",
		"result id: not produced (task guarded did not run)\n",
		"skipped: its param PIPELINE_STATUS uses a result not produced (task guarded did not run)"} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "$(") {
		t.Errorf("summary holds unresolved text:\n%s", text)
	}
	if len(sum.Results) != 0 {
		t.Errorf("results %v; want decision omitted, as Tekton does", sum.Results)
	}
}
