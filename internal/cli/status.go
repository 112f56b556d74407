package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/canaryline/canaryline/internal/kubeclient"
	"github.com/canaryline/canaryline/internal/release"
	"github.com/canaryline/canaryline/internal/step"
)

// statusCmd is `canaryline status APP`: the application's release state, read-only.
func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		return usagef("status: give the application's name (its stable Deployment)")
	}
	app := args[0]
	fs := newFlags("status", stderr)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "the cluster")
	namespace := fs.String("namespace", "", "the application's namespace (default: the kubeconfig's)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return usagef("status: no cluster: %v (give --kubeconfig)", err)
	}
	ns := *namespace
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil {
			return err
		}
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
