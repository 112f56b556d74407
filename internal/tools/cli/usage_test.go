package cli

import (
	"bytes"
	"context"
	"flag"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// flagNames are the flags fs defines, sorted.
func flagNames(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

var (
	flagLine     = regexp.MustCompile(`(?m)^  --([a-z0-9-]+)`)
	synopsisFlag = regexp.MustCompile(`\[--([a-z0-9-]+)[ \]]`)
)

// TestUsageListsExactlyTheFlags: for every command of the table, its usage (synopsis and Flags section) lists
// exactly the flags its FlagSet defines, as --name, each with its help; its summary and description say something.
func TestUsageListsExactlyTheFlags(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, c := range commands() {
		t.Run(c.fullName(), func(t *testing.T) {
			if seen[c.fullName()] {
				t.Fatalf("%s is in the table twice", c.fullName())
			}
			seen[c.fullName()] = true
			if strings.TrimSpace(c.summary) == "" || strings.TrimSpace(c.description) == "" {
				t.Errorf("summary %q, description %q: say what the command does", c.summary, c.description)
			}
			if c.args != "" && c.argsMissing == "" {
				t.Errorf("positional %s without a message for when it is missing", c.args)
			}
			fs, _ := c.flagSet(Env{})
			want := flagNames(fs)
			usage := c.usage(Env{})
			head, flags, _ := strings.Cut(usage, "\nFlags:\n")
			if len(want) > 0 && flags == "" {
				t.Fatalf("usage has no Flags section:\n%s", usage)
			}
			if got := matches(flagLine, flags); !slices.Equal(got, want) {
				t.Errorf("Flags section lists %q; the FlagSet defines %q\n%s", got, want, usage)
			}
			if got := matches(synopsisFlag, head); !slices.Equal(got, want) {
				t.Errorf("synopsis lists %q; the FlagSet defines %q\n%s", got, want, usage)
			}
			fs.VisitAll(func(f *flag.Flag) {
				if strings.TrimSpace(f.Usage) == "" {
					t.Errorf("--%s has no help", f.Name)
				}
			})
			if !strings.HasPrefix(usage, "usage: canaryline "+c.fullName()) {
				t.Errorf("usage does not start with the command's synopsis:\n%s", usage)
			}
		})
	}
}

// matches returns the first group of every match of re in s, sorted.
func matches(re *regexp.Regexp, s string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	sort.Strings(out)
	return out
}

// runMain runs Main with args and returns its exit code, stdout and stderr.
func runMain(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestHelp: every way of asking for help prints the generated usage on stdout and exits 0.
func TestHelp(t *testing.T) {
	t.Parallel()
	code, overviewText, _ := runMain("--help")
	if code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, c := range commands() {
		if !strings.Contains(overviewText, "  "+c.fullName()) || !strings.Contains(overviewText, c.summary) {
			t.Errorf("--help lacks %s and its summary:\n%s", c.fullName(), overviewText)
		}
	}
	for _, env := range []string{"Environment: CANARYLINE_CACHE_DIR", "CANARYLINE_CLUSTER_DIR (default: $CANARYLINE_CACHE_DIR/cluster)", "CANARYLINE_NODES (default 2)"} {
		if !strings.Contains(overviewText, env) {
			t.Errorf("--help lacks %q", env)
		}
	}
	for _, args := range [][]string{{"help"}, {"-h"}} {
		if code, out, _ := runMain(args...); code != 0 || out != overviewText {
			t.Errorf("%q: exit %d, stdout differs from --help's:\n%s", args, code, out)
		}
	}
	env, err := loadEnv(context.Background(), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commands() {
		words := strings.Fields(c.fullName())
		want := c.usage(env)
		for _, args := range [][]string{append(slices.Clone(words), "--help"), append(slices.Clone(words), "-h"), append([]string{"help"}, words...)} {
			if code, out, errOut := runMain(args...); code != 0 || out != want {
				t.Errorf("%q: exit %d, stdout:\n%s\nstderr: %s\nwant exit 0 and:\n%s", args, code, out, errOut, want)
			}
		}
	}
	if code, out, _ := runMain("help", "cluster"); code != 0 || !strings.Contains(out, "usage: canaryline cluster up") || !strings.Contains(out, "usage: canaryline cluster down") {
		t.Errorf("help cluster: exit %d\n%s", code, out)
	}
}

// TestImageUsageHasDigestFile: the Makefile's `canaryline image --digest-file` is in the usage (it once was not).
func TestImageUsageHasDigestFile(t *testing.T) {
	t.Parallel()
	if code, out, _ := runMain("image", "--help"); code != 0 || !strings.Contains(out, "--digest-file FILE") {
		t.Errorf("image --help: exit %d\n%s", code, out)
	}
}

// TestMakefileUsesDefinedFlags: every canaryline command line in the Makefile names a command of the table and only
// flags it defines.
func TestMakefileUsesDefinedFlags(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	calls := regexp.MustCompile(`(?m)(?:run \./cmd/canaryline|^\t\$\(BIN\)/canaryline) ([^;\n]*)`).FindAllStringSubmatch(text, -1)
	if len(calls) < 5 {
		t.Fatalf("found %d canaryline command lines in the Makefile; the pattern is out of date", len(calls))
	}
	for _, call := range calls {
		args := strings.Fields(call[1])
		cmd, rest, err := find(commands(), Env{}, args)
		if err != nil {
			t.Errorf("Makefile: canaryline %s: %v", call[1], err)
			continue
		}
		fs, _ := cmd.flagSet(Env{})
		for _, a := range rest {
			name, ok := strings.CutPrefix(a, "--")
			if !ok {
				continue
			}
			name, _, _ = strings.Cut(name, "=")
			if fs.Lookup(name) == nil {
				t.Errorf("Makefile: canaryline %s: %s has no flag --%s", call[1], cmd.fullName(), name)
			}
		}
	}
}
