package release

import (
	"context"
	"io"
	"log/slog"

	"k8s.io/client-go/dynamic"

	"github.com/canaryline/canaryline/internal/kubeclient"
	"github.com/canaryline/canaryline/internal/osclient"
	"github.com/canaryline/canaryline/internal/step"
	"github.com/canaryline/canaryline/internal/steps"
)

func init() {
	steps.Register(steps.ShiftCanary, ShiftMain)
	steps.Register(steps.PromoteOrRollback, DecideMain)
}

func clients(env func(string) (string, bool)) (Clients, string, error) {
	rc, ns, err := step.RESTConfig(env)
	if err != nil {
		return Clients{}, "", err
	}
	var c Clients
	if c.Kube, err = kubeclient.NewForConfig(rc); err != nil {
		return c, "", err
	}
	if c.Route, err = osclient.NewRouteV1ForConfig(rc); err != nil {
		return c, "", err
	}
	if c.Dynamic, err = dynamic.NewForConfig(rc); err != nil {
		return c, "", err
	}
	return c, ns, nil
}

// ShiftMain is the shift-canary step.
func ShiftMain(ctx context.Context, _ []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	return step.Main(ctx, step.IO{Stdout: stdout, Stderr: stderr, Env: env}, &ShiftConfig{},
		func(ctx context.Context, cfg *ShiftConfig, log *slog.Logger) (map[string]string, error) {
			c, own, err := clients(env)
			if err != nil {
				return nil, err
			}
			ns := own
			if cfg.Namespace != "" {
				ns = cfg.Namespace
			}
			s, err := Shift(ctx, cfg, ns, c, log)
			if ctx.Err() != nil && cfg.TaskRun != "" {
				// Stopped by Tekton: roll back here when the PipelineRun's finally tasks will not (it logs what it does).
				t := cfg.Target
				t.ReleaseID = releaseID(&cfg.Target, cfg.Image)
				_ = afterStop(context.Background(), Stopped{TaskRun: cfg.TaskRun, Target: t}, own, c, log)
			}
			if err != nil {
				return nil, err
			}
			return s.Results(), nil
		})
}

// DecideMain is the promote-or-rollback step.
func DecideMain(ctx context.Context, _ []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	return step.Main(ctx, step.IO{Stdout: stdout, Stderr: stderr, Env: env}, &DecideConfig{},
		func(ctx context.Context, cfg *DecideConfig, log *slog.Logger) (map[string]string, error) {
			c, ns, err := clients(env)
			if err != nil {
				return nil, err
			}
			if cfg.Namespace != "" {
				ns = cfg.Namespace
			}
			d, err := Decide(ctx, cfg, ns, c, log)
			if err != nil {
				return nil, err
			}
			return d.Results(), nil
		})
}
