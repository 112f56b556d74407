package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Build does everything "canaryline image" needs: it compiles the binary
// when opts.BinaryPath is empty, checks that it is a static executable for
// the platform, assembles the image, enforces the size budget, and writes
// the OCI layout and the docker tarball that opts asks for. The report
// carries opts.Ref (or its default). When the image is over budget, Build
// returns the report with an error wrapping ErrOverBudget and writes
// nothing.
func Build(ctx context.Context, opts Options) (Report, error) {
	opts, _, err := opts.withDefaults()
	if err != nil {
		return Report{}, err
	}
	img, report, err := buildImage(ctx, opts)
	if err != nil {
		return report, err
	}
	if opts.LayoutDir != "" {
		if err := WriteLayout(opts.LayoutDir, img, opts.Ref); err != nil {
			return report, err
		}
	}
	if opts.TarballPath != "" {
		if err := WriteTarball(opts.TarballPath, img, opts.Ref); err != nil {
			return report, err
		}
	}
	return report, nil
}

// buildImage compiles the binary when opts.BinaryPath is empty, checks it, assembles the image, and enforces the
// size budget. opts has its defaults.
func buildImage(ctx context.Context, opts Options) (v1.Image, Report, error) {
	if opts.BinaryPath == "" {
		if opts.RepoRoot == "" {
			return nil, Report{}, errors.New("build image: neither a binary path nor a repository root given")
		}
		tmp, err := os.MkdirTemp("", "canaryline-image-")
		if err != nil {
			return nil, Report{}, fmt.Errorf("create binary build directory: %w", err)
		}
		defer os.RemoveAll(tmp)
		opts.BinaryPath = filepath.Join(tmp, "canaryline-steps")
		if err := BuildBinaryFor(ctx, opts.RepoRoot, opts.BinaryPath, opts.Platform); err != nil {
			return nil, Report{}, err
		}
	}
	if err := CheckBinary(opts.BinaryPath, opts.Platform); err != nil {
		return nil, Report{}, err
	}
	img, err := NewImage(opts)
	if err != nil {
		return nil, Report{}, err
	}
	report, err := Size(img)
	if err != nil {
		return nil, report, err
	}
	report.Ref = opts.Ref
	budget := opts.MaxUncompressedBytes
	if budget == 0 {
		budget = SizeBudget
	}
	if budget > 0 && report.UncompressedBytes > budget {
		return nil, report, fmt.Errorf("check image size of %s: %w: %d bytes uncompressed, budget %d", opts.Platform, ErrOverBudget, report.UncompressedBytes, budget)
	}
	if err := ctx.Err(); err != nil {
		return nil, report, fmt.Errorf("build image: %w", err)
	}
	return img, report, nil
}

// WriteLayout writes img as the only image of an OCI image layout at dir,
// annotated with its platform and, unless ref is empty, with ref as
// AnnotationRefName. dir must be
// absent, empty, or an OCI layout, whose index and blobs are replaced.
func WriteLayout(dir string, img v1.Image, ref string) error {
	p, opts, err := newLayout(dir, ref)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read image config: %w", err)
	}
	if pl := cfg.Platform(); pl != nil {
		opts = append(opts, layout.WithPlatform(*pl))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		return fmt.Errorf("write image to OCI layout %s: %w", dir, err)
	}
	return nil
}

// newLayout makes dir an empty OCI layout (prepareLayoutDir) and returns it with the options that annotate its
// entry with ref, unless ref is empty.
func newLayout(dir, ref string) (layout.Path, []layout.Option, error) {
	if err := prepareLayoutDir(dir); err != nil {
		return "", nil, err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return "", nil, fmt.Errorf("write OCI layout %s: %w", dir, err)
	}
	var opts []layout.Option
	if ref != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{AnnotationRefName: ref}))
	}
	return p, opts, nil
}

// prepareLayoutDir makes dir an empty directory, removing an earlier OCI
// layout (and only that) from it.
func prepareLayoutDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create layout directory: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read layout directory: %w", err)
	}
	if len(ents) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return fmt.Errorf("prepare layout directory %s: not empty and not an OCI layout", dir)
	}
	for _, n := range []string{"index.json", "oci-layout", "blobs"} {
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("remove old OCI layout: %w", err)
		}
	}
	return nil
}

// WriteTarball writes img to path as a tarball that "docker load" and
// "podman load" accept, tagged ref.
func WriteTarball(path string, img v1.Image, ref string) error {
	tag, err := parseTag(ref)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create tarball directory: %w", err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		return fmt.Errorf("write image tarball %s: %w", path, err)
	}
	return nil
}

func parseTag(ref string) (name.Tag, error) {
	if strings.Contains(ref, "@") {
		return name.Tag{}, fmt.Errorf("parse image reference %q: want a tag, not a digest", ref)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return name.Tag{}, fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	return tag, nil
}

// SourceDateEpoch returns the time SOURCE_DATE_EPOCH (seconds since the Unix
// epoch) names, or the Unix epoch when it is unset or empty. Pass the result
// as Options.Created for builds that match other reproducible tools.
func SourceDateEpoch(lookup func(string) (string, bool)) (time.Time, error) {
	v, ok := lookup("SOURCE_DATE_EPOCH")
	if !ok || v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("parse SOURCE_DATE_EPOCH %q: want non-negative whole seconds", v)
	}
	return time.Unix(sec, 0).UTC(), nil
}
