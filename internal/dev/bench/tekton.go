package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryline/canaryline/internal/dev/demo"
	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/tools/runner"
	"github.com/canaryline/canaryline/internal/tools/tektonrun"
)

// TektonOptions say what TektonFigures runs.
type TektonOptions struct {
	Root     string // the repository (the Tasks, the Pipelines and the node's images come from it)
	CacheDir string
	Steps    string // the canaryline-steps binary canaryline run runs
	Work     string // a scratch directory
	Runs     int    // PipelineRuns, and as many canaryline run releases, interleaved (3 when 0)
	Log      io.Writer
}

// tektonApp is the application (and its namespace) the benchmark releases on its Tekton cluster.
const tektonApp = "bench-tekton"

// pipelineRunTimeout bounds one PipelineRun: one not done by then is stuck.
const pipelineRunTimeout = 5 * time.Minute

// TektonFigures measures canary-release on the real Tekton controller, on a cluster of its own: the cluster's start
// and Tekton's, the wall time of PipelineRuns with no analysis windows beside canaryline run releases of the same
// Pipeline with the same params (interleaved), Tekton's per-task overhead from the TaskRuns' and their pods'
// timestamps, and the resident memory of Tekton's programs after the runs. On a machine that cannot run a real
// node it returns one row saying why.
func TektonFigures(ctx context.Context, o TektonOptions) ([]Measurement, error) {
	if o.Runs <= 0 {
		o.Runs = 3
	}
	if err := devcluster.CheckRealNode(); err != nil {
		return []Measurement{tektonSkipped(err)}, nil
	}
	// Built before anything is timed (minutes on first use).
	if _, err := devcluster.EnsureTektonBinaries(ctx, o.CacheDir, o.Log); err != nil {
		return nil, err
	}
	if _, err := devcluster.EnsureNodeBinaries(ctx, o.CacheDir, devcluster.DefaultNodeVersions, o.Log); err != nil {
		if errors.Is(err, devcluster.ErrNodeBuildDeps) {
			return []Measurement{tektonSkipped(err)}, nil
		}
		return nil, err
	}
	if _, err := devcluster.EnsureNodeImages(ctx, o.CacheDir, o.Root, o.Log); err != nil {
		return nil, err
	}
	t0 := time.Now()
	tc, err := devcluster.Start(ctx, devcluster.Options{CacheDir: o.CacheDir, RepoRoot: o.Root, Tekton: true, Log: o.Log})
	if err != nil {
		return nil, fmt.Errorf("cluster start with Tekton: %w", err)
	}
	defer tc.Stop()
	f := tektonRuns{clusterStart: time.Since(t0), tektonStart: tc.Tekton().StartTime}
	kube, err := kubernetes.NewForConfig(tc.Config())
	if err != nil {
		return nil, err
	}
	c := &cluster{cfg: tc.Config(), kube: kube, root: o.Root, steps: o.Steps, work: o.Work, upstream: tc.ShimURL,
		caData: tc.CAData, log: o.Log}
	if err := f.release(ctx, c, o.Runs); err != nil {
		return nil, err
	}
	if f.rss, err = tektonRSS(filepath.Join(tc.RunDir, "pids")); err != nil {
		return nil, err
	}
	return f.measurements(), nil
}

func tektonSkipped(why error) Measurement {
	return Measurement{Figure: "tekton", Skipped: true, Detail: "skipped: " + why.Error()}
}

// tektonRuns is what TektonFigures measured.
type tektonRuns struct {
	clusterStart, tektonStart time.Duration
	// tekton and run are the releases' wall times minus their analysis windows, on Tekton and with canaryline
	// run; windows the analysis windows subtracted from each PipelineRun.
	tekton, run, windows []time.Duration
	timelines            [][]taskTimeline      // each PipelineRun's TaskRuns, by creation
	runTasks             []time.Duration       // canaryline run's tasks, each as long as its step process
	rss                  map[string]programRSS // Tekton's programs after the runs
}

