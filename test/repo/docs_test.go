package repo

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"unicode"

	"sigs.k8s.io/yaml"
)

// The docs test checks what the markdown files tell a reader to type or follow against the repository: the
// canaryline commands and flags against the CLI's --help, the make targets against the Makefile, the relative
// links against the files and their headings, and the step reference against the Tasks. Each check is a function
// returning the problems it found, so TestDocsChecksCatchMistakes can show that each one fails on a mistake.

// docFiles are the markdown files the test checks, relative to the repository root.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "CONTRIBUTING.md", "tasks/README.md"}
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil || len(pages) == 0 {
		t.Fatalf("docs/*.md: no pages (%v)", err)
	}
	for _, p := range pages {
		files = append(files, filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator))))
	}
	return files
}

// TestDocs runs every docs check on every markdown file. It builds the canaryline CLI once and runs its --help;
// it starts no cluster.
func TestDocs(t *testing.T) {
	docs := map[string]*markdown{}
	for _, name := range docFiles(t) {
		data, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		docs[name] = parseMarkdown(string(data))
	}
	names := sortedKeys(docs)

	t.Run("commands and flags", func(t *testing.T) {
		cli := newCLIHelp(buildCLI(t).help)
		if len(cli.commands) < 5 {
			t.Fatalf("canaryline --help lists %d commands: %v", len(cli.commands), sortedKeys(cli.commands))
		}
		for _, name := range names {
			report(t, name, cli.check(docs[name]))
		}
	})
	t.Run("make targets", func(t *testing.T) {
		makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
		if err != nil {
			t.Fatal(err)
		}
		targets := makeTargets(string(makefile))
		for _, name := range names {
			report(t, name, checkMakeTargets(docs[name], targets))
		}
	})
	t.Run("links", func(t *testing.T) {
		for _, name := range names {
			report(t, name, checkLinks(root, name, docs[name]))
		}
	})
	t.Run("the two commands", func(t *testing.T) {
		// CI (.ci/run) and CONTRIBUTING.md rely on the README's two commands of a fresh machine.
		for _, want := range []string{"make demo    # the main job: ", "make test    # all tests: "} {
			found := false
			for _, c := range docs["README.md"].code {
				found = found || strings.HasPrefix(c.text, want)
			}
			if !found {
				t.Errorf("README.md: no code line %q... under On a fresh machine", want)
			}
		}
	})
	t.Run("step params", func(t *testing.T) {
		tasks, err := loadTasks(filepath.Join(root, "tasks"))
		if err != nil {
			t.Fatal(err)
		}
		report(t, "docs/steps.md", checkStepParams(docs["docs/steps.md"], tasks))
	})
}

func report(t *testing.T, file string, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Errorf("%s: %s", file, p)
	}
}

