package build

import (
	"context"
	"io"
	"log/slog"

	"github.com/canaryline/canaryline/internal/runtime/step"
)

// StartMain is the start-build step.
func StartMain(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	return step.Main(ctx, step.IO{Stdout: stdout, Stderr: stderr, Env: env, Args: args}, &StartConfig{},
		func(ctx context.Context, cfg *StartConfig, log *slog.Logger) (map[string]string, error) {
			cl, err := step.Connect(env, cfg.Namespace)
			if err != nil {
				return nil, err
			}
			s, err := Start(ctx, cfg, cl.Namespace, cl.Build, cl.Kube.CoreV1().Namespaces(), log)
			if err != nil {
				return nil, err
			}
			return s.Results(), nil
		})
}

// WaitMain is the wait-build step.
func WaitMain(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	return step.Main(ctx, step.IO{Stdout: stdout, Stderr: stderr, Env: env, Args: args}, &WaitConfig{},
		func(ctx context.Context, cfg *WaitConfig, log *slog.Logger) (map[string]string, error) {
			if cfg.Image != "" {
				img, err := Resolve(ctx, cfg, log)
				if err != nil {
					return nil, err
				}
				return img.Results(), nil
			}
			cl, err := step.Connect(env, cfg.Namespace)
			if err != nil {
				return nil, err
			}
			c := Clients{Build: cl.Build, Image: cl.Image, Namespaces: cl.Kube.CoreV1().Namespaces()}
			img, err := Wait(ctx, cfg, cl.Namespace, c, stdout, log)
			if err != nil {
				return nil, err
			}
			return img.Results(), nil
		})
}
