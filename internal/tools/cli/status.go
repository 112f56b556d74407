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
	kubeconfig := fs.String("kubeconfig", "", "the cluster (default: $KUBECONFIG, else ~/.kube/config)")
	namespace := fs.String("namespace", "", "the application's namespace (default: the kubeconfig's)")
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return writeStatus(ctx, args[0], *kubeconfig, *namespace, stdout, stderr)
	}
}

// writeStatus reads app's release state with the kubeconfig's clients (step.LoadKubeconfig: the steps' loading
// rules) and prints it.
func writeStatus(ctx context.Context, app, kubeconfig, namespace string, stdout, stderr io.Writer) error {
	cfg, ns, err := step.LoadKubeconfig(kubeconfig)
	if err != nil {
		return usagef("status: no cluster: %v (give --kubeconfig)", err)
	}
	if namespace != "" {
		ns = namespace
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