// release sets up the application (as test/tekton's newApp does: demo.Setup with a KWOK-backed app, then the
// checkout's Tasks and Pipelines) and releases it runs times as a PipelineRun and as many times with canaryline
// run, one after the other, with the same params.
func (f *tektonRuns) release(ctx context.Context, c *cluster, runs int) error {
	kubeconfig, err := c.app(ctx, tektonApp)
	if err != nil {
		return err
	}
	tk, err := tektonrun.NewClients(c.cfg)
	if err != nil {
		return err
	}
	if err := tektonrun.Install(ctx, tk, tektonApp, c.root); err != nil {
		return fmt.Errorf("install the Tasks and Pipelines in %s: %w", tektonApp, err)
	}
	params := releaseParams(tektonApp, 0)
	if err := sleep(ctx, 2*time.Second); err != nil { // let the control plane settle after the set-up
		return err
	}
	for i := range runs {
		if err := f.pipelineRun(ctx, tk, fmt.Sprintf("%s-tekton-%d", tektonApp, i+1), params); err != nil {
			return err
		}
		d, sum, err := c.runRelease(ctx, tektonApp, fmt.Sprintf("%s-run-%d", tektonApp, i+1), kubeconfig, params)
		if err != nil {
			return err
		}
		windows, err := analysisWindows(params, verifiesRun(sum))
		if err != nil {
			return err
		}
		f.run = append(f.run, d-windows)
		for _, t := range sum.Tasks {
			if t.Status != runner.None { // not skipped
				f.runTasks = append(f.runTasks, t.Duration)
			}
		}
	}
	return nil
}

// pipelineRun runs one PipelineRun of canary-release and records its wall time and its TaskRuns' timelines.
func (f *tektonRuns) pipelineRun(ctx context.Context, tk tektonrun.Clients, name string, params map[string]string) error {
	d, pr, err := runPipelineRun(ctx, tk, demo.PipelineRun(tektonApp, name, "canary-release", params))
	if err != nil {
		return err
	}
	if err := promoted(ctx, tk, pr); err != nil {
		return err
	}
	tls, err := taskTimelines(ctx, tk, pr)
	if err != nil {
		return err
	}
	windows, err := analysisWindows(params, verifiesTekton(tls))
	if err != nil {
		return err
	}
	f.tekton, f.windows, f.timelines = append(f.tekton, d-windows), append(f.windows, windows), append(f.timelines, tls)
	return nil
}

// runPipelineRun creates pr and returns the time from just before the create to the PipelineRun seen done,
// through a watch opened before the create, and the PipelineRun as it ended.
func runPipelineRun(ctx context.Context, tk tektonrun.Clients, pr *pipelinev1.PipelineRun) (time.Duration, *pipelinev1.PipelineRun, error) {
	ctx, cancel := context.WithTimeout(ctx, pipelineRunTimeout)
	defer cancel()
	prs := tk.Tekton.TektonV1().PipelineRuns(pr.Namespace)
	w, err := prs.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", pr.Name).String()})
	if err != nil {
		return 0, nil, fmt.Errorf("watch PipelineRun %s: %w", pr.Name, err)
	}
	defer w.Stop()
	t0 := time.Now()
	if _, err := prs.Create(ctx, pr, metav1.CreateOptions{}); err != nil {
		return 0, nil, fmt.Errorf("create PipelineRun %s: %w", pr.Name, err)
	}
	for ev := range w.ResultChan() {
		if p, ok := ev.Object.(*pipelinev1.PipelineRun); ok && p.IsDone() {
			return time.Since(t0), p, nil
		}
	}
	// The watch ended early (or the time is up): the PipelineRun as it is now.
	gctx, gcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer gcancel()
	p, err := prs.Get(gctx, pr.Name, metav1.GetOptions{})
	if err == nil && p.IsDone() {
		return time.Since(t0), p, nil
	}
	return 0, nil, fmt.Errorf("PipelineRun %s: not done within %s (%v)", pr.Name, pipelineRunTimeout, ctx.Err())
}

