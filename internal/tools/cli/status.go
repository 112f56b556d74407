package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/release"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// statusCmd is `canaryline status APP`: the application's release state, read-only.
func statusCmd(fs *flag.FlagSet, _ Env) runFunc {
	cf := addClusterFlags(fs)
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return writeStatus(ctx, args[0], cf, stdout, stderr)
	}
}

// writeStatus reads app's release state with the kubeconfig's clients and prints it.
func writeStatus(ctx context.Context, app string, cf clusterFlags, stdout, stderr io.Writer) error {
	cfg, ns, err := cf.load("status")
	if err != nil {
		return err
	}
	kube, err := kubeclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	s, err := release.ReadStatus(ctx, kube, ns, app)
	var invalid *step.InvalidError
	if errors.As(err, &invalid) {
		fmt.Fprintf(stderr, "canaryline: status: %v\n", err)
		return exitCode(step.ExitInvalid)
	}
	if err != nil {
		return err
	}
	s.Write(stdout)
	return nil
}
