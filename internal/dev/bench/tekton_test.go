package bench

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/tools/runner"
)

// fakeStart is the start of the fake PipelineRuns; at(s) is s seconds after it.
var fakeStart = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return fakeStart.Add(time.Duration(s * float64(time.Second))) }

func mt(s float64) metav1.Time { return metav1.NewTime(at(s)) }

// fakeTaskRun is a finished TaskRun of pipeline task task (Task ref), created at created and completed at done,
// with the given step states.
func fakeTaskRun(task, ref string, created, done float64, steps ...pipelinev1.StepState) *pipelinev1.TaskRun {
	tr := &pipelinev1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: "r-" + task, CreationTimestamp: mt(created),
		Labels: map[string]string{"tekton.dev/pipelineTask": task}},
		Spec: pipelinev1.TaskRunSpec{TaskRef: &pipelinev1.TaskRef{Name: ref}}}
	tr.Status.PodName = "r-" + task + "-pod"
	c := mt(done)
	tr.Status.CompletionTime = &c
	tr.Status.Steps = steps
	return tr
}

func terminated(started, finished float64) corev1.ContainerState {
	return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{StartedAt: mt(started), FinishedAt: mt(finished)}}
}

func TestTimelineOfPod(t *testing.T) {
	// The TaskRun's own step state says the step started at 9 (when the entrypoint ran it); the pod says its
	// container started at 5: the pod is what counts.
	tr := fakeTaskRun("verify-1", "verify-health", 2, 12, pipelinev1.StepState{Name: "verify-health", ContainerState: terminated(9, 10)})
	pod := &corev1.Pod{Status: corev1.PodStatus{
		InitContainerStatuses: []corev1.ContainerStatus{{Name: "prepare", State: terminated(3, 4)}},
		ContainerStatuses: []corev1.ContainerStatus{
			{Name: "step-verify-health", State: terminated(5, 10.5)},
			{Name: "step-second", State: terminated(6, 11)},
			{Name: "sidecar-log", State: terminated(1, 13)}, // not a step
		}}}
	got, err := timelineOf(tr, pod)
	if err != nil {
		t.Fatal(err)
	}
	want := taskTimeline{Task: "verify-1", Ref: "verify-health", Created: at(2), FirstStep: at(5), LastStep: at(11), Completed: at(12)}
	if got != want {
		t.Errorf("timelineOf = %+v\nwant %+v", got, want)
	}
	// Without the pod, the TaskRun's step states.
	if got, err := timelineOf(tr, nil); err != nil || got.FirstStep != at(9) || got.LastStep != at(10) {
		t.Errorf("timelineOf without the pod = %+v, %v; want the step from 9 to 10", got, err)
	}
}

func TestTimelineOfUnfinished(t *testing.T) {
	tr := fakeTaskRun("promote", "promote-or-rollback", 0, 1)
	tr.Status.CompletionTime = nil
	if _, err := timelineOf(tr, nil); err == nil || !strings.Contains(err.Error(), "completionTime") {
		t.Errorf("an unfinished TaskRun: %v; want an error about its completionTime", err)
	}
	running := fakeTaskRun("promote", "promote-or-rollback", 0, 1, pipelinev1.StepState{ContainerState: corev1.ContainerState{
		Running: &corev1.ContainerStateRunning{StartedAt: mt(0.5)}}})
	if _, err := timelineOf(running, nil); err == nil || !strings.Contains(err.Error(), "no step container") {
		t.Errorf("a TaskRun whose step never finished: %v; want an error", err)
	}
}

