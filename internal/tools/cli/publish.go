package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/canaryline/canaryline/internal/tools/bundle"
	"github.com/canaryline/canaryline/internal/tools/catalog"
)

// catalogGenerate is `canaryline catalog generate`: catalog/ from tasks/ and pipelines/ (catalog.Sync).
func catalogGenerate(fs *flag.FlagSet, _ Env) runFunc {
	var o catalog.Options
	fs.StringVar(&o.Root, "root", ".", "the repository root `DIR`")
	fs.StringVar(&o.ImageDigest, "image-digest", "", "the step image's `sha256:...` digest (default: catalog/IMAGE_DIGEST)")
	fs.StringVar(&o.Version, "version", "", "the catalog version directory, `X.Y` (default: each resource's app.kubernetes.io/version label)")
	check := fs.Bool("check", false, "change nothing: list the stale, missing and extra files and exit 1 when there are any")
	return func(_ context.Context, _ []string, stdout, _ io.Writer) error {
		if err := catalog.Sync(o, *check, stdout); err != nil {
			return fmt.Errorf("catalog generate: %w", err)
		}
		return nil
	}
}

// bundlePush is `canaryline bundle push`: the Tasks and Pipelines as one Tekton bundle (bundle.Publish). Its pinned
// reference is the only line on stdout; progress goes to stderr.
func bundlePush(fs *flag.FlagSet, _ Env) runFunc {
	var o bundle.PublishOptions
	fs.StringVar(&o.Ref, "ref", "", "where to push: `REGISTRY/REPO:TAG` (required)")
	fs.StringVar(&o.Root, "root", ".", "the repository root `DIR`")
	fs.BoolVar(&o.Insecure, "insecure", false, "allow a registry over plain HTTP")
	return func(ctx context.Context, _ []string, stdout, stderr io.Writer) error {
		o.Log = stderr
		pinned, err := bundle.Publish(ctx, o)
		var bad *bundle.RefError
		if errors.As(err, &bad) {
			return usagef("bundle push: %v", err)
		}
		if err != nil {
			return fmt.Errorf("bundle push: %w", err)
		}
		fmt.Fprintln(stdout, pinned)
		return nil
	}
}
