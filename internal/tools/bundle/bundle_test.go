package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned/scheme"
	"github.com/tektoncd/pipeline/pkg/remote/oci"
	"k8s.io/apimachinery/pkg/api/equality"
)

func fixture(t *testing.T) []Resource {
	t.Helper()
	rs, err := Load("testdata/fixture")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestLoadFixture(t *testing.T) {
	rs := fixture(t)
	var got []string
	for _, r := range rs {
		got = append(got, fmt.Sprintf("%s %s %s <- %s", r.APIVersion, r.Kind, r.Name, r.Source))
	}
	want := []string{
		"tekton.dev/v1 Task first <- testdata/fixture/tasks/extra/two.yml (document 1)",
		"tekton.dev/v1 Task second <- testdata/fixture/tasks/extra/two.yml (document 4)",
		"tekton.dev/v1 Task hello <- testdata/fixture/tasks/hello.yaml",
		"tekton.dev/v1 Pipeline greet <- testdata/fixture/pipelines/greet.yaml",
		"tekton.dev/v1 Pipeline hello <- testdata/fixture/pipelines/hello.yaml",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Load (-want +got):\n%s", diff)
	}
	// A single-document file is kept byte for byte, comments included.
	hello, _ := os.ReadFile("testdata/fixture/tasks/hello.yaml")
	if !bytes.Equal(rs[2].Data, hello) {
		t.Errorf("hello.yaml data differs from the file:\n%s", rs[2].Data)
	}
	// A multi-document file is split into its documents.
	if d := string(rs[0].Data); !strings.Contains(d, "name: first") || strings.Contains(d, "second") || strings.Contains(d, "---") {
		t.Errorf("first document:\n%s", d)
	}
}

func TestLoadDirectories(t *testing.T) {
	// Only tasks/ (pipelines/ not written yet): fine.
	root := t.TempDir()
	copyFile(t, "testdata/fixture/tasks/hello.yaml", filepath.Join(root, "tasks", "hello.yaml"))
	rs, err := Load(root)
	if err != nil || len(rs) != 1 {
		t.Fatalf("Load(tasks only) = %d resources, %v", len(rs), err)
	}
	// Empty pipelines/ too.
	if err := os.MkdirAll(filepath.Join(root, "pipelines"), 0o755); err != nil {
		t.Fatal(err)
	}
	if rs, err := Load(root); err != nil || len(rs) != 1 {
		t.Fatalf("Load(empty pipelines/) = %d resources, %v", len(rs), err)
	}
	// Neither directory: an error naming them.
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "tasks") {
		t.Fatalf("Load(empty root) error = %v", err)
	}
	// Broken YAML: an error naming the file.
	copyData(t, []byte("apiVersion: [\n"), filepath.Join(root, "pipelines", "broken.yaml"))
	if _, err := Load(root); err == nil || !strings.Contains(err.Error(), "broken.yaml") {
		t.Fatalf("Load(broken YAML) error = %v", err)
	}
}

// TestLoadRepository loads the repository's own tasks/ and pipelines/ and builds their bundle.
func TestLoadRepository(t *testing.T) {
	rs, err := Load("../../..")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string][]string{}
	for _, r := range rs {
		kinds[r.Kind] = append(kinds[r.Kind], r.Name)
		if r.APIVersion != "tekton.dev/v1" {
			t.Errorf("%s: apiVersion %s, want tekton.dev/v1", r.ID(), r.APIVersion)
		}
	}
	sort.Strings(kinds["Task"])
	want := []string{"promote-or-rollback", "shift-canary", "start-build", "verify-health", "wait-build"}
	if diff := cmp.Diff(want, kinds["Task"]); diff != "" {
		t.Errorf("Tasks (-want +got):\n%s", diff)
	}
	if len(kinds) > 2 {
		t.Errorf("kinds other than Task and Pipeline loaded: %v", kinds)
	}
	pipelineFiles, _ := filepath.Glob("../../../pipelines/*.yaml")
	if len(kinds["Pipeline"]) != len(pipelineFiles) {
		t.Errorf("%d Pipelines loaded from %d files in pipelines/", len(kinds["Pipeline"]), len(pipelineFiles))
	}
	if _, err := Image(rs); err != nil {
		t.Errorf("the repository's bundle: %v", err)
	}
	t.Logf("repository bundle: %d Tasks, %d Pipelines %v", len(kinds["Task"]), len(kinds["Pipeline"]), kinds["Pipeline"])
}