func TestOverheadsOf(t *testing.T) {
	tl := func(created, first, last, done float64) taskTimeline {
		return taskTimeline{Created: at(created), FirstStep: at(first), LastStep: at(last), Completed: at(done)}
	}
	runs := [][]taskTimeline{
		{tl(0, 3, 4, 5), tl(6, 8, 10, 11), tl(11, 14, 15, 15)},
		{tl(100, 102, 103, 104), tl(105, 109, 110, 112)},
	}
	o := overheadsOf(runs)
	s := func(xs ...float64) []time.Duration {
		var out []time.Duration
		for _, x := range xs {
			out = append(out, time.Duration(x*float64(time.Second)))
		}
		return out
	}
	for _, c := range []struct {
		name      string
		got, want []time.Duration
		median    float64
	}{
		{"start", o.start, s(3, 2, 3, 2, 4), 3},
		{"steps", o.steps, s(1, 2, 1, 1, 1), 1},
		{"end", o.end, s(1, 1, 0, 1, 2), 1},
		{"total", o.total, s(5, 5, 4, 4, 7), 5},
		// Within each PipelineRun only: 6-5, 11-11, 105-104 (not 100-15).
		{"gaps", o.gaps, s(1, 0, 1), 1},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
		if m := median(c.got).Seconds(); m != c.median {
			t.Errorf("median %s = %v, want %v", c.name, m, c.median)
		}
	}
}

func TestAnalysisWindows(t *testing.T) {
	for _, c := range []struct {
		count, interval string
		verifies        int
		want            time.Duration
	}{
		{"1", "1s", 3, 0}, // one measurement each, at once: nothing to subtract
		{"2", "1s", 3, 3 * time.Second},
		{"10", "30s", 3, 3 * 9 * 30 * time.Second},
		{"2", "5s", 0, 0}, // no verify ran
	} {
		got, err := analysisWindows(map[string]string{"count": c.count, "interval": c.interval}, c.verifies)
		if err != nil || got != c.want {
			t.Errorf("count %s, interval %s, %d verifies: %s, %v; want %s", c.count, c.interval, c.verifies, got, err, c.want)
		}
	}
	for _, p := range []map[string]string{{"interval": "1s"}, {"count": "0", "interval": "1s"}, {"count": "x", "interval": "1s"},
		{"count": "1"}, {"count": "1", "interval": "0s"}, {"count": "1", "interval": "soon"}} {
		if _, err := analysisWindows(p, 3); err == nil {
			t.Errorf("params %v: no error", p)
		}
	}
	// The params the benchmark releases with measure once, at once.
	if got, err := analysisWindows(releaseParams("shop", 0), 3); err != nil || got != 0 {
		t.Errorf("releaseParams(shop, 0): %s, %v; want no analysis window", got, err)
	}
}

func TestVerifies(t *testing.T) {
	tls := []taskTimeline{{Ref: "start-build"}, {Ref: "verify-health"}, {Ref: "shift-canary"}, {Ref: "verify-health"}}
	if n := verifiesTekton(tls); n != 2 {
		t.Errorf("verifiesTekton = %d, want 2", n)
	}
	sum := &runner.Summary{Tasks: []*runner.TaskRun{{Task: "verify-health", Status: runner.Succeeded},
		{Task: "verify-health", Status: runner.Failed}, {Task: "verify-health", Status: runner.None}, {Task: "shift-canary", Status: runner.Succeeded}}}
	if n := verifiesRun(sum); n != 2 {
		t.Errorf("verifiesRun = %d, want 2 (the skipped one did not wait)", n)
	}
}

// TestTektonRSS reads pid files as the cluster writes them: this process as tekton-controller, the others ignored.
func TestTektonRSS(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("tekton-controller.pid", strconv.Itoa(os.Getpid()))
	write("kube-apiserver.pid", "1")
	rss, err := tektonRSS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rss) != 1 || rss["controller"].Procs != 1 || rss["controller"].Bytes < 1<<20 {
		t.Errorf("tektonRSS = %+v; want only controller, this process, at least 1 MiB", rss)
	}

	write("tekton-webhook.pid", "not a pid\n")
	if _, err := tektonRSS(dir); err == nil || !strings.Contains(err.Error(), "tekton-webhook.pid") {
		t.Errorf("a bad pid file: %v; want an error naming it", err)
	}
	// A program that has exited.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	write("tekton-webhook.pid", strconv.Itoa(cmd.Process.Pid))
	if _, err := tektonRSS(dir); err == nil || !strings.Contains(err.Error(), "webhook") {
		t.Errorf("an exited program: %v; want an error naming it", err)
	}
	if _, err := tektonRSS(t.TempDir()); err == nil {
		t.Error("no pid files: no error")
	}
}

