package cli

import (
	"context"
	"flag"
	"io"

	"github.com/canaryline/canaryline/internal/tools/plugin"
)

// The commands that act on one application's release (status, approve, reject, abort) are the kubectl plugin's
// (internal/tools/plugin); canaryline has them too, with the same flags and exit codes.

// statusCmd is `canaryline status APP`: the application's release state, read-only.
func statusCmd(fs *flag.FlagSet, _ Env) runFunc {
	c := plugin.AddFlags(fs)
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return pluginResult(stderr, "status", plugin.Status(ctx, c, args[0], stdout))
	}
}

// approveCmd is `canaryline approve APP` and `canaryline reject APP`: a person's answer to the release's approval
// gate, recorded on the release Lease (who may update it may answer).
func approveCmd(decision string) func(fs *flag.FlagSet, _ Env) runFunc {
	return func(fs *flag.FlagSet, _ Env) runFunc {
		c := plugin.AddFlags(fs)
		id := fs.String("release", "", "the release to answer (default: the one in progress); refused when another is in progress")
		reason := fs.String("reason", "", "why, recorded with the answer and in the verdict")
		return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return pluginResult(stderr, decision, plugin.Answer(ctx, c, args[0], decision, *id, *reason, stdout))
		}
	}
}

// abortCmd is `canaryline abort APP`: the release in progress rolled back now, as promote-or-rollback
// DECISION=rollback does it, with the kubeconfig's permissions.
func abortCmd(fs *flag.FlagSet, _ Env) runFunc {
	c := plugin.AddFlags(fs)
	reason := fs.String("reason", "", "why, recorded with the rollback")
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return pluginResult(stderr, "abort", plugin.Abort(ctx, c, args[0], *reason, stdout, stderr))
	}
}

// pluginResult is err as canaryline reports it: printed, with the step exit-code table's code.
func pluginResult(stderr io.Writer, cmd string, err error) error {
	if code := plugin.Report(stderr, "canaryline", cmd, err); code != 0 {
		return exitCode(code)
	}
	return nil
}
