package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/canaryline/canaryline/internal/tools/runner"
)

type paramFlags map[string]string

func (p paramFlags) String() string { return fmt.Sprint(map[string]string(p)) }
func (p paramFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: write name=value", s)
	}
	p[k] = v
	return nil
}

// workspaceFlags are the --workspace flags: DIR (under which each Pipeline workspace gets a subdirectory of its
// name), or name=DIR (the workspace name bound to DIR as it is). A name has no "/": ./a=b is a DIR.
type workspaceFlags struct {
	root  string
	bound map[string]string
}

func (w *workspaceFlags) String() string { return fmt.Sprint(w.root, w.bound) }
func (w *workspaceFlags) Set(s string) error {
	name, dir, ok := strings.Cut(s, "=")
	if !ok || strings.Contains(name, "/") {
		if w.root != "" {
			return fmt.Errorf("%q: one DIR for all workspaces is %s already; bind others with name=DIR", s, w.root)
		}
		w.root = s
		return nil
	}
	if name == "" || dir == "" {
		return fmt.Errorf("%q: write DIR or name=DIR", s)
	}
	if _, dup := w.bound[name]; dup {
		return fmt.Errorf("%q: workspace %s is bound to %s already", s, name, w.bound[name])
	}
	w.bound[name] = dir
	return nil
}

// runFlags are the flags of `canaryline run`.
type runFlags struct {
	params                                    paramFlags
	workspaces                                *workspaceFlags
	kubeconfig, namespace, tasks, bundle, bin string
	insecure                                  bool
	timeout                                   time.Duration
}

// runCmd is `canaryline run PIPELINE_FILE --param k=v ...`: the Pipeline's Tasks run as local processes.
func runCmd(fs *flag.FlagSet, _ Env) runFunc {
	f := runFlags{params: paramFlags{}, workspaces: &workspaceFlags{bound: map[string]string{}}}
	fs.Var(f.params, "param", "a param value, `name=value` (repeat)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "the cluster the steps act on (default: $KUBECONFIG)")
	fs.StringVar(&f.namespace, "namespace", "", "the application's namespace (the namespace param)")
	fs.StringVar(&f.tasks, "tasks", "tasks", "where the Pipeline's Tasks are")
	fs.StringVar(&f.bundle, "bundle", "", "take the Tasks from this Tekton bundle instead of --tasks")
	fs.BoolVar(&f.insecure, "insecure-registry", false, "the bundle's registry is plain HTTP")
	fs.StringVar(&f.bin, "steps", "", "the step binary (canaryline-steps); next to canaryline, on PATH, or built from the repository")
	fs.DurationVar(&f.timeout, "timeout", time.Hour, "the whole run")
	fs.Var(f.workspaces, "workspace", "`DIR` for all the Pipeline's workspaces, or name=DIR for one (repeat)")
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return runPipeline(ctx, args[0], &f, stdout, stderr)
	}
}

// runPipeline runs the Pipeline in file with the runner and prints its summary and results.
func runPipeline(ctx context.Context, file string, f *runFlags, stdout, stderr io.Writer) error {
	if f.kubeconfig == "" {
		f.kubeconfig = os.Getenv("KUBECONFIG")
	}
	if f.namespace != "" {
		f.params["namespace"] = f.namespace
	}
	bin, built, err := stepsBinary(ctx, f.bin)
	if err != nil {
		return err
	}
	tmp := &builtBinary{dir: built}
	defer tmp.remove()
	sigs, stopNotify := notifyInterrupts()
	defer stopNotify()
	ctx, in, stop := watchInterrupts(ctx, sigs, stderr)
	defer stop()
	sum, err := runner.Run(ctx, runner.Options{Pipeline: file, TasksDir: f.tasks, Bundle: f.bundle, Insecure: f.insecure, Params: f.params, Steps: bin,
		Env:       []string{"KUBECONFIG=" + f.kubeconfig, "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")},
		Namespace: f.namespace, Timeout: f.timeout, Workspace: f.workspaces.root, Workspaces: f.workspaces.bound,
		Out: stderr, Abort: in.abort, Progress: in.progress})
	if sum != nil {
		fmt.Fprint(stdout, "\n"+sum.Table()+sum.ResultsText())
	}
	var bad *runner.InputError
	if errors.As(err, &bad) {
		return usagef("run: %v", err)
	}
	if forced, then := in.wasForced(); forced {
		tmp.keep = true
		fmt.Fprint(stderr, forcedMessage(then, sum, bin, f.kubeconfig))
		return exitCode(exitInterrupted)
	}
	return err
}

// stepsBinary finds canaryline-steps: the flag, next to this binary, on PATH, or built from the repository into
// a temporary directory, which it returns as built for the caller to remove.
func stepsBinary(ctx context.Context, flag string) (bin, built string, err error) {
	if flag != "" {
		return flag, "", nil
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "canaryline-steps"); isFile(p) {
			return p, "", nil
		}
	}
	if p, err := exec.LookPath("canaryline-steps"); err == nil {
		return p, "", nil
	}
	if !isFile("cmd/canaryline-steps/main.go") {
		return "", "", usagef("run: no canaryline-steps binary: give --steps, or run from the repository (make build)")
	}
	// Named canaryline-steps: the multi-call binary takes the step from its first argument only under that name.
	dir, err := os.MkdirTemp("", "canaryline-run-steps-")
	if err != nil {
		return "", "", err
	}
	out := filepath.Join(dir, "canaryline-steps")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/canaryline-steps")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("build canaryline-steps: %w: %s", err, b)
	}
	return out, dir, nil
}

// builtBinary is the directory of a step binary built for one run: removed when the run ends, unless kept, as
// after a forced exit, whose message names the binary in the command that finishes the release.
type builtBinary struct {
	dir  string
	keep bool
}

func (b *builtBinary) remove() {
	if b.dir != "" && !b.keep {
		os.RemoveAll(b.dir)
	}
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