func TestTektonMeasurements(t *testing.T) {
	s := func(x float64) time.Duration { return time.Duration(x * float64(time.Second)) }
	tl := func(created, first, last, done float64) taskTimeline {
		return taskTimeline{Created: at(created), FirstStep: at(first), LastStep: at(last), Completed: at(done)}
	}
	f := tektonRuns{clusterStart: s(20), tektonStart: s(6),
		tekton: []time.Duration{s(40), s(28), s(29)}, run: []time.Duration{s(5), s(4), s(6)}, windows: []time.Duration{0, 0, 0},
		timelines: [][]taskTimeline{{tl(0, 3, 4, 5), tl(6, 8, 10, 11)}, {tl(20, 22, 23, 24)}},
		runTasks:  []time.Duration{s(0.2), s(0.4), s(0.3)},
		rss:       map[string]programRSS{"webhook": {30e6, 1}, "controller": {50e6, 1}},
	}
	got := map[string]Measurement{}
	var order []string
	for _, m := range f.measurements() {
		got[m.Figure], order = m, append(order, m.Figure)
	}
	for _, w := range []struct {
		figure string
		value  float64
		target string
		met    bool
		detail string
	}{
		{"cluster start with Tekton (control plane, real node, Tekton)", 20, "", false, "binaries and images cached"},
		{"Tekton start: its manifests to its webhook and interceptors ready", 6, "", false, "StartTime"},
		{"canary-release PipelineRun, 3 weights, zero analysis windows", 29, "≤ 30 s", true,
			"wall time minus analysis windows (0.00 s subtracted: COUNT 1 measures once, at once), median of 3: 40.00, 28.00, 29.00 s; " +
				"from the create to the PipelineRun seen done by a watch; instant build, KWOK-backed app; 5.80x canaryline run"},
		{"canary-release with canaryline run, same cluster and params", 5, "", false, "median of 3: 5.00, 4.00, 6.00 s"},
		{"Tekton per task: TaskRun created to its first step container started", 2, "", false, "median of 3 TaskRuns of 2 PipelineRuns (min 2, max 3 s)"},
		{"Tekton per task: last step container finished to TaskRun completionTime", 1, "", false, "(min 1, max 1 s)"},
		{"Tekton per task: TaskRun created to completionTime", 5, "", false, "its step ran 1.00 s (median); canaryline run's tasks took 0.30 s (median of 3"},
		{"Tekton per task: between tasks: a TaskRun's completionTime to the next one created", 1, "", false, "median of 1 TaskRuns"},
		{"Tekton RSS after the runs: controller", 50, "", false, "tekton-controller"},
		{"Tekton RSS after the runs: webhook", 30, "", false, "tekton-webhook"},
		{"Tekton RSS after the runs: all its programs", 80, "", false, "2 processes summed: controller, webhook"},
	} {
		m, ok := got[w.figure]
		switch {
		case !ok:
			t.Errorf("no figure %q in %q", w.figure, order)
		case m.Value != w.value || !strings.Contains(m.Detail, w.detail) || m.Target != w.target:
			t.Errorf("%s: %v %s, target %q (%s); want %v, target %q and a detail with %q", w.figure, m.Value, m.Unit, m.Target, m.Detail, w.value, w.target, w.detail)
		case w.target != "" && (m.Met == nil || *m.Met != w.met):
			t.Errorf("%s: met %v, want %t", w.figure, m.Met, w.met)
		case w.target == "" && m.Met != nil:
			t.Errorf("%s: met %v without a target", w.figure, *m.Met)
		}
	}
	if len(order) != 11 {
		t.Errorf("%d figures, want 11: %q", len(order), order)
	}
	f.tekton = []time.Duration{s(31), s(30.5), s(40)}
	for _, m := range f.measurements() {
		if strings.HasPrefix(m.Figure, "canary-release PipelineRun") && (m.Met == nil || *m.Met) {
			t.Errorf("%s at %v s: met %v; want missed", m.Figure, m.Value, m.Met)
		}
	}
}

func TestTektonSkippedRow(t *testing.T) {
	tab := Table([]Measurement{tektonSkipped(errors.New("the real node needs root"))})
	if want := "| tekton | skipped |  |  | skipped: the real node needs root |"; !strings.Contains(tab, want) {
		t.Errorf("table lacks %q:\n%s", want, tab)
	}
}
