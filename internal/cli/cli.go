// Package cli implements the canaryline command.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/sethvargo/go-envconfig"

	"github.com/canaryline/canaryline/internal/bundle"
	"github.com/canaryline/canaryline/internal/catalog"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError is bad input: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// Env is what the command reads from the environment.
type Env struct {
	CacheDir   string `env:"CANARYLINE_CACHE_DIR"`
	ClusterDir string `env:"CANARYLINE_CLUSTER_DIR"`
	Nodes      int    `env:"CANARYLINE_NODES, default=2"`
}

const usage = `usage: canaryline COMMAND [flags]

Commands:
  cluster build [--real-node] [--tekton] [--tools]
                     build (or find cached) the control-plane binaries and CRDs, showing progress; with
                     --real-node also a real node's kubelet, containerd, runc and CNI plugins; with
                     --tekton also Tekton's and Triggers' programs and images; with --tools also tkn
                     and a Prometheus with Kubernetes service discovery
  cluster up [--dir DIR] [--nodes N] [--detach] [--real-node] [--tekton]
                     start the embedded control plane (built from the Go module proxy on first use);
                     in the foreground until Ctrl-C, or in the background with --detach; with
                     --real-node also a real node beside the KWOK nodes (needs root); with --tekton
                     (implies --real-node) also Tekton Pipelines and Triggers running on it
  cluster down [--dir DIR]
                     stop a cluster started with --detach and remove its directory
  cluster status [--dir DIR]
                     say whether a cluster runs in DIR and print its KUBECONFIG
  demo [--kubeconfig F] [--namespace NS] [--real-node] [--no-tekton]
                     the demo on the embedded control plane (or on F's cluster): build sample-app with its
                     BuildConfig and deploy it by digest as the stable version behind a Route; with
                     --real-node (root) its versions are real images running as pods on the real node; on
                     the embedded control plane (as root) each release is a PipelineRun on the real Tekton
                     controller, its steps pods on the real node (--no-tekton: canaryline run instead)
  bench [--skip PARTS] [--concurrent 20] [--rollback-runs 5] [--out _output/bench.md]
                     measure on the embedded control plane: binary and image sizes, cold starts, peak RSS,
                     API requests per release, time to rollback, release overhead, 20 releases at once, a real
                     node's and its pods' starts and memory (as root), and the Go benchmarks; print one table
                     with each figure's target
  run PIPELINE_FILE --param name=value ... [--kubeconfig F] [--namespace NS]
                [--workspace DIR] [--workspace name=DIR ...]
                     run a Pipeline without Tekton: its Tasks' steps as local processes, in Tekton's order
                     and with Tekton's substitution (when, finally, $(tasks.status), retries, timeouts);
                     each workspace is a subdirectory of DIR (default: a new one in $TMPDIR), or the DIR
                     bound to it (e.g. --workspace dockerconfig=$HOME/.docker); all are kept and printed
  status APP [--kubeconfig F] [--namespace NS]
                     the application's release state: stable and canary images, the lock holder, the release
                     in progress (weight), and the last release's decision and reason
  generate pipelines [--check]
                     write pipelines/ from internal/pipelinegen (all variants from one source)
  generate role --app APP [--namespace NS] [--service-account SA] [--router KIND] [--router-name R]
                [--stable-service S]
                     print the Role that lets the steps release APP only (tasks/role.yaml, plus the
                     router's component for --router httproute|istio|nginx, narrowed to APP's objects),
                     and with --service-account its RoleBinding
  catalog generate [--image-digest sha256:...] [--check]
                     write catalog/ (tektoncd/catalog layout) from tasks/ and pipelines/
  bundle push --ref REGISTRY/REPO:TAG [--insecure]
                     push every Task and Pipeline as a Tekton bundle and print its pinned reference
  image [--out DIR] [--tarball FILE] [--ref REF]
                     build the step image (all five steps, one multi-call binary) as an OCI layout
                     without a container engine, and print its size

Environment: CANARYLINE_CACHE_DIR (built binaries; default: the user cache directory),
CANARYLINE_CLUSTER_DIR (default: $CANARYLINE_CACHE_DIR/cluster), CANARYLINE_NODES (default 2).
`

// Main runs the command with args (without the program name) and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := run(ctx, args, os.LookupEnv, stdout, stderr)
	var ue usageError
	var code exitCode
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return int(code)
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "canaryline: %v\n\n%s", err, usage)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "canaryline: %v\n", err)
		return exitError
	}
}

func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) error {
	var env Env
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &env, Lookuper: lookupFunc(lookup)}); err != nil {
		return usagef("environment: %v", err)
	}
	if len(args) == 0 {
		return usagef("no command given")
	}
	switch args[0] {
	case "-h", "--help", "help":
		return flag.ErrHelp
	case "cluster":
		if len(args) < 2 {
			return usagef("cluster: say build, up, down or status")
		}
		return clusterCmd(ctx, env, args[1], args[2:], stdout, stderr)
	case "image":
		return imageCmd(ctx, args[1:], stdout, stderr)
	case "demo":
		return demoCmd(ctx, env, args[1:], stdout, stderr)
	case "bench":
		return benchCmd(ctx, env, args[1:], stdout, stderr)
	case "generate":
		return generateCmd(args[1:], stdout, stderr)
	case "run":
		return runCmd(ctx, args[1:], stdout, stderr)
	case "status":
		return statusCmd(ctx, args[1:], stdout, stderr)
	case "catalog":
		return codeErr(catalog.Main(args[1:], stdout, stderr))
	case "bundle":
		return codeErr(bundle.Main(ctx, args[1:], stdout, stderr))
	default:
		return usagef("unknown command %q", args[0])
	}
}

// exitCode carries a subcommand's own exit code (it has printed its messages already).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func codeErr(code int) error {
	if code == 0 {
		return nil
	}
	return exitCode(code)
}

type lookupFunc func(string) (string, bool)

func (f lookupFunc) Lookup(key string) (string, bool) { return f(key) }

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}
