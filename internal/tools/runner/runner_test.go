package runner

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
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
	sum, err := Run(context.Background(), Options{Pipeline: filepath.Join(dir, "p.yaml"), TasksDir: "../../../tasks", Out: &bytes.Buffer{}})
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

// TestRunNamesAreUnique: two runs of one Pipeline started in the same second get different names (each name is a
// release's id), made as Tekton's generateName makes them.
func TestRunNamesAreUnique(t *testing.T) {
	o, _ := scriptRun(t, `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: names-test}
spec:
  tasks:
    - {name: a, taskRef: {name: quick}}
`)
	for attempt := 0; ; attempt++ {
		second := time.Now().Unix()
		first, err1 := Run(context.Background(), o)
		next, err2 := Run(context.Background(), o)
		if time.Now().Unix() != second { // not in one second: again (a second is long next to two quick runs)
			if attempt == 5 {
				t.Fatal("two quick runs never fitted in one second")
			}
			continue
		}
		if err1 != nil || err2 != nil {
			t.Fatalf("runs: %v, %v", err1, err2)
		}
		if first.Name == next.Name {
			t.Errorf("both runs are named %s", first.Name)
		}
		for _, name := range []string{first.Name, next.Name} {
			if !regexp.MustCompile(`^names-test-run-[a-z0-9]{5}$`).MatchString(name) {
				t.Errorf("run name %q; want names-test-run- and 5 random characters", name)
			}
		}
		return
	}
}

// workspacesRun is a Pipeline whose task writes a file into the workspace out (under subPath sub) and reads cfg.
func workspacesRun(t *testing.T) (Options, string) {
	t.Helper()
	o, dir := scriptRun(t, `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: ws-test}
spec:
  workspaces:
    - {name: out}
    - {name: cfg, optional: true}
  tasks:
    - name: a
      taskRef: {name: writer}
      workspaces: [{name: out, workspace: out, subPath: sub}, {name: cfg, workspace: cfg}]
`)
	_ = os.WriteFile(filepath.Join(dir, "writer.yaml"), []byte(`apiVersion: tekton.dev/v1
kind: Task
metadata: {name: writer}
spec:
  workspaces:
    - {name: out}
    - {name: cfg, optional: true, readOnly: true}
  steps:
    - name: writer
      image: busybox
      command: ["/usr/local/bin/writer"]
      env:
        - {name: OUT, value: $(workspaces.out.path)}
        - {name: CFG, value: $(workspaces.cfg.path)}
`), 0o644)
	_ = os.WriteFile(o.Steps, []byte("#!/bin/sh\necho written > \"$OUT/file\"; cat \"$CFG/config.json\" > \"$OUT/cfg\" 2>/dev/null; exit 0\n"), 0o755)
	return o, dir
}

func workspaceDir(sum *Summary, name string) string {
	for _, w := range sum.Workspaces {
		if w.Name == name {
			return w.Dir
		}
	}
	return ""
}

