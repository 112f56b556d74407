package devcluster

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/canaryline/canaryline/internal/dev/gobuild"
	"github.com/canaryline/canaryline/internal/tools/catalog"
	"github.com/canaryline/canaryline/internal/tools/image"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Images of the real node. They are never pulled: they are imported into containerd from tarballs.
const (
	// NodeRegistry is the registry host of the images built for the real node; it does not exist on the network.
	NodeRegistry = "registry.canaryline.local"
	// PauseImage is the sandbox image: containerd's pinned sandbox image is set to it.
	PauseImage = NodeRegistry + "/pause:3.10"
	// SampleAppImage is the sample application (internal/dev/app/sample-app), listening on SampleAppPort.
	SampleAppImage = NodeRegistry + "/sample-app:dev"
	SampleAppPort  = 8080
	// pausePackage and sampleAppPackage are the image's programs, relative to the repository root.
	pausePackage     = "./internal/dev/devcluster/pause"
	sampleAppPackage = "./internal/dev/app/sample-app"
	// imagesRecipe is bumped whenever the way the images are built changes.
	imagesRecipe = "r1"
	// nodePlatform is the only platform the real node runs.
	nodePlatform = "linux/amd64"
)

// NodeImage is one image for the real node.
type NodeImage struct {
	Name    string // the reference pods use (imagePullPolicy: Never or IfNotPresent)
	Tarball string // a docker-archive tarball of the image tagged Name, for `ctr -n k8s.io images import`
}

// NodeImages are the images the real node runs.
type NodeImages struct {
	Pause     NodeImage   // PauseImage
	SampleApp NodeImage   // SampleAppImage
	Steps     NodeImage   // the step image, named as the Tasks in tasks/ name it
	Extra     []NodeImage // more images to import (Tekton's)
}

// All lists every image, to import them all.
func (n NodeImages) All() []NodeImage {
	return append([]NodeImage{n.Pause, n.SampleApp, n.Steps}, n.Extra...)
}

// EnsureNodeImages returns the real node's images as tarballs under cacheDir/node/images, building the ones whose
// sources changed. Each tarball is named by a digest of what it is built from: the Go files of the packages
// the program is made of (read from repoRoot), its dependencies' versions and the Go version; for the step image
// also the CA bundle and the image name. Concurrent callers wait for one build.
func EnsureNodeImages(ctx context.Context, cacheDir, repoRoot string, log io.Writer) (NodeImages, error) {
	repoRoot, err := filepath.Abs(repoRoot)
	if err != nil {
		return NodeImages{}, err
	}
	dir := filepath.Join(cacheDir, "node", "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return NodeImages{}, fmt.Errorf("create cache directory %s: %w", dir, err)
	}
	stepsRef, err := TaskStepImage(repoRoot)
	if err != nil {
		return NodeImages{}, err
	}
	unlock, err := gobuild.Lock(ctx, filepath.Join(dir, ".lock"), "devcluster images", log)
	if err != nil {
		return NodeImages{}, err
	}
	defer unlock()
	b := nodeImageBuilder{dir: dir, repoRoot: repoRoot, log: log}
	var imgs NodeImages
	if imgs.Pause, err = b.ensure(ctx, "pause", PauseImage, pausePackage, b.programImage(pauseImage)); err != nil {
		return imgs, err
	}
	if imgs.SampleApp, err = b.ensure(ctx, "sample-app", SampleAppImage, sampleAppPackage, b.programImage(sampleAppImage)); err != nil {
		return imgs, err
	}
	imgs.Steps, err = b.ensure(ctx, "canaryline-steps", stepsRef, image.StepsPackage, b.stepImage)
	return imgs, err
}

// stepImagePattern finds the step image in a Task's steps.
var stepImagePattern = regexp.MustCompile(`(?m)^\s*image:\s*["']?(` + regexp.QuoteMeta(catalog.StepImage) + `:[^\s"'@]+)`)

// TaskStepImage is the step image reference the Tasks in repoRoot/tasks use; they must all use the same one.
func TaskStepImage(repoRoot string) (string, error) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "tasks", "*.yaml"))
	if err != nil || len(files) == 0 {
		return "", fmt.Errorf("find the step image: no Tasks in %s", filepath.Join(repoRoot, "tasks"))
	}
	var refs []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("find the step image: %w", err)
		}
		for _, m := range stepImagePattern.FindAllSubmatch(data, -1) {
			if r := string(m[1]); !slices.Contains(refs, r) {
				refs = append(refs, r)
			}
		}
	}
	if len(refs) != 1 {
		return "", fmt.Errorf("find the step image: the Tasks in %s use %d tags of %s (%s); want exactly one",
			filepath.Join(repoRoot, "tasks"), len(refs), catalog.StepImage, strings.Join(refs, ", "))
	}
	return refs[0], nil
}

