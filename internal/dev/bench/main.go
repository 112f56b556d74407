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
//     overhead and its programs' memory (when the machine can run a real node);
//   - the same canary release with Argo Rollouts' controller (built from the module proxy) and with canaryline,
//     interleaved on one control plane: wall time, API requests, CPU, pods created, rollback, memory.
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

	"github.com/canaryline/canaryline/internal/dev/argorollouts"
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
	// ArgoRuns is the releases (and rollbacks) each way of the comparison with Argo Rollouts (10).
	ArgoRuns int
	// Skip names parts not to run: "go", "sizes", "startup", "requests", "rollback", "overhead", "realnode", "tekton", "verdicts", "argo".
	Skip map[string]bool
	Log  io.Writer // progress
}

// Run measures everything and returns the figures, in table order.
func Run(ctx context.Context, o Options) ([]Measurement, error) {
	o = o.withDefaults()
	bin := filepath.Join(o.Work, "bin")
	steps, err := buildSteps(ctx, o, bin)
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	c := &cluster{cfg: o.Config, kube: kube, root: o.Root, steps: steps, work: o.Work, upstream: o.Upstream, caData: o.CAData, log: o.Log}
	var all []Measurement
	for _, p := range benchParts(ctx, o, c, bin, steps) {
		if o.Skip[p.name] {
			continue
		}
		ms, err := p.measure(o.Log)
		if err != nil {
			return all, err
		}
		all = append(all, ms...)
	}
	return all, nil
}

// withDefaults fills in the zero counts.
func (o Options) withDefaults() Options {
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
	if o.ArgoRuns == 0 {
		o.ArgoRuns = 10
	}
	return o
}

// buildSteps builds canaryline-steps into bin, as the image has it (static, stripped).
func buildSteps(ctx context.Context, o Options, bin string) (string, error) {
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	steps := filepath.Join(bin, "canaryline-steps")
	fmt.Fprintf(o.Log, "bench: building canaryline-steps\n")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", steps, "./cmd/canaryline-steps")
	build.Dir, build.Env = o.Root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build canaryline-steps: %v\n%s", err, out)
	}
	return steps, nil
}

// benchPart is one part of the benchmark: its name (for Options.Skip), what it measures, and how.
type benchPart struct {
	name, what string
	f          func() ([]Measurement, error)
}

// measure runs the part, saying when it starts and how long it took.
func (p benchPart) measure(log io.Writer) ([]Measurement, error) {
	fmt.Fprintf(log, "bench: %s\n", p.what)
	t0 := time.Now()
	ms, err := p.f()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.what, err)
	}
	fmt.Fprintf(log, "bench: %s: done in %s\n", p.what, time.Since(t0).Round(time.Second))
	return ms, nil
}

// benchParts are the parts of the benchmark, in the order they run.
func benchParts(ctx context.Context, o Options, c *cluster, bin, steps string) []benchPart {
	return []benchPart{
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
		{"verdicts", "verdicts: seeded simulations of the sequential and the fixed comparison over whole releases", func() ([]Measurement, error) {
			return VerdictFigures(VerdictOptions{Seed: 1}), nil
		}},
		{"argo", fmt.Sprintf("Argo Rollouts %s and canaryline: the same canary release both ways, %d interleaved runs each, then %d replicas",
			argorollouts.Version, o.ArgoRuns, argoLargeReplicas), func() ([]Measurement, error) {
			return c.argoFigures(ctx, o.ArgoRuns, o.CacheDir)
		}},
		{"go", "Go benchmarks (control plane start and stop, statistics)", func() ([]Measurement, error) { return GoBenchmarks(ctx, o.Root) }},
	}
}
