package plugin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/canaryline/canaryline/internal/runtime/release"
)

// command is one of the plugin's commands: it registers its flags on fs and returns what runs it for APP.
type command struct {
	name, summary string
	setup         func(fs *flag.FlagSet, c Cluster) func(ctx context.Context, app string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"status", "the release state of APP: images, the release in progress and its weight, the last decision",
		func(fs *flag.FlagSet, c Cluster) func(context.Context, string, io.Writer, io.Writer) error {
			return func(ctx context.Context, app string, stdout, _ io.Writer) error { return Status(ctx, c, app, stdout) }
		}},
	{"approve", "approve the release of APP that waits at its approval gate", answerCmd(release.Approve)},
	{"reject", "reject the release of APP that waits at its approval gate (it is rolled back)", answerCmd(release.Reject)},
	{"abort", "roll the release of APP in progress back now",
		func(fs *flag.FlagSet, c Cluster) func(context.Context, string, io.Writer, io.Writer) error {
			reason := fs.String("reason", "", "why, recorded with the rollback")
			return func(ctx context.Context, app string, stdout, stderr io.Writer) error {
				return Abort(ctx, c, app, *reason, stdout, stderr)
			}
		}},
}

func answerCmd(decision string) func(*flag.FlagSet, Cluster) func(context.Context, string, io.Writer, io.Writer) error {
	return func(fs *flag.FlagSet, c Cluster) func(context.Context, string, io.Writer, io.Writer) error {
		id := fs.String("release", "", "the release to answer (default: the one in progress)")
		reason := fs.String("reason", "", "why, recorded with the answer and in the verdict")
		return func(ctx context.Context, app string, stdout, _ io.Writer) error {
			return Answer(ctx, c, app, decision, *id, *reason, stdout)
		}
	}
}

// Prog is how the binary named argv0 is called by people: "kubectl canaryline" for kubectl-canaryline, "oc
// canaryline" for oc-canaryline (kubectl and oc run plugins by that name), else its own name.
func Prog(argv0 string) string {
	name := filepath.Base(argv0)
	for _, host := range []string{"kubectl", "oc"} {
		if strings.HasPrefix(name, host+"-") {
			return host + " " + strings.ReplaceAll(strings.TrimPrefix(name, host+"-"), "_", "-")
		}
	}
	return name
}

// Main runs `PROG COMMAND APP [flags]` and returns the exit code: 0 done, 1 error, 2 bad input or usage, 5 another
// release holds the lock.
func Main(ctx context.Context, prog string, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := stdout
		if len(args) == 0 {
			w = stderr
		}
		usage(w, prog)
		return map[bool]int{true: 2, false: 0}[len(args) == 0]
	}
	for _, c := range commands {
		if c.name == args[0] {
			return run(ctx, prog, c, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n\n", prog, args[0])
	usage(stderr, prog)
	return 2
}

// run parses the command's flags and its one argument, APP, in any order, and runs it.
func run(ctx context.Context, prog string, c command, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(prog+" "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	exec := c.setup(fs, AddFlags(fs))
	var apps []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				commandUsage(stdout, prog, c, fs)
				return 0
			}
			fmt.Fprintf(stderr, "%s %s: %v\n", prog, c.name, err)
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		apps, args = append(apps, fs.Arg(0)), fs.Args()[1:]
	}
	if len(apps) != 1 {
		fmt.Fprintf(stderr, "%s %s: give one application (its stable Deployment's name), e.g. %s %s shop -n team\n", prog, c.name, prog, c.name)
		return 2
	}
	return Report(stderr, prog, c.name, exec(ctx, apps[0], stdout, stderr))
}

func usage(w io.Writer, prog string) {
	fmt.Fprintf(w, "usage: %s COMMAND APP [-n NAMESPACE] [--kubeconfig FILE] [flags]\n\nCommands:\n", prog)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\n`%s COMMAND --help` prints a command's flags.\n", prog)
}

func commandUsage(w io.Writer, prog string, c command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s %s APP [flags]\n\n%s.\n\nFlags:\n", prog, c.name, c.summary)
	fs.SetOutput(w)
	fs.PrintDefaults()
}
