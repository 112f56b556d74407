package image

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// buildOpts returns Options for the fixture binary writing into a fresh
// directory.
func buildOpts(t *testing.T) Options {
	t.Helper()
	_, bin := staticBinary(t)
	dir := t.TempDir()
	return Options{
		BinaryPath:   bin,
		CABundlePath: writeFile(t, "ca.crt", testCABundle(t)),
		Ref:          "registry.example/canaryline/steps:v0.1.0",
		Version:      "v0.1.0",
		Source:       "https://github.com/canaryline/canaryline",
		Revision:     "deadbeef",
		LayoutDir:    filepath.Join(dir, "oci"),
		TarballPath:  filepath.Join(dir, "image.tar"),
	}
}

func TestBuildWritesLayoutAndTarball(t *testing.T) {
	t.Parallel()
	opts := buildOpts(t)
	report, err := Build(t.Context(), opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	binInfo, err := os.Stat(opts.BinaryPath)
	if err != nil {
		t.Fatal(err)
	}
	if report.BinaryBytes != binInfo.Size() {
		t.Errorf("BinaryBytes = %d, want %d", report.BinaryBytes, binInfo.Size())
	}
	if report.Ref != opts.Ref || report.Platform != "linux/amd64" || report.Layers != 1 {
		t.Errorf("report = %+v, want ref %s on linux/amd64 with 1 layer", report, opts.Ref)
	}
	if report.UncompressedBytes <= report.BinaryBytes || report.UncompressedBytes > SizeBudget {
		t.Errorf("UncompressedBytes = %d, want more than the binary (%d) and within budget", report.UncompressedBytes, report.BinaryBytes)
	}

	idx, err := layout.ImageIndexFromPath(opts.LayoutDir)
	if err != nil {
		t.Fatalf("read layout back: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("layout index has %d manifests, want 1", len(im.Manifests))
	}
	desc := im.Manifests[0]
	if desc.Digest != report.Digest {
		t.Errorf("layout manifest digest = %s, want report digest %s", desc.Digest, report.Digest)
	}
	if got := desc.Annotations[AnnotationRefName]; got != opts.Ref {
		t.Errorf("ref.name annotation = %q, want %q", got, opts.Ref)
	}
	if desc.Platform == nil || desc.Platform.String() != "linux/amd64" {
		t.Errorf("descriptor platform = %v, want linux/amd64", desc.Platform)
	}
	img, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := img.Digest(); err != nil || d != report.Digest {
		t.Errorf("image read from layout has digest %s (%v), want %s", d, err, report.Digest)
	}
	entries, _ := readLayer(t, img)
	if len(entries) != 18 {
		t.Errorf("layer read from layout has %d entries, want 18", len(entries))
	}

	read, err := ReadLayoutReport(opts.LayoutDir)
	if err != nil {
		t.Fatalf("ReadLayoutReport: %v", err)
	}
	if read != report {
		t.Errorf("ReadLayoutReport = %+v, want Build's %+v", read, report)
	}

	tag, err := name.NewTag(opts.Ref)
	if err != nil {
		t.Fatal(err)
	}
	timg, err := tarball.ImageFromPath(opts.TarballPath, &tag)
	if err != nil {
		t.Fatalf("read docker tarball back: %v", err)
	}
	wantCfg, _ := img.ConfigName()
	if gotCfg, err := timg.ConfigName(); err != nil || gotCfg != wantCfg {
		t.Errorf("tarball config digest = %s (%v), want %s", gotCfg, err, wantCfg)
	}
	tm, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(opts.TarballPath) })
	if err != nil {
		t.Fatalf("read docker tarball manifest: %v", err)
	}
	if len(tm) != 1 || !slices.Equal(tm[0].RepoTags, []string{"registry.example/canaryline/steps:v0.1.0"}) {
		t.Errorf("tarball manifest = %+v, want one image tagged %s", tm, opts.Ref)
	}
}

func TestBuildIsReproducible(t *testing.T) {
	t.Parallel()
	a, b, later := buildOpts(t), buildOpts(t), buildOpts(t)
	later.Created = time.Unix(1700000000, 0)
	var digests []v1.Hash
	for _, opts := range []Options{a, b, later} {
		r, err := Build(t.Context(), opts)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		digests = append(digests, r.Digest)
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds from the same inputs differ: %s vs %s", digests[0], digests[1])
	}
	if digests[0] == digests[2] {
		t.Errorf("a build with another creation time has the same digest %s", digests[0])
	}
	// The layout files themselves are byte-identical too.
	for _, f := range []string{"index.json", "oci-layout"} {
		x, errX := os.ReadFile(filepath.Join(a.LayoutDir, f))
		y, errY := os.ReadFile(filepath.Join(b.LayoutDir, f))
		if errX != nil || errY != nil || string(x) != string(y) {
			t.Errorf("%s differs between identical builds (%v, %v)", f, errX, errY)
		}
	}
}

