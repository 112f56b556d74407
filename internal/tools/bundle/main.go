package bundle

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// PublishOptions are what `canaryline bundle push` publishes, and where.
type PublishOptions struct {
	// Root is the repository root: the Tasks and Pipelines of Root/tasks and Root/pipelines are published.
	Root string
	// Ref is where to push: REGISTRY/REPO:TAG (a tag, not a digest: the digest is computed).
	Ref string
	// Insecure allows a registry over plain HTTP.
	Insecure bool
	// Log receives the progress: one line per resource and one for the push. Nil discards it.
	Log io.Writer
}

// RefError is a Ref that cannot be pushed to: bad input, found before anything is read or pushed.
type RefError struct{ Msg string }

func (e *RefError) Error() string { return e.Msg }

// CheckRef returns a *RefError when ref is empty, carries a digest, or is not a valid image reference.
func CheckRef(ref string, insecure bool) error {
	switch {
	case ref == "":
		return &RefError{Msg: "--ref is required"}
	case strings.Contains(ref, "@"):
		return &RefError{Msg: fmt.Sprintf("--ref %s: give a tag, not a digest (the digest is computed)", ref)}
	}
	if _, err := ParseRef(ref, insecure); err != nil {
		return &RefError{Msg: err.Error()}
	}
	return nil
}

// Publish loads the Tasks and Pipelines under o.Root (Load), pushes them to o.Ref as one Tekton bundle (Image,
// Push) and returns its pinned reference, REGISTRY/REPO:TAG@sha256:... (Pinned). A bad o.Ref is a *RefError.
func Publish(ctx context.Context, o PublishOptions) (string, error) {
	if err := CheckRef(o.Ref, o.Insecure); err != nil {
		return "", err
	}
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	rs, err := Load(o.Root)
	if err != nil {
		return "", err
	}
	img, err := Image(rs)
	if err != nil {
		return "", err
	}
	for _, r := range rs {
		fmt.Fprintf(log, "bundle: %s/%s (%s)\n", strings.ToLower(r.Kind), r.Name, r.Source)
	}
	digest, err := Push(ctx, img, o.Ref, o.Insecure)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(log, "bundle: pushed %d resources to %s\n", len(rs), o.Ref)
	return Pinned(o.Ref, digest), nil
}
