// Package runner executes a Tekton Pipeline of canaryline's Tasks without Tekton: each step runs as a local
// process of the step binary with the Task's env mapping and a results directory. The order comes from Tekton's
// own DAG code and every $(...) from Tekton's own substitution functions, so `when`, `finally`, $(tasks.status),
// results, timeouts and retries mean what they mean in Tekton. What it does not support is an error, never a skip.
package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipeline/dag"
	"github.com/tektoncd/pipeline/pkg/substitution"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/yaml"

	"github.com/canaryline/canaryline/internal/tools/bundle"
)

// Options configure a run.
type Options struct {
	Pipeline  string            // the Pipeline's file
	TasksDir  string            // where its Tasks are (tasks/)
	Bundle    string            // or a Tekton bundle holding them (REF or REF@sha256:...)
	Insecure  bool              // the bundle's registry is plain HTTP
	Params    map[string]string // param values; the rest take their defaults
	Steps     string            // the multi-call step binary (canaryline-steps)
	Env       []string          // environment of the steps (KUBECONFIG, ...)
	Namespace string            // $(context.pipelineRun.namespace)
	RunName   string            // $(context.pipelineRun.name); generated when empty
	Timeout   time.Duration     // the whole run (tasks and finally); 1h when 0
	// Workspace is the directory under which each of the Pipeline's workspaces gets a subdirectory of its name.
	// When empty, a new directory in $TMPDIR holds them; it is kept after the run, as the directories given are.
	Workspace string
	// Workspaces binds Pipeline workspaces, by name, to directories used as they are (a task's subPath still
	// applies under them). A name the Pipeline does not declare is an InputError.
	Workspaces map[string]string
	Out        io.Writer // progress and step logs
	// Abort, when closed, forces the run to end: the running steps' process groups are killed with SIGKILL,
	// nothing else starts (not even finally), and Run returns ErrAborted. Cancelling ctx instead stops the
	// running step with SIGINT and lets finally run.
	Abort <-chan struct{}
	// Progress, when set, is kept current with what the run is doing, for the caller to report.
	Progress *Progress
}

// ErrAborted is what Run returns when Options.Abort was closed.
var ErrAborted = errors.New("the run was forced to end: its running steps were killed")

// Progress is what a run is doing, read while it runs (safe for concurrent use).
type Progress struct {
	mu  sync.Mutex
	now Running
}

// Running is a snapshot of a run.
type Running struct {
	RunName    string
	Params     map[string]string // the Pipeline's param values
	Task       string            // the pipeline task running now; "" before the first and between tasks
	Finally    bool              // Task is a finally task
	TaskParams map[string]string // Task's params, resolved
	Ended      bool              // Run has returned
}

// Running returns what the run is doing now.
func (p *Progress) Running() Running {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.now
}

func (p *Progress) set(f func(*Running)) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.now)
}

// Task statuses, as $(tasks.<name>.status) gives them.
const (
	Succeeded = "Succeeded"
	Failed    = "Failed"
	None      = "None" // skipped, or not run
)

// TaskRun is how one pipeline task went.
type TaskRun struct {
	Name, Task string
	Status     string
	Reason     string
	Attempts   int
	Duration   time.Duration
	Results    map[string]string
	Finally    bool
}

// Summary is the run.
type Summary struct {
	Name    string
	Status  string // Succeeded, Failed (as a PipelineRun's Succeeded condition reason: Succeeded, Completed or Failed)
	Tasks   []*TaskRun
	Results map[string]string
	// NotProduced are the Pipeline's results that were not produced (Tekton omits them), with why:
	// "not produced (task verify-3 did not run)".
	NotProduced map[string]string
	Duration    time.Duration
	Workspaces  []Workspace // the Pipeline's workspaces and their directories, kept after the run
}

// Workspace is a Pipeline workspace and the directory bound to it.
type Workspace struct{ Name, Dir string }

// InputError is bad input to the run (a param or a workspace): nothing ran.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// UnsupportedError is a Tekton feature canaryline run does not have.
type UnsupportedError struct{ What string }

func (e *UnsupportedError) Error() string {
	return "canaryline run does not support " + e.What + "; run this Pipeline on Tekton"
}

