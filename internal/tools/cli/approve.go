package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/release"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// clusterFlags are the flags of the commands that act on an application's release: where it runs.
type clusterFlags struct{ kubeconfig, namespace *string }

func addClusterFlags(fs *flag.FlagSet) clusterFlags {
	return clusterFlags{
		kubeconfig: fs.String("kubeconfig", "", "the cluster (default: $KUBECONFIG, else ~/.kube/config)"),
		namespace:  fs.String("namespace", "", "the application's namespace (default: the kubeconfig's)"),
	}
}

// load is the cluster's client config and the namespace (step.LoadKubeconfig: the steps' loading rules).
func (f clusterFlags) load(cmd string) (*rest.Config, string, error) {
	cfg, ns, err := step.LoadKubeconfig(*f.kubeconfig)
	if err != nil {
		return nil, "", usagef("%s: no cluster: %v (give --kubeconfig)", cmd, err)
	}
	if *f.namespace != "" {
		ns = *f.namespace
	}
	return cfg, ns, nil
}

// approveCmd is `canaryline approve APP` and `canaryline reject APP`: a person's answer to the release's approval
// gate, recorded on the release Lease (who may update it may answer).
func approveCmd(decision string) func(fs *flag.FlagSet, _ Env) runFunc {
	return func(fs *flag.FlagSet, _ Env) runFunc {
		cf := addClusterFlags(fs)
		id := fs.String("release", "", "the release to answer (default: the one in progress); refused when another is in progress")
		reason := fs.String("reason", "", "why, recorded with the answer and in the verdict")
		return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			cfg, ns, err := cf.load(decision)
			if err != nil {
				return err
			}
			kube, err := kubeclient.NewForConfig(cfg)
			if err != nil {
				return err
			}
			a := release.Approval{Release: *id, Decision: decision, By: whoAmI(ctx, cfg), Reason: *reason, At: time.Now().UTC()}
			got, err := release.RecordApproval(ctx, kube.CoordinationV1().Leases(ns), args[0], a)
			if err != nil {
				return stepError(stderr, decision, err)
			}
			fmt.Fprintf(stdout, "release %s of %s/%s %s\n", got.Release, ns, args[0], got)
			return nil
		}
	}
}

// whoAmI is the user the cluster knows the kubeconfig as (a SelfSubjectReview), or "unknown user".
func whoAmI(ctx context.Context, cfg *rest.Config) string {
	cs, err := kubernetes.NewForConfig(cfg)
	if err == nil {
		var r *authenticationv1.SelfSubjectReview
		r, err = cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err == nil && r.Status.UserInfo.Username != "" {
			return r.Status.UserInfo.Username
		}
	}
	return "unknown user"
}

// abortCmd is `canaryline abort APP`: the release in progress rolled back now, as promote-or-rollback
// DECISION=rollback does it, with the kubeconfig's permissions.
func abortCmd(fs *flag.FlagSet, _ Env) runFunc {
	cf := addClusterFlags(fs)
	reason := fs.String("reason", "", "why, recorded with the rollback")
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		cfg, _, err := cf.load("abort")
		if err != nil {
			return err
		}
		env := func(k string) (string, bool) {
			if k == "KUBECONFIG" && *cf.kubeconfig != "" {
				return *cf.kubeconfig, true
			}
			return os.LookupEnv(k)
		}
		c, err := step.Connect(env, *cf.namespace)
		if err != nil {
			return err
		}
		why := "aborted by " + whoAmI(ctx, cfg)
		if *reason != "" {
			why += ": " + *reason
		}
		dc := &release.DecideConfig{Target: release.Target{App: args[0], LockTTL: 10 * time.Minute}, Decision: release.DecisionRollback,
			Reason: why, RolloutTimeout: 10 * time.Minute}
		d, err := release.Decide(ctx, dc, c.Namespace, release.Clients{Kube: c.Kube, Route: c.Route, Dynamic: c.Dynamic},
			slog.New(slog.NewTextHandler(stderr, nil)))
		if err != nil {
			return stepError(stderr, "abort", err)
		}
		fmt.Fprintf(stdout, "release %s of %s/%s rolled back: %s\n", d.ReleaseID, c.Namespace, args[0], d.Reason)
		return nil
	}
}

// stepError prints a step's bad-input or busy error and exits with its code; other errors are exit 1.
func stepError(stderr io.Writer, cmd string, err error) error {
	var invalid *step.InvalidError
	var busy *step.BusyError
	if errors.As(err, &invalid) || errors.As(err, &busy) {
		fmt.Fprintf(stderr, "canaryline: %s: %v\n", cmd, err)
		return exitCode(step.ExitCode(err))
	}
	return err
}