// TestWorkspacesAreKept: the Pipeline's workspaces are directories kept after the run, in a new directory when none
// is given, under --workspace DIR, or the directory bound to each as it is (subPath still applies); the summary
// says where they are.
func TestWorkspacesAreKept(t *testing.T) {
	o, _ := workspacesRun(t)
	root, out, cfg := t.TempDir(), t.TempDir(), t.TempDir()
	_ = os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"auths":{}}`), 0o600)
	for _, tc := range []struct {
		name       string
		root       string
		bound      map[string]string
		wantOut    string // "" is a new directory in $TMPDIR
		wantCfgDir string
	}{
		{name: "none given"},
		{name: "one DIR", root: root, wantOut: filepath.Join(root, "out"), wantCfgDir: filepath.Join(root, "cfg")},
		{name: "bound", bound: map[string]string{"out": out, "cfg": cfg}, wantOut: out, wantCfgDir: cfg},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o.Workspace, o.Workspaces = tc.root, tc.bound
			sum, err := Run(context.Background(), o)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, o.Out)
			}
			dir := workspaceDir(sum, "out")
			if tc.wantOut != "" && dir != tc.wantOut {
				t.Errorf("workspace out is %s; want %s", dir, tc.wantOut)
			}
			if tc.wantOut == "" {
				if dir == "" || !strings.HasPrefix(dir, os.TempDir()) || !strings.Contains(dir, sum.Name) {
					t.Errorf("workspace out is %q; want a directory in %s named after the run %s", dir, os.TempDir(), sum.Name)
				}
				t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(dir)) })
			}
			if data, err := os.ReadFile(filepath.Join(dir, "sub", "file")); err != nil || string(data) != "written\n" {
				t.Errorf("the file the task wrote under subPath sub: %q, %v", data, err)
			}
			if tc.wantCfgDir != "" && workspaceDir(sum, "cfg") != tc.wantCfgDir {
				t.Errorf("workspace cfg is %s; want %s", workspaceDir(sum, "cfg"), tc.wantCfgDir)
			}
			if !strings.Contains(sum.Table(), "out          "+dir+"\n") {
				t.Errorf("the summary does not say where workspace out is:\n%s", sum.Table())
			}
		})
	}
	if data, _ := os.ReadFile(filepath.Join(out, "sub", "cfg")); string(data) != `{"auths":{}}` {
		t.Errorf("the task read %q from the bound cfg; want its config.json", data)
	}
}

// TestWorkspacesRefused: a workspace the Pipeline does not declare, a file, or a missing directory for a workspace
// the Tasks only read, is an InputError naming it; nothing runs.
func TestWorkspacesRefused(t *testing.T) {
	o, dir := workspacesRun(t)
	file := filepath.Join(dir, "writer.yaml")
	for _, tc := range []struct {
		bound map[string]string
		want  string
	}{
		{map[string]string{"nope": t.TempDir()}, "--workspace nope="},
		{map[string]string{"out": file}, "not a directory"},
		{map[string]string{"cfg": filepath.Join(dir, "missing")}, "--workspace cfg=" + filepath.Join(dir, "missing") + ": no such directory"},
	} {
		o.Workspace, o.Workspaces = t.TempDir(), tc.bound
		_, err := Run(context.Background(), o)
		var bad *InputError
		if !errors.As(err, &bad) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v; want an InputError saying %q", tc.bound, err, tc.want)
		}
		if entries, _ := os.ReadDir(o.Workspace); len(entries) != 0 {
			t.Errorf("%v: the refused run made %d directories", tc.bound, len(entries))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Error("the missing directory was made")
	}
}

// TestNoTaskRunName: a step run locally has no TaskRun, so TASKRUN_NAME (what shift-canary and verify-health read
// when stopped, to roll back when Tekton runs no finally task) is empty: a cancelled local run's own finally task
// ends the release. Other uses of $(context.taskRun.name) keep the run's name for the task.
func TestNoTaskRunName(t *testing.T) {
	o, dir := scriptRun(t, `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: taskrun-test}
spec:
  tasks:
    - {name: a, taskRef: {name: envdump}}
`)
	_ = os.WriteFile(filepath.Join(dir, "envdump.yaml"), []byte(`apiVersion: tekton.dev/v1
kind: Task
metadata: {name: envdump}
spec:
  steps:
    - name: envdump
      image: busybox
      command: ["/usr/local/bin/envdump"]
      env:
        - {name: TASKRUN_NAME, value: $(context.taskRun.name)}
        - {name: TASK_RUN, value: $(context.taskRun.name)}
`), 0o644)
	_ = os.WriteFile(o.Steps, []byte("#!/bin/sh\nenv > \"$DIR/env\"\n"), 0o755)
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	env := "\n" + string(data)
	if !strings.Contains(env, "\nTASKRUN_NAME=\n") {
		t.Errorf("TASKRUN_NAME is not empty in the step's env:%s", env)
	}
	if want := "\nTASK_RUN=" + sum.Name + "-a\n"; !strings.Contains(env, want) {
		t.Errorf("the step's env lacks %q:%s", strings.TrimSpace(want), env)
	}
}