func TestImageLayers(t *testing.T) {
	rs := fixture(t)
	img, err := Image(rs)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.DockerManifestSchema2 || m.Config.MediaType != types.DockerConfigJSON {
		t.Errorf("manifest %s, config %s: want the Docker schema 2 types tkn writes", m.MediaType, m.Config.MediaType)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != len(rs) || len(m.Layers) != len(rs) {
		t.Fatalf("%d layers (%d in the manifest) for %d resources", len(layers), len(m.Layers), len(rs))
	}
	byKey := map[string]Resource{}
	for _, r := range rs {
		byKey[strings.ToLower(r.Kind)+"/"+r.Name] = r
	}
	var prev [32]byte
	for i, d := range m.Layers {
		if d.MediaType != types.DockerLayer && d.MediaType != types.OCILayer {
			t.Errorf("layer %d: media type %s, want gzip (%s or %s)", i, d.MediaType, types.DockerLayer, types.OCILayer)
		}
		if strings.Contains(string(d.MediaType), "zstd") {
			t.Errorf("layer %d: zstd media type %s", i, d.MediaType)
		}
		kind, nm := d.Annotations[AnnotationKind], d.Annotations[AnnotationName]
		r, ok := byKey[kind+"/"+nm]
		if !ok {
			t.Fatalf("layer %d: annotations %v match no resource (kind must be lowercase)", i, d.Annotations)
		}
		delete(byKey, kind+"/"+nm)
		wantAnn := map[string]string{AnnotationAPIVersion: "tekton.dev/v1", AnnotationKind: strings.ToLower(r.Kind), AnnotationName: r.Name}
		if diff := cmp.Diff(wantAnn, d.Annotations); diff != "" {
			t.Errorf("layer %d annotations (-want +got):\n%s", i, diff)
		}
		// Compressed with gzip.
		rc, err := layers[i].Compressed()
		if err != nil {
			t.Fatal(err)
		}
		magic := make([]byte, 2)
		_, _ = io.ReadFull(rc, magic)
		rc.Close()
		if !bytes.Equal(magic, []byte{0x1f, 0x8b}) {
			t.Errorf("layer %d is not gzip: starts with %x", i, magic)
		}
		// A tar with exactly one regular file, named after the resource, holding its YAML.
		files := untar(t, layers[i])
		if len(files) != 1 || files[0].hdr.Name != r.Name || files[0].hdr.Typeflag != tar.TypeReg {
			t.Fatalf("layer %d (%s): tar entries %v, want exactly one file %q", i, r.ID(), files, r.Name)
		}
		if !bytes.Equal(files[0].data, r.Data) {
			t.Errorf("layer %d (%s): content differs from the YAML:\n%s", i, r.ID(), files[0].data)
		}
		if !files[0].hdr.ModTime.Equal(Created) || files[0].hdr.Mode != 0o600 {
			t.Errorf("layer %d: mtime %s mode %o, want %s 600", i, files[0].hdr.ModTime, files[0].hdr.Mode, Created)
		}
		// Ordered by the digest of the content, as tkn orders them.
		sum := sha256.Sum256(r.Data)
		if i > 0 && bytes.Compare(prev[:], sum[:]) > 0 {
			t.Errorf("layer %d is not in content-digest order", i)
		}
		prev = sum
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Created.Time.Equal(Created) {
		t.Errorf("config created %s, want %s", cfg.Created.Time, Created)
	}
}

type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

func (e tarEntry) String() string { return e.hdr.Name }

func untar(t *testing.T, l interface {
	Uncompressed() (io.ReadCloser, error)
}) []tarEntry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []tarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{h, data})
	}
}

func TestImageDeterministic(t *testing.T) {
	rs := fixture(t)
	digest := func(rs []Resource) string {
		img, err := Image(rs)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	first := digest(rs)
	if again := digest(fixture(t)); again != first {
		t.Errorf("two builds: %s and %s", first, again)
	}
	reversed := append([]Resource(nil), rs...)
	for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
		reversed[i], reversed[j] = reversed[j], reversed[i]
	}
	if other := digest(reversed); other != first {
		t.Errorf("input order changed the digest: %s and %s", first, other)
	}
	changed := append([]Resource(nil), rs...)
	changed[2].Data = append(append([]byte(nil), changed[2].Data...), "# changed\n"...)
	if other := digest(changed); other == first {
		t.Errorf("a changed resource kept the digest %s", first)
	}
}

