package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// indexOpts are buildOpts for an index: built from the fake repository, one binary per platform.
func indexOpts(t *testing.T) Options {
	t.Helper()
	opts := buildOpts(t)
	opts.RepoRoot, _ = staticBinary(t)
	opts.BinaryPath = ""
	return opts
}

// TestMultiArchIndexHoldsEveryPlatform builds the index of the fake repository for the four platforms and reads it
// back: one image per platform, each described by its platform, each holding a binary for that platform (and not
// another), the same index when built again, the amd64 image as the docker tarball, and the right image served by
// a registry for each platform.
func TestMultiArchIndexHoldsEveryPlatform(t *testing.T) {
	opts := indexOpts(t)
	rep, err := BuildIndex(t.Context(), opts)
	if err != nil {
		t.Fatalf("BuildIndex: %v", err)
	}
	t.Log(rep)
	var got []string
	for _, img := range rep.Images {
		got = append(got, img.Platform)
		if img.BinaryBytes == 0 {
			t.Errorf("%s: no binary at %s", img.Platform, EntrypointPath)
		}
	}
	if !slices.Equal(got, Platforms) {
		t.Fatalf("index platforms %v, want %v", got, Platforms)
	}

	idx, ref, err := LayoutIndex(opts.LayoutDir)
	if err != nil {
		t.Fatal(err)
	}
	if ref != opts.Ref {
		t.Errorf("layout records ref %q, want %q", ref, opts.Ref)
	}
	checkIndexManifest(t, idx, rep)
	checkPlatformBinaries(t, idx)

	again := opts
	again.LayoutDir, again.TarballPath = filepath.Join(t.TempDir(), "oci"), ""
	rep2, err := BuildIndex(t.Context(), again)
	if err != nil {
		t.Fatalf("BuildIndex again: %v", err)
	}
	if rep2.Digest != rep.Digest {
		t.Errorf("index built twice: %s then %s; want one reproducible digest", rep.Digest, rep2.Digest)
	}

	tb, err := tarball.ImageFromPath(opts.TarballPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tb.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Platform(); p == nil || p.String() != DefaultPlatform {
		t.Errorf("docker tarball holds the image of %v, want %s", p, DefaultPlatform)
	}
	checkPushedIndex(t, opts.LayoutDir, rep)
}

// checkIndexManifest checks that idx is an OCI index whose manifests are rep's images, described by platform, and
// that measuring it again gives rep.
func checkIndexManifest(t *testing.T, idx v1.ImageIndex, rep IndexReport) {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %s, want %s", im.MediaType, types.OCIImageIndex)
	}
	for i, desc := range im.Manifests {
		if desc.MediaType != types.OCIManifestSchema1 || desc.Platform == nil || desc.Platform.String() != Platforms[i] {
			t.Errorf("manifest %d: media type %s, platform %v; want an OCI image for %s", i, desc.MediaType, desc.Platform, Platforms[i])
		}
	}
	measured, err := MeasureIndex(idx)
	if err != nil {
		t.Fatal(err)
	}
	if measured.Digest != rep.Digest || len(measured.Images) != len(rep.Images) {
		t.Fatalf("layout index %s with %d images, want %s with %d", measured.Digest, len(measured.Images), rep.Digest, len(rep.Images))
	}
	for i := range measured.Images {
		m, r := measured.Images[i], rep.Images[i]
		m.Ref = r.Ref
		if m != r {
			t.Errorf("layout image %d: %+v, want BuildIndex's %+v", i, m, r)
		}
	}
}

// checkPlatformBinaries checks each image's binary: an ELF executable for its platform and for no other; the one
// for this machine runs, and the others run too where a qemu user emulator is installed.
func checkPlatformBinaries(t *testing.T, idx v1.ImageIndex) {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, desc := range im.Manifests {
		platform := desc.Platform.String()
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		_, files := readLayer(t, img)
		bin := filepath.Join(t.TempDir(), "canaryline-steps")
		if err := os.WriteFile(bin, files[strings.TrimPrefix(EntrypointPath, "/")], 0o755); err != nil {
			t.Fatal(err)
		}
		if err := CheckBinary(bin, platform); err != nil {
			t.Errorf("%s: %v", platform, err)
		}
		for _, other := range Platforms {
			if other != platform && CheckBinary(bin, other) == nil {
				t.Errorf("the %s image's binary passes as %s", platform, other)
			}
		}
		runFakeBinary(t, bin, desc.Platform.Architecture)
	}
}

// runFakeBinary runs the fake step binary natively when arch is this machine's, or under qemu-ARCH(-static) when
// that is installed, and expects its "ok".
func runFakeBinary(t *testing.T, bin, arch string) {
	t.Helper()
	var argv []string
	if arch == runtime.GOARCH {
		argv = []string{bin}
	} else if emu := Emulator(arch); emu != "" {
		argv = []string{emu, bin}
	} else {
		t.Logf("linux/%s: checked by its ELF header only (no qemu user emulator installed)", arch)
		return
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "TMPDIR=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "\nok\n") {
		t.Errorf("linux/%s: %v: %v\n%s", arch, argv, err, out)
	}
}

// checkPushedIndex pushes the layout to a registry on 127.0.0.1 and checks that the pinned index serves each
// platform's image.
func checkPushedIndex(t *testing.T, layoutDir string, rep IndexReport) {
	t.Helper()
	host := newRegistry(t)
	ref := host + "/canaryline/steps:v0.1.0"
	d, err := PushLayout(t.Context(), layoutDir, ref)
	if err != nil {
		t.Fatalf("PushLayout: %v", err)
	}
	if d != rep.Digest {
		t.Errorf("pushed %s, want the index %s", d, rep.Digest)
	}
	pinned, err := name.NewDigest(host + "/canaryline/steps@" + rep.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range rep.Images {
		p, _ := v1.ParsePlatform(want.Platform)
		img, err := remote.Image(pinned, remote.WithPlatform(*p), remote.WithContext(t.Context()))
		if err != nil {
			t.Fatalf("pull %s for %s: %v", pinned, want.Platform, err)
		}
		if got, _ := img.Digest(); got != want.Digest {
			t.Errorf("the registry serves %s for %s, want %s", got, want.Platform, want.Digest)
		}
	}
}

// TestMultiArchIndexRefusesBadPlatforms: a binary path (one platform's), an unsupported, a repeated or a non-linux
// platform is refused before anything is compiled or written.
func TestMultiArchIndexRefusesBadPlatforms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		binary    bool
		platforms []string
		want      string
	}{
		{name: "binary path", binary: true, want: "a binary path serves one platform"},
		{name: "unsupported", platforms: []string{"linux/amd64", "linux/mips64"}, want: `"linux/mips64" is not supported`},
		{name: "repeated", platforms: []string{"linux/arm64", "linux/arm64"}, want: "given twice"},
		{name: "not linux", platforms: []string{"windows/amd64"}, want: "want linux/ARCH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "oci")
			opts := Options{RepoRoot: "/nonexistent", LayoutDir: dir}
			if tt.binary {
				opts.BinaryPath = "/nonexistent/canaryline-steps"
			}
			_, err := BuildIndex(t.Context(), opts, tt.platforms...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("BuildIndex error = %v, want one containing %q", err, tt.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("the layout directory was created: %v", err)
			}
		})
	}
}
