package build

import (
	"context"
	"io"
	"log/slog"

	"github.com/canaryline/canaryline/internal/kubeclient"
	"github.com/canaryline/canaryline/internal/osclient"
	"github.com/canaryline/canaryline/internal/step"
	"github.com/canaryline/canaryline/internal/steps"
)

func init() {
	steps.Register(steps.StartBuild, StartMain)
	steps.Register(steps.WaitBuild, WaitMain)
}

// StartMain is the start-build step.
func StartMain(ctx context.Context, _ []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	return step.Main(ctx, step.IO{Stdout: stdout, Stderr: stderr, Env: env}, &StartConfig{},
		func(ctx context.Context, cfg *StartConfig, log *slog.Logger) (map[string]string, error) {
			rc, ns, err := step.RESTConfig(env)
			if err != nil {
				return nil, err
			}
			if cfg.Namespace != "" {
				ns = cfg.Namespace
			}
			c, err := osclient.NewBuildV1ForConfig(rc)
			if err != nil {
				return nil, err
			}
			kube, err := kubeclient.NewForConfig(rc)
			if err != nil {
				return nil, err
			}
			s, err := Start(ctx, cfg, ns, c, kube.CoreV1().Namespaces(), log)
			if err != nil {
				return nil, err
			}
			return s.Results(), nil
		})
}

// WaitMain is the wait-build step.
func WaitMain(ctx context.Context, _ []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	return step.Main(ctx, step.IO{Stdout: stdout, Stderr: stderr, Env: env}, &WaitConfig{},
		func(ctx context.Context, cfg *WaitConfig, log *slog.Logger) (map[string]string, error) {
			if cfg.Image != "" {
				img, err := Resolve(ctx, cfg, log)
				if err != nil {
					return nil, err
				}
				return img.Results(), nil
			}
			rc, ns, err := step.RESTConfig(env)
			if err != nil {
				return nil, err
			}
			if cfg.Namespace != "" {
				ns = cfg.Namespace
			}
			var c Clients
			if c.Build, err = osclient.NewBuildV1ForConfig(rc); err != nil {
				return nil, err
			}
			if c.Image, err = osclient.NewImageV1ForConfig(rc); err != nil {
				return nil, err
			}
			kube, err := kubeclient.NewForConfig(rc)
			if err != nil {
				return nil, err
			}
			c.Namespaces = kube.CoreV1().Namespaces()
			img, err := Wait(ctx, cfg, ns, c, stdout, log)
			if err != nil {
				return nil, err
			}
			return img.Results(), nil
		})
}
