package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	routev1 "github.com/openshift/api/route/v1"
	routeclient "github.com/openshift/client-go/route/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	sampleapp "github.com/canaryline/canaryline/internal/dev/app"
	"github.com/canaryline/canaryline/internal/dev/demo"
	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/tools/runner"
	"github.com/canaryline/canaryline/internal/tools/tektonrun"
)

// rollbackInterval is the analysis interval of the time-to-rollback figure.
const rollbackInterval = 5 * time.Second

// errorRateQuery is the canary's share of 500s over the last 2 s (Prometheus scrapes every 500 ms), on the series
// of the canary's pod-template-hash: this run's canary pods.
const errorRateQuery = `sum(rate(http_requests_total{namespace="{{.Namespace}}",pod_template_hash="{{.CanaryHash}}",code="500"}[2s])) / ` +
	`sum(rate(http_requests_total{namespace="{{.Namespace}}",pod_template_hash="{{.CanaryHash}}"}[2s]))`

// rollbackFigures measures the time to rollback: sample-app serves stable and canary as real processes, a real
// Prometheus scrapes them, and the router simulator sends them 100 requests a second in the Route's proportions.
// A release runs the canary-release Pipeline with a 5 s analysis interval; each release's canary pods get a fresh
// process. A random 1 to 4 s into the first analysis, once Prometheus scrapes that process (it discovers a new
// pod's process within about 10 s), the canary starts failing 60% of its requests. The figure is the time from
// that switch until the Route sends the canary nothing, median over runs.
func (c *cluster) rollbackFigures(ctx context.Context, runs int, cacheDir string) ([]Measurement, error) {
	const app = "bench-rollback"
	kc, err := c.app(ctx, app)
	if err != nil {
		return nil, err
	}
	routes, err := routeclient.NewForConfig(c.cfg)
	if err != nil {
		return nil, err
	}
	stack, err := demo.StartStack(ctx, demo.StackOptions{Kube: c.kube, Routes: routes.RouteV1(), Namespace: app, App: app,
		Stable: sampleapp.Config{Version: "v1", ErrorRate: 0.001, Seed: 1}, Canary: sampleapp.Config{Version: "v1", ErrorRate: 0.001, Seed: 2},
		CacheDir: cacheDir, Scrape: 500 * time.Millisecond, Rate: 100, Log: c.log})
	if err != nil {
		return nil, err
	}
	defer stack.Stop()
	b := &rollbackBench{c: c, app: app, kc: kc, stack: stack, lw: routeWatch(routes, app)}
	var times []time.Duration
	for i := range runs {
		d, err := b.once(ctx, i)
		if err != nil {
			return nil, err
		}
		times = append(times, d)
	}
	m := median(times)
	target := rollbackInterval + 2*time.Second
	return []Measurement{{Figure: "time to rollback (5 s analysis interval)", Value: m.Seconds(), Unit: "s",
		Target: fmt.Sprintf("≤ %.0f s (interval + 2 s)", target.Seconds()), Met: met(m <= target),
		Detail: fmt.Sprintf("median of %d: %s", runs, durations(times))}}, nil
}

// routeWatch lists and watches the app's Route: the moment its weights change is the moment seen.
func routeWatch(routes routeclient.Interface, app string) *cache.ListWatch {
	sel := fields.OneTermEqualSelector("metadata.name", app).String()
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return routes.RouteV1().Routes(app).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return routes.RouteV1().Routes(app).Watch(ctx, o)
		},
	}
}

// rollbackBench is what the time-to-rollback runs share: the app, the steps' kubeconfig, the stack serving it
// and the watch on its Route.
type rollbackBench struct {
	c     *cluster
	app   string
	kc    string
	stack *demo.Stack
	lw    *cache.ListWatch
}

// canaryWeight is the canary's weight on the Route.
func (b *rollbackBench) canaryWeight(r *routev1.Route) int32 {
	for _, be := range r.Spec.AlternateBackends {
		if be.Name == naming.Canary(b.app) && be.Weight != nil {
			return *be.Weight
		}
	}
	return 0
}

