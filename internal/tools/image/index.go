package image

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Platforms are the platforms of the step image index, in the order of its manifests: the four OpenShift runs on.
// The Tasks' tekton.dev/platforms annotation lists the same.
var Platforms = []string{"linux/amd64", "linux/arm64", "linux/ppc64le", "linux/s390x"}

// IndexReport measures a step image index.
type IndexReport struct {
	// Ref is the recorded image reference (AnnotationRefName), if known.
	Ref string
	// Digest is the digest of the index: what the catalog pins.
	Digest v1.Hash
	// Images are the per-platform images, in the index's order.
	Images []Report
}

// String formats the report: the index on one line, then one indented line per platform.
func (r IndexReport) String() string {
	ref := r.Ref
	if ref == "" {
		ref = "(no ref)"
	}
	lines := []string{fmt.Sprintf("%s index %s: %d platform(s)", ref, r.Digest, len(r.Images))}
	for _, img := range r.Images {
		lines = append(lines, "  "+img.String())
	}
	return strings.Join(lines, "\n")
}

// Image returns the report of platform's image.
func (r IndexReport) Image(platform string) (Report, bool) {
	for _, img := range r.Images {
		if img.Platform == platform {
			return img, true
		}
	}
	return Report{}, false
}

// BuildIndex is Build for several platforms (Platforms when none are given): it compiles the step binary for
// each, builds and checks each image as Build does (the size budget holds for each), and assembles one OCI image
// index of them, in the order given. It writes the index as the OCI layout at opts.LayoutDir, and the image of
// DefaultPlatform (or else the first platform) as the docker tarball at opts.TarballPath, since a docker tarball
// holds one platform only. opts.BinaryPath must be empty: each platform needs its own binary, built from
// opts.RepoRoot. The index is reproducible as each image is.
func BuildIndex(ctx context.Context, opts Options, platforms ...string) (IndexReport, error) {
	if len(platforms) == 0 {
		platforms = Platforms
	}
	if opts.BinaryPath != "" {
		return IndexReport{}, errors.New("build image index: a binary path serves one platform; give the repository root")
	}
	if err := CheckPlatforms(platforms); err != nil {
		return IndexReport{}, err
	}
	opts, _, err := opts.withDefaults()
	if err != nil {
		return IndexReport{}, err
	}
	imgs, reports, err := buildImages(ctx, opts, platforms)
	if err != nil {
		return IndexReport{Ref: opts.Ref, Images: reports}, err
	}
	idx, err := NewIndex(imgs)
	if err != nil {
		return IndexReport{}, err
	}
	rep := IndexReport{Ref: opts.Ref, Images: reports}
	if rep.Digest, err = idx.Digest(); err != nil {
		return rep, fmt.Errorf("compute index digest: %w", err)
	}
	if opts.LayoutDir != "" {
		if err := WriteIndexLayout(opts.LayoutDir, idx, opts.Ref); err != nil {
			return rep, err
		}
	}
	if opts.TarballPath != "" {
		if err := WriteTarball(opts.TarballPath, imgs[tarballPlatform(platforms)], opts.Ref); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// CheckPlatforms refuses a repeated or unsupported platform before anything is compiled.
func CheckPlatforms(platforms []string) error {
	seen := map[string]bool{}
	for _, p := range platforms {
		if _, err := goEnv(p); err != nil {
			return err
		}
		if _, ok := elfMachines[strings.SplitN(p, "/", 3)[1]]; !ok {
			return fmt.Errorf("build image index: platform %q is not supported; give some of %s", p, strings.Join(Platforms, ","))
		}
		if seen[p] {
			return fmt.Errorf("build image index: platform %q given twice", p)
		}
		seen[p] = true
	}
	return nil
}

// tarballPlatform is the index of DefaultPlatform in platforms, or 0.
func tarballPlatform(platforms []string) int {
	for i, p := range platforms {
		if p == DefaultPlatform {
			return i
		}
	}
	return 0
}

// buildImages builds one image per platform, two at a time: each go build already uses every core, and a second
// one fills the time the first spends linking.
func buildImages(ctx context.Context, opts Options, platforms []string) ([]v1.Image, []Report, error) {
	imgs := make([]v1.Image, len(platforms))
	reports := make([]Report, len(platforms))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(min(2, runtime.NumCPU()))
	for i, p := range platforms {
		g.Go(func() error {
			o := opts
			o.Platform = p
			img, rep, err := buildImage(ctx, o)
			imgs[i], reports[i] = img, rep
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, reports, err
	}
	return imgs, reports, nil
}

// NewIndex assembles the OCI image index of imgs, each described with the platform of its config.
func NewIndex(imgs []v1.Image) (v1.ImageIndex, error) {
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("read image config: %w", err)
		}
		pl := cfg.Platform()
		if pl == nil {
			return nil, errors.New("build image index: an image has no platform")
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Platform: pl}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...), nil
}

// WriteIndexLayout writes idx as the only entry of an OCI image layout at dir, annotated, unless ref is empty,
// with ref as AnnotationRefName. dir is prepared as WriteLayout prepares it.
func WriteIndexLayout(dir string, idx v1.ImageIndex, ref string) error {
	p, opts, err := newLayout(dir, ref)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(idx, opts...); err != nil {
		return fmt.Errorf("write image index to OCI layout %s: %w", dir, err)
	}
	return nil
}

// LayoutIndex opens the image index of the OCI layout at dir (as BuildIndex writes it) and returns it with the
// reference recorded for it.
func LayoutIndex(dir string) (v1.ImageIndex, string, error) {
	root, desc, err := layoutEntry(dir)
	if err != nil {
		return nil, "", err
	}
	if !desc.MediaType.IsIndex() {
		return nil, "", fmt.Errorf("read index of OCI layout %s: its entry has media type %s, want an image index", dir, desc.MediaType)
	}
	idx, err := root.ImageIndex(desc.Digest)
	if err != nil {
		return nil, "", fmt.Errorf("open image index %s in OCI layout %s: %w", desc.Digest, dir, err)
	}
	return idx, desc.Annotations[AnnotationRefName], nil
}

// MeasureIndex measures every image of idx, in its order, and checks that each manifest's platform is its
// config's.
func MeasureIndex(idx v1.ImageIndex) (IndexReport, error) {
	var rep IndexReport
	d, err := idx.Digest()
	if err != nil {
		return rep, fmt.Errorf("compute index digest: %w", err)
	}
	rep.Digest = d
	im, err := idx.IndexManifest()
	if err != nil {
		return rep, fmt.Errorf("read index manifest: %w", err)
	}
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return rep, fmt.Errorf("open image %s of the index: %w", desc.Digest, err)
		}
		r, err := Size(img)
		if err != nil {
			return rep, err
		}
		if desc.Platform == nil || desc.Platform.String() != r.Platform {
			return rep, fmt.Errorf("read index manifest: image %s is described as %v but its config says %s", desc.Digest, desc.Platform, r.Platform)
		}
		rep.Images = append(rep.Images, r)
	}
	return rep, nil
}
