package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/canaryline/canaryline/internal/dev/demo"
	"github.com/canaryline/canaryline/internal/dev/faultproxy"
	"github.com/canaryline/canaryline/internal/runtime/steps"
	"github.com/canaryline/canaryline/internal/tools/runner"
)

// cluster is what the cluster figures need: the cluster as an admin, the repository and the step binary.
type cluster struct {
	cfg      *rest.Config
	kube     kubernetes.Interface
	root     string
	steps    string
	work     string // scratch directory
	upstream string // the API server the counting proxy forwards to
	caData   []byte
	log      io.Writer
	// noRSS runs steps without sampling their peak RSS (every 2 ms), where this process's CPU is measured.
	noRSS bool
}

// app sets up application name in its own namespace, as `oc new-app` would (Deployment of 3, Service, Route,
// BuildConfig with an instant build, canaryline's Role and ServiceAccount), and returns a steps kubeconfig.
func (c *cluster) app(ctx context.Context, name string) (string, error) {
	o := demo.Options{Config: c.cfg, Namespace: name, App: name, Root: c.root, Evidence: filepath.Join(c.work, name)}
	if err := demo.Setup(ctx, o, c.kube); err != nil {
		return "", err
	}
	return demo.StepsKubeconfig(ctx, o, c.kube)
}

// releaseSteps are the steps of a 3-weight canary release with an instant build and an analysis of one
// immediate measurement after each weight, as the canary-release Pipeline runs them.
func releaseSteps(app string, promote bool) []struct {
	step string
	env  map[string]string
} {
	type s = struct {
		step string
		env  map[string]string
	}
	id := app + "-release"
	out := []s{
		{steps.StartBuild, map[string]string{"BUILD_CONFIG": app, "COMMIT": strings.Repeat("ab", 20), "PIPELINE_RUN": id}},
		{steps.WaitBuild, map[string]string{"BUILD_NAME": app + "-1"}},
	}
	for _, w := range []string{"10", "30", "60"} {
		out = append(out,
			s{steps.ShiftCanary, map[string]string{"APP": app, "IMAGE": "", "WEIGHT": w, "RELEASE_ID": id}},
			s{steps.VerifyHealth, map[string]string{"APP": app, "RELEASE_ID": id, "INTERVAL": "1s", "COUNT": "1"}})
	}
	status := "Failed"
	if promote {
		status = "Succeeded"
	}
	return append(out, s{steps.PromoteOrRollback, map[string]string{"APP": app, "RELEASE_ID": id, "DECISION": "auto", "PIPELINE_STATUS": status}})
}

// stepFigures is what running a release's steps directly measured.
type stepFigures struct {
	requests faultproxy.Stats
	peakRSS  map[string]int64 // bytes, by step
}

// countedRelease runs a release's steps one by one (as the Pipeline would) through a counting proxy: the API
// requests each makes, by verb, and each step's peak RSS.
func (c *cluster) countedRelease(ctx context.Context, app string, promote bool) (stepFigures, error) {
	kc, err := c.app(ctx, app)
	if err != nil {
		return stepFigures{}, err
	}
	proxy, err := faultproxy.Start(faultproxy.Options{Upstream: c.upstream, UpstreamCA: c.caData})
	if err != nil {
		return stepFigures{}, err
	}
	defer proxy.Close()
	pkc, err := proxy.Kubeconfig(kc, filepath.Join(c.work, app))
	if err != nil {
		return stepFigures{}, err
	}
	f := stepFigures{peakRSS: map[string]int64{}}
	image := ""
	for _, s := range releaseSteps(app, promote) {
		if s.step == steps.ShiftCanary {
			s.env["IMAGE"] = image
		}
		results, rss, err := c.runStep(ctx, s.step, pkc, s.env)
		if err != nil {
			return f, err
		}
		if s.step == steps.WaitBuild {
			image = results["IMAGE_URL"]
		}
		f.peakRSS[s.step] = max(f.peakRSS[s.step], rss)
	}
	f.requests = proxy.Stats()
	return f, nil
}

// runStep runs one step as a process and returns its results and peak RSS.
func (c *cluster) runStep(ctx context.Context, step, kubeconfig string, env map[string]string) (map[string]string, int64, error) {
	results, err := os.MkdirTemp(c.work, "results-")
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.CommandContext(ctx, c.steps, step)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + c.work, "KUBECONFIG=" + kubeconfig, "RESULTS_DIR=" + results}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	rss := func() int64 { return 0 }
	if !c.noRSS {
		rss = peakRSS(cmd.Process.Pid)
	}
	err = cmd.Wait()
	hwm := rss()
	if os.Getenv("BENCH_DEBUG") != "" {
		c.log.Write(out.Bytes())
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %v\n%s", step, err, out.Bytes())
	}
	got := map[string]string{}
	entries, _ := os.ReadDir(results)
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(results, e.Name()))
		got[e.Name()] = string(data)
	}
	return got, hwm, nil
}

