package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/canaryline/canaryline/internal/dev/bench"
	"github.com/canaryline/canaryline/internal/dev/devcluster"
)

// benchCmd measures cost and speed on the embedded control plane and prints one table (also written to --out).
func benchCmd(fs *flag.FlagSet, env Env) runFunc {
	out := fs.String("out", "_output/bench.md", "where the table is written too")
	var o bench.Options
	fs.IntVar(&o.StartupRuns, "startup-runs", 21, "runs per cold-start figure (the median is reported)")
	fs.IntVar(&o.ReleaseRuns, "release-runs", 3, "single releases timed (the median is reported)")
	fs.IntVar(&o.RollbackRuns, "rollback-runs", 5, "time-to-rollback runs (the median is reported)")
	fs.IntVar(&o.Concurrent, "concurrent", 20, "releases of different applications at once")
	fs.IntVar(&o.ArgoRuns, "argo-runs", 10, "releases (and rollbacks) each way of the comparison with Argo Rollouts (the median is reported)")
	skip := fs.String("skip", "", "comma-separated parts not to run: sizes, startup, requests, overhead, rollback, realnode, tekton, verdicts, argo, go")
	return func(ctx context.Context, _ []string, stdout, stderr io.Writer) error {
		return runBench(ctx, env, o, *skip, *out, stdout, stderr)
	}
}

// runBench starts the embedded control plane, measures, and prints the table (also written to out).
func runBench(ctx context.Context, env Env, o bench.Options, skip, out string, stdout, stderr io.Writer) error {
	o.Skip = map[string]bool{}
	for _, s := range strings.Split(skip, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.Skip[s] = true
		}
	}
	cacheDir, err := cacheDirOf(env)
	if err != nil {
		return err
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "canaryline-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	fmt.Fprintln(stderr, "canaryline: starting the embedded control plane (built on first use, about 7 minutes)")
	c, err := devcluster.Start(ctx, devcluster.Options{CacheDir: cacheDir, Nodes: env.Nodes, Log: stderr})
	if err != nil {
		return err
	}
	defer c.Stop()
	o.Root, o.Config, o.Upstream, o.CAData, o.CacheDir, o.Work, o.Log = root, c.Config(), c.ShimURL, c.CAData, cacheDir, work, stderr
	ms, runErr := bench.Run(ctx, o)
	table := bench.Table(ms)
	fmt.Fprint(stdout, "\n"+table)
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err == nil {
			_ = os.WriteFile(out, []byte(table), 0o644)
		}
	}
	if missed := bench.Missed(ms); len(missed) > 0 {
		fmt.Fprintf(stdout, "\ntargets missed: %s\n", strings.Join(missed, "; "))
	}
	return runErr
}
