package image

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Artifact is what Push uploads: an image (v1.Image) or an image index (v1.ImageIndex) with all its images.
type Artifact interface {
	remote.Taggable
	Digest() (v1.Hash, error)
}

// Push uploads a (an image, or an index and its images) to ref with remote.Push and returns the digest it pushed:
// what a pinned reference (ref@digest) names, on every platform for an index. Authentication comes from opts;
// without one it is anonymous. For a real registry pass remote.WithAuthFromKeychain(authn.DefaultKeychain).
func Push(ctx context.Context, a Artifact, ref string, opts ...remote.Option) (v1.Hash, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	d, err := a.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("compute digest: %w", err)
	}
	opts = append([]remote.Option{remote.WithContext(ctx), remote.WithUserAgent("canaryline")}, opts...)
	if err := remote.Push(r, a, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("push to %s: %w", r, err)
	}
	return d, nil
}

// PushLayout pushes the single entry of the OCI layout at dir, an image or an image index (as BuildIndex writes
// it), to ref, and returns its digest. An empty ref means the reference recorded in the layout
// (AnnotationRefName).
func PushLayout(ctx context.Context, dir, ref string, opts ...remote.Option) (v1.Hash, error) {
	root, desc, err := layoutEntry(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	if ref == "" {
		ref = desc.Annotations[AnnotationRefName]
		if ref == "" {
			return v1.Hash{}, fmt.Errorf("push OCI layout %s: no reference given and none recorded", dir)
		}
	}
	if desc.MediaType.IsIndex() {
		idx, err := root.ImageIndex(desc.Digest)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("open image index %s in OCI layout %s: %w", desc.Digest, dir, err)
		}
		return Push(ctx, idx, ref, opts...)
	}
	img, _, err := layoutImage(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	return Push(ctx, img, ref, opts...)
}