// Run executes the Pipeline.
func Run(ctx context.Context, o Options) (*Summary, error) {
	r, err := newRun(o)
	if err != nil {
		return nil, err
	}
	o = r.o
	o.Progress.set(func(now *Running) { *now = Running{RunName: o.RunName, Params: r.params} })
	defer o.Progress.set(func(now *Running) { now.Ended = true })
	defer r.watchAbort()()
	start := time.Now()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	sum := &Summary{Name: o.RunName}
	for _, w := range r.p.Spec.Workspaces {
		sum.Workspaces = append(sum.Workspaces, Workspace{Name: w.Name, Dir: r.dirs[w.Name]})
	}
	fmt.Fprintf(o.Out, "run %s: Pipeline %s\n", o.RunName, r.p.Name)
	if err := r.runTasks(ctx, sum); err != nil {
		return nil, err
	}
	sum.Status = r.aggregate()
	r.runFinally(parent, ctx, sum)
	r.pipelineResults(sum)
	sum.Duration = time.Since(start)
	if r.aborted() {
		sum.Status = Failed
		return sum, ErrAborted
	}
	if sum.Status == Failed {
		return sum, errors.New("PipelineRun " + o.RunName + " failed")
	}
	return sum, nil
}

// newRun loads the Pipeline and its Tasks, fills in the options' defaults, and resolves the params and the
// workspaces' directories.
func newRun(o Options) (*run, error) {
	p, tasks, err := load(o)
	if err != nil {
		return nil, err
	}
	if o.RunName == "" {
		o.RunName = RunName(p.Name)
	}
	if o.Timeout == 0 {
		o.Timeout = time.Hour
	}
	params, err := paramValues(p, o.Params)
	if err != nil {
		return nil, err
	}
	dirs, err := workspaceDirs(p, tasks, o)
	if err != nil {
		return nil, err
	}
	return &run{o: o, p: p, tasks: tasks, params: params, dirs: dirs, results: map[string]map[string]string{}, status: map[string]string{},
		procs: map[int]bool{}}, nil
}

// watchAbort aborts the run when o.Abort is closed, until the returned function is called.
func (r *run) watchAbort() (stop func()) {
	if r.o.Abort == nil {
		return func() {}
	}
	ended := make(chan struct{})
	go func() {
		select {
		case <-r.o.Abort:
			r.abort()
		case <-ended:
		}
	}()
	return func() { close(ended) }
}

// runTasks runs the Pipeline's tasks in the order of their graph, ready ones by name, until one fails or the
// run is aborted; the tasks never started are None, and so are their dependents.
func (r *run) runTasks(ctx context.Context, sum *Summary) error {
	p := r.p
	list := v1.PipelineTaskList(p.Spec.Tasks)
	graph, err := dag.Build(list, list.Deps())
	if err != nil {
		return fmt.Errorf("order the tasks of Pipeline %s: %w", p.Name, err)
	}
	byName := map[string]v1.PipelineTask{}
	for _, pt := range p.Spec.Tasks {
		byName[pt.Name] = pt
	}
	var done []string
	failed := false
	for !failed && !r.aborted() {
		next, err := dag.GetCandidateTasks(graph, done...)
		if err != nil {
			return err
		}
		if next.Len() == 0 {
			break
		}
		names := next.List()
		sort.Strings(names)
		for _, name := range names {
			tr := r.runTask(ctx, byName[name], false)
			sum.Tasks = append(sum.Tasks, tr)
			done = append(done, name)
			if tr.Status == Failed {
				failed = true // as Tekton: no new task starts after a failure; finally runs
				break
			}
		}
	}
	for _, pt := range p.Spec.Tasks {
		if _, ok := r.status[pt.Name]; !ok {
			r.status[pt.Name] = None
			sum.Tasks = append(sum.Tasks, &TaskRun{Name: pt.Name, Task: pt.TaskRef.Name, Status: None, Reason: "not run"})
		}
	}
	return nil
}

// runFinally runs the finally tasks. An interrupt (ctx cancelled) does not stop them, only Abort does. They have
// the run's deadline, or a fresh one of their own when the run's ran out or the run was cancelled, as Tekton's
// timeouts.finally.
func (r *run) runFinally(parent, ctx context.Context, sum *Summary) {
	deadline, _ := ctx.Deadline()
	if ctx.Err() != nil {
		deadline = time.Now().Add(15 * time.Minute)
	}
	fctx, fcancel := context.WithDeadline(context.WithoutCancel(parent), deadline)
	defer fcancel()
	for _, pt := range r.p.Spec.Finally {
		if r.aborted() {
			sum.Tasks = append(sum.Tasks, &TaskRun{Name: pt.Name, Task: pt.TaskRef.Name, Status: None, Reason: "not run: forced exit", Finally: true})
			continue
		}
		tr := r.runTask(fctx, pt, true)
		tr.Finally = true
		sum.Tasks = append(sum.Tasks, tr)
		if tr.Status == Failed {
			sum.Status = Failed
		}
	}
}