// TestDocsChecksCatchMistakes feeds each check a mistake and expects it to be reported, so that a check that
// silently passes everything fails here. The help texts are in today's format (-name from the flag package,
// one listing of every command) and in the command table's (--name, one command's help).
func TestDocsChecksCatchMistakes(t *testing.T) {
	t.Parallel()
	listing := "usage: canaryline COMMAND [flags]\n\nCommands:\n" +
		"  cluster up [--dir DIR] [--detach]\n                     start the control plane\n" +
		"  cluster down [--dir DIR]\n                     stop it\n" +
		"  demo [--kubeconfig F] [--no-tekton]\n                     the demo\n" +
		"  run PIPELINE_FILE --param name=value ...\n                [--workspace DIR]\n                     run a Pipeline\n"
	commandHelp := map[string]string{
		"":     listing,
		"demo": "usage: canaryline demo [flags]\n\nFlags:\n  -kubeconfig string\n    \tthe cluster\n  -no-tekton\n    \tno Tekton\n",
		"run":  "usage: canaryline run PIPELINE_FILE [flags]\n\n  --param name=value   a param\n  --workspace DIR      workspaces\n",
	}
	for _, format := range []string{"listing", "per command"} {
		help := func(args ...string) string {
			if format == "per command" {
				if h, ok := commandHelp[strings.Join(args, " ")]; ok {
					return h
				}
			}
			return listing
		}
		cli := newCLIHelp(help)
		good := parseMarkdown("Run `canaryline demo --no-tekton` or:\n\n```sh\ngo run ./cmd/canaryline run p.yaml --param a=b \\\n  --workspace evidence=DIR\neval \"$(canaryline cluster up --detach)\"\n```\n")
		if p := cli.check(good); len(p) != 0 {
			t.Errorf("%s: good commands reported: %v", format, p)
		}
		for _, bad := range []string{
			"`canaryline demo --no-such-flag`",
			"`canaryline demo --dir X`", // another command's flag
			"`canaryline nosuch`",
			"`canaryline cluster sideways`",
			"```\ngo run ./cmd/canaryline run p.yaml \\\n  --bogus x\n```",
		} {
			if p := cli.check(parseMarkdown(bad + "\n")); len(p) == 0 {
				t.Errorf("%s: %q not reported", format, bad)
			}
		}
	}

	targets := makeTargets("all: build\n\n## demo: the demo\ndemo: build\n\t$(BIN)/canaryline demo\ncluster-up cluster-down: x\nX := y\n")
	if p := checkMakeTargets(parseMarkdown("`make demo`, `make cluster-down` and `make BUNDLE=x all`\n"), targets); len(p) != 0 {
		t.Errorf("good make targets reported: %v", p)
	}
	if p := checkMakeTargets(parseMarkdown("```sh\nmake demo && make tset\n```\n"), targets); len(p) != 1 {
		t.Errorf("make tset: %v", p)
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "docs", "page.md"), "# A page\n\n## Its `part`, and more\n\n## Its `part`, and more\n")
	good := parseMarkdown("[p](docs/page.md), [part](docs/page.md#its-part-and-more), [again](docs/page.md#its-part-and-more-1), [top](#top-heading)\n\n# Top heading\n")
	if p := checkLinks(dir, "README.md", good); len(p) != 0 {
		t.Errorf("good links reported: %v", p)
	}
	for _, bad := range []string{"[x](docs/nosuch.md)", "[x](docs/page.md#nosuch)", "[x](#nosuch)", "[x](../outside.md)"} {
		if p := checkLinks(dir, "README.md", parseMarkdown(bad+"\n")); len(p) == 0 {
			t.Errorf("%s not reported", bad)
		}
	}
	if p := checkLinks(dir, "README.md", parseMarkdown("`[x](docs/nosuch.md)` is code, and so is\n\n```\n[y](nope.md)\n```\n")); len(p) != 0 {
		t.Errorf("links in code reported: %v", p)
	}

	tasks := map[string]taskInfo{"shift-canary": {params: []string{"APP", "WEIGHT"}, others: []string{"RELEASE_ID"}}}
	steps := "# The steps\n\n## shift-canary\n\n`RELEASE_ID` is a result.\n\n| param | default | what it does |\n|---|---|---|\n| `APP` | required | the app |\n| `WEIGHT` | required | the weight |\n"
	if p := checkStepParams(parseMarkdown(steps), tasks); len(p) != 0 {
		t.Errorf("good steps reported: %v", p)
	}
	for _, bad := range []string{
		strings.Replace(steps, "| `WEIGHT` | required | the weight |\n", "", 1),          // a Task param without its row
		strings.Replace(steps, "`WEIGHT`", "`WEIGTH`", 1),                                // a row for no param
		strings.Replace(steps, "`RELEASE_ID` is a result", "`ROUTR` is a param", 1),      // a name in the text
		strings.Replace(steps, "## shift-canary", "## shift-canary\n\n## wait-build", 1), // a step with no Task
	} {
		if p := checkStepParams(parseMarkdown(bad), tasks); len(p) == 0 {
			t.Errorf("not reported:\n%s", bad)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ---- markdown ----

// markdown is what the checks read of one markdown file.
type markdown struct {
	code     []snippet // code spans and the lines of code blocks (continuation lines joined)
	prose    []snippet // paragraphs outside code blocks, code spans blanked out
	headings []string  // heading texts, in order
	blocks   []block   // headings and paragraphs as written, in order
	anchors  map[string]bool
}

// block is a heading or a paragraph (a table is one) outside code blocks, as written.
type block struct {
	text    string
	heading bool
}

// snippet is a piece of a markdown file and the line it starts on.
type snippet struct {
	text string
	line int
}

var (
	fenceRe   = regexp.MustCompile("^\\s*(```|~~~)")
	headingRe = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
)

// parseMarkdown splits a markdown file into code, prose and headings. It knows fenced code blocks, code spans of
// one or more backticks (which may run over line ends within a paragraph) and ATX headings: what the docs use.
func parseMarkdown(text string) *markdown {
	md := &markdown{anchors: map[string]bool{}}
	var para []string
	paraLine := 0
	flush := func() {
		if len(para) > 0 {
			md.addParagraph(strings.Join(para, "\n"), paraLine)
			md.blocks = append(md.blocks, block{text: strings.Join(para, "\n")})
		}
		para = nil
	}
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if m := fenceRe.FindStringSubmatch(line); m != nil {
			flush()
			start := i + 1
			var block []string
			for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), m[1]); i++ {
				block = append(block, lines[i])
			}
			md.addBlock(block, start+1)
			continue
		}
		if h := headingRe.FindStringSubmatch(line); h != nil {
			flush()
			md.headings = append(md.headings, h[1])
			md.blocks = append(md.blocks, block{text: h[1], heading: true})
			md.prose = append(md.prose, snippet{h[1], i + 1})
			continue
		}
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if len(para) == 0 {
			paraLine = i + 1
		}
		para = append(para, line)
	}
	flush()
	seen := map[string]int{}
	for _, h := range md.headings {
		a := anchor(h)
		if n := seen[a]; n > 0 {
			md.anchors[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			md.anchors[a] = true
		}
		seen[a]++
	}
	return md
}

