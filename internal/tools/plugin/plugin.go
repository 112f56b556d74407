// Package plugin is what a person does to a release from the command line, outside a Pipeline: read its state
// (status), answer its approval gate (approve, reject), roll it back now (abort). The canaryline command has these
// commands, and cmd/kubectl-canaryline ships them alone, small, as a kubectl and oc plugin (kubectl-canaryline,
// oc-canaryline), with a Krew manifest (Krew).
package plugin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/canaryline/canaryline/internal/runtime/release"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// Cluster is where the application runs: the --kubeconfig and --namespace (-n) flags.
type Cluster struct{ Kubeconfig, Namespace *string }

// AddFlags registers the cluster flags on fs.
func AddFlags(fs *flag.FlagSet) Cluster {
	c := Cluster{Kubeconfig: fs.String("kubeconfig", "", "the cluster (default: $KUBECONFIG, else ~/.kube/config)"), Namespace: new(string)}
	fs.StringVar(c.Namespace, "namespace", "", "the application's namespace (default: the kubeconfig's)")
	fs.StringVar(c.Namespace, "n", "", "short for --namespace")
	return c
}

// connect loads the cluster once (the steps' loading rules and request settings) and builds the step clients: the
// namespace is --namespace, else the kubeconfig context's. No cluster is bad input.
func (c Cluster) connect() (*rest.Config, *step.Cluster, error) {
	cfg, ns, err := step.LoadKubeconfig(*c.Kubeconfig)
	if err != nil {
		return nil, nil, step.Invalid("--kubeconfig", "give --kubeconfig or set KUBECONFIG", "no cluster: %v", err)
	}
	cfg = step.Tune(cfg)
	cl, err := step.Clients(cfg, ns, *c.Namespace)
	if err != nil {
		return nil, nil, err
	}
	return cfg, cl, nil
}

// Status prints app's release state: stable and canary images, the lock holder, the release in progress, and
// the last release's decision and reason.
func Status(ctx context.Context, c Cluster, app string, stdout io.Writer) error {
	_, cl, err := c.connect()
	if err != nil {
		return err
	}
	s, err := release.ReadStatus(ctx, cl.Kube, cl.Namespace, app)
	if err != nil {
		return err
	}
	s.Write(stdout)
	return nil
}

// Answer records decision (release.Approve or release.Reject) for the release of app in progress (id, when not
// empty, must be it), with the cluster's name for the user and reason.
func Answer(ctx context.Context, c Cluster, app, decision, id, reason string, stdout io.Writer) error {
	cfg, cl, err := c.connect()
	if err != nil {
		return err
	}
	a := release.Approval{Release: id, Decision: decision, By: whoAmI(ctx, cfg), Reason: reason, At: time.Now().UTC()}
	got, err := release.RecordApproval(ctx, cl.Kube.CoordinationV1().Leases(cl.Namespace), app, a)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "release %s of %s/%s %s\n", got.Release, cl.Namespace, app, got)
	return nil
}

// Abort rolls the release of app in progress back now, as promote-or-rollback DECISION=rollback does, with the
// kubeconfig's permissions; log gets the rollback's lines.
func Abort(ctx context.Context, c Cluster, app, reason string, stdout, log io.Writer) error {
	cfg, cl, err := c.connect()
	if err != nil {
		return err
	}
	why := "aborted by " + whoAmI(ctx, cfg)
	if reason != "" {
		why += ": " + reason
	}
	dc := &release.DecideConfig{Target: release.Target{App: app, LockTTL: 10 * time.Minute}, Decision: release.DecisionRollback,
		Reason: why, RolloutTimeout: 10 * time.Minute}
	d, err := release.Decide(ctx, dc, cl.Namespace, release.Clients{Kube: cl.Kube, Route: cl.Route, Dynamic: cl.Dynamic},
		slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "release %s of %s/%s rolled back: %s\n", d.ReleaseID, cl.Namespace, app, d.Reason)
	return nil
}

// whoAmI is the user the cluster knows the kubeconfig as (a SelfSubjectReview), or "unknown user". The dynamic
// client makes the request: the typed one would link every API group's types into the plugin.
func whoAmI(ctx context.Context, cfg *rest.Config) string {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return "unknown user"
	}
	review := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}}
	gvr := schema.GroupVersionResource{Group: "authentication.k8s.io", Version: "v1", Resource: "selfsubjectreviews"}
	r, err := dyn.Resource(gvr).Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		return "unknown user"
	}
	if name, _, _ := unstructured.NestedString(r.Object, "status", "userInfo", "username"); name != "" {
		return name
	}
	return "unknown user"
}

// Report prints err for command cmd as prog does, and returns the exit code: the step exit-code table (2 bad
// input, 5 another release holds the lock, 1 anything else).
func Report(stderr io.Writer, prog, cmd string, err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %s: %v\n", prog, cmd, err)
	var invalid *step.InvalidError
	if errors.As(err, &invalid) {
		return step.ExitInvalid
	}
	return step.ExitCode(err)
}