// promoted says why a PipelineRun that ended is not a promoted release, naming its tasks' states.
func promoted(ctx context.Context, tk tektonrun.Clients, pr *pipelinev1.PipelineRun) error {
	status, reason, message := tektonrun.PipelineRunStatus(pr)
	decision := ""
	for _, r := range pr.Status.Results {
		if r.Name == "decision" {
			decision = r.Value.StringVal
		}
	}
	if status == "Succeeded" && decision == "promote" {
		return nil
	}
	states := map[string]string{}
	if trs, err := tektonrun.TaskRuns(ctx, tk, pr); err == nil {
		for name, tr := range trs {
			states[name] = tektonrun.TaskRunState(tr)
		}
	}
	return fmt.Errorf("PipelineRun %s: %s (%s: %s), decision %q; want it promoted; tasks %v", pr.Name, status, reason, message, decision, states)
}

// taskTimeline is one TaskRun's timeline, from its own timestamps and its pod's.
type taskTimeline struct {
	Task, Ref string // its pipeline task (verify-1) and its Task (verify-health)
	Created   time.Time
	FirstStep time.Time // the first step container started
	LastStep  time.Time // the last step container finished
	Completed time.Time // the TaskRun's completionTime
}

// taskTimelines are the PipelineRun's TaskRuns' timelines, by creation. The step containers' times come from the
// TaskRun's pod, or from the TaskRun's step states when the pod is gone.
func taskTimelines(ctx context.Context, tk tektonrun.Clients, pr *pipelinev1.PipelineRun) ([]taskTimeline, error) {
	trs, err := tektonrun.TaskRuns(ctx, tk, pr)
	if err != nil {
		return nil, fmt.Errorf("TaskRuns of PipelineRun %s: %w", pr.Name, err)
	}
	var out []taskTimeline
	for _, tr := range trs {
		var pod *corev1.Pod
		if tr.Status.PodName != "" {
			if p, err := tk.Kube.CoreV1().Pods(tr.Namespace).Get(ctx, tr.Status.PodName, metav1.GetOptions{}); err == nil {
				pod = p
			}
		}
		t, err := timelineOf(tr, pod)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b taskTimeline) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// timelineOf is a finished TaskRun's timeline: its creation, its step containers' start and end (from pod's
// statuses of the step-* containers; from the TaskRun's step states when pod is nil) and its completionTime.
func timelineOf(tr *pipelinev1.TaskRun, pod *corev1.Pod) (taskTimeline, error) {
	t := taskTimeline{Task: tr.Labels["tekton.dev/pipelineTask"], Created: tr.CreationTimestamp.Time}
	if tr.Spec.TaskRef != nil {
		t.Ref = tr.Spec.TaskRef.Name
	}
	if tr.Status.CompletionTime == nil {
		return t, fmt.Errorf("TaskRun %s has no completionTime: it has not finished", tr.Name)
	}
	t.Completed = tr.Status.CompletionTime.Time
	var states []corev1.ContainerState
	if pod != nil {
		for _, cs := range pod.Status.ContainerStatuses {
			if strings.HasPrefix(cs.Name, "step-") {
				states = append(states, cs.State)
			}
		}
	} else {
		for _, s := range tr.Status.Steps {
			states = append(states, s.ContainerState)
		}
	}
	for _, st := range states {
		var started, finished time.Time
		switch {
		case st.Terminated != nil:
			started, finished = st.Terminated.StartedAt.Time, st.Terminated.FinishedAt.Time
		case st.Running != nil:
			started = st.Running.StartedAt.Time
		}
		if !started.IsZero() && (t.FirstStep.IsZero() || started.Before(t.FirstStep)) {
			t.FirstStep = started
		}
		if finished.After(t.LastStep) {
			t.LastStep = finished
		}
	}
	if t.FirstStep.IsZero() || t.LastStep.IsZero() {
		return t, fmt.Errorf("TaskRun %s: no step container that started and finished (pod %q)", tr.Name, tr.Status.PodName)
	}
	return t, nil
}

// taskOverheads are the per-task figures of PipelineRuns' timelines, one value per TaskRun (gaps: per TaskRun
// after the first of its PipelineRun).
type taskOverheads struct {
	start []time.Duration // created to the first step container started
	steps []time.Duration // first step container started to the last one finished
	end   []time.Duration // the last step container finished to completionTime
	total []time.Duration // created to completionTime
	gaps  []time.Duration // the completion of the TaskRuns before it to its creation
}

// overheadsOf reads the overheads of each PipelineRun's timelines (each sorted by creation).
func overheadsOf(runs [][]taskTimeline) taskOverheads {
	var o taskOverheads
	for _, tls := range runs {
		var done time.Time // the latest completion of the TaskRuns created so far
		for i, t := range tls {
			o.start = append(o.start, t.FirstStep.Sub(t.Created))
			o.steps = append(o.steps, t.LastStep.Sub(t.FirstStep))
			o.end = append(o.end, t.Completed.Sub(t.LastStep))
			o.total = append(o.total, t.Completed.Sub(t.Created))
			if i > 0 {
				o.gaps = append(o.gaps, t.Created.Sub(done))
			}
			if t.Completed.After(done) {
				done = t.Completed
			}
		}
	}
	return o
}

// verifiesTekton counts the verify-health TaskRuns of a PipelineRun.
func verifiesTekton(tls []taskTimeline) int {
	n := 0
	for _, t := range tls {
		if t.Ref == "verify-health" {
			n++
		}
	}
	return n
}

// verifiesRun counts the verify-health tasks canaryline run ran.
func verifiesRun(sum *runner.Summary) int {
	n := 0
	for _, t := range sum.Tasks {
		if t.Task == "verify-health" && t.Status != runner.None {
			n++
		}
	}
	return n
}

// analysisWindows is the time verifies verify-health tasks with the release's params spend waiting between
// measurements: each takes its first measurement at once (there is no initial delay in canary-release) and the
// next ones an interval apart, so (count - 1) x interval each.
func analysisWindows(params map[string]string, verifies int) (time.Duration, error) {
	count, err := strconv.Atoi(params["count"])
	if err != nil || count < 1 {
		return 0, fmt.Errorf("param count %q: give the number of measurements, 1 or more (COUNT 0 means the default, 10)", params["count"])
	}
	interval, err := time.ParseDuration(params["interval"])
	if err != nil || interval <= 0 {
		return 0, fmt.Errorf("param interval %q: give a positive Go duration such as 1s", params["interval"])
	}
	return time.Duration(verifies) * time.Duration(count-1) * interval, nil
}

// tektonRSS is the resident memory of Tekton's programs, by program (controller, webhook, ...): the processes
// whose pids the cluster recorded in pidDir as tekton-<program>.pid.
func tektonRSS(pidDir string) (map[string]programRSS, error) {
	files, err := filepath.Glob(filepath.Join(pidDir, "tekton-*.pid"))
	if err != nil {
		return nil, err
	}
	var procs []processRSS
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		program := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "tekton-"), ".pid")
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			return nil, fmt.Errorf("%s: not a pid: %q", f, data)
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return nil, fmt.Errorf("Tekton's %s (pid %d, from %s) is not running: %w", program, pid, f, err)
		}
		rss, ok := vmRSS(status)
		if !ok {
			return nil, fmt.Errorf("Tekton's %s (pid %d): no VmRSS in /proc/%d/status (it has exited)", program, pid, pid)
		}
		procs = append(procs, processRSS{Program: program, Bytes: rss})
	}
	if len(procs) == 0 {
		return nil, fmt.Errorf("no tekton-*.pid in %s: Tekton's programs are not running", pidDir)
	}
	return byProgram(procs), nil
}