// addBlock adds a code block's lines, a line ending in a backslash joined with the next.
func (md *markdown) addBlock(block []string, firstLine int) {
	for j := 0; j < len(block); j++ {
		line, start := block[j], firstLine+j
		for strings.HasSuffix(line, "\\") && j+1 < len(block) {
			j++
			line = strings.TrimSuffix(line, "\\") + " " + strings.TrimSpace(block[j])
		}
		md.code = append(md.code, snippet{line, start})
	}
}

// addParagraph adds a paragraph's code spans to code and the rest to prose.
func (md *markdown) addParagraph(p string, line int) {
	var prose strings.Builder
	for i := 0; i < len(p); {
		if p[i] != '`' {
			prose.WriteByte(p[i])
			i++
			continue
		}
		n := 0
		for i+n < len(p) && p[i+n] == '`' {
			n++
		}
		fence := strings.Repeat("`", n)
		end := -1
		for k := i + n; k < len(p); {
			j := strings.Index(p[k:], fence)
			if j < 0 {
				break
			}
			j += k
			if j+n < len(p) && p[j+n] == '`' { // a longer run of backticks is not the closing one
				for j < len(p) && p[j] == '`' {
					j++
				}
				k = j
				continue
			}
			end = j
			break
		}
		if end < 0 { // no closing run: the backticks are text
			prose.WriteString(fence)
			i += n
			continue
		}
		span := strings.TrimSpace(strings.ReplaceAll(p[i+n:end], "\n", " "))
		md.code = append(md.code, snippet{span, line + strings.Count(p[:i], "\n")})
		prose.WriteString(strings.Repeat(" ", end+n-i)) // keep the prose's offsets; a span is no link
		i = end + n
	}
	md.prose = append(md.prose, snippet{prose.String(), line})
}

var (
	inlineLinkRe = regexp.MustCompile(`\[([^\]]*)\]\(([^)\s]*)(?:\s+"[^"]*")?\)`)
	codeTicksRe  = regexp.MustCompile("`+")
)

