package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/canaryline/canaryline/internal/tools/image"
)

// imageCmd is `canaryline image`: the step image as an OCI image index (one image per platform) in an OCI layout,
// built without a container engine.
func imageCmd(fs *flag.FlagSet, _ Env) runFunc {
	out := fs.String("out", "_output/image/oci", "write the image index as an OCI layout into this directory")
	tarball := fs.String("tarball", "", "also write the "+image.DefaultPlatform+" image as a docker-loadable tarball to this file")
	platforms := fs.String("platform", strings.Join(image.Platforms, ","), "the platforms of the index, comma-separated (the catalog pins the index of all four)")
	ref := fs.String("ref", "", "image reference recorded in the layout (default: the image package's)")
	version := fs.String("version", "dev", "version label")
	revision := fs.String("revision", "", "source revision label (e.g. git rev-parse HEAD)")
	digestFile := fs.String("digest-file", "", "also write the index digest here (catalog/IMAGE_DIGEST pins the catalog's step images)")
	return func(ctx context.Context, _ []string, stdout, stderr io.Writer) error {
		root, err := os.Getwd()
		if err != nil {
			return err
		}
		var pls []string
		for _, p := range strings.Split(*platforms, ",") {
			if p = strings.TrimSpace(p); p != "" {
				pls = append(pls, p)
			}
		}
		if len(pls) == 0 {
			return usagef("image --platform %q: give one or more of %s", *platforms, strings.Join(image.Platforms, ","))
		}
		if err := image.CheckPlatforms(pls); err != nil {
			return usagef("image --platform: %v", err)
		}
		rep, err := image.BuildIndex(ctx, image.Options{RepoRoot: root, LayoutDir: *out, TarballPath: *tarball, Ref: *ref,
			Version: *version, Revision: *revision}, pls...)
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