// Push uploads the image to registry (host:port, or a URL such as http://127.0.0.1:5000) under its own repository
// path and tag, and returns the reference it pushed. A loopback registry is spoken to over plain HTTP.
func (i NodeImage) Push(ctx context.Context, registry string, opts ...remote.Option) (string, error) {
	tag, err := name.NewTag(i.Name)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", i.Name, err)
	}
	img, err := tarball.ImageFromPath(i.Tarball, &tag)
	if err != nil {
		return "", fmt.Errorf("push %s: read %s: %w", i.Name, i.Tarball, err)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(registry, "http://"), "https://"), "/")
	ref := host + "/" + tag.RepositoryStr() + ":" + tag.TagStr()
	if _, err := image.Push(ctx, img, ref, opts...); err != nil {
		return "", err
	}
	return ref, nil
}

type nodeImageBuilder struct {
	dir, repoRoot string
	log           io.Writer
}

// buildFunc writes the image ref, made from the program pkg, to the tarball path.
type buildFunc func(ctx context.Context, pkg, ref, path string) error

// ensure returns the tarball of base's image for the current sources, building it when there is none.
func (b nodeImageBuilder) ensure(ctx context.Context, base, ref, pkg string, build buildFunc) (NodeImage, error) {
	var extra []string
	if pkg == image.StepsPackage {
		ca, err := os.ReadFile(image.DefaultCABundlePath)
		if err != nil {
			return NodeImage{}, fmt.Errorf("build the step image: %w", err)
		}
		extra = append(extra, string(ca))
	}
	digest, err := SourceDigest(ctx, b.repoRoot, pkg, append(extra, imagesRecipe, ref)...)
	if err != nil {
		return NodeImage{}, err
	}
	img := NodeImage{Name: ref, Tarball: filepath.Join(b.dir, base+"-"+digest[:16]+".tar")}
	if fi, err := os.Stat(img.Tarball); err == nil && fi.Size() > 0 {
		return img, nil
	}
	t0 := time.Now()
	fmt.Fprintf(b.log, "devcluster images: building %s from %s...\n", ref, pkg)
	tmp := img.Tarball + ".tmp"
	if err := build(ctx, pkg, ref, tmp); err != nil {
		_ = os.Remove(tmp)
		return img, err
	}
	if err := os.Rename(tmp, img.Tarball); err != nil {
		return img, err
	}
	fmt.Fprintf(b.log, "devcluster images: %s built in %s\n", ref, time.Since(t0).Round(time.Millisecond))
	b.prune(base, img.Tarball)
	return img, nil
}

// prune removes base's tarballs of earlier sources that are more than a day old (a running node may still be
// importing a newer one).
func (b nodeImageBuilder) prune(base, keep string) {
	old, _ := filepath.Glob(filepath.Join(b.dir, base+"-*.tar"))
	for _, p := range old {
		if fi, err := os.Stat(p); err == nil && p != keep && time.Since(fi.ModTime()) > 24*time.Hour {
			_ = os.Remove(p)
		}
	}
}

func (b nodeImageBuilder) stepImage(ctx context.Context, _, ref, path string) error {
	_, err := image.Build(ctx, image.Options{RepoRoot: b.repoRoot, Ref: ref, TarballPath: path, Platform: nodePlatform})
	return err
}

// programSpec says how a program is laid out in its image.
type programSpec struct {
	path   string // where the binary is in the image, the entrypoint
	user   string
	ports  []string // exposed ports, such as 8080/tcp
	labels map[string]string
}

var (
	pauseImage     = programSpec{path: "/pause", user: "65535:65535"}
	sampleAppImage = programSpec{path: "/usr/local/bin/sample-app", user: "65532", ports: []string{fmt.Sprintf("%d/tcp", SampleAppPort)}}
)

// programImage builds an image of one static program: the binary, /etc/passwd and /etc/group, and /tmp.
func (b nodeImageBuilder) programImage(spec programSpec) buildFunc {
	return func(ctx context.Context, pkg, ref, path string) error {
		bin, err := b.buildStatic(ctx, pkg)
		if err != nil {
			return err
		}
		img, err := programImage(spec, bin)
		if err != nil {
			return fmt.Errorf("build image %s: %w", ref, err)
		}
		return image.WriteTarball(path, img, ref)
	}
}

