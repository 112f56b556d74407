package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/canaryline/canaryline/internal/demo"
	"github.com/canaryline/canaryline/internal/devcluster"
)

func demoCmd(ctx context.Context, env Env, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	kubeconfig := fs.String("kubeconfig", "", "run on this cluster instead of the embedded one (it needs the OpenShift build and route APIs)")
	namespace := fs.String("namespace", "canaryline-demo", "namespace of the demo application")
	evidence := fs.String("evidence", "_output/demo", "where the releases' evidence, reports and charts go")
	steps := fs.String("steps", "", "the step binary (canaryline-steps); built from the repository when not found")
	realNode := fs.Bool("real-node", false, "run on the embedded control plane's real node (root): real images, pods and Prometheus service discovery")
	noTekton := fs.Bool("no-tekton", false, "run each release with canaryline run (steps as local processes) instead of as a PipelineRun on the embedded Tekton controller")
	if err := parse(fs, args); err != nil {
		return err
	}
	// On the embedded control plane the releases run as PipelineRuns on the real Tekton controller, which needs
	// the real node (root); without root the demo says so and runs them with canaryline run.
	tekton := *kubeconfig == "" && !*noTekton
	if tekton {
		if err := devcluster.CheckRealNode(); err != nil {
			fmt.Fprintf(stderr, "canaryline: the demo runs without Tekton (canaryline run): %v\n", err)
			tekton = false
		} else {
			*realNode = true
		}
	}
	if *realNode {
		if *kubeconfig != "" {
			return usagef("demo --real-node runs on the embedded control plane's real node: drop --kubeconfig, or drop --real-node to run on %s's cluster", *kubeconfig)
		}
		if err := devcluster.CheckRealNode(); err != nil {
			return usagef("demo --real-node: %v", err)
		}
	}
	cacheDir := env.CacheDir
	if cacheDir == "" {
		var err error
		if cacheDir, err = devcluster.DefaultCacheDir(); err != nil {
			return err
		}
	}
	bin, err := stepsBinary(ctx, *steps)
	if err != nil {
		return err
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	evDir, err := filepath.Abs(*evidence)
	if err != nil {
		return err
	}
	// Only what an earlier demo wrote there is replaced; nothing else in the directory is touched.
	for _, name := range demo.EvidenceEntries() {
		_ = os.RemoveAll(filepath.Join(evDir, name))
	}
	sigs, stopNotify := notifyInterrupts()
	defer stopNotify()
	ctx, in, stop := watchInterrupts(ctx, sigs, stderr)
	defer stop()
	o := demo.Options{Namespace: *namespace, App: "sample-app", Root: root, Steps: bin, CacheDir: cacheDir, Evidence: evDir, Out: stdout,
		Abort: in.abort, Progress: in.progress}
	if *kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
		if err != nil {
			return usagef("--kubeconfig %s: %v", *kubeconfig, err)
		}
		o.Config = cfg
	} else {
		fmt.Fprintln(stderr, "canaryline: starting the embedded control plane (built on first use, about 7 minutes)")
		c, err := devcluster.Start(ctx, devcluster.Options{CacheDir: cacheDir, Nodes: env.Nodes, Log: stderr, RealNode: *realNode, Tekton: tekton, RepoRoot: root})
		if err != nil {
			return err
		}
		defer c.Stop() // also on Ctrl-C: the context ends, the runs stop, and everything started here is removed
		o.Config, o.RealNode, o.Tekton = c.Config(), c.Node(), tekton
	}
	t0 := time.Now()
	releases, err := demo.Run(ctx, o)
	fmt.Fprintf(stdout, "\nsummary (%s):\n", time.Since(t0).Round(time.Second))
	for _, r := range releases {
		fmt.Fprintf(stdout, "  %-3s %-9s verdict %-12s from %s at %s%% canary weight: %s\n      report: %s\n", r.Version, r.Decision,
			r.Verdict, r.DecidedBy, r.Weight, r.Reason, r.Report)
	}
	if forced, then := in.wasForced(); forced {
		if *kubeconfig == "" {
			fmt.Fprintln(stderr, "canaryline: forced exit: the embedded control plane is removed with the demo and everything on it")
		} else {
			fmt.Fprint(stderr, forcedMessage(then, nil, bin, *kubeconfig))
		}
		return exitCode(exitInterrupted)
	}
	return err
}
