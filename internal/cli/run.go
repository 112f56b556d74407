package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/canaryline/canaryline/internal/runner"
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

// runCmd is `canaryline run PIPELINE_FILE --param k=v ...`: the Pipeline's Tasks run as local processes.
func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usagef("run: give the Pipeline's file first, e.g. canaryline run pipelines/canary-release.yaml --param app=shop")
	}
	file := args[0]
	fs := newFlags("run", stderr)
	params := paramFlags{}
	fs.Var(params, "param", "a param value, name=value (repeat)")
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "the cluster the steps act on")
	namespace := fs.String("namespace", "", "the application's namespace (the namespace param)")
	tasks := fs.String("tasks", "tasks", "where the Pipeline's Tasks are")
	bundleRef := fs.String("bundle", "", "take the Tasks from this Tekton bundle instead of --tasks")
	insecure := fs.Bool("insecure-registry", false, "the bundle's registry is plain HTTP")
	steps := fs.String("steps", "", "the step binary (canaryline-steps); next to canaryline, on PATH, or built from the repository")
	timeout := fs.Duration("timeout", time.Hour, "the whole run")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *namespace != "" {
		params["namespace"] = *namespace
	}
	bin, err := stepsBinary(ctx, *steps)
	if err != nil {
		return err
	}
	sigs, stopNotify := notifyInterrupts()
	defer stopNotify()
	ctx, in, stop := watchInterrupts(ctx, sigs, stderr)
	defer stop()
	sum, err := runner.Run(ctx, runner.Options{Pipeline: file, TasksDir: *tasks, Bundle: *bundleRef, Insecure: *insecure, Params: params, Steps: bin,
		Env:       []string{"KUBECONFIG=" + *kubeconfig, "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")},
		Namespace: *namespace, Timeout: *timeout, Out: stderr, Abort: in.abort, Progress: in.progress})
	if sum != nil {
		fmt.Fprint(stdout, "\n"+sum.Table()+sum.ResultsText())
	}
	if forced, then := in.wasForced(); forced {
		fmt.Fprint(stderr, forcedMessage(then, sum, bin, *kubeconfig))
		return exitCode(exitInterrupted)
	}
	return err
}

// stepsBinary finds canaryline-steps: the flag, next to this binary, on PATH, or built from the repository.
func stepsBinary(ctx context.Context, flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "canaryline-steps"); isFile(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("canaryline-steps"); err == nil {
		return p, nil
	}
	if !isFile("cmd/canaryline-steps/main.go") {
		return "", usagef("run: no canaryline-steps binary: give --steps, or run from the repository (make build)")
	}
	out := filepath.Join(os.TempDir(), "canaryline-steps-run")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/canaryline-steps")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build canaryline-steps: %w: %s", err, b)
	}
	return out, nil
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