// anchor is GitHub's anchor of a heading: its text without markdown, lowercased, every character but letters,
// digits, spaces, - and _ dropped, and spaces turned into -.
func anchor(heading string) string {
	text := inlineLinkRe.ReplaceAllString(heading, "$1")
	text = codeTicksRe.ReplaceAllString(text, "")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// ---- (a) canaryline commands and flags ----

// cliBinary is the canaryline CLI built for the test.
type cliBinary struct {
	t    *testing.T
	path string
}

// buildCLI builds ./cmd/canaryline into the test's temporary directory.
func buildCLI(t *testing.T) *cliBinary {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "canaryline")
	cmd := exec.Command(goTool, "build", "-ldflags=-s -w", "-o", bin, "./cmd/canaryline")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/canaryline: %v\n%s", err, out)
	}
	// go test caches a result by the files the test opened; the CLI's sources are read by go build, not by the
	// test, so a binary in a directory that is gone next time keeps the result out of the cache.
	if _, err := os.Stat(bin); err != nil {
		t.Fatal(err)
	}
	return &cliBinary{t: t, path: bin}
}

// help is the output of `canaryline ARGS --help`, stdout and stderr, whatever its exit code.
func (c *cliBinary) help(args ...string) string {
	cmd := exec.Command(c.path, append(args, "--help")...)
	cmd.Dir = c.t.TempDir()
	cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent") // --help reaches no cluster
	out, _ := cmd.CombinedOutput()
	if len(out) == 0 {
		c.t.Fatalf("canaryline %s --help printed nothing", strings.Join(args, " "))
	}
	return string(out)
}

// cliHelp is what the CLI's help says: its commands and each command's flags.
type cliHelp struct {
	help     func(args ...string) string
	commands map[string]bool // "demo", "cluster up"
	parents  map[string]bool // "cluster": commands with subcommands
	flags    map[string]map[string]bool
}

func newCLIHelp(help func(args ...string) string) *cliHelp {
	c := &cliHelp{help: help, commands: map[string]bool{}, parents: map[string]bool{}, flags: map[string]map[string]bool{}}
	for _, e := range helpEntries(help()) {
		c.add(e.path)
	}
	return c
}

func (c *cliHelp) add(path string) {
	c.commands[path] = true
	if parent, _, ok := strings.Cut(path, " "); ok {
		c.parents[parent] = true
	}
}

var (
	wordRe     = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	helpFlagRe = regexp.MustCompile(`(?:^|[^A-Za-z0-9_-])--?([a-z][a-z0-9-]*)`)
	// Where a canaryline command starts in code: `canaryline `, `go run ./cmd/canaryline `, `_output/bin/canaryline `.
	docCommandRe = regexp.MustCompile(`(?:^|[\s("'=])(?:go run \./cmd/canaryline|[\w./-]*bin/canaryline|canaryline)[ \t]+`)
	shellSubstRe = regexp.MustCompile(`\$\([^()]*\)`)
	docFlagRe    = regexp.MustCompile(`^[\[(]*--?([a-z][a-z0-9-]*)`)
)

// helpEntry is one command of a help text: its path ("cluster up") and the text that describes it (its usage line
// and the lines indented under it).
type helpEntry struct {
	path  string
	text  string
	usage bool // a `usage: canaryline PATH` line: the help is PATH's own
}

// helpEntries finds the commands a help text lists: lines indented by 2 to 4 spaces, or `usage: canaryline ...`,
// that begin with one or two lowercase words (the words before a double space, a bracket, a flag or an
// upper-case argument).
func helpEntries(help string) []helpEntry {
	var entries []helpEntry
	lines := strings.Split(help, "\n")
	for i, line := range lines {
		indent := len(line) - len(strings.TrimLeft(line, " "))
		rest := line[indent:]
		usage := false
		if after, ok := strings.CutPrefix(rest, "usage: canaryline "); ok && indent == 0 {
			rest, usage = after, true
		} else if indent < 2 || indent > 4 || strings.HasPrefix(rest, "\t") {
			continue
		}
		head, _, _ := strings.Cut(rest, "  ")
		var path []string
		for _, tok := range strings.Fields(head) {
			if !wordRe.MatchString(tok) || len(path) == 2 {
				break
			}
			path = append(path, tok)
		}
		if len(path) == 0 {
			continue
		}
		text := []string{rest}
		for _, next := range lines[i+1:] {
			nextIndent := len(next) - len(strings.TrimLeft(next, " "))
			if strings.TrimSpace(next) != "" && nextIndent <= indent {
				break
			}
			text = append(text, next)
		}
		entries = append(entries, helpEntry{path: strings.Join(path, " "), text: strings.Join(text, "\n"), usage: usage})
	}
	return entries
}