func TestImageRejects(t *testing.T) {
	rs := fixture(t)
	task := func(n string) Resource {
		return Resource{APIVersion: "tekton.dev/v1", Kind: "Task", Name: n, Source: n + ".yaml",
			Data: []byte("apiVersion: tekton.dev/v1\nkind: Task\nmetadata:\n  name: " + n + "\nspec:\n  steps: []\n")}
	}
	var many []Resource
	for i := range MaxResources + 1 {
		many = append(many, task(fmt.Sprintf("t%02d", i)))
	}
	twenty := many[:MaxResources]
	if _, err := Image(twenty); err != nil {
		t.Errorf("%d resources: %v", MaxResources, err)
	}
	wrongName := task("a")
	wrongName.Name = "b"
	badName := task("Bad_Name")
	notTekton := Resource{APIVersion: "v1", Kind: "ConfigMap", Name: "c", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n")}
	unknownVersion := Resource{APIVersion: "tekton.dev/v9", Kind: "Task", Name: "x", Data: []byte("apiVersion: tekton.dev/v9\nkind: Task\nmetadata:\n  name: x\n")}
	for _, tc := range []struct {
		name string
		rs   []Resource
		want string
	}{
		{"empty", nil, "no Tasks or Pipelines"},
		{"over 20", many, "at most 20"},
		{"duplicate", append(append([]Resource(nil), rs...), rs[2]), "is in the bundle twice"},
		{"duplicate from another file", []Resource{task("same"), func() Resource { r := task("same"); r.Source = "other.yaml"; return r }()}, "same.yaml and other.yaml"},
		{"name differs from YAML", []Resource{wrongName}, "metadata.name"},
		{"invalid name", []Resource{badName}, "invalid name"},
		{"not a Task or Pipeline", []Resource{notTekton}, "kind must be Task or Pipeline"},
		{"unknown apiVersion", []Resource{unknownVersion}, "not a Tekton object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Image(tc.rs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Image error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	// Same name, different kinds: allowed (the fixture has Task hello and Pipeline hello).
	if _, err := Image(rs); err != nil {
		t.Fatal(err)
	}
	if MaxResources != oci.MaximumBundleObjects {
		t.Errorf("MaxResources %d, Tekton's MaximumBundleObjects %d", MaxResources, oci.MaximumBundleObjects)
	}
}

// startRegistry serves a real registry (go-containerregistry's) on a loopback port over plain HTTP and returns its
// host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushFixture pushes the fixture bundle and returns the resources and the pinned reference.
func pushFixture(t *testing.T, host string) ([]Resource, string) {
	t.Helper()
	rs := fixture(t)
	img, err := Image(rs)
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/canaryline/bundle:test"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := Push(ctx, img, ref, true)
	if err != nil {
		t.Fatal(err)
	}
	return rs, Pinned(ref, d)
}

func TestPushPull(t *testing.T) {
	host := startRegistry(t)
	rs := fixture(t)
	img, err := Image(rs)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// insecure=false works too on a loopback registry: go-containerregistry falls back to HTTP there.
	for i, insecure := range []bool{true, false} {
		ref := fmt.Sprintf("%s/canaryline/bundle:v%d", host, i)
		got, err := Push(ctx, img, ref, insecure)
		if err != nil {
			t.Fatalf("Push(insecure=%v): %v", insecure, err)
		}
		if got != want {
			t.Errorf("Push returned %s, image digest %s", got, want)
		}
		for _, r := range []string{ref, Pinned(ref, got)} {
			pr, err := name.ParseReference(r, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			pulled, err := remote.Image(pr, remote.WithContext(ctx))
			if err != nil {
				t.Fatalf("pull %s: %v", r, err)
			}
			if d, _ := pulled.Digest(); d != want {
				t.Errorf("pulled %s: digest %s, pushed %s", r, d, want)
			}
			layers, err := pulled.Layers()
			if err != nil || len(layers) != len(rs) {
				t.Fatalf("pulled %d layers, %v", len(layers), err)
			}
		}
	}
	if got := Pinned(host+"/a/b:1", want); got != host+"/a/b:1@"+want.String() {
		t.Errorf("Pinned = %s", got)
	}
}

// TestTektonOCIResolver reads the pushed bundle back with Tekton's pkg/remote/oci resolver (the bundle reader that
// tkn and Tekton share), which checks the bundle contract and decodes each layer with Tekton's scheme.
func TestTektonOCIResolver(t *testing.T) {
	rs, ref := pushFixture(t, startRegistry(t))
	ctx := context.Background()
	res := oci.NewResolver(ref, authn.DefaultKeychain)
	listed, err := res.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, o := range listed {
		got = append(got, o.APIVersion+" "+o.Kind+" "+o.Name)
	}
	for _, r := range rs {
		want = append(want, r.APIVersion+" "+strings.ToLower(r.Kind)+" "+r.Name)
	}
	sort.Strings(got)
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	for _, r := range rs {
		obj, _, err := res.Get(ctx, strings.ToLower(r.Kind), r.Name)
		if err != nil {
			t.Fatalf("Get %s: %v", r.ID(), err)
		}
		wantObj, _, err := scheme.Codecs.UniversalDeserializer().Decode(r.Data, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !equality.Semantic.DeepEqual(wantObj, obj) {
			t.Errorf("Get %s: %s", r.ID(), cmp.Diff(wantObj, obj))
		}
	}
	if _, _, err := res.Get(ctx, "task", "missing"); err == nil {
		t.Error("Get of a missing task succeeded")
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	copyData(t, data, dst)
}

func copyData(t *testing.T, data []byte, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
