package health

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/notify"
	"github.com/canaryline/canaryline/internal/runtime/release"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// Main is the verify-health step.
func Main(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	var results map[string]string
	code := step.Main(ctx, step.IO{Stdout: stdout, Stderr: stderr, Env: env, Args: args}, &Config{},
		func(ctx context.Context, cfg *Config, log *slog.Logger) (map[string]string, error) {
			cl, err := step.Connect(env, cfg.Namespace)
			if err != nil {
				return nil, err
			}
			v, err := Verify(ctx, cfg, cl.Namespace, Deps{Kube: cl.Kube}, stdout, log)
			if ctx.Err() != nil && cfg.TaskRun != "" {
				// Stopped by Tekton: roll back here when the PipelineRun's finally tasks will not (it logs what it does).
				_ = release.AfterStop(env, release.Stopped{TaskRun: cfg.TaskRun,
					Target: release.Target{App: cfg.App, Namespace: cfg.Namespace, ReleaseID: cfg.ReleaseID}}, log)
			}
			if v.Verdict != "" {
				results = v.Results() // an unhealthy or inconclusive verdict still writes its results
			}
			if v.Verdict == naming.Unhealthy {
				notify.New(cfg.Notify, log).Send(ctx, notify.Event{Kind: notify.Unhealthy, App: cfg.App, Namespace: cl.Namespace,
					Release: cfg.ReleaseID, Image: v.CanaryImage, Weight: fmt.Sprint(v.Weight), Reason: v.Reason})
			}
			return results, err
		})
	return code
}
