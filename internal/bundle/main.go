package bundle

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Usage is the help of `canaryline bundle`.
const Usage = `usage: canaryline bundle push --ref REGISTRY/REPO:TAG [--root DIR] [--insecure]

Publish the Tasks and Pipelines of DIR/tasks and DIR/pipelines as one Tekton bundle (an OCI image with one layer per
resource, at most 20) and print its pinned reference, REGISTRY/REPO:TAG@sha256:..., for the bundles resolver:

  taskRef: {resolver: bundles, params: [{name: bundle, value: REF@sha256:...}, {name: name, value: shift-canary},
            {name: kind, value: task}]}

The same files always give the same digest. Registry credentials come from the docker config
($DOCKER_CONFIG/config.json or ~/.docker/config.json, as written by docker login, podman login or oc registry login).

  --ref REF      where to push: REGISTRY/REPO:TAG (required)
  --root DIR     the repository root (default: .)
  --insecure     allow a registry over plain HTTP

Exit codes: 0 pushed; 1 error (unreadable or invalid resources, the push failed); 2 bad usage.
`

// Main runs `canaryline bundle` with args (after "bundle": "push" and its flags) and returns the exit code:
// 0 pushed, 1 error, 2 bad usage. The pinned reference is the only line on stdout; progress goes to stderr.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "bundle" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, Usage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, Usage)
		return 0
	case "push":
	default:
		fmt.Fprintf(stderr, "canaryline bundle: unknown command %q\n\n%s", args[0], Usage)
		return 2
	}
	fs := flag.NewFlagSet("bundle push", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	root := fs.String("root", ".", "")
	ref := fs.String("ref", "", "")
	insecure := fs.Bool("insecure", false, "")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, Usage)
			return 0
		}
		fmt.Fprintf(stderr, "canaryline bundle push: %v\n\n%s", err, Usage)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "canaryline bundle push: unexpected arguments %q\n\n%s", fs.Args(), Usage)
		return 2
	}
	if *ref == "" {
		fmt.Fprintf(stderr, "canaryline bundle push: --ref is required\n\n%s", Usage)
		return 2
	}
	if strings.Contains(*ref, "@") {
		fmt.Fprintf(stderr, "canaryline bundle push: --ref %s: give a tag, not a digest (the digest is computed)\n\n%s", *ref, Usage)
		return 2
	}
	if _, err := ParseRef(*ref, *insecure); err != nil {
		fmt.Fprintf(stderr, "canaryline bundle push: %v\n\n%s", err, Usage)
		return 2
	}

	rs, err := Load(*root)
	if err != nil {
		fmt.Fprintf(stderr, "canaryline bundle push: %v\n", err)
		return 1
	}
	img, err := Image(rs)
	if err != nil {
		fmt.Fprintf(stderr, "canaryline bundle push: %v\n", err)
		return 1
	}
	for _, r := range rs {
		fmt.Fprintf(stderr, "bundle: %s/%s (%s)\n", strings.ToLower(r.Kind), r.Name, r.Source)
	}
	digest, err := Push(ctx, img, *ref, *insecure)
	if err != nil {
		fmt.Fprintf(stderr, "canaryline bundle push: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "bundle: pushed %d resources to %s\n", len(rs), *ref)
	fmt.Fprintln(stdout, Pinned(*ref, digest))
	return 0
}