// pipelineResults resolves the Pipeline's results, noting those whose task result was not produced.
func (r *run) pipelineResults(sum *Summary) {
	sum.Results, sum.NotProduced = map[string]string{}, map[string]string{}
	for _, res := range r.p.Spec.Results {
		v := substitution.ApplyReplacements(res.Value.StringVal, r.replacements(false))
		if ref := unresolved(v); ref != "" {
			sum.NotProduced[res.Name] = r.notProduced(ref)
			continue
		}
		sum.Results[res.Name] = v
	}
}

type run struct {
	o       Options
	p       *v1.Pipeline
	tasks   map[string]*v1.Task
	params  map[string]string
	dirs    map[string]string // the Pipeline's workspaces' directories
	mu      sync.Mutex
	results map[string]map[string]string
	status  map[string]string
	procs   map[int]bool // the running steps' process (and process group) ids
	killed  bool         // Abort was closed
}

// abort kills the running steps' process groups, and makes sure no other starts.
func (r *run) abort() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.killed = true
	for pid := range r.procs {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

func (r *run) aborted() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.killed
}

// start starts a step in a process group of its own (a terminal's Ctrl-C then reaches only canaryline, which
// decides what the steps get), unless the run was aborted.
func (r *run) start(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.killed {
		return ErrAborted
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	r.procs[cmd.Process.Pid] = true
	return nil
}

func (r *run) exited(cmd *exec.Cmd) {
	r.mu.Lock()
	delete(r.procs, cmd.Process.Pid)
	r.mu.Unlock()
}

// notProduced says why the result $(tasks.X.results.Y) is missing: "not produced (task X did not run)".
func (r *run) notProduced(ref string) string {
	task, _, _ := strings.Cut(strings.TrimPrefix(ref, "$(tasks."), ".results.")
	r.mu.Lock()
	st, ok := r.status[task]
	r.mu.Unlock()
	switch {
	case !ok || st == None:
		return "not produced (task " + task + " did not run)"
	case st == Failed:
		return "not produced (task " + task + " failed)"
	default:
		return "not produced (task " + task + " did not write it)"
	}
}

// aggregate is $(tasks.status): Failed when a task failed, Completed when some were skipped, else Succeeded.
func (r *run) aggregate() string {
	agg := Succeeded
	for _, pt := range r.p.Spec.Tasks {
		switch r.status[pt.Name] {
		case Failed:
			return Failed
		case None:
			agg = "Completed"
		}
	}
	return agg
}

// replacements are the pipeline-level variables: params, context, task results (and in finally, statuses).
func (r *run) replacements(finally bool) map[string]string {
	m := map[string]string{
		"context.pipelineRun.name": r.o.RunName, "context.pipelineRun.namespace": r.o.Namespace,
		"context.pipelineRun.uid": r.o.RunName, "context.pipeline.name": r.p.Name,
	}
	for k, v := range r.params {
		m["params."+k] = v
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for t, res := range r.results {
		for k, v := range res {
			m["tasks."+t+".results."+k] = v
		}
	}
	if finally {
		m["tasks.status"] = r.aggregate()
		for t, s := range r.status {
			m["tasks."+t+".status"] = s
		}
	}
	return m
}

func (r *run) runTask(ctx context.Context, pt v1.PipelineTask, finally bool) *TaskRun {
	tr := &TaskRun{Name: pt.Name, Task: pt.TaskRef.Name, Results: map[string]string{}}
	repl := r.replacements(finally)
	// A task whose params use a result that was not produced is skipped, as in Tekton.
	for _, prm := range pt.Params {
		if ref := unresolved(substitution.ApplyReplacements(prm.Value.StringVal, repl)); ref != "" {
			tr.Status, tr.Reason = None, "skipped: its param "+prm.Name+" uses a result "+r.notProduced(ref)
			r.setStatus(pt.Name, None)
			fmt.Fprintf(r.o.Out, "[%s] %s\n", pt.Name, tr.Reason)
			return tr
		}
	}
	if wes := pt.When.ReplaceVariables(repl, nil); len(wes) > 0 && !wes.AllowsExecution(nil) {
		tr.Status, tr.Reason = None, "skipped: when expressions are false"
		r.setStatus(pt.Name, None)
		fmt.Fprintf(r.o.Out, "[%s] %s\n", pt.Name, tr.Reason)
		return tr
	}
	task := r.tasks[pt.TaskRef.Name]
	taskParams := map[string]string{}
	for _, ps := range task.Spec.Params {
		if ps.Default != nil {
			taskParams[ps.Name] = ps.Default.StringVal
		}
	}
	for _, prm := range pt.Params {
		taskParams[prm.Name] = substitution.ApplyReplacements(prm.Value.StringVal, repl)
	}
	r.o.Progress.set(func(now *Running) { now.Task, now.Finally, now.TaskParams = pt.Name, finally, taskParams })
	defer r.o.Progress.set(func(now *Running) { now.Task, now.Finally, now.TaskParams = "", false, nil })
	attempts := 1 + pt.Retries
	start := time.Now()
	for tr.Attempts = 1; tr.Attempts <= attempts; tr.Attempts++ {
		err := r.runSteps(ctx, pt, task, taskParams, tr)
		if err == nil {
			tr.Status = Succeeded
			break
		}
		tr.Status, tr.Reason = Failed, err.Error()
		if tr.Attempts < attempts && ctx.Err() == nil && !r.aborted() {
			fmt.Fprintf(r.o.Out, "[%s] attempt %d failed (%v); retrying\n", pt.Name, tr.Attempts, err)
			continue
		}
		break
	}
	if tr.Attempts > attempts {
		tr.Attempts = attempts
	}
	tr.Duration = time.Since(start)
	r.setStatus(pt.Name, tr.Status)
	r.mu.Lock()
	r.results[pt.Name] = tr.Results
	r.mu.Unlock()
	fmt.Fprintf(r.o.Out, "[%s] %s in %s%s\n", pt.Name, tr.Status, tr.Duration.Round(100*time.Millisecond), resultsLine(tr.Results))
	return tr
}

func (r *run) setStatus(name, s string) {
	r.mu.Lock()
	r.status[name] = s
	r.mu.Unlock()
}

// runSteps runs the Task's steps as local processes of the step binary, with their env mapping.
func (r *run) runSteps(ctx context.Context, pt v1.PipelineTask, task *v1.Task, params map[string]string, tr *TaskRun) error {
	if pt.Timeout != nil && pt.Timeout.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pt.Timeout.Duration)
		defer cancel()
	}
	results, err := os.MkdirTemp("", "canaryline-results-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(results)
	repl := r.stepReplacements(pt, task, params, results)
	for _, st := range task.Spec.Steps {
		if err := r.runStep(ctx, pt, task, st, repl, results, tr); err != nil {
			return err
		}
	}
	return nil
}

// stepReplacements are the variables a Task's steps may use: the TaskRun's context, the params, the results'
// paths (in results) and the workspaces' paths (created when bound).
func (r *run) stepReplacements(pt v1.PipelineTask, task *v1.Task, params map[string]string, results string) map[string]string {
	repl := map[string]string{"context.taskRun.name": r.o.RunName + "-" + pt.Name, "context.taskRun.namespace": r.o.Namespace,
		"context.task.name": task.Name}
	for k, v := range params {
		repl["params."+k] = v
	}
	for _, res := range task.Spec.Results {
		repl["results."+res.Name+".path"] = filepath.Join(results, res.Name)
	}
	for _, ws := range task.Spec.Workspaces {
		path := ""
		for _, b := range pt.Workspaces {
			if b.Name == ws.Name {
				path = filepath.Join(r.dirs[b.Workspace], b.SubPath)
				_ = os.MkdirAll(path, 0o755)
			}
		}
		repl["workspaces."+ws.Name+".path"] = path
		repl["workspaces."+ws.Name+".bound"] = fmt.Sprint(path != "")
	}
	return repl
}

// runStep runs one step as a process of the step binary, its output prefixed with the task's name, and reads
// the results it wrote into tr.
func (r *run) runStep(ctx context.Context, pt v1.PipelineTask, task *v1.Task, st v1.Step, repl map[string]string, results string, tr *TaskRun) error {
	if len(st.Command) != 1 || !strings.HasPrefix(st.Command[0], "/usr/local/bin/") {
		return &UnsupportedError{What: fmt.Sprintf("step %s of Task %s (command %v): only canaryline step binaries run locally", st.Name, task.Name, st.Command)}
	}
	cmd := exec.CommandContext(ctx, r.o.Steps, filepath.Base(st.Command[0]))
	cmd.Env = r.stepEnv(st, repl, results)
	// The step (its process group) gets SIGINT, and cancels what it started, as on SIGTERM.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 45 * time.Second
	pw := &prefixWriter{w: r.o.Out, prefix: "[" + pt.Name + "] "}
	cmd.Stdout, cmd.Stderr = pw, pw
	err := r.start(cmd)
	if err == nil {
		err = cmd.Wait()
		r.exited(cmd)
	}
	pw.flush()
	for _, res := range task.Spec.Results {
		if data, rerr := os.ReadFile(filepath.Join(results, res.Name)); rerr == nil {
			tr.Results[res.Name] = string(data)
		}
	}
	if err != nil {
		if r.aborted() {
			return fmt.Errorf("step %s: killed: %w", st.Name, ErrAborted)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("step %s: %w", st.Name, ctx.Err())
		}
		return fmt.Errorf("step %s: %w", st.Name, err)
	}
	return nil
}

// stepEnv is the environment of a step: the run's, then the step's with the variables replaced.
func (r *run) stepEnv(st v1.Step, repl map[string]string, results string) []string {
	env := append([]string{}, r.o.Env...)
	for _, e := range st.Env {
		v := substitution.ApplyReplacements(e.Value, repl)
		switch e.Name {
		case "RESULTS_DIR":
			v = results // /tekton/results in a pod
		case "TASKRUN_NAME":
			v = "" // no TaskRun to read when stopped: this run's own finally tasks always run
		}
		env = append(env, e.Name+"="+v)
	}
	return env
}

// unresolved returns the first $(tasks.X.results.Y) left in s, or "".
func unresolved(s string) string {
	i := strings.Index(s, "$(tasks.")
	if i < 0 {
		return ""
	}
	j := strings.Index(s[i:], ")")
	if j < 0 {
		return s[i:]
	}
	return s[i : i+j+1]
}

func resultsLine(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		v := m[k]
		if len(v) > 80 {
			v = v[:77] + "..."
		}
		parts = append(parts, k+"="+v)
	}
	return ": " + strings.Join(parts, " ")
}

