package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/canaryline/canaryline/internal/tools/image"
)

// imageCmd is `canaryline image`: the step image as an OCI layout, built without a container engine.
func imageCmd(fs *flag.FlagSet, _ Env) runFunc {
	out := fs.String("out", "_output/image/oci", "write the image as an OCI layout into this directory")
	tarball := fs.String("tarball", "", "also write a docker-loadable tarball to this file")
	ref := fs.String("ref", "", "image reference recorded in the layout (default: the image package's)")
	version := fs.String("version", "dev", "version label")
	revision := fs.String("revision", "", "source revision label (e.g. git rev-parse HEAD)")
	digestFile := fs.String("digest-file", "", "also write the image digest here (catalog/IMAGE_DIGEST pins the catalog's step images)")
	return func(ctx context.Context, _ []string, stdout, stderr io.Writer) error {
		root, err := os.Getwd()
		if err != nil {
			return err
		}
		rep, err := image.Build(ctx, image.Options{RepoRoot: root, LayoutDir: *out, TarballPath: *tarball, Ref: *ref,
			Version: *version, Revision: *revision})
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "canaryline: image written to %s\n", *out)
		if *digestFile != "" {
			if err := os.WriteFile(*digestFile, []byte(rep.Digest.String()+"\n"), 0o644); err != nil {
				return err
			}
		}
		fmt.Fprintln(stdout, rep.String())
		return nil
	}
}