// buildStatic compiles pkg of the repository as a static, stripped linux/amd64 executable and returns it.
func (b nodeImageBuilder) buildStatic(ctx context.Context, pkg string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "canaryline-node-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "program")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out, pkg)
	cmd.Dir = b.repoRoot
	cmd.Env = append(os.Environ(), staticEnv...)
	if output, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", pkg, err, bytes.TrimSpace(output))
	}
	if err := image.CheckBinary(out, nodePlatform); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

// staticEnv makes the go command target the node's platform without cgo.
var staticEnv = []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}

// programImage is a single-layer linux/amd64 image holding bin at spec.path, created at the Unix epoch.
func programImage(spec programSpec, bin []byte) (v1.Image, error) {
	var buf bytes.Buffer
	if err := programLayer(&buf, spec, bin); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	epoch := v1.Time{Time: time.Unix(0, 0).UTC()}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, MediaType: types.OCILayer,
		History: v1.History{Created: epoch, CreatedBy: "canaryline: " + spec.path}})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Created, cfg.OS, cfg.Architecture = epoch, "linux", "amd64"
	cfg.Config = v1.Config{User: spec.user, Entrypoint: []string{spec.path}, WorkingDir: "/",
		Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}, Labels: spec.labels}
	if len(spec.ports) > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range spec.ports {
			cfg.Config.ExposedPorts[p] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, cfg)
}

// programLayer writes the layer's tar: parent directories, the binary, passwd/group naming the user, and /tmp.
func programLayer(w io.Writer, spec programSpec, bin []byte) error {
	uid, _, _ := strings.Cut(spec.user, ":")
	files := map[string][]byte{
		"etc/passwd": []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:" + uid + ":0:nonroot:/tmp:/sbin/nologin\n"),
		"etc/group":  []byte("root:x:0:\n"),
	}
	files[strings.TrimPrefix(spec.path, "/")] = bin
	dirs := map[string]bool{"tmp/": true}
	for p := range files {
		for d := filepath.Dir(p); d != "."; d = filepath.Dir(d) {
			dirs[d+"/"] = true
		}
	}
	var names []string
	for d := range dirs {
		names = append(names, d)
	}
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	tw := tar.NewWriter(w)
	for _, n := range names {
		hdr := &tar.Header{Name: n, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		switch {
		case n == "tmp/":
			hdr.Mode = 0o1777
		case files[n] != nil:
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, int64(len(files[n]))
			if "/"+n == spec.path {
				hdr.Mode = 0o555
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(files[n]); err != nil {
			return err
		}
	}
	return tw.Close()
}

// SourceDigest is a hex sha256 of what the program pkg of the module at repoRoot is built from for the node's
// platform: the path and content of every Go and embedded file of its packages in the module, its other modules'
// versions, the Go version, and extra.
func SourceDigest(ctx context.Context, repoRoot, pkg string, extra ...string) (string, error) {
	const format = `{{if .Standard}}{{else if .Module.Main}}M {{.Dir}}{{range .GoFiles}} {{.}}{{end}}` +
		`{{range .EmbedFiles}} {{.}}{{end}}{{else}}D {{.Module.Path}}@{{.Module.Version}}{{end}}`
	repoRoot, err := filepath.Abs(repoRoot)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-f", format, pkg)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), staticEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("list the packages of %s: %w: %s", pkg, err, strings.TrimSpace(stderr.String()))
	}
	h := sha256.New()
	fmt.Fprintf(h, "go %s\n", goVersion(ctx))
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if err := hashListLine(h, repoRoot, line); err != nil {
			return "", err
		}
	}
	for _, e := range extra {
		fmt.Fprintf(h, "extra %d\n%s\n", len(e), e)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashListLine hashes one package of `go list`: a dependency's module version, or the main module's files by their
// path relative to repoRoot (so that two checkouts of the same sources share the cache entry).
func hashListLine(h io.Writer, repoRoot, line string) error {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "M" {
		fmt.Fprintln(h, line)
		return nil
	}
	rel, err := filepath.Rel(repoRoot, f[1])
	if err != nil {
		return err
	}
	for _, name := range f[2:] {
		data, err := os.ReadFile(filepath.Join(f[1], name))
		if err != nil {
			return fmt.Errorf("hash the sources: %w", err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(h, "%s %x\n", filepath.ToSlash(filepath.Join(rel, name)), sum)
	}
	return nil
}

func goVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
