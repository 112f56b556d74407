package devcluster

import (
	"archive/tar"
	"bufio"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/canaryline/canaryline/internal/tools/image"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

const repoRoot = "../../.."

// TestNodeImages: the pause and sample-app images are valid single-image linux/amd64 tarballs tagged with their
// names, whose entrypoint is a static executable run as a non-root user; the step image carries the Tasks' name;
// a second call finds them all cached.
func TestNodeImages(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	imgs, err := EnsureNodeImages(t.Context(), cache, repoRoot, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		img        NodeImage
		name, user string
		entrypoint string
		port       string
	}{
		{imgs.Pause, PauseImage, "65535:65535", "/pause", ""},
		{imgs.SampleApp, SampleAppImage, "65532", "/usr/local/bin/sample-app", "8080/tcp"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.img.Name != tt.name {
				t.Errorf("Name %q, want %q", tt.img.Name, tt.name)
			}
			img := readTarball(t, tt.img)
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if p := cfg.Platform(); p.OS != "linux" || p.Architecture != "amd64" || p.Variant != "" {
				t.Errorf("platform %+v, want linux/amd64", p)
			}
			if !slices.Equal(cfg.Config.Entrypoint, []string{tt.entrypoint}) || cfg.Config.User != tt.user {
				t.Errorf("entrypoint %q user %q, want [%s] %s", cfg.Config.Entrypoint, cfg.Config.User, tt.entrypoint, tt.user)
			}
			if _, ok := cfg.Config.ExposedPorts[tt.port]; tt.port != "" && !ok {
				t.Errorf("exposed ports %v, want %s", cfg.Config.ExposedPorts, tt.port)
			}
			bin := extract(t, img, tt.entrypoint)
			if err := image.CheckBinary(bin, "linux/amd64"); err != nil {
				t.Errorf("entrypoint: %v", err)
			}
		})
	}
	steps, err := TaskStepImage(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if imgs.Steps.Name != steps || !strings.HasPrefix(steps, "ghcr.io/canaryline/canaryline-steps:") {
		t.Errorf("step image %q, the Tasks use %q", imgs.Steps.Name, steps)
	}
	cfg, err := readTarball(t, imgs.Steps).ConfigFile()
	if err != nil || !slices.Equal(cfg.Config.Entrypoint, []string{image.EntrypointPath}) {
		t.Errorf("step image entrypoint %v (%v), want %s", cfg.Config.Entrypoint, err, image.EntrypointPath)
	}

	before := stats(t, imgs.All())
	again, err := EnsureNodeImages(t.Context(), cache, repoRoot, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, imgs) {
		t.Errorf("second call returned %+v, want %+v", again, imgs)
	}
	for i, fi := range stats(t, again.All()) {
		if !os.SameFile(fi, before[i]) || !fi.ModTime().Equal(before[i].ModTime()) {
			t.Errorf("%s was written again; want it cached", again.All()[i].Tarball)
		}
	}
}

// readTarball checks that the tarball holds exactly one image, tagged with its name, and that the image is valid.
func readTarball(t *testing.T, ni NodeImage) v1.Image {
	t.Helper()
	manifest, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(ni.Tarball) })
	if err != nil {
		t.Fatalf("%s: %v", ni.Tarball, err)
	}
	if len(manifest) != 1 || !slices.Equal(manifest[0].RepoTags, []string{ni.Name}) {
		t.Fatalf("%s holds %+v, want one image tagged %s", ni.Tarball, manifest, ni.Name)
	}
	img, err := tarball.ImageFromPath(ni.Tarball, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("%s: invalid image: %v", ni.Tarball, err)
	}
	return img
}

// extract writes the file at path in img's file system to a temporary file, checking it is executable.
func extract(t *testing.T, img v1.Image, path string) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("no %s in the image: %v", path, err)
		}
		if "/"+strings.TrimPrefix(hdr.Name, "/") != path {
			continue
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Mode&0o111 == 0 {
			t.Fatalf("%s: type %c mode %o, want an executable file", path, hdr.Typeflag, hdr.Mode)
		}
		out := filepath.Join(t.TempDir(), filepath.Base(path))
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		return out
	}
}

