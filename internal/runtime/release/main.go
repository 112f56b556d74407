package release

import (
	"context"
	"io"
	"log/slog"

	"github.com/canaryline/canaryline/internal/runtime/notify"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// clients connects to the cluster (step.Connect) and returns the release's clients and the step's own namespace.
func clients(env func(string) (string, bool)) (Clients, string, error) {
	c, err := step.Connect(env, "")
	if err != nil {
		return Clients{}, "", err
	}
	return releaseClients(c), c.Own, nil
}

// releaseClients are the clients of shift-canary and promote-or-rollback.
func releaseClients(c *step.Cluster) Clients {
	return Clients{Kube: c.Kube, Route: c.Route, Dynamic: c.Dynamic}
}

// ShiftMain is the shift-canary step.
func ShiftMain(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	return step.Main(ctx, step.IO{Stdout: stdout, Stderr: stderr, Env: env, Args: args}, &ShiftConfig{},
		func(ctx context.Context, cfg *ShiftConfig, log *slog.Logger) (map[string]string, error) {
			cl, err := step.Connect(env, cfg.Namespace)
			if err != nil {
				return nil, err
			}
			c := releaseClients(cl)
			s, err := Shift(ctx, cfg, cl.Namespace, c, log)
			if ctx.Err() != nil && cfg.TaskRun != "" {
				// Stopped by Tekton: roll back here when the PipelineRun's finally tasks will not (it logs what it does).
				t := cfg.Target
				t.ReleaseID = releaseID(&cfg.Target, cfg.Image)
				_ = afterStop(context.Background(), Stopped{TaskRun: cfg.TaskRun, Target: t}, cl.Own, c, log)
			}
			if err != nil {
				return nil, err
			}
			return s.Results(), nil
		})
}

// DecideMain is the promote-or-rollback step.
func DecideMain(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	return step.Main(ctx, step.IO{Stdout: stdout, Stderr: stderr, Env: env, Args: args}, &DecideConfig{},
		func(ctx context.Context, cfg *DecideConfig, log *slog.Logger) (map[string]string, error) {
			cl, err := step.Connect(env, cfg.Namespace)
			if err != nil {
				return nil, err
			}
			if cfg.NotifyProblem != nil {
				log.Warn("no notification: " + cfg.NotifyProblem.Error())
			}
			d, err := Decide(ctx, cfg, cl.Namespace, releaseClients(cl), log)
			if err != nil {
				return nil, err
			}
			if d.Ended {
				notify.New(cfg.Notify, log).Send(ctx, d.event(cfg.App, cl.Namespace))
			}
			return d.Results(), nil
		})
}