type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    bytes.Buffer
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf.Write(b)
	for {
		line, err := p.buf.ReadString('\n')
		if err != nil {
			p.buf.WriteString(line)
			break
		}
		fmt.Fprint(p.w, p.prefix+line)
	}
	return len(b), nil
}

func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.buf.Len() > 0 {
		fmt.Fprintln(p.w, p.prefix+p.buf.String())
		p.buf.Reset()
	}
}

// load reads the Pipeline and its Tasks, and refuses what the runner does not support.
func load(o Options) (*v1.Pipeline, map[string]*v1.Task, error) {
	p, err := readPipeline(o.Pipeline)
	if err != nil {
		return nil, nil, err
	}
	tasks, source, err := loadTasks(o)
	if err != nil {
		return nil, nil, err
	}
	if err := checkSupported(p, tasks, source); err != nil {
		return nil, nil, err
	}
	return p, tasks, nil
}

// readPipeline reads, defaults and validates the Pipeline in path.
func readPipeline(path string) (*v1.Pipeline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the Pipeline: %w", err)
	}
	p := &v1.Pipeline{}
	if err := yaml.UnmarshalStrict(data, p); err != nil {
		return nil, fmt.Errorf("%s is not a tekton.dev/v1 Pipeline: %w", path, err)
	}
	ctx := context.Background()
	p.SetDefaults(ctx)
	if err := p.Validate(ctx); err != nil {
		return nil, fmt.Errorf("Pipeline %s: %w", p.Name, err)
	}
	return p, nil
}