func stats(t *testing.T, imgs []NodeImage) []os.FileInfo {
	t.Helper()
	var fis []os.FileInfo
	for _, i := range imgs {
		fi, err := os.Stat(i.Tarball)
		if err != nil {
			t.Fatal(err)
		}
		fis = append(fis, fi)
	}
	return fis
}

// TestPauseExitsZeroOnSignal runs the pause program and stops it with SIGTERM and with SIGINT.
func TestPauseExitsZeroOnSignal(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "pause")
	if out, err := exec.Command("go", "build", "-o", bin, "./pause").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(bin)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(stderr).ReadString('\n')
			if err != nil || !strings.Contains(line, "waiting") {
				_ = cmd.Process.Kill()
				t.Fatalf("first line %q (%v), want the waiting line", line, err)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("pause after %s: %v, want exit status 0", sig, err)
			}
		})
	}
}

// TestNodeImagePush pushes the pause image to a registry on loopback and pulls it back unchanged.
func TestNodeImagePush(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	imgs, err := EnsureNodeImages(t.Context(), t.TempDir(), repoRoot, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := imgs.Pause.Push(t.Context(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimPrefix(srv.URL, "http://") + "/pause:3.10"; ref != want {
		t.Errorf("pushed to %s, want %s", ref, want)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(r, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	local, err := tarball.ImageFromPath(imgs.Pause.Tarball, nil)
	if err != nil {
		t.Fatal(err)
	}
	pd, err := pulled.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ld, err := local.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if pd != ld {
		t.Errorf("pulled digest %s, the tarball's image is %s", pd, ld)
	}
}

// TestSourceDigest: the digest follows the program's own files and ignores files it is not built from.
func TestSourceDigest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, path), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/prog\n\ngo 1.26\n")
	write("lib/lib.go", "package lib\n\nconst Greeting = \"hello\"\n")
	write("cmd/prog/main.go", "package main\n\nimport \"example.com/prog/lib\"\n\nfunc main() { println(lib.Greeting) }\n")
	write("other/other.go", "package other\n")
	digest := func() string {
		t.Helper()
		d, err := SourceDigest(t.Context(), dir, "./cmd/prog", "extra")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	first := digest()
	write("other/other.go", "package other\n\nconst X = 1\n")
	if d := digest(); d != first {
		t.Errorf("digest changed with a file the program does not import")
	}
	write("lib/lib.go", "package lib\n\nconst Greeting = \"hi\"\n")
	if d := digest(); d == first {
		t.Errorf("digest unchanged after a change in an imported package")
	}
	if d, err := SourceDigest(t.Context(), dir, "./cmd/prog", "other extra"); err != nil || d == digest() {
		t.Errorf("digest unchanged with other extra inputs (%v)", err)
	}
}

// TestTaskStepImage: the Tasks must agree on one step image.
func TestTaskStepImage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tasks"), 0o755); err != nil {
		t.Fatal(err)
	}
	task := func(file, img string) {
		t.Helper()
		doc := "kind: Task\nspec:\n  steps:\n    - name: s\n      image: " + img + "\n"
		if err := os.WriteFile(filepath.Join(dir, "tasks", file), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	task("a.yaml", "ghcr.io/canaryline/canaryline-steps:v9.8.7")
	task("b.yaml", "ghcr.io/canaryline/canaryline-steps:v9.8.7")
	if got, err := TaskStepImage(dir); err != nil || got != "ghcr.io/canaryline/canaryline-steps:v9.8.7" {
		t.Errorf("TaskStepImage = %q, %v", got, err)
	}
	task("b.yaml", "ghcr.io/canaryline/canaryline-steps:v9.8.8")
	if got, err := TaskStepImage(dir); err == nil || !strings.Contains(err.Error(), "want exactly one") {
		t.Errorf("two tags: TaskStepImage = %q, %v; want an error", got, err)
	}
}
