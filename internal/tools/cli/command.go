package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// runFunc runs a command once its flags are parsed; args are its positional arguments (command.args).
type runFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// command is one entry of the command table.
type command struct {
	name string // the command: "cluster"
	sub  string // its sub-command within a group ("up"); empty for a command on its own
	// args names the positional arguments that come before the flags ("APP"); empty: none.
	args string
	// argsMissing is the usage error when the positional arguments are missing.
	argsMissing string
	summary     string // one line, for the overview
	description string // a paragraph, for the command's own usage
	// env says that the command's defaults come from the environment (Env): its usage documents it.
	env bool
	// setup registers the command's flags on fs (their defaults may come from env) and returns what runs it.
	setup func(fs *flag.FlagSet, env Env) runFunc
}

// fullName is "cluster up", or "image".
func (c *command) fullName() string { return strings.TrimSpace(c.name + " " + c.sub) }

// flagSet returns the command's FlagSet, its flags registered, and its run function.
func (c *command) flagSet(env Env) (*flag.FlagSet, runFunc) {
	fs := flag.NewFlagSet(c.fullName(), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	run := c.setup(fs, env)
	return fs, run
}

// exec runs the command with args (after its name): its positional arguments, then its flags.
func (c *command) exec(ctx context.Context, env Env, args []string, stdout, stderr io.Writer) error {
	fs, run := c.flagSet(env)
	if len(args) > 0 && isHelp(args[0]) {
		return &helpRequest{usage: c.usageWith(fs)}
	}
	n := len(strings.Fields(c.args))
	if len(args) < n || n > 0 && (args[0] == "" || strings.HasPrefix(args[0], "-")) {
		return &usageError{msg: c.argsMissing, usage: c.usageWith(fs)}
	}
	pos, flags := args[:n], args[n:]
	if err := parse(fs, flags); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &helpRequest{usage: c.usageWith(fs)}
		}
		return withUsage(err, c.usageWith(fs))
	}
	return withUsage(run(ctx, pos, stdout, stderr), c.usageWith(fs))
}

// withUsage gives a usage error without a usage text the command's.
func withUsage(err error, usage string) error {
	var ue *usageError
	if errors.As(err, &ue) && ue.usage == "" {
		ue.usage = usage
	}
	return err
}

// usage is the command's usage text, with the defaults env gives: synopsis, description, flags and, when it reads
// them, the environment.
func (c *command) usage(env Env) string {
	fs, _ := c.flagSet(env)
	return c.usageWith(fs)
}

func (c *command) usageWith(fs *flag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n\n%s\n", c.synopsis(fs), wrap(c.description, 100, "", ""))
	if flags := flagHelp(fs); flags != "" {
		b.WriteString("\nFlags:\n" + flags)
	}
	if c.env {
		b.WriteString("\n" + envHelp)
	}
	return b.String()
}

// synopsis is "canaryline status APP [--kubeconfig FILE] [--namespace NS]".
func (c *command) synopsis(fs *flag.FlagSet) string {
	parts := []string{"canaryline", c.fullName()}
	if c.args != "" {
		parts = append(parts, c.args)
	}
	fs.VisitAll(func(f *flag.Flag) {
		if v := valueName(f); v != "" {
			parts = append(parts, "[--"+f.Name+" "+v+"]")
		} else {
			parts = append(parts, "[--"+f.Name+"]")
		}
	})
	return wrapWords(parts, 100, "", "    ")
}

// flagHelp lists fs's flags as `--name VALUE`, each with its help and its default.
func flagHelp(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		name := "--" + f.Name
		if v := valueName(f); v != "" {
			name += " " + v
		}
		_, help := flag.UnquoteUsage(f)
		if d := defaultText(f); d != "" {
			help += " (default: " + d + ")"
		}
		fmt.Fprintf(&b, "  %s\n%s\n", name, wrap(help, 100, "        ", "        "))
	})
	return b.String()
}

// valueName is the name of a flag's value in the usage: the back-quoted word of its help; else, for a string flag,
// the last word of its name in capitals (--kubeconfig KUBECONFIG, --digest-file FILE), for a number N, and
// otherwise its type in capitals. It is empty for a boolean flag.
func valueName(f *flag.Flag) string {
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return ""
	}
	name, _ := flag.UnquoteUsage(f)
	switch {
	case strings.Contains(f.Usage, "`"):
		return name
	case name == "string":
		return strings.ToUpper(f.Name[strings.LastIndex(f.Name, "-")+1:])
	case name == "int" || name == "uint" || name == "float":
		return "N"
	}
	return strings.ToUpper(name)
}

// defaultText is a flag's default as the usage shows it; empty when it is the zero value.
func defaultText(f *flag.Flag) string {
	switch strings.TrimSpace(f.DefValue) {
	case "", "false", "0", "0s", "map[]", "[]":
		return ""
	}
	return f.DefValue
}

// overview is `canaryline --help`: every command with its summary.
func overview(table []*command) string {
	var b strings.Builder
	b.WriteString("usage: canaryline COMMAND [flags]\n\nCommands:\n")
	for _, c := range table {
		name := c.fullName()
		if c.args != "" {
			name += " " + c.args
		}
		fmt.Fprintf(&b, "  %-26s %s\n", name, c.summary)
	}
	b.WriteString("\n`canaryline help COMMAND` (or `canaryline COMMAND --help`) prints a command's flags.\n\n" + envHelp)
	return b.String()
}

// groupUsage is the usage of a command group (`canaryline cluster --help`): each sub-command's usage.
func groupUsage(group []*command, env Env) string {
	var parts []string
	for _, c := range group {
		parts = append(parts, c.usage(env))
	}
	return strings.Join(parts, "\n")
}

// subNames lists a group's sub-commands: "build, up, down or status".
func subNames(group []*command) string {
	var names []string
	for _, c := range group {
		names = append(names, c.sub)
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// wrap breaks text into lines of at most width characters (a longer word stays whole), the first line starting
// with first and the others with rest. Paragraphs (separated by an empty line) stay apart.
func wrap(text string, width int, first, rest string) string {
	paras := strings.Split(strings.TrimSpace(text), "\n\n")
	for i, p := range paras {
		paras[i] = wrapWords(strings.Fields(p), width, first, rest)
	}
	return strings.Join(paras, "\n\n")
}

// wrapWords joins words with spaces into lines as wrap does.
func wrapWords(words []string, width int, first, rest string) string {
	var lines []string
	line, empty := first, true
	for _, w := range words {
		if !empty && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line, empty = rest, true
		}
		if !empty {
			line += " "
		}
		line += w
		empty = false
	}
	return strings.Join(append(lines, line), "\n")
}