// loadTasks reads the Tasks from o.Bundle, else from o.TasksDir; source says where they came from.
func loadTasks(o Options) (tasks map[string]*v1.Task, source string, err error) {
	tasks = map[string]*v1.Task{}
	if o.Bundle != "" {
		rs, err := bundle.Pull(context.Background(), o.Bundle, o.Insecure)
		if err != nil {
			return nil, "", err
		}
		for _, r := range rs {
			if r.Kind != "task" {
				continue
			}
			t := &v1.Task{}
			if err := yaml.UnmarshalStrict(r.Data, t); err != nil {
				return nil, "", fmt.Errorf("bundle %s, Task %s: %w", o.Bundle, r.Name, err)
			}
			tasks[t.Name] = t
		}
		return tasks, "bundle " + o.Bundle, nil
	}
	files, _ := filepath.Glob(filepath.Join(o.TasksDir, "*.yaml"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if !bytes.Contains(data, []byte("kind: Task\n")) {
			continue
		}
		t := &v1.Task{}
		if err := yaml.UnmarshalStrict(data, t); err != nil {
			return nil, "", fmt.Errorf("%s: %w", f, err)
		}
		tasks[t.Name] = t
	}
	return tasks, o.TasksDir, nil
}

// checkSupported refuses what the runner does not run: non-string params, matrices, embedded or remote Tasks,
// pipelines in pipelines, CEL when expressions, and Tasks that source does not have.
func checkSupported(p *v1.Pipeline, tasks map[string]*v1.Task, source string) error {
	for _, ps := range p.Spec.Params {
		if ps.Type != "" && ps.Type != v1.ParamTypeString {
			return &UnsupportedError{What: fmt.Sprintf("param %s of type %s (string params only)", ps.Name, ps.Type)}
		}
	}
	for _, pt := range append(append([]v1.PipelineTask{}, p.Spec.Tasks...), p.Spec.Finally...) {
		switch {
		case pt.Matrix != nil:
			return &UnsupportedError{What: "matrix (task " + pt.Name + ")"}
		case pt.TaskSpec != nil:
			return &UnsupportedError{What: "embedded taskSpec (task " + pt.Name + ")"}
		case pt.TaskRef == nil || pt.TaskRef.Resolver != "" || pt.TaskRef.Name == "":
			return &UnsupportedError{What: "a remote or missing taskRef (task " + pt.Name + "): Tasks are read from " + source}
		case pt.PipelineRef != nil || pt.PipelineSpec != nil:
			return &UnsupportedError{What: "pipelines in pipelines (task " + pt.Name + ")"}
		}
		for _, we := range pt.When {
			if we.CEL != "" {
				return &UnsupportedError{What: "CEL when expressions (task " + pt.Name + ")"}
			}
		}
		if _, ok := tasks[pt.TaskRef.Name]; !ok {
			return fmt.Errorf("task %s uses Task %q, which %s does not have", pt.Name, pt.TaskRef.Name, source)
		}
	}
	return nil
}

func paramValues(p *v1.Pipeline, given map[string]string) (map[string]string, error) {
	out := map[string]string{}
	declared := map[string]bool{}
	for _, ps := range p.Spec.Params {
		declared[ps.Name] = true
		if ps.Default != nil {
			out[ps.Name] = ps.Default.StringVal
		}
	}
	for k, v := range given {
		if !declared[k] {
			return nil, &InputError{fmt.Sprintf("--param %s: Pipeline %s has no such param", k, p.Name)}
		}
		out[k] = v
	}
	for _, ps := range p.Spec.Params {
		if _, ok := out[ps.Name]; !ok {
			return nil, &InputError{fmt.Sprintf("--param %s: required by Pipeline %s (it has no default)", ps.Name, p.Name)}
		}
	}
	return out, nil
}

// RunName is a new PipelineRun name for the Pipeline, as Tekton's generateName makes one: "<pipeline>-run-" and
// five random characters, so that two runs started at the same moment are two releases.
func RunName(pipeline string) string {
	base := pipeline + "-run-"
	if len(base) > 58 { // a name is at most 63 characters (an object name, and a label value)
		base = base[:58]
	}
	return base + rand.String(5)
}

// workspaceDirs gives each of the Pipeline's workspaces its directory: the one bound to it in o.Workspaces, as
// it is, or a subdirectory of its name under o.Workspace (a new directory in $TMPDIR when empty). Nothing made
// here is removed after the run: it holds the evidence.
func workspaceDirs(p *v1.Pipeline, tasks map[string]*v1.Task, o Options) (map[string]string, error) {
	var names []string
	for _, w := range p.Spec.Workspaces {
		names = append(names, w.Name)
	}
	for name, dir := range o.Workspaces {
		if !slices.Contains(names, name) {
			return nil, &InputError{fmt.Sprintf("--workspace %s=%s: Pipeline %s has no workspace %s; give one of: %s",
				name, dir, p.Name, name, strings.Join(names, ", "))}
		}
		if err := checkDir(name, dir, readOnly(p, tasks, name)); err != nil {
			return nil, err
		}
	}
	dirs := map[string]string{}
	for _, name := range names {
		dir, ok := o.Workspaces[name]
		if !ok {
			if o.Workspace == "" {
				tmp, err := os.MkdirTemp("", o.RunName+"-")
				if err != nil {
					return nil, fmt.Errorf("create the run's workspace directory: %w", err)
				}
				o.Workspace = tmp
			}
			dir = filepath.Join(o.Workspace, name)
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, &InputError{fmt.Sprintf("--workspace: cannot create the directory of workspace %s: %v", name, err)}
		}
		dirs[name] = abs
	}
	return dirs, nil
}

// checkDir refuses a directory given for workspace name that is not one, or that does not exist when the Tasks
// only read the workspace (a docker config, say): an empty directory made for it would hide the mistake.
func checkDir(name, dir string, readOnly bool) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return &InputError{fmt.Sprintf("--workspace %s=%s: not a directory; give the directory to bind to workspace %s", name, dir, name)}
	case errors.Is(err, os.ErrNotExist) && readOnly:
		return &InputError{fmt.Sprintf("--workspace %s=%s: no such directory; the Tasks only read workspace %s, give an existing "+
			"directory (for a docker config, the one holding config.json)", name, dir, name)}
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return &InputError{fmt.Sprintf("--workspace %s=%s: %v", name, dir, err)}
	}
	return nil
}