func TestBuildFromRepoRoot(t *testing.T) {
	t.Parallel()
	root, _ := staticBinary(t)
	opts := buildOpts(t)
	want, err := Build(t.Context(), opts)
	if err != nil {
		t.Fatalf("Build from binary: %v", err)
	}
	opts.BinaryPath = ""
	opts.RepoRoot = root
	opts.LayoutDir = filepath.Join(t.TempDir(), "oci")
	got, err := Build(t.Context(), opts)
	if err != nil {
		t.Fatalf("Build from repo root: %v", err)
	}
	if got.Digest != want.Digest {
		t.Errorf("building the binary inside Build gave digest %s, building it first gave %s", got.Digest, want.Digest)
	}
}

func TestBuildEnforcesBudget(t *testing.T) {
	t.Parallel()
	opts := buildOpts(t)
	opts.MaxUncompressedBytes = 1 << 10
	r, err := Build(t.Context(), opts)
	if !errors.Is(err, ErrOverBudget) {
		t.Fatalf("Build over budget: error %v, want ErrOverBudget", err)
	}
	if r.UncompressedBytes <= opts.MaxUncompressedBytes {
		t.Errorf("report UncompressedBytes = %d, want the measured size", r.UncompressedBytes)
	}
	if _, err := os.Stat(opts.LayoutDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("layout written despite the budget error: %v", err)
	}
	opts.MaxUncompressedBytes = -1
	if _, err := Build(t.Context(), opts); err != nil {
		t.Errorf("Build with the budget disabled: %v", err)
	}
}

func TestBuildRejectsBadInputs(t *testing.T) {
	t.Parallel()
	_, bin := staticBinary(t)
	ca := writeFile(t, "ca.crt", testCABundle(t))
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no binary nor repo", Options{CABundlePath: ca}, "neither a binary path nor a repository root"},
		{"not an ELF binary", Options{BinaryPath: writeFile(t, "script", []byte("#!/bin/sh\n")), CABundlePath: ca}, "not an ELF executable"},
		{"wrong architecture", Options{BinaryPath: bin, CABundlePath: ca, Platform: "linux/arm64"}, "want linux/arm64"},
		{"repo without the command", Options{RepoRoot: t.TempDir(), CABundlePath: ca}, "go build ./cmd/canaryline-steps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Build(t.Context(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Build error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestCheckBinary(t *testing.T) {
	t.Parallel()
	_, static := staticBinary(t)
	tests := []struct {
		name     string
		path     string
		platform string
		wantErr  string
		wantIs   error
	}{
		{name: "static amd64", path: static, platform: "linux/amd64"},
		{name: "wrong arch", path: static, platform: "linux/s390x", wantErr: "built for EM_X86_64"},
		{name: "not ELF", path: writeFile(t, "x", []byte("MZ not elf")), platform: "linux/amd64", wantErr: "not an ELF executable"},
		{name: "missing", path: filepath.Join(t.TempDir(), "none"), platform: "linux/amd64", wantErr: "no such file"},
		{name: "unsupported platform", path: static, platform: "linux/mips", wantErr: "not supported"},
	}
	// The host's /bin/sh is a dynamically linked executable on glibc and
	// musl systems alike; use it when it is an amd64 ELF file.
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		if sh, err := filepath.EvalSymlinks("/bin/sh"); err == nil && CheckBinary(sh, "linux/amd64") != nil {
			tests = append(tests, struct {
				name     string
				path     string
				platform string
				wantErr  string
				wantIs   error
			}{name: "dynamic", path: sh, platform: "linux/amd64", wantErr: "build it with CGO_ENABLED=0", wantIs: ErrNotStatic})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckBinary(tt.path, tt.platform)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckBinary: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckBinary error = %v, want it to contain %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("CheckBinary error = %v, want errors.Is %v", err, tt.wantIs)
			}
		})
	}
}

func TestBuiltBinaryRuns(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the fixture binary is linux/amd64")
	}
	_, bin := staticBinary(t)
	out, err := exec.CommandContext(t.Context(), bin).Output()
	if err != nil || !strings.HasPrefix(string(out), "argv0=canaryline-steps ") || !strings.HasSuffix(string(out), "\nok\n") {
		t.Fatalf("run fixture binary: %q, %v", out, err)
	}
}

// recordingRunner records the command instead of running it.
type recordingRunner struct {
	dir  string
	env  []string
	argv []string
	out  []byte
	err  error
}

func (r *recordingRunner) Run(_ context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	r.dir, r.env, r.argv = dir, env, append([]string{name}, args...)
	return r.out, r.err
}

func TestBuildBinaryCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		platform string
		wantEnv  []string
		wantErr  string
	}{
		{platform: "linux/amd64", wantEnv: []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}},
		{platform: "linux/amd64/v3", wantEnv: []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v3"}},
		{platform: "linux/arm64", wantEnv: []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}},
		{platform: "linux/arm64/v8", wantEnv: []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64", "GOARM64=v8.0"}},
		{platform: "linux/arm/v7", wantEnv: []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7"}},
		{platform: "linux/s390x", wantEnv: []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=s390x"}},
		{platform: "darwin/arm64", wantErr: "want linux/ARCH"},
		{platform: "linux/ppc64le/power9", wantErr: "variant \"power9\" of ppc64le is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.platform, func(t *testing.T) {
			t.Parallel()
			r := &recordingRunner{}
			out := filepath.Join(t.TempDir(), "sub", "canaryline-steps")
			err := buildBinary(t.Context(), r, "/repo", out, tt.platform)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("buildBinary error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("buildBinary: %v", err)
			}
			wantArgv := []string{"go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out, "./cmd/canaryline-steps"}
			if !slices.Equal(r.argv, wantArgv) || r.dir != "/repo" {
				t.Errorf("ran %q in %s, want %q in /repo", r.argv, r.dir, wantArgv)
			}
			// The build settings come last so they override the caller's
			// environment.
			if tail := r.env[len(r.env)-len(tt.wantEnv):]; !slices.Equal(tail, tt.wantEnv) {
				t.Errorf("environment ends with %q, want %q", tail, tt.wantEnv)
			}
			if _, err := os.Stat(filepath.Dir(out)); err != nil {
				t.Errorf("output directory not created: %v", err)
			}
		})
	}
}

func TestBuildBinaryReportsCompilerOutput(t *testing.T) {
	t.Parallel()
	r := &recordingRunner{out: []byte("main.go:1: syntax error\n"), err: errors.New("exit status 1")}
	err := buildBinary(t.Context(), r, "/repo", filepath.Join(t.TempDir(), "bin"), DefaultPlatform)
	if err == nil || !strings.Contains(err.Error(), "exit status 1") || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("buildBinary error = %v, want the exit status and compiler output", err)
	}
}

func TestWriteLayoutDirectory(t *testing.T) {
	t.Parallel()
	img, err := NewImage(Options{BinaryPath: writeFile(t, "bin", []byte("x")), CABundlePath: writeFile(t, "ca.crt", testCABundle(t))})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("replaces an earlier layout", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		for _, ref := range []string{"steps:one", "steps:two"} {
			if err := WriteLayout(dir, img, ref); err != nil {
				t.Fatalf("WriteLayout %s: %v", ref, err)
			}
		}
		r, err := ReadLayoutReport(dir)
		if err != nil {
			t.Fatalf("ReadLayoutReport: %v", err)
		}
		if r.Ref != "steps:two" {
			t.Errorf("Ref = %q, want the second write's", r.Ref)
		}
		p, err := layout.FromPath(dir)
		if err != nil {
			t.Fatal(err)
		}
		if removed, err := p.GarbageCollect(); err != nil || len(removed) != 0 {
			t.Errorf("layout holds unreferenced blobs %v (%v)", removed, err)
		}
	})
	t.Run("refuses a directory with other files", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		keep := filepath.Join(dir, "notes.txt")
		if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := WriteLayout(dir, img, "steps:one")
		if err == nil || !strings.Contains(err.Error(), "not empty and not an OCI layout") {
			t.Fatalf("WriteLayout error = %v", err)
		}
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("WriteLayout touched an unrelated file: %v", err)
		}
	})
	t.Run("read report of a layout with two images", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := WriteLayout(dir, img, "steps:one"); err != nil {
			t.Fatal(err)
		}
		p, err := layout.FromPath(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(img); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadLayoutReport(dir); err == nil || !strings.Contains(err.Error(), "want exactly one image") {
			t.Fatalf("ReadLayoutReport error = %v", err)
		}
	})
	t.Run("read report of a missing layout", func(t *testing.T) {
		t.Parallel()
		if _, err := ReadLayoutReport(filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "open OCI layout") {
			t.Fatalf("ReadLayoutReport error = %v", err)
		}
	})
}

func TestSourceDateEpoch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    time.Time
		wantErr bool
	}{
		{name: "unset", want: time.Unix(0, 0)},
		{name: "empty", env: map[string]string{"SOURCE_DATE_EPOCH": ""}, want: time.Unix(0, 0)},
		{name: "set", env: map[string]string{"SOURCE_DATE_EPOCH": "1700000000"}, want: time.Unix(1700000000, 0)},
		{name: "negative", env: map[string]string{"SOURCE_DATE_EPOCH": "-1"}, wantErr: true},
		{name: "not a number", env: map[string]string{"SOURCE_DATE_EPOCH": "yesterday"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := SourceDateEpoch(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if (err != nil) != tt.wantErr {
				t.Fatalf("SourceDateEpoch error = %v, want error %t", err, tt.wantErr)
			}
			if !tt.wantErr && !got.Equal(tt.want) {
				t.Fatalf("SourceDateEpoch = %s, want %s", got, tt.want)
			}
		})
	}
}
