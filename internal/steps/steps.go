// Package steps is the dispatch table of the canaryline step commands.
//
// The five Tekton steps of the canaryline task bundle ship as one
// multi-call binary, cmd/canaryline-steps. The binary picks the step to run
// from the name it was invoked under (a symlink or hardlink named after the
// step) or, when invoked as canaryline-steps, from its first argument.
//
// Step implementations live in their own packages and register themselves
// from an init function:
//
//	func init() { steps.Register(steps.ShiftCanary, run) }
//
// A step that no package has registered fails with ExitNotImplemented rather
// than pretending to succeed.
package steps

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
	ExitNotImplemented = 3 // the step is known but not registered in this build
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

// Registry maps step names to their implementations. The zero value is not
// usable; use NewRegistry. Most code uses the package-level functions, which
// act on the default registry that cmd/canaryline-steps dispatches through.
type Registry struct {
	mu    sync.RWMutex
	funcs map[string]Func
}

// NewRegistry returns an empty registry: every step is not implemented.
func NewRegistry() *Registry { return &Registry{funcs: make(map[string]Func)} }

var defaultRegistry = NewRegistry()

// Register adds fn as the implementation of the step name. It is meant to be
// called from init functions and panics, like database/sql.Register, on a
// programming error: an unknown step name, a nil fn, or a second
// registration of the same step.
func (r *Registry) Register(name string, fn Func) {
	if !IsStep(name) {
		panic(fmt.Sprintf("steps: register %q: unknown step (valid steps: %s)", name, strings.Join(names, ", ")))
	}
	if fn == nil {
		panic(fmt.Sprintf("steps: register %q: nil step func", name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.funcs[name]; dup {
		panic(fmt.Sprintf("steps: register %q: registered twice", name))
	}
	r.funcs[name] = fn
}

// Lookup returns the implementation of the step name, if one is registered.
func (r *Registry) Lookup(name string) (Func, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn, ok := r.funcs[name]
	return fn, ok
}

// Register adds fn to the default registry; see Registry.Register.
func Register(name string, fn Func) { defaultRegistry.Register(name, fn) }

// Lookup finds a step in the default registry; see Registry.Lookup.
func Lookup(name string) (Func, bool) { return defaultRegistry.Lookup(name) }

// Dispatch runs the step selected by argv0 and args against the default
// registry; see Registry.Dispatch.
func Dispatch(ctx context.Context, argv0 string, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	return defaultRegistry.Dispatch(ctx, argv0, args, env, stdout, stderr)
}

// Dispatch selects a step and runs it, returning the exit code.
//
// The step is the base name of argv0, so that /usr/local/bin/shift-canary
// (a link to the multi-call binary) runs shift-canary with all of args.
// When the base name is MultiCallName the step is args[0] and the step gets
// args[1:]; in that form "--list" prints the step names, one per line, and
// "--help" prints usage. An unknown step name exits with ExitUsage, a known
// step without an implementation with ExitNotImplemented. A nil env is an
// empty environment.
func (r *Registry) Dispatch(ctx context.Context, argv0 string, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	name := filepath.Base(argv0)
	if name == MultiCallName {
		if len(args) == 0 {
			fmt.Fprintln(stderr, "canaryline: missing step name")
			writeUsage(stderr)
			return ExitUsage
		}
		switch args[0] {
		case "--list", "-list":
			for _, n := range names {
				fmt.Fprintln(stdout, n)
			}
			return ExitOK
		case "--help", "-help", "-h", "help":
			writeUsage(stdout)
			return ExitOK
		}
		name, args = args[0], args[1:]
	}
	if !IsStep(name) {
		fmt.Fprintf(stderr, "canaryline: unknown step %q; valid steps: %s\n", name, strings.Join(names, ", "))
		return ExitUsage
	}
	fn, ok := r.Lookup(name)
	if !ok {
		fmt.Fprintf(stderr, "canaryline: step %q is not implemented in this build\n", name)
		return ExitNotImplemented
	}
	return fn(ctx, args, env, stdout, stderr)
}

func writeUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s STEP [ARG...]\n       %s --list\n       STEP [ARG...]  (when invoked through a link named after the step)\n\nsteps: %s\n",
		MultiCallName, MultiCallName, strings.Join(names, ", "))
}