// flagsOf is the set of flags `canaryline PATH --help` lists for PATH: all of the help when it is PATH's own
// (`usage: canaryline PATH ...`), PATH's entry when it lists several commands.
func (c *cliHelp) flagsOf(path string) map[string]bool {
	if f, ok := c.flags[path]; ok {
		return f
	}
	help := c.help(strings.Fields(path)...)
	text := help
	entries := helpEntries(help)
	if !ownHelp(entries, path) && distinctPaths(entries) > 1 {
		for _, e := range entries {
			if e.path == path {
				text = e.text
				break
			}
		}
	}
	f := map[string]bool{}
	for _, m := range helpFlagRe.FindAllStringSubmatch(text, -1) {
		f[m[1]] = true
	}
	c.flags[path] = f
	return f
}

func ownHelp(entries []helpEntry, path string) bool {
	for _, e := range entries {
		if e.usage && e.path == path {
			return true
		}
	}
	return false
}

func distinctPaths(entries []helpEntry) int {
	seen := map[string]bool{}
	for _, e := range entries {
		seen[e.path] = true
	}
	return len(seen)
}

// resolve finds the command a doc's words name: "cluster up" from [cluster up --detach], "run" from [run p.yaml],
// or says why the help lists no such command.
func (c *cliHelp) resolve(words []string) (path string, rest []string, problem string) {
	first := words[0]
	if c.parents[first] {
		if len(words) < 2 || !wordRe.MatchString(words[1]) {
			return first, words[1:], ""
		}
		path = first + " " + words[1]
		if !c.commands[path] {
			for _, e := range helpEntries(c.help(first)) { // the command's own help may list its subcommands
				if e.path == path || (e.path == words[1] && !c.commands[e.path] && !c.parents[e.path]) {
					c.add(path)
				}
			}
		}
		if !c.commands[path] {
			return "", nil, fmt.Sprintf("`canaryline %s`: canaryline %s --help lists no such command", path, first)
		}
		return path, words[2:], ""
	}
	if !c.commands[first] {
		return "", nil, fmt.Sprintf("`canaryline %s`: canaryline --help lists no command %q", strings.Join(words, " "), first)
	}
	return first, words[1:], ""
}

// check reports every canaryline command in md's code that names a command the CLI lacks, or a flag its --help
// does not list.
func (c *cliHelp) check(md *markdown) []string {
	var problems []string
	for _, s := range md.code {
		for _, m := range docCommandRe.FindAllStringIndex(s.text, -1) {
			words := commandWords(s.text[m[1]:])
			if len(words) == 0 || !wordRe.MatchString(words[0]) {
				continue // "canaryline" as a name (a ServiceAccount, a flag's value), not a command
			}
			path, rest, problem := c.resolve(words)
			if problem != "" {
				problems = append(problems, fmt.Sprintf("line %d: %s", s.line, problem))
				continue
			}
			flags := c.flagsOf(path)
			for _, w := range rest {
				if f := docFlagRe.FindStringSubmatch(w); f != nil && !flags[f[1]] {
					problems = append(problems, fmt.Sprintf("line %d: `canaryline %s --%s`: canaryline %s --help does not list --%s",
						s.line, path, f[1], path, f[1]))
				}
			}
		}
	}
	return problems
}

// commandWords are the words of one shell command: up to a comment, a pipe, a list operator or the end of a
// command substitution; the command substitutions inside it dropped.
func commandWords(s string) []string {
	s = shellSubstRe.ReplaceAllString(s, "")
	if i := strings.IndexAny(s, "#|;&)\"`"); i >= 0 {
		s = s[:i]
	}
	return strings.Fields(s)
}

