package pipelines

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/canaryline/canaryline/internal/runtime/steps"
	"github.com/canaryline/canaryline/internal/tools/catalog"
	"github.com/canaryline/canaryline/internal/tools/image"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if treeIndex.dir != "" {
		os.RemoveAll(treeIndex.dir)
	}
	os.Exit(code)
}

// treeIndex is the step image index built from this tree as `make image` builds it, once for the tests that
// need it (four cross-compiles of the step binary).
var treeIndex struct {
	once      sync.Once
	dir       string
	rep       image.IndexReport
	toolchain string
	err       error
}

// buildTreeIndex builds the step image index from this tree with go.mod's toolchain, as `make image` does, into an
// OCI layout, and returns the layout directory and the report.
func buildTreeIndex(t *testing.T) (string, image.IndexReport, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the step image for four platforms")
	}
	toolchain := goModToolchain(t)
	treeIndex.once.Do(func() {
		treeIndex.toolchain = toolchain
		abs, err := filepath.Abs(root)
		if err != nil {
			treeIndex.err = err
			return
		}
		if treeIndex.dir, treeIndex.err = os.MkdirTemp("", "canaryline-tree-index-"); treeIndex.err != nil {
			return
		}
		os.Setenv("GOTOOLCHAIN", toolchain) // the go commands BuildIndex runs; no test of this package runs in parallel with it
		defer os.Unsetenv("GOTOOLCHAIN")
		treeIndex.rep, treeIndex.err = image.BuildIndex(t.Context(), image.Options{RepoRoot: abs, Version: "dev",
			LayoutDir: filepath.Join(treeIndex.dir, "oci")})
	})
	if treeIndex.err != nil {
		t.Fatal(treeIndex.err)
	}
	return filepath.Join(treeIndex.dir, "oci"), treeIndex.rep, treeIndex.toolchain
}

// TestCatalogPinsTheImageBuiltFromTheTree builds the step image index from this tree, as `make image` does, and
// fails when its digest is not the one catalog/IMAGE_DIGEST (and so every catalog Task) pins: a user who installs
// the catalog must get the images this commit builds, on every platform. The build is reproducible for one Go
// toolchain (go.mod's go line, which `make image` and this test select with GOTOOLCHAIN) and one CA bundle (the
// build machine's).
func TestCatalogPinsTheImageBuiltFromTheTree(t *testing.T) {
	_, rep, toolchain := buildTreeIndex(t)
	pinned, err := os.ReadFile(filepath.Join(root, "catalog", catalog.DigestFile))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rep.Digest.String(), strings.TrimSpace(string(pinned)); got != want {
		bundle, _ := os.ReadFile(image.DefaultCABundlePath)
		sum := sha256.Sum256(bundle)
		t.Errorf("the step image index built from this tree is %s, but catalog/IMAGE_DIGEST pins %s: re-pin with "+
			"`make image && make catalog` and commit both (built with %s and the CA bundle %s, sha256 %x)\n%s",
			got, want, toolchain, image.DefaultCABundlePath, sum[:8], rep)
	}
}

// TestMultiArchStepImageRunsOnEveryPlatform reads the index built from this tree: one image for each platform the
// Tasks advertise, each within the size budget, each holding a static step binary for its platform. The binary for
// this machine runs `--list` and names every step; the others run it too where a qemu user emulator is installed,
// and are otherwise checked by their ELF headers.
func TestMultiArchStepImageRunsOnEveryPlatform(t *testing.T) {
	dir, rep, _ := buildTreeIndex(t)
	idx, _, err := image.LayoutIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, desc := range im.Manifests {
		platforms = append(platforms, desc.Platform.String())
	}
	if !slices.Equal(platforms, image.Platforms) {
		t.Fatalf("the index holds %v, want %v", platforms, image.Platforms)
	}
	for i, desc := range im.Manifests {
		r := rep.Images[i]
		if r.UncompressedBytes > image.SizeBudget {
			t.Errorf("%s: %d bytes uncompressed, budget %d", r.Platform, r.UncompressedBytes, image.SizeBudget)
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		data, err := image.FileContents(img, image.EntrypointPath)
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(t.TempDir(), "canaryline-steps")
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := image.CheckBinary(bin, r.Platform); err != nil {
			t.Errorf("%s: %v", r.Platform, err)
		}
		runList(t, bin, desc.Platform.Architecture)
	}
}

// runList runs `canaryline-steps --list` natively or under a qemu user emulator, and expects every step's name.
func runList(t *testing.T, bin, arch string) {
	t.Helper()
	argv := []string{bin, "--list"}
	if arch != runtime.GOARCH {
		emu := image.Emulator(arch)
		if emu == "" {
			t.Logf("linux/%s: checked by its ELF header only (no qemu user emulator installed)", arch)
			return
		}
		argv = append([]string{emu}, argv...)
	}
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		t.Errorf("linux/%s: %v: %v", arch, argv, err)
		return
	}
	if got := strings.Fields(string(out)); !slices.Equal(got, steps.Names()) {
		t.Errorf("linux/%s: --list printed %q, want %q", arch, got, steps.Names())
	}
	t.Logf("linux/%s: --list ran (%s) and named %d steps", arch, filepath.Base(argv[0]), len(steps.Names()))
}