// pipelineRelease runs the canary-release Pipeline (3 weights) for app with canaryline run: an instant build, an
// analysis of one immediate measurement after each weight. It returns the run's wall time; setting the
// application up is not counted.
func (c *cluster) pipelineRelease(ctx context.Context, app, kubeconfig string, analysis time.Duration) (time.Duration, *runner.Summary, error) {
	return c.runRelease(ctx, app, app+"-release", kubeconfig, releaseParams(app, analysis))
}

// releaseParams are the canary-release params of a release of app (in namespace app) with an instant build: with
// analysis 0, one immediate measurement after each weight (no analysis window); else measurements at 0 and
// after one window of analysis.
func releaseParams(app string, analysis time.Duration) map[string]string {
	interval, count := "1s", "1" // one immediate measurement: no analysis window
	if analysis > 0 {
		interval, count = analysis.String(), "2" // measurements at 0 and after one window
	}
	return map[string]string{"app": app, "namespace": app, "git-revision": strings.Repeat("cd", 20),
		"weight-1": "10", "weight-2": "30", "weight-3": "60", "interval": interval, "count": count}
}

// runRelease runs the canary-release Pipeline with params as run runName (the release's id: one per release) in
// namespace ns with canaryline run, and returns its wall time. A release that is not promoted is an error.
func (c *cluster) runRelease(ctx context.Context, ns, runName, kubeconfig string, params map[string]string) (time.Duration, *runner.Summary, error) {
	t0 := time.Now()
	sum, err := runner.Run(ctx, runner.Options{
		Pipeline: filepath.Join(c.root, "pipelines", "canary-release.yaml"), TasksDir: filepath.Join(c.root, "tasks"),
		Steps: c.steps, Env: []string{"KUBECONFIG=" + kubeconfig, "PATH=/usr/bin:/bin", "HOME=" + c.work},
		Namespace: ns, RunName: runName, Workspace: filepath.Join(c.work, ns, runName, "ws"), Out: io.Discard,
		Params: params,
	})
	d := time.Since(t0)
	if err != nil {
		return d, sum, fmt.Errorf("release %s: %w", runName, err)
	}
	if sum.Status != runner.Succeeded || sum.Results["decision"] != "promote" {
		return d, sum, fmt.Errorf("release %s: %s, decision %q; want it promoted", runName, sum.Status, sum.Results["decision"])
	}
	return d, sum, nil
}

// requestFigures are the API requests of a promoted and a rolled-back release, and each step's peak RSS.
func (c *cluster) requestFigures(ctx context.Context) ([]Measurement, error) {
	var out []Measurement
	rss := map[string]int64{}
	for _, promote := range []bool{true, false} {
		name, what := "bench-requests-promoted", "promoted"
		if !promote {
			name, what = "bench-requests-rolled-back", "rolled back"
		}
		f, err := c.countedRelease(ctx, name, promote)
		if err != nil {
			return nil, err
		}
		for s, v := range f.peakRSS {
			rss[s] = max(rss[s], v)
		}
		var verbs []string
		for v, n := range f.requests.ByVerb {
			verbs = append(verbs, fmt.Sprintf("%s %d", v, n))
		}
		sort.Strings(verbs)
		out = append(out, Measurement{Figure: "API requests per release, 3 weights, " + what, Value: float64(f.requests.Requests),
			Unit: "requests", Target: "≤ 80", Met: met(f.requests.Requests <= 80),
			Detail: strings.Join(verbs, ", ") + "; waits are watches"})
	}
	for _, s := range steps.Names() {
		out = append(out, Measurement{Figure: "peak RSS: " + s, Value: float64(rss[s]) / 1e6, Unit: "MB", Target: "≤ 40 MB",
			Met: met(rss[s] <= 40e6), Detail: "largest over the two releases' runs (VmHWM, sampled every 2 ms)"})
	}
	return out, nil
}