// until returns when the canary's weight satisfies cond (within 2 minutes), with the time it was seen.
func (b *rollbackBench) until(ctx context.Context, what string, cond func(weight int32) bool) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_, err := watchtools.UntilWithSync(ctx, b.lw, &routev1.Route{}, func(store cache.Store) (bool, error) {
		for _, obj := range store.List() {
			if cond(b.canaryWeight(obj.(*routev1.Route))) {
				return true, nil
			}
		}
		return false, nil
	}, func(e watch.Event) (bool, error) {
		r, ok := e.Object.(*routev1.Route)
		return ok && e.Type != watch.Deleted && cond(b.canaryWeight(r)), nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("waiting for %s: %w", what, err)
	}
	return time.Now(), nil
}

// rollbackRun is one release run in the background: its summary once it ends, its error and its output.
type rollbackRun struct {
	done    chan *runner.Summary
	err     error
	log     *tektonrun.LockedBuffer
	running context.Context // ended when the run ends
}

// start starts release i of the canary-release Pipeline in the background.
func (b *rollbackBench) start(ctx context.Context, i int) *rollbackRun {
	c, app := b.c, b.app
	sum := sha256.Sum256([]byte(fmt.Sprint("bench-rollback", i)))
	commit := hex.EncodeToString(sum[:])[:40]
	r := &rollbackRun{done: make(chan *runner.Summary, 1), log: &tektonrun.LockedBuffer{}}
	running, ended := context.WithCancel(ctx) // ends the wait for the first shift if the run ends before it
	r.running = running
	go func() {
		defer ended()
		s, err := runner.Run(ctx, runner.Options{
			Pipeline: filepath.Join(c.root, "pipelines", "canary-release.yaml"), TasksDir: filepath.Join(c.root, "tasks"),
			Steps: c.steps, Env: []string{"KUBECONFIG=" + b.kc, "PATH=/usr/bin:/bin", "HOME=" + c.work},
			Namespace: app, RunName: fmt.Sprintf("%s-%d", app, i), Workspace: filepath.Join(c.work, app, fmt.Sprint(i)), Out: r.log,
			Params: map[string]string{"app": app, "namespace": app, "git-revision": commit, "interval": rollbackInterval.String(), "count": "6",
				"weight-1": "20", "weight-2": "50", "weight-3": "80", "prometheus-url": b.stack.Prometheus.URL, "ready-timeout": "1m",
				"queries": "- name: error-rate\n  query: '" + errorRateQuery + "'\n  threshold: '< 0.1'\n"},
		})
		r.err = err
		r.done <- s
	}()
	return r
}

// once measures run i: once the first shift gave the canary traffic and the analysis can see it, the canary
// turns bad a random 1 to 4 s later; the time to rollback runs from then until the canary has no traffic.
func (b *rollbackBench) once(ctx context.Context, i int) (time.Duration, error) {
	r := b.start(ctx, i)
	fail := func(err error) (time.Duration, error) {
		return 0, fmt.Errorf("time to rollback, run %d: %w\n%s", i, err, r.log.String())
	}
	shifted, err := b.until(r.running, "the first shift", func(w int32) bool { return w > 0 })
	if err != nil {
		if r.running.Err() != nil && ctx.Err() == nil {
			<-r.done
			err = fmt.Errorf("the release ended before its first shift (%v)", r.err)
		}
		return fail(err)
	}
	canary, err := b.stack.CanaryScraped(r.running)
	if err != nil {
		return fail(err)
	}
	if now := time.Now(); now.After(shifted) {
		shifted = now // the analysis sees the canary from here
	}
	offset := time.Second + time.Duration(rand.Int64N(int64(3*time.Second)))
	time.Sleep(time.Until(shifted.Add(offset)))
	_ = canary.SetErrorRate(0.6)
	bad := time.Now()
	zero, err := b.until(ctx, "canary traffic 0", func(w int32) bool { return w == 0 })
	if err != nil {
		return fail(err)
	}
	if decision := finalDecision(<-r.done); decision != "rollback" {
		return fail(fmt.Errorf("the release was not rolled back (decision %q)", decision))
	}
	fmt.Fprintf(b.c.log, "bench: time to rollback, run %d: %.2f s (the canary turned bad %.1f s after the analysis could see it)\n", i+1,
		zero.Sub(bad).Seconds(), offset.Seconds())
	return zero.Sub(bad), nil
}

// finalDecision is the DECISION result of the run's finally task, "" without one.
func finalDecision(s *runner.Summary) string {
	decision := ""
	if s != nil {
		for _, tr := range s.Tasks {
			if tr.Finally {
				decision = tr.Results["DECISION"]
			}
		}
	}
	return decision
}