// ---- (b) make targets ----

var (
	makeRuleRe = regexp.MustCompile(`^([A-Za-z0-9_.%/-]+(?:[ \t]+[A-Za-z0-9_.%/-]+)*)[ \t]*:([^=]|$)`)
	docMakeRe  = regexp.MustCompile(`(?:^|[\s;&|("'])make((?:[ \t]+[A-Z_][A-Z0-9_]*=\S*)*)((?:[ \t]+[a-z][a-z0-9_-]*)+)`)
)

// makeTargets are the targets the Makefile's rules define.
func makeTargets(makefile string) map[string]bool {
	targets := map[string]bool{}
	for _, line := range strings.Split(makefile, "\n") {
		if m := makeRuleRe.FindStringSubmatch(line); m != nil {
			for _, t := range strings.Fields(m[1]) {
				if !strings.HasPrefix(t, ".") {
					targets[t] = true
				}
			}
		}
	}
	return targets
}

// checkMakeTargets reports every `make TARGET` in md's code whose target the Makefile lacks.
func checkMakeTargets(md *markdown, targets map[string]bool) []string {
	var problems []string
	for _, s := range md.code {
		for _, m := range docMakeRe.FindAllStringSubmatch(s.text, -1) {
			for _, target := range strings.Fields(m[2]) {
				if !targets[target] {
					problems = append(problems, fmt.Sprintf("line %d: `make %s`: the Makefile has no target %q", s.line, target, target))
				}
			}
		}
	}
	return problems
}

// ---- (c) links ----

var schemeRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)

// checkLinks reports every relative link of md (the file name, relative to dir) that points at no file inside
// dir, or at a heading its target does not have.
func checkLinks(dir, name string, md *markdown) []string {
	var problems []string
	for _, s := range md.prose {
		for _, m := range inlineLinkRe.FindAllStringSubmatch(s.text, -1) {
			target := m[2]
			if target == "" || schemeRe.MatchString(target) || strings.HasPrefix(target, "//") {
				continue
			}
			if p := checkLink(dir, name, md, target); p != "" {
				problems = append(problems, fmt.Sprintf("line %d: link %s: %s", s.line, target, p))
			}
		}
	}
	return problems
}

func checkLink(dir, name string, md *markdown, target string) string {
	file, fragment, _ := strings.Cut(target, "#")
	rel := name
	if file != "" {
		rel = filepath.ToSlash(filepath.Join(filepath.Dir(name), file))
		if rel == ".." || strings.HasPrefix(rel, "../") {
			return "points outside the repository"
		}
		if _, err := os.Stat(filepath.Join(dir, rel)); err != nil {
			return fmt.Sprintf("no file %s", rel)
		}
	}
	if fragment == "" {
		return ""
	}
	anchors := md.anchors
	if file != "" {
		if !strings.HasSuffix(rel, ".md") {
			return fmt.Sprintf("#%s in %s, which is not markdown", fragment, rel)
		}
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			return err.Error()
		}
		anchors = parseMarkdown(string(data)).anchors
	}
	if !anchors[fragment] {
		return fmt.Sprintf("%s has no heading with anchor #%s (anchors: %s)", rel, fragment, strings.Join(sortedKeys(anchors), " "))
	}
	return ""
}

// ---- (d) step params ----

// taskInfo is what a Task declares: its params, and the other names a step's doc may mention (results, env).
type taskInfo struct {
	params []string
	others []string
}

