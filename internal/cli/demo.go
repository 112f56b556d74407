package cli

import (
	"context"
	"fmt"
	"io"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/canaryline/canaryline/internal/demo"
	"github.com/canaryline/canaryline/internal/devcluster"
)

func demoCmd(ctx context.Context, env Env, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	kubeconfig := fs.String("kubeconfig", "", "run on this cluster instead of the embedded one (it needs the OpenShift build API)")
	namespace := fs.String("namespace", "canaryline-demo", "namespace of the demo application")
	if err := parse(fs, args); err != nil {
		return err
	}
	o := demo.Options{Namespace: *namespace, App: "sample-app", Out: stdout}
	if *kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
		if err != nil {
			return usagef("--kubeconfig %s: %v", *kubeconfig, err)
		}
		o.Config = cfg
	} else {
		fmt.Fprintln(stderr, "canaryline: starting the embedded control plane (built on first use)")
		c, err := devcluster.Start(ctx, devcluster.Options{CacheDir: env.CacheDir, Nodes: env.Nodes, Log: stderr})
		if err != nil {
			return err
		}
		defer c.Stop()
		o.Config = c.Config()
	}
	res, err := demo.Run(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nsummary: build %s produced %s; stable sample-app has %d pods ready behind its Route.\n", res.Build, res.Image, res.Ready)
	fmt.Fprintln(stdout, "next: the canary steps (shift-canary, verify-health, promote-or-rollback) join this demo as they are built.")
	return nil
}
