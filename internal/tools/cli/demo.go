package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/canaryline/canaryline/internal/dev/demo"
	"github.com/canaryline/canaryline/internal/dev/devcluster"
)

// demoFlags are the flags of `canaryline demo`.
type demoFlags struct {
	kubeconfig, namespace, evidence, steps string
	realNode, noTekton                     bool
}

// demoCmd is `canaryline demo`.
func demoCmd(fs *flag.FlagSet, env Env) runFunc {
	var f demoFlags
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "run on this cluster instead of the embedded one (it needs the OpenShift build and route APIs)")
	fs.StringVar(&f.namespace, "namespace", "canaryline-demo", "namespace of the demo application")
	fs.StringVar(&f.evidence, "evidence", "_output/demo", "where the releases' evidence, reports and charts go")
	fs.StringVar(&f.steps, "steps", "", "the step binary (canaryline-steps); built from the repository when not found")
	fs.BoolVar(&f.realNode, "real-node", false, "run on the embedded control plane's real node (root): real images, pods and Prometheus service discovery")
	fs.BoolVar(&f.noTekton, "no-tekton", false, "run each release with canaryline run (steps as local processes) instead of as a PipelineRun on the embedded Tekton controller")
	return func(ctx context.Context, _ []string, stdout, stderr io.Writer) error {
		return runDemo(ctx, env, &f, stdout, stderr)
	}
}

// runDemo runs the demo on the embedded control plane, or on f.kubeconfig's cluster, and prints its summary.
func runDemo(ctx context.Context, env Env, f *demoFlags, stdout, stderr io.Writer) error {
	tekton, err := demoMode(f, stderr)
	if err != nil {
		return err
	}
	cacheDir, err := cacheDirOf(env)
	if err != nil {
		return err
	}
	bin, built, err := stepsBinary(ctx, f.steps)
	if err != nil {
		return err
	}
	tmp := &builtBinary{dir: built}
	defer tmp.remove()
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	evDir, err := cleanEvidence(f.evidence)
	if err != nil {
		return err
	}
	sigs, stopNotify := notifyInterrupts()
	defer stopNotify()
	ctx, in, stop := watchInterrupts(ctx, sigs, stderr)
	defer stop()
	o := demo.Options{Namespace: f.namespace, App: "sample-app", Root: root, Steps: bin, CacheDir: cacheDir, Evidence: evDir, Out: stdout,
		Abort: in.abort, Progress: in.progress}
	if f.kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", f.kubeconfig)
		if err != nil {
			return usagef("--kubeconfig %s: %v", f.kubeconfig, err)
		}
		o.Config = cfg
	} else {
		fmt.Fprintln(stderr, "canaryline: starting the embedded control plane (built on first use, about 7 minutes)")
		c, err := devcluster.Start(ctx, devcluster.Options{CacheDir: cacheDir, Nodes: env.Nodes, Log: stderr, RealNode: f.realNode, Tekton: tekton, RepoRoot: root})
		if err != nil {
			return err
		}
		defer c.Stop() // also on Ctrl-C: the context ends, the runs stop, and everything started here is removed
		o.Config, o.RealNode, o.Tekton = c.Config(), c.Node(), tekton
	}
	t0 := time.Now()
	releases, err := demo.Run(ctx, o)
	writeDemoSummary(stdout, releases, time.Since(t0))
	if forced, then := in.wasForced(); forced {
		if f.kubeconfig == "" {
			fmt.Fprintln(stderr, "canaryline: forced exit: the embedded control plane is removed with the demo and everything on it")
		} else {
			tmp.keep = true
			fmt.Fprint(stderr, forcedMessage(then, nil, bin, f.kubeconfig))
		}
		return exitCode(exitInterrupted)
	}
	return err
}

// demoMode decides whether the releases run on Tekton, and checks (and sets) f.realNode. On the embedded control
// plane the releases run as PipelineRuns on the real Tekton controller, which needs the real node (root); without
// root the demo says so and runs them with canaryline run.
func demoMode(f *demoFlags, stderr io.Writer) (tekton bool, err error) {
	tekton = f.kubeconfig == "" && !f.noTekton
	if tekton {
		if err := devcluster.CheckRealNode(); err != nil {
			fmt.Fprintf(stderr, "canaryline: the demo runs without Tekton (canaryline run): %v\n", err)
			tekton = false
		} else {
			f.realNode = true
		}
	}
	if f.realNode {
		if f.kubeconfig != "" {
			return false, usagef("demo --real-node runs on the embedded control plane's real node: drop --kubeconfig, or drop --real-node to run on %s's cluster", f.kubeconfig)
		}
		if err := devcluster.CheckRealNode(); err != nil {
			return false, usagef("demo --real-node: %v", err)
		}
	}
	return tekton, nil
}

// cleanEvidence returns the evidence directory, absolute, with what an earlier demo wrote there removed (nothing
// else in the directory is touched).
func cleanEvidence(dir string) (string, error) {
	evDir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for _, name := range demo.EvidenceEntries() {
		_ = os.RemoveAll(filepath.Join(evDir, name))
	}
	return evDir, nil
}

// writeDemoSummary prints one line per release: its decision, verdict, weight and report.
func writeDemoSummary(w io.Writer, releases []demo.Release, took time.Duration) {
	fmt.Fprintf(w, "\nsummary (%s):\n", took.Round(time.Second))
	for _, r := range releases {
		fmt.Fprintf(w, "  %-3s %-9s verdict %-12s from %s at %s%% canary weight: %s\n      report: %s\n", r.Version, r.Decision,
			r.Verdict, r.DecidedBy, r.Weight, r.Reason, r.Report)
	}
}
