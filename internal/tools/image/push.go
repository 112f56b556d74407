package image

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Push uploads img to ref with remote.Write and returns the manifest digest
// it pushed. Authentication comes from opts; without one it is anonymous.
// For a real registry pass
// remote.WithAuthFromKeychain(authn.DefaultKeychain).
func Push(ctx context.Context, img v1.Image, ref string, opts ...remote.Option) (v1.Hash, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("compute image digest: %w", err)
	}
	opts = append([]remote.Option{remote.WithContext(ctx), remote.WithUserAgent("canaryline")}, opts...)
	if err := remote.Write(r, img, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("push image to %s: %w", r, err)
	}
	return d, nil
}

// PushLayout pushes the single image of the OCI layout at dir to ref. An
// empty ref means the reference recorded in the layout (AnnotationRefName).
func PushLayout(ctx context.Context, dir, ref string, opts ...remote.Option) (v1.Hash, error) {
	img, desc, err := layoutImage(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	if ref == "" {
		ref = desc.Annotations[AnnotationRefName]
		if ref == "" {
			return v1.Hash{}, fmt.Errorf("push OCI layout %s: no reference given and none recorded", dir)
		}
	}
	return Push(ctx, img, ref, opts...)
}
