// Package steps is the dispatch table of the canaryline step commands.
//
// The five Tekton steps of the canaryline task bundle ship as one
// multi-call binary, cmd/canaryline-steps. The binary picks the step to run
// from the name it was invoked under (a symlink or hardlink named after the
// step) or, when invoked as canaryline-steps, from its first argument.
//
// The commands list the step implementations in a Table, explicitly:
//
//	steps.Main(steps.Table{steps.ShiftCanary: release.ShiftMain, ...}, os.Args[0])
//
// so that a missing step is a compile or test failure (Table.Check), not a
// surprise at run time. A step the table lacks still fails with
// ExitNotImplemented rather than pretending to succeed.
package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Step names, in pipeline order.
const (
	StartBuild        = "start-build"
	WaitBuild         = "wait-build"
	ShiftCanary       = "shift-canary"
	VerifyHealth      = "verify-health"
	PromoteOrRollback = "promote-or-rollback"
)

// MultiCallName is the file name of the multi-call binary. Invoked under this
// name, the binary takes the step name from its first argument.
const MultiCallName = "canaryline-steps"

// Exit codes returned by Dispatch itself (steps choose their own otherwise).
const (
	ExitOK             = 0
	ExitUsage          = 2 // unknown step name or bad invocation of canaryline-steps
	ExitNotImplemented = 3 // the step is known but not in this build's table
)

// Func runs one step. args are the arguments after the step name, env looks
// up environment variables (os.LookupEnv in production), and the returned
// value is the process exit code.
type Func func(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int

var names = []string{StartBuild, WaitBuild, ShiftCanary, VerifyHealth, PromoteOrRollback}

// Names returns the step names in pipeline order. The slice is a copy.
func Names() []string { return slices.Clone(names) }

// IsStep reports whether name is one of the canaryline step names.
func IsStep(name string) bool { return slices.Contains(names, name) }

// Table maps step names to their implementations. A command builds its
// table as a literal, so a step listed twice does not compile; Check finds
// an unknown name, a nil Func or a missing step.
type Table map[string]Func

// Check returns an error naming every entry of t that is not a step, every
// nil Func and every step t lacks; nil when t implements exactly the steps.
func (t Table) Check() error {
	var errs []error
	for name, fn := range t {
		switch {
		case !IsStep(name):
			errs = append(errs, fmt.Errorf("steps: %q: unknown step (valid steps: %s)", name, strings.Join(names, ", ")))
		case fn == nil:
			errs = append(errs, fmt.Errorf("steps: %q: nil step func", name))
		}
	}
	if missing := t.Missing(); len(missing) > 0 {
		errs = append(errs, fmt.Errorf("steps: not in the table: %s", strings.Join(missing, ", ")))
	}
	return errors.Join(errs...)
}

// Missing returns the steps, in pipeline order, that t has no Func for.
func (t Table) Missing() []string {
	var missing []string
	for _, name := range names {
		if t[name] == nil {
			missing = append(missing, name)
		}
	}
	return missing
}

// Main is the main function of every step command: it runs the step
// selected by argv0 and the process's arguments from t (see Dispatch),
// with os.LookupEnv and the standard streams, stops it on SIGINT or SIGTERM,
// and exits with its code.
func Main(t Table, argv0 string) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := t.Dispatch(ctx, argv0, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Dispatch selects a step and runs it, returning the exit code.
//
// The step is the base name of argv0, so that /usr/local/bin/shift-canary
// (a link to the multi-call binary) runs shift-canary with all of args.
// When the base name is MultiCallName the step is args[0] and the step gets
// args[1:]; in that form "--list" prints the step names, one per line, and
// "--help" prints usage. An unknown step name exits with ExitUsage, a known
// step that t lacks with ExitNotImplemented. A nil env is an empty
// environment.
func (t Table) Dispatch(ctx context.Context, argv0 string, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	name := filepath.Base(argv0)
	if name == MultiCallName {
		var code int
		var done bool
		if name, args, code, done = multiCall(args, stdout, stderr); done {
			return code
		}
	}
	if !IsStep(name) {
		fmt.Fprintf(stderr, "canaryline: unknown step %q; valid steps: %s\n", name, strings.Join(names, ", "))
		return ExitUsage
	}
	fn := t[name]
	if fn == nil {
		fmt.Fprintf(stderr, "canaryline: step %q is not implemented in this build\n", name)
		return ExitNotImplemented
	}
	return fn(ctx, args, env, stdout, stderr)
}

// multiCall reads the arguments of canaryline-steps: the step name and its
// arguments, or --list and --help, which it answers itself (done, with the
// exit code).
func multiCall(args []string, stdout, stderr io.Writer) (name string, rest []string, code int, done bool) {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "canaryline: missing step name")
		writeUsage(stderr)
		return "", nil, ExitUsage, true
	}
	switch args[0] {
	case "--list", "-list":
		for _, n := range names {
			fmt.Fprintln(stdout, n)
		}
		return "", nil, ExitOK, true
	case "--help", "-help", "-h", "help":
		writeUsage(stdout)
		return "", nil, ExitOK, true
	}
	return args[0], args[1:], 0, false
}

func writeUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s STEP [ARG...]\n       %s --list\n       STEP [ARG...]  (when invoked through a link named after the step)\n\nsteps: %s\n",
		MultiCallName, MultiCallName, strings.Join(names, ", "))
}