// overheadFigures are the wall time of one release, then of 20 concurrent releases of different applications.
func (c *cluster) overheadFigures(ctx context.Context, runs, concurrent int) ([]Measurement, error) {
	var singles []time.Duration
	var cpu cpuUse
	for i := range runs {
		app := fmt.Sprintf("bench-single-%d", i)
		kc, err := c.app(ctx, app)
		if err != nil {
			return nil, err
		}
		time.Sleep(2 * time.Second) // let the control plane settle after the set-up
		before := cpuNow()
		d, _, err := c.pipelineRelease(ctx, app, kc, 0)
		if err != nil {
			return nil, err
		}
		if u := cpuNow().sub(before); i == 0 || u.Total() < cpu.Total() {
			cpu = u // the least: the one least disturbed by background work
		}
		singles = append(singles, d)
	}
	single := median(singles)
	cores := runtime.NumCPU()
	out := []Measurement{
		{Figure: "release overhead: 3 weights, instant build, no analysis windows", Value: single.Seconds(), Unit: "s",
			Target: "≤ 10 s", Met: met(single <= 10*time.Second), Detail: fmt.Sprintf("median of %d: %s", runs, durations(singles))},
		{Figure: "CPU time of one release", Value: cpu.Total().Seconds(), Unit: "CPU-s", Detail: cpu.String()},
	}

	scale, err := c.scale(ctx, "bench-scale", concurrent, 0, single, cores)
	if err != nil {
		return nil, err
	}
	out = append(out, scale...)

	// The same with one 5 s analysis window after each weight, as real releases wait: a single one, then 20.
	var waiting []time.Duration
	for i := range runs {
		app := fmt.Sprintf("bench-single-w-%d", i)
		kc, err := c.app(ctx, app)
		if err != nil {
			return nil, err
		}
		d, _, err := c.pipelineRelease(ctx, app, kc, 5*time.Second)
		if err != nil {
			return nil, err
		}
		waiting = append(waiting, d)
	}
	singleW := median(waiting)
	out = append(out, Measurement{Figure: "release with one 5 s analysis window per weight", Value: singleW.Seconds(), Unit: "s",
		Detail: fmt.Sprintf("median of %d: %s", runs, durations(waiting))})
	scaleW, err := c.scale(ctx, "bench-scale-w", concurrent, 5*time.Second, singleW, cores)
	if err != nil {
		return nil, err
	}
	return append(out, scaleW...), nil
}

// scale runs n releases of different applications at once (each set up first, not counted) and compares their
// wall times with a single release's.
func (c *cluster) scale(ctx context.Context, prefix string, concurrent int, analysis, single time.Duration, cores int) ([]Measurement, error) {
	what := "no analysis windows"
	if analysis > 0 {
		what = fmt.Sprintf("one %s analysis window per weight", analysis)
	}
	kcs := make([]string, concurrent)
	for i := range concurrent {
		var err error
		if kcs[i], err = c.app(ctx, fmt.Sprintf("%s-%02d", prefix, i)); err != nil {
			return nil, err
		}
	}
	walls := make([]time.Duration, concurrent)
	errs := make([]error, concurrent)
	time.Sleep(2 * time.Second)
	before := cpuNow()
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := range concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			walls[i], _, errs[i] = c.pipelineRelease(ctx, fmt.Sprintf("%s-%02d", prefix, i), kcs[i], analysis)
		}()
	}
	wg.Wait()
	all, wall := cpuNow().sub(before), time.Since(t0)
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			fmt.Fprintln(c.log, "bench:", err)
		}
	}
	p50, p95 := percentileOf(walls, 50), percentileOf(walls, 95)
	return []Measurement{
		{Figure: fmt.Sprintf("scale: %d concurrent releases (%s), completed", concurrent, what), Value: float64(concurrent - failed), Unit: "releases",
			Target: fmt.Sprintf("all %d", concurrent), Met: met(failed == 0)},
		{Figure: fmt.Sprintf("scale: %d concurrent releases (%s), p50 wall time", concurrent, what), Value: p50.Seconds(), Unit: "s",
			Detail: fmt.Sprintf("%.2fx a single release", p50.Seconds()/single.Seconds())},
		{Figure: fmt.Sprintf("scale: %d concurrent releases (%s), p95 wall time", concurrent, what), Value: p95.Seconds(), Unit: "s",
			Target: "≤ 2x a single release", Met: met(p95 <= 2*single),
			Detail: fmt.Sprintf("%.2fx a single release (%.1f s); the %d releases used %s, in %.1f s on %d cores: the CPU bound alone is %.1f s",
				p95.Seconds()/single.Seconds(), single.Seconds(), concurrent, all, wall.Seconds(), cores, all.Total().Seconds()/float64(cores))},
	}, nil
}

func met(b bool) *bool { return &b }

// percentile is the nearest-rank percentile p (0-100) of ds.
func percentileOf(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

func durations(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%.1f", d.Seconds()))
	}
	return strings.Join(parts, ", ") + " s"
}

// peakRSS follows a process's peak resident set size: the kernel's high-water mark since exec (VmHWM in
// /proc/PID/status), sampled every 2 ms until the returned function is called after the process ended. (The
// rusage of a child is no use here: it counts the parent's memory the child shared before exec.)
func peakRSS(pid int) func() int64 {
	var mu sync.Mutex
	var peak int64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		path := fmt.Sprintf("/proc/%d/status", pid)
		for {
			if data, err := os.ReadFile(path); err == nil {
				for _, line := range strings.Split(string(data), "\n") {
					if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
						var kb int64
						fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
						mu.Lock()
						peak = max(peak, kb*1024)
						mu.Unlock()
					}
				}
			}
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(done)
		<-stopped
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}