// pipelineRunTarget is the target of a canary-release PipelineRun with no analysis windows.
const pipelineRunTarget = 30 * time.Second

// measurements are the figures of the runs: medians, with every run in the detail.
func (f *tektonRuns) measurements() []Measurement {
	tekton, run := median(f.tekton), median(f.run)
	n := len(f.tekton)
	o := overheadsOf(f.timelines)
	out := []Measurement{
		{Figure: "cluster start with Tekton (control plane, real node, Tekton)", Value: f.clusterStart.Seconds(), Unit: "s",
			Detail: "devcluster.Start with Tekton: true to its return, binaries and images cached; one start"},
		{Figure: "Tekton start: its manifests to its webhook and interceptors ready", Value: f.tektonStart.Seconds(), Unit: "s",
			Detail: "Cluster.Tekton().StartTime, part of the cluster start"},
		{Figure: "canary-release PipelineRun, 3 weights, zero analysis windows", Value: tekton.Seconds(), Unit: "s",
			Target: "≤ 30 s", Met: met(tekton <= pipelineRunTarget),
			Detail: fmt.Sprintf("wall time minus analysis windows (%s subtracted: COUNT 1 measures once, at once), median of %d: %s; "+
				"from the create to the PipelineRun seen done by a watch; instant build, KWOK-backed app; %.2fx canaryline run",
				durations2(uniq(f.windows)), n, durations2(f.tekton), tekton.Seconds()/run.Seconds())},
		{Figure: "canary-release with canaryline run, same cluster and params", Value: run.Seconds(), Unit: "s",
			Detail: fmt.Sprintf("wall time minus analysis windows, median of %d: %s, each run right after a PipelineRun",
				len(f.run), durations2(f.run))},
	}
	for _, p := range []struct {
		what string
		ds   []time.Duration
		more string
	}{
		{"TaskRun created to its first step container started", o.start, "pod created, scheduled, init containers run"},
		{"last step container finished to TaskRun completionTime", o.end, "the controller seeing the pod done"},
		{"TaskRun created to completionTime", o.total, fmt.Sprintf("of which its step ran %.2f s (median); canaryline run's tasks took %.2f s (median of %d, step process)",
			median(o.steps).Seconds(), median(f.runTasks).Seconds(), len(f.runTasks))},
		{"between tasks: a TaskRun's completionTime to the next one created", o.gaps, "the controller starting the next task"},
	} {
		out = append(out, Measurement{Figure: "Tekton per task: " + p.what, Value: median(p.ds).Seconds(), Unit: "s",
			Detail: fmt.Sprintf("median of %d TaskRuns of %d PipelineRuns (min %.0f, max %.0f s): %s; Kubernetes timestamps, to the second",
				len(p.ds), len(f.timelines), minOf(p.ds).Seconds(), maxOf(p.ds).Seconds(), p.more)})
	}
	var programs []string
	var all programRSS
	for prog, r := range f.rss {
		programs = append(programs, prog)
		all.Bytes, all.Procs = all.Bytes+r.Bytes, all.Procs+r.Procs
	}
	slices.Sort(programs)
	for _, prog := range programs {
		out = append(out, Measurement{Figure: "Tekton RSS after the runs: " + prog, Value: megabytes(f.rss[prog].Bytes), Unit: "MB",
			Detail: fmt.Sprintf("VmRSS of tekton-%s right after the %d PipelineRuns and %d canaryline run releases", prog, n, len(f.run))})
	}
	out = append(out, Measurement{Figure: "Tekton RSS after the runs: all its programs", Value: megabytes(all.Bytes), Unit: "MB",
		Detail: fmt.Sprintf("%d processes summed: %s", all.Procs, strings.Join(programs, ", "))})
	return out
}

// uniq is ds without repeats, in order.
func uniq(ds []time.Duration) []time.Duration {
	var out []time.Duration
	for _, d := range ds {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

func minOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Min(ds)
}

func maxOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Max(ds)
}
