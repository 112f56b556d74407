// Package cli implements the canaryline command.
//
// Every command is an entry of one table (commands.go): its name and sub-name, a one-line summary, a longer
// description, and a setup function that registers its flags on a FlagSet and returns what runs it. The usage
// texts (`canaryline --help`, `canaryline CMD --help`, `canaryline help CMD`) are generated from the table and the
// FlagSets, so they cannot drift from the flags.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/sethvargo/go-envconfig"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError is bad input: exit code 2, with the usage of the command at fault (the overview when empty).
type usageError struct {
	msg   string
	usage string
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

// helpRequest asks for a usage text on stdout: exit code 0.
type helpRequest struct{ usage string }

func (h *helpRequest) Error() string { return "help requested" }

// Env is what the command reads from the environment.
type Env struct {
	CacheDir   string `env:"CANARYLINE_CACHE_DIR"`
	ClusterDir string `env:"CANARYLINE_CLUSTER_DIR"`
	Nodes      int    `env:"CANARYLINE_NODES, default=2"`
}

// envHelp documents Env in the usage texts.
const envHelp = `Environment: CANARYLINE_CACHE_DIR (built binaries; default: the user cache directory),
CANARYLINE_CLUSTER_DIR (default: $CANARYLINE_CACHE_DIR/cluster), CANARYLINE_NODES (default 2).
`

// Main runs the command with args (without the program name) and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := run(ctx, args, os.LookupEnv, stdout, stderr)
	var ue *usageError
	var help *helpRequest
	var code exitCode
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &help):
		fmt.Fprint(stdout, help.usage)
		return exitOK
	case errors.As(err, &ue):
		usage := ue.usage
		if usage == "" {
			usage = overview(commands())
		}
		fmt.Fprintf(stderr, "canaryline: %v\n\n%s", err, usage)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "canaryline: %v\n", err)
		return exitError
	}
}

// run finds the command that args name in the table and runs it.
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) error {
	env, err := loadEnv(ctx, lookup)
	if err != nil {
		return err
	}
	table := commands()
	if len(args) == 0 {
		return usagef("no command given")
	}
	if isHelp(args[0]) {
		return help(table, env, args[1:])
	}
	cmd, rest, err := find(table, env, args)
	if err != nil {
		return err
	}
	return cmd.exec(ctx, env, rest, stdout, stderr)
}

// loadEnv reads Env with lookup.
func loadEnv(ctx context.Context, lookup func(string) (string, bool)) (Env, error) {
	var env Env
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &env, Lookuper: lookupFunc(lookup)}); err != nil {
		return env, usagef("environment: %v", err)
	}
	return env, nil
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// help answers `canaryline help [CMD [SUB]]`: the overview, a command group's usage, or one command's.
func help(table []*command, env Env, args []string) error {
	if len(args) == 0 {
		return &helpRequest{usage: overview(table)}
	}
	group := named(table, args[0])
	if len(group) > 1 && len(args) == 1 {
		return &helpRequest{usage: groupUsage(group, env)}
	}
	cmd, _, err := find(table, env, args)
	if err != nil {
		return err
	}
	return &helpRequest{usage: cmd.usage(env)}
}

// find returns the command args name (its name, and its sub-name for a group) and the arguments after them.
// env gives the defaults of the usage texts of its errors.
func find(table []*command, env Env, args []string) (*command, []string, error) {
	group := named(table, args[0])
	if len(group) == 0 {
		return nil, nil, usagef("unknown command %q", args[0])
	}
	if group[0].sub == "" {
		return group[0], args[1:], nil
	}
	if len(args) < 2 {
		return nil, nil, &usageError{msg: fmt.Sprintf("%s: say %s", args[0], subNames(group)), usage: groupUsage(group, env)}
	}
	if isHelp(args[1]) {
		return nil, nil, &helpRequest{usage: groupUsage(group, env)}
	}
	for _, c := range group {
		if c.sub == args[1] {
			return c, args[2:], nil
		}
	}
	return nil, nil, &usageError{msg: fmt.Sprintf("%s: unknown command %q; say %s", args[0], args[1], subNames(group)),
		usage: groupUsage(group, env)}
}

// named returns the table's commands called name: one command, or a group's sub-commands.
func named(table []*command, name string) []*command {
	var out []*command
	for _, c := range table {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

// exitCode carries a subcommand's own exit code (it has printed its messages already).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

type lookupFunc func(string) (string, bool)

func (f lookupFunc) Lookup(key string) (string, bool) { return f(key) }

// parse parses args with fs: flag errors and stray arguments are usage errors, --help is flag.ErrHelp.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected arguments %q", fs.Name(), fs.Args())
	}
	return nil
}
