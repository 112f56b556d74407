package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/canaryline/canaryline/internal/runtime/steps"
	"github.com/canaryline/canaryline/internal/tools/image"
)

// BuildFlags are the Makefile's go build flags for static, stripped, reproducible binaries (with CGO_ENABLED=0).
var BuildFlags = []string{"-trimpath", "-ldflags=-s -w -buildid="}

// sizedMains are the commands Sizes builds: the thin per-step mains, then the multi-call binary of the image.
var sizedMains = append(steps.Names(), steps.MultiCallName)

// Sizes builds the five per-step commands and cmd/canaryline-steps as the Makefile does, and the step image, in
// the module at root, and reports their sizes in MB (1e6 bytes). The uncompressed image is held to the image's
// budget (32 MB).
func Sizes(ctx context.Context, root string) ([]Measurement, error) {
	dir, err := os.MkdirTemp("", "canaryline-bench-sizes-")
	if err != nil {
		return nil, fmt.Errorf("create a directory for the binaries: %w", err)
	}
	defer os.RemoveAll(dir)

	// One go build for all six commands: -o DIR/ writes each main package as DIR/<its directory's name>.
	args := append([]string{"build"}, BuildFlags...)
	args = append(args, "-o", dir+string(filepath.Separator))
	for _, name := range sizedMains {
		args = append(args, "./cmd/"+name)
	}
	if err := goBuild(ctx, root, args...); err != nil {
		return nil, err
	}
	var out []Measurement
	for _, name := range sizedMains {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("size of the built %s: %w", name, err)
		}
		detail := "per-step command, static and stripped"
		if name == steps.MultiCallName {
			detail = "multi-call binary of all five steps, static and stripped"
		}
		out = append(out, Measurement{Figure: "binary size: " + name, Value: megabytes(fi.Size()), Unit: "MB", Detail: detail})
	}

	rep, err := image.Build(ctx, image.Options{RepoRoot: root})
	if err != nil {
		return nil, fmt.Errorf("build the step image: %w", err)
	}
	met := rep.UncompressedBytes <= image.SizeBudget
	out = append(out,
		Measurement{Figure: "step image size, uncompressed", Value: megabytes(rep.UncompressedBytes), Unit: "MB",
			Target: fmt.Sprintf("≤ %.0f MB", megabytes(image.SizeBudget)), Met: &met,
			Detail: fmt.Sprintf("%d layer(s), %s; its canaryline-steps %.2f MB", rep.Layers, rep.Platform, megabytes(rep.BinaryBytes))},
		Measurement{Figure: "step image size, compressed", Value: megabytes(rep.CompressedBytes), Unit: "MB",
			Detail: "layer blobs as stored and pushed"},
	)
	return out, nil
}

// goBuild runs the go command in root with cgo off; its output is in the error.
func goBuild(ctx context.Context, root string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %v in %s: %w\n%s", args, root, err, bytes.TrimSpace(out))
	}
	return nil
}

func megabytes(n int64) float64 { return float64(n) / 1e6 }
