// Package bench is canaryline's benchmark driver (`make bench`, `canaryline bench`). It measures, on the local
// control plane, what a release costs and how fast it goes:
//   - the size of each step binary and of the step image;
//   - each step's cold start, to its first API request and to a config error;
//   - each step's peak RSS;
//   - the API requests of a whole release, by verb;
//   - the time from a canary turning bad to its traffic being 0;
//   - the wall time of one release, and of 20 at once;
//   - a real node's start, its pods' start, and kubelet's and containerd's memory (when the machine can run one);
//   - canary-release as PipelineRuns on the real Tekton controller beside canaryline run, Tekton's per-task
//     overhead and its programs' memory (when the machine can run a real node).
//
// It also runs the Go benchmarks, and prints everything as one table with each figure's target. These are
// measurements: nothing here fails on time. A missed target is reported as missed.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Options configure a benchmark run.
type Options struct {
	Root     string       // the repository
	Config   *rest.Config // the cluster, as an admin (the local control plane)
	Upstream string       // its API server URL (where the counting proxy forwards)
	CAData   []byte       // its CA
	CacheDir string       // for a Prometheus built from the module proxy
	Work     string       // a scratch directory
	// StartupRuns is the runs per cold-start figure (21); ReleaseRuns the single releases timed (3);
	// RollbackRuns the time-to-rollback runs (5); Concurrent the releases at once (20).
	StartupRuns, ReleaseRuns, RollbackRuns, Concurrent int
	// Skip names parts not to run: "go", "sizes", "startup", "requests", "rollback", "overhead", "realnode", "tekton".
	Skip map[string]bool
	Log  io.Writer // progress
}

// Run measures everything and returns the figures, in table order.
func Run(ctx context.Context, o Options) ([]Measurement, error) {
	if o.StartupRuns == 0 {
		o.StartupRuns = 21
	}
	if o.ReleaseRuns == 0 {
		o.ReleaseRuns = 3
	}
	if o.RollbackRuns == 0 {
		o.RollbackRuns = 5
	}
	if o.Concurrent == 0 {
		o.Concurrent = 20
	}
	say := func(format string, args ...any) { fmt.Fprintf(o.Log, "bench: "+format+"\n", args...) }
	bin := filepath.Join(o.Work, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return nil, err
	}
	steps := filepath.Join(bin, "canaryline-steps")
	say("building canaryline-steps")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", steps, "./cmd/canaryline-steps")
	build.Dir, build.Env = o.Root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build canaryline-steps: %v\n%s", err, out)
	}
	kube, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	c := &cluster{cfg: o.Config, kube: kube, root: o.Root, steps: steps, work: o.Work, upstream: o.Upstream, caData: o.CAData, log: o.Log}

	var all []Measurement
	part := func(name, what string, f func() ([]Measurement, error)) error {
		if o.Skip[name] {
			return nil
		}
		say("%s", what)
		t0 := time.Now()
		ms, err := f()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		say("%s: done in %s", what, time.Since(t0).Round(time.Second))
		all = append(all, ms...)
		return nil
	}
	parts := []struct {
		name, what string
		f          func() ([]Measurement, error)
	}{
		{"sizes", "binary and image sizes", func() ([]Measurement, error) { return Sizes(ctx, o.Root) }},
		{"startup", "cold starts", func() ([]Measurement, error) {
			empty, err := BuildEmptyClient(ctx, o.Root, bin)
			if err != nil {
				return nil, err
			}
			return ColdStart(ctx, StartupOptions{Steps: steps, Empty: empty, Runs: o.StartupRuns})
		}},
		{"requests", "API requests and peak RSS of a promoted and a rolled-back release", func() ([]Measurement, error) {
			return c.requestFigures(ctx)
		}},
		{"overhead", fmt.Sprintf("release overhead: %d single releases, then %d at once", o.ReleaseRuns, o.Concurrent), func() ([]Measurement, error) {
			return c.overheadFigures(ctx, o.ReleaseRuns, o.Concurrent)
		}},
		{"rollback", fmt.Sprintf("time to rollback, %d runs", o.RollbackRuns), func() ([]Measurement, error) {
			return c.rollbackFigures(ctx, o.RollbackRuns, o.CacheDir)
		}},
		{"realnode", "real node: node and cluster starts, pod starts, kubelet's and containerd's memory", func() ([]Measurement, error) {
			return RealNodeFigures(ctx, RealNodeOptions{Root: o.Root, CacheDir: o.CacheDir, Log: o.Log})
		}},
		{"tekton", "Tekton: canary-release PipelineRuns beside canaryline run, per-task overhead, Tekton's memory", func() ([]Measurement, error) {
			return TektonFigures(ctx, TektonOptions{Root: o.Root, CacheDir: o.CacheDir, Steps: steps, Work: o.Work, Runs: o.ReleaseRuns, Log: o.Log})
		}},
		{"go", "Go benchmarks (control plane start and stop, statistics)", func() ([]Measurement, error) { return GoBenchmarks(ctx, o.Root) }},
	}
	for _, p := range parts {
		if err := part(p.name, p.what, p.f); err != nil {
			return all, err
		}
	}
	return all, nil
}
