package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	routev1 "github.com/openshift/api/route/v1"
	routeclient "github.com/openshift/client-go/route/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/canaryline/canaryline/internal/demo"
	sampleapp "github.com/canaryline/canaryline/internal/dev/app"
	"github.com/canaryline/canaryline/internal/naming"
	"github.com/canaryline/canaryline/internal/runner"
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
	prom := stack.Prometheus

	// The canary's weight on the Route, followed with list+watch: the moment it changes is the moment seen.
	canaryWeight := func(r *routev1.Route) int32 {
		for _, b := range r.Spec.AlternateBackends {
			if b.Name == naming.Canary(app) && b.Weight != nil {
				return *b.Weight
			}
		}
		return 0
	}
	sel := fields.OneTermEqualSelector("metadata.name", app).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return routes.RouteV1().Routes(app).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return routes.RouteV1().Routes(app).Watch(ctx, o)
		},
	}
	until := func(ctx context.Context, what string, cond func(weight int32) bool) (time.Time, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		_, err := watchtools.UntilWithSync(ctx, lw, &routev1.Route{}, func(store cache.Store) (bool, error) {
			for _, obj := range store.List() {
				if cond(canaryWeight(obj.(*routev1.Route))) {
					return true, nil
				}
			}
			return false, nil
		}, func(e watch.Event) (bool, error) {
			r, ok := e.Object.(*routev1.Route)
			return ok && e.Type != watch.Deleted && cond(canaryWeight(r)), nil
		})
		if err != nil {
			return time.Time{}, fmt.Errorf("waiting for %s: %w", what, err)
		}
		return time.Now(), nil
	}

	var times []time.Duration
	for i := range runs {
		sum := sha256.Sum256([]byte(fmt.Sprint("bench-rollback", i)))
		commit := hex.EncodeToString(sum[:])[:40]
		done := make(chan *runner.Summary, 1)
		var runLog bytes.Buffer
		var runErr error
		running, ended := context.WithCancel(ctx) // ends the wait for the first shift if the run ends before it
		go func() {
			defer ended()
			s, err := runner.Run(ctx, runner.Options{
				Pipeline: filepath.Join(c.root, "pipelines", "canary-release.yaml"), TasksDir: filepath.Join(c.root, "tasks"),
				Steps: c.steps, Env: []string{"KUBECONFIG=" + kc, "PATH=/usr/bin:/bin", "HOME=" + c.work},
				Namespace: app, RunName: fmt.Sprintf("%s-%d", app, i), Workspace: filepath.Join(c.work, app, fmt.Sprint(i)), Out: &syncWriter{w: &runLog},
				Params: map[string]string{"app": app, "namespace": app, "git-revision": commit, "interval": rollbackInterval.String(), "count": "6",
					"weight-1": "20", "weight-2": "50", "weight-3": "80", "prometheus-url": prom.URL, "ready-timeout": "1m",
					"queries": "- name: error-rate\n  query: '" + errorRateQuery + "'\n  threshold: '< 0.1'\n"},
			})
			runErr = err
			done <- s
		}()
		shifted, err := until(running, "the first shift", func(w int32) bool { return w > 0 })
		if err != nil {
			if running.Err() != nil && ctx.Err() == nil {
				<-done
				err = fmt.Errorf("the release ended before its first shift (%v)", runErr)
			}
			return nil, fmt.Errorf("time to rollback, run %d: %w\n%s", i, err, runLog.String())
		}
		canary, err := stack.CanaryScraped(running)
		if err != nil {
			return nil, fmt.Errorf("time to rollback, run %d: %w\n%s", i, err, runLog.String())
		}
		if now := time.Now(); now.After(shifted) {
			shifted = now // the analysis sees the canary from here
		}
		offset := time.Second + time.Duration(rand.Int64N(int64(3*time.Second)))
		time.Sleep(time.Until(shifted.Add(offset)))
		_ = canary.SetErrorRate(0.6)
		bad := time.Now()
		zero, err := until(ctx, "canary traffic 0", func(w int32) bool { return w == 0 })
		if err != nil {
			return nil, fmt.Errorf("time to rollback, run %d: %w\n%s", i, err, runLog.String())
		}
		s := <-done
		decision := ""
		if s != nil {
			for _, tr := range s.Tasks {
				if tr.Finally {
					decision = tr.Results["DECISION"]
				}
			}
		}
		if decision != "rollback" {
			return nil, fmt.Errorf("time to rollback, run %d: the release was not rolled back (decision %q)\n%s", i, decision, runLog.String())
		}
		times = append(times, zero.Sub(bad))
		fmt.Fprintf(c.log, "bench: time to rollback, run %d: %.2f s (the canary turned bad %.1f s after the analysis could see it)\n", i+1,
			zero.Sub(bad).Seconds(), offset.Seconds())
	}
	m := median(times)
	target := rollbackInterval + 2*time.Second
	return []Measurement{{Figure: "time to rollback (5 s analysis interval)", Value: m.Seconds(), Unit: "s",
		Target: fmt.Sprintf("≤ %.0f s (interval + 2 s)", target.Seconds()), Met: met(m <= target),
		Detail: fmt.Sprintf("median of %d: %s", runs, durations(times))}}, nil
}

// syncWriter serializes writes (the runner writes from its tasks' goroutines).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
