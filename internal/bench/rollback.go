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

	routeclient "github.com/openshift/client-go/route/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/demo"
	"github.com/canaryline/canaryline/internal/runner"
	sampleapp "github.com/canaryline/canaryline/test/app"
)

// rollbackInterval is the analysis interval of the time-to-rollback figure.
const rollbackInterval = 5 * time.Second

// errorRateQuery is the canary's share of 500s over the last 2 s (Prometheus scrapes every 500 ms).
const errorRateQuery = `sum(rate(http_requests_total{namespace="{{.Namespace}}",track="{{.CanaryTrack}}",code="500"}[2s])) / ` +
	`sum(rate(http_requests_total{namespace="{{.Namespace}}",track="{{.CanaryTrack}}"}[2s]))`

// rollbackFigures measures the time to rollback: sample-app serves stable and canary as real processes, a real
// Prometheus scrapes them, and the router simulator sends them 100 requests a second in the Route's proportions.
// A release runs the canary-release Pipeline with a 5 s analysis interval; a random 1 to 4 s into the first
// analysis the canary starts failing 60% of its requests. The figure is the time from that switch until the
// Route sends the canary nothing, median over runs.
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
	stack, err := demo.StartStack(ctx, demo.StackOptions{Routes: routes.RouteV1(), Namespace: app, App: app,
		Stable: sampleapp.Config{Version: "v1", ErrorRate: 0.001, Seed: 1}, Canary: sampleapp.Config{Version: "v1", ErrorRate: 0.001, Seed: 2},
		CacheDir: cacheDir, Scrape: 500 * time.Millisecond, Rate: 100, Log: c.log})
	if err != nil {
		return nil, err
	}
	defer stack.Stop()
	canary, prom := stack.Canary, stack.Prometheus

	canaryWeight := func() int32 {
		r, err := routes.RouteV1().Routes(app).Get(ctx, app, metav1.GetOptions{})
		if err != nil {
			return -1
		}
		for _, b := range r.Spec.AlternateBackends {
			if b.Name == app+"-canary" && b.Weight != nil {
				return *b.Weight
			}
		}
		return 0
	}
	until := func(what string, timeout time.Duration, cond func() bool) (time.Time, error) {
		deadline := time.Now().Add(timeout)
		for !cond() {
			if time.Now().After(deadline) {
				return time.Time{}, fmt.Errorf("time to rollback: timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Now(), nil
	}

	var times []time.Duration
	for i := range runs {
		_ = canary.SetErrorRate(0.001)
		time.Sleep(3 * time.Second) // the 2 s rate window forgets the last run's errors
		sum := sha256.Sum256([]byte(fmt.Sprint("bench-rollback", i)))
		commit := hex.EncodeToString(sum[:])[:40]
		done := make(chan *runner.Summary, 1)
		var runLog bytes.Buffer
		var runErr error
		go func() {
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
		var ended *runner.Summary
		shifted, err := until("the first shift", 2*time.Minute, func() bool {
			select {
			case ended = <-done:
				return true
			default:
			}
			return canaryWeight() > 0
		})
		if err == nil && ended != nil {
			err = fmt.Errorf("the release ended before its first shift (%v)", runErr)
		}
		if err != nil {
			return nil, fmt.Errorf("time to rollback, run %d: %w\n%s", i, err, runLog.String())
		}
		offset := time.Second + time.Duration(rand.Int64N(int64(3*time.Second)))
		time.Sleep(time.Until(shifted.Add(offset)))
		_ = canary.SetErrorRate(0.6)
		bad := time.Now()
		zero, err := until("canary traffic 0", 2*time.Minute, func() bool { return canaryWeight() == 0 })
		if err != nil {
			return nil, err
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
		fmt.Fprintf(c.log, "bench: time to rollback, run %d: %.2f s (the canary turned bad %.1f s into the analysis)\n", i+1,
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