// readOnly is true when every Task workspace bound to the Pipeline workspace name is read-only.
func readOnly(p *v1.Pipeline, tasks map[string]*v1.Task, name string) bool {
	bound := false
	for _, pt := range append(append([]v1.PipelineTask{}, p.Spec.Tasks...), p.Spec.Finally...) {
		for _, b := range pt.Workspaces {
			if b.Workspace != name {
				continue
			}
			for _, ws := range tasks[pt.TaskRef.Name].Spec.Workspaces {
				if ws.Name == b.Name {
					if !ws.ReadOnly {
						return false
					}
					bound = true
				}
			}
		}
	}
	return bound
}

// ResultsText is the Pipeline's results, one a line in name order; a result that was not produced says so.
func (s *Summary) ResultsText() string {
	names := make([]string, 0, len(s.Results)+len(s.NotProduced))
	for k := range s.Results {
		names = append(names, k)
	}
	for k := range s.NotProduced {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		v, ok := s.Results[k]
		if !ok {
			v = s.NotProduced[k]
		}
		fmt.Fprintf(&b, "result %s: %s\n", k, v)
	}
	return b.String()
}

// Table is the end-of-run summary: each task's status and duration.
func (s *Summary) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-22s %-22s %-10s %-9s %s\n", "TASK", "TASK REF", "STATUS", "DURATION", "RESULTS / REASON")
	for _, t := range s.Tasks {
		name := t.Name
		if t.Finally {
			name += " (finally)"
		}
		detail := strings.TrimPrefix(resultsLine(t.Results), ": ")
		if t.Status != Succeeded && t.Reason != "" {
			detail = t.Reason
		}
		fmt.Fprintf(&b, "%-22s %-22s %-10s %-9s %s\n", name, t.Task, t.Status, t.Duration.Round(100*time.Millisecond), detail)
	}
	fmt.Fprintf(&b, "PipelineRun %s: %s in %s\n", s.Name, s.Status, s.Duration.Round(time.Second))
	if len(s.Workspaces) > 0 {
		b.WriteString("\nworkspaces (kept after the run):\n")
		for _, w := range s.Workspaces {
			fmt.Fprintf(&b, "  %-12s %s\n", w.Name, w.Dir)
		}
	}
	// The verdicts, with their values and thresholds, and where the evidence is.
	first := true
	for _, t := range s.Tasks {
		if v := t.Results["VERDICT"]; v != "" {
			if first {
				b.WriteString("\nverdicts:\n")
				first = false
			}
			fmt.Fprintf(&b, "  %-12s %-12s %s\n", t.Name, v, t.Results["REASON"])
			if e := t.Results["EVIDENCE"]; e != "" {
				fmt.Fprintf(&b, "  %-12s evidence: %s\n", "", e)
			}
		}
	}
	return b.String()
}