// loadTasks reads the Tasks in dir (Task kind only; other manifests and multi-document files are skipped past).
func loadTasks(dir string) (map[string]taskInfo, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	tasks := map[string]taskInfo{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, doc := range strings.Split(string(data), "\n---") {
			var task struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
				Spec struct {
					Params  []struct{ Name string } `json:"params"`
					Results []struct{ Name string } `json:"results"`
					Steps   []struct {
						Env []struct{ Name string } `json:"env"`
					} `json:"steps"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal([]byte(doc), &task); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if task.Kind != "Task" {
				continue
			}
			var info taskInfo
			for _, p := range task.Spec.Params {
				info.params = append(info.params, p.Name)
			}
			for _, r := range task.Spec.Results {
				info.others = append(info.others, r.Name)
			}
			for _, s := range task.Spec.Steps {
				for _, e := range s.Env {
					info.others = append(info.others, e.Name)
				}
			}
			tasks[task.Metadata.Name] = info
		}
	}
	if len(tasks) == 0 {
		return nil, fmt.Errorf("%s: no Task", dir)
	}
	return tasks, nil
}

var (
	tableRowRe = regexp.MustCompile("^\\|\\s*`?([^|`]*?)`?\\s*\\|")
	upperRe    = regexp.MustCompile(`^([A-Z][A-Z0-9_]*[A-Z0-9])(=\S*)?$`)
)

// outsideTasks are upper-case names docs/steps.md may mention that no Task declares.
var outsideTasks = map[string]bool{
	"KUBECONFIG": true, // a step run outside a pod reads it
	"NAME":       true, // NAME=value, the form of BUILD_ENV's and BUILD_ARGS's lines
}

// checkStepParams reports, for docs/steps.md: a "## step" section without its Task, a param row (a table whose
// first column is "param") naming no param of that step's Task, a Task param without its row, and an upper-case
// name in code (`WEIGHT`, `BASELINE=true`) that no Task declares as a param, result or env variable.
func checkStepParams(md *markdown, tasks map[string]taskInfo) []string {
	if md == nil {
		return []string{"missing"}
	}
	var problems []string
	documented := map[string]map[string]bool{}
	for _, step := range stepSections(md, &problems, tasks) {
		documented[step.name] = step.params
		want := map[string]bool{}
		for _, p := range tasks[step.name].params {
			want[p] = true
			if !step.params[p] {
				problems = append(problems, fmt.Sprintf("## %s: param %s of tasks/%s.yaml has no row", step.name, p, step.name))
			}
		}
		for p := range step.params {
			if !want[p] {
				problems = append(problems, fmt.Sprintf("## %s: row %s is no param of the Task %s", step.name, p, step.name))
			}
		}
	}
	for name := range tasks {
		if documented[name] == nil {
			problems = append(problems, fmt.Sprintf("the Task %s has no ## %s section", name, name))
		}
	}
	known := map[string]bool{}
	for _, info := range tasks {
		for _, n := range append(append([]string{}, info.params...), info.others...) {
			known[n] = true
		}
	}
	for _, s := range md.code {
		for _, w := range strings.Fields(s.text) {
			if m := upperRe.FindStringSubmatch(w); m != nil && !known[m[1]] && !outsideTasks[m[1]] {
				problems = append(problems, fmt.Sprintf("line %d: %s is no param, result or env variable of a Task", s.line, m[1]))
			}
		}
	}
	sort.Strings(problems)
	return problems
}

// stepSection is one "## step" section of docs/steps.md and the params its table lists.
type stepSection struct {
	name   string
	params map[string]bool
}

// stepSections reads the "## name" sections of md (a lower-case name is a step's) and the first column of their
// param tables.
func stepSections(md *markdown, problems *[]string, tasks map[string]taskInfo) []stepSection {
	var sections []stepSection
	var cur *stepSection
	for _, b := range md.blocks {
		if b.heading {
			cur = nil
			if !wordRe.MatchString(b.text) {
				continue
			}
			if _, ok := tasks[b.text]; !ok {
				*problems = append(*problems, fmt.Sprintf("## %s: no Task of that name in tasks/", b.text))
				continue
			}
			sections = append(sections, stepSection{name: b.text, params: map[string]bool{}})
			cur = &sections[len(sections)-1]
			continue
		}
		if cur == nil {
			continue
		}
		inParams := false
		for _, line := range strings.Split(b.text, "\n") {
			m := tableRowRe.FindStringSubmatch(strings.TrimSpace(line))
			switch {
			case m == nil:
				inParams = false
			case m[1] == "param":
				inParams = true
			case inParams && strings.Trim(m[1], "-: ") != "":
				cur.params[strings.TrimSpace(m[1])] = true
			}
		}
	}
	return sections
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
