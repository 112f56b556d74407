package catalog

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Usage is the help of `canaryline catalog`.
const Usage = `usage: canaryline catalog generate [--root DIR] [--image-digest sha256:...] [--version X.Y] [--check]

Generate catalog/ (the tektoncd/catalog layout Artifact Hub indexes) from tasks/ and pipelines/: each Task and
Pipeline with its step image pinned by digest and the artifacthub.io annotations, a README.md and an example run.

  --root DIR          the repository root (default: .)
  --image-digest D    the step image's digest; default: catalog/IMAGE_DIGEST
  --version X.Y       the catalog version directory; default: each resource's app.kubernetes.io/version label
  --check             change nothing: list the stale, missing and extra files and exit 1 when there are any
`

// Main runs `canaryline catalog` with args (after "catalog": "generate" and its flags) and returns the exit code:
// 0 done (or current), 1 error (or, with --check, stale), 2 bad usage.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "catalog" {
		args = args[1:]
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			fmt.Fprint(stderr, Usage)
			return 2
		}
		fmt.Fprint(stdout, Usage)
		return 0
	}
	if args[0] != "generate" {
		fmt.Fprintf(stderr, "canaryline catalog: unknown command %q\n\n%s", args[0], Usage)
		return 2
	}
	fs := flag.NewFlagSet("catalog generate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o Options
	var check bool
	fs.StringVar(&o.Root, "root", ".", "")
	fs.StringVar(&o.ImageDigest, "image-digest", "", "")
	fs.StringVar(&o.Version, "version", "", "")
	fs.BoolVar(&check, "check", false, "")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, Usage)
			return 0
		}
		fmt.Fprintf(stderr, "canaryline catalog generate: %v\n\n%s", err, Usage)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "canaryline catalog generate: unexpected arguments %q\n\n%s", fs.Args(), Usage)
		return 2
	}

	files, err := Generate(o)
	if err != nil {
		fmt.Fprintf(stderr, "canaryline catalog generate: %v\n", err)
		return 1
	}
	diff, err := Diff(o.Root, files)
	if err != nil {
		fmt.Fprintf(stderr, "canaryline catalog generate: %v\n", err)
		return 1
	}
	if check {
		if len(diff) == 0 {
			fmt.Fprintf(stdout, "catalog is current (%d files)\n", len(files))
			return 0
		}
		for _, d := range diff {
			fmt.Fprintln(stdout, d)
		}
		fmt.Fprintf(stderr, "canaryline catalog generate: %d catalog files are stale, missing or extra: run `canaryline catalog generate`\n", len(diff))
		return 1
	}
	if err := Write(o.Root, files); err != nil {
		fmt.Fprintf(stderr, "canaryline catalog generate: %v\n", err)
		return 1
	}
	done := map[string]string{"stale": "updated", "missing": "added", "extra": "removed"}
	for _, d := range diff {
		what, file, _ := strings.Cut(d, " ")
		fmt.Fprintln(stdout, done[what], file)
	}
	fmt.Fprintf(stdout, "catalog: %d files, %d changed\n", len(files), len(diff))
	return 0
}
