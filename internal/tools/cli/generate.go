package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/canaryline/canaryline/internal/tools/pipelinegen"
	"github.com/canaryline/canaryline/internal/tools/rbac"
)

// generatePipelines is `canaryline generate pipelines`: it writes (or with --check, checks) the generated Pipelines
// in pipelines/.
func generatePipelines(fs *flag.FlagSet, _ Env) runFunc {
	root := fs.String("root", ".", "repository root")
	check := fs.Bool("check", false, "only check that pipelines/ is up to date")
	return func(_ context.Context, _ []string, stdout, _ io.Writer) error {
		return writePipelines(*root, *check, stdout)
	}
}

// writePipelines writes the Pipelines that differ from pipelinegen's under root/pipelines; with check it only
// names them, as an error.
func writePipelines(root string, check bool, stdout io.Writer) error {
	files, err := pipelinegen.Generate()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "pipelines")
	var stale []string
	for _, name := range pipelinegen.Names() {
		path := filepath.Join(dir, name)
		cur, _ := os.ReadFile(path)
		if bytes.Equal(cur, files[name]) {
			continue
		}
		stale = append(stale, path)
		if !check {
			if err := os.WriteFile(path, files[name], 0o644); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s\n", path)
		}
	}
	if check && len(stale) > 0 {
		return fmt.Errorf("stale generated Pipelines (run make pipelines): %v", stale)
	}
	return nil
}

// generateRole is `canaryline generate role`: it prints the Role that lets the steps release one application only
// (and its RoleBinding).
func generateRole(fs *flag.FlagSet, _ Env) runFunc {
	var o rbac.Options
	fs.StringVar(&o.App, "app", "", "the application (its stable Deployment); required")
	fs.StringVar(&o.Namespace, "namespace", "", "the application's namespace")
	fs.StringVar(&o.StableService, "stable-service", "", "the stable Service (STABLE_SERVICE), when not the app's name")
	fs.StringVar(&o.Router, "router", "", "the router kind (ROUTER): route (default), httproute, istio, nginx or replicas")
	fs.StringVar(&o.RouterName, "router-name", "", "the router object (ROUTER_NAME), when not the app's name")
	fs.StringVar(&o.BuildConfig, "build-config", "", "the BuildConfig (BUILD_CONFIG), when not the app's name")
	fs.StringVar(&o.ServiceAccount, "service-account", "", "also bind the Role to this ServiceAccount (for example pipeline)")
	return func(_ context.Context, _ []string, stdout, _ io.Writer) error {
		out, err := rbac.Manifests(o)
		if err != nil {
			return usagef("generate role: %v", err)
		}
		_, err = stdout.Write(out)
		return err
	}
}
