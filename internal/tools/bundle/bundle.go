// Package bundle publishes canaryline's Tekton Tasks and Pipelines as a Tekton bundle: an OCI image with one layer
// per resource, as the Tekton Bundle contract (tektoncd/pipeline docs/tekton-bundle-contracts.md) and
// `tkn bundle push` define it. Pipelines then reference the Tasks with the bundles resolver:
//
//	taskRef: {resolver: bundles, params: [{name: bundle, value: REF@sha256:...}, {name: name, value: shift-canary},
//	          {name: kind, value: task}]}
package bundle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned/scheme"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Layer annotations of the Tekton Bundle contract.
const (
	AnnotationAPIVersion = "dev.tekton.image.apiVersion"
	AnnotationKind       = "dev.tekton.image.kind"
	AnnotationName       = "dev.tekton.image.name"
)

// MaxResources is the most resources (layers) one bundle may hold: Tekton's resolver rejects larger bundles
// (MaximumBundleObjects in tektoncd/pipeline).
const MaxResources = 20

// Created is the fixed creation time of every bundle image (as `tkn bundle push` without --ctime uses the epoch),
// so the same resources always give the same digest.
var Created = time.Unix(0, 0).UTC()

// Resource is one Tekton Task or Pipeline to put in a bundle.
type Resource struct {
	APIVersion string // e.g. tekton.dev/v1
	Kind       string // Task or Pipeline
	Name       string // metadata.name
	Data       []byte // the resource as YAML, stored in the bundle byte for byte
	Source     string // where it was read from (file, and document number in a multi-document file); informational
}

// ID names the resource as in messages: "Task tekton.dev/v1 shift-canary".
func (r Resource) ID() string { return r.Kind + " " + r.APIVersion + " " + r.Name }

// bundledKinds are the kinds a bundle holds, by the kind of their YAML; others (Role, ...) are skipped.
var bundledKinds = map[string]bool{"Task": true, "Pipeline": true}

// Load reads every Task and Pipeline under root/tasks and root/pipelines (recursively, *.yaml and *.yml files, with
// several documents per file allowed). The kind comes from the YAML; other kinds are skipped. A missing or empty
// directory contributes nothing; finding no directory at all is an error. Resources come back in file order.
func Load(root string) ([]Resource, error) {
	var out []Resource
	found := 0
	for _, sub := range []string{"tasks", "pipelines"} {
		dir := filepath.Join(root, sub)
		if fi, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("%s is not a directory", dir)
		}
		found++
		var files []string
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, err)
		}
		sort.Strings(files)
		for _, f := range files {
			rs, err := loadFile(f)
			if err != nil {
				return nil, err
			}
			out = append(out, rs...)
		}
	}
	if found == 0 {
		return nil, fmt.Errorf("neither %s nor %s exists", filepath.Join(root, "tasks"), filepath.Join(root, "pipelines"))
	}
	return out, nil
}

// loadFile returns the Tasks and Pipelines of one YAML file. A single-document file is kept byte for byte; a
// multi-document file is split at its "---" lines.
func loadFile(path string) ([]Resource, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		// The reader keeps a document's leading "---" line when nothing precedes it.
		if bytes.HasPrefix(doc, []byte("---")) {
			if i := bytes.IndexByte(doc, '\n'); i >= 0 {
				doc = doc[i+1:]
			} else {
				doc = nil
			}
		}
		docs = append(docs, doc)
	}
	var out []Resource
	for i, doc := range docs {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
		if !bundledKinds[head.Kind] || !strings.HasPrefix(head.APIVersion, "tekton.dev/") {
			continue // empty documents, comments only, RBAC, ...
		}
		src := path
		if len(docs) > 1 {
			src = fmt.Sprintf("%s (document %d)", path, i+1)
		} else {
			doc = data // the file exactly as written
		}
		out = append(out, Resource{APIVersion: head.APIVersion, Kind: head.Kind, Name: head.Metadata.Name, Data: doc, Source: src})
	}
	return out, nil
}

// Check validates the resources as a bundle's content: at least one and at most MaxResources; each a Tekton object
// that decodes to its declared apiVersion, kind and name; the name a valid object name (it is also the name of the
// file in the layer); (apiVersion, kind, name) unique.
func Check(rs []Resource) error {
	if len(rs) == 0 {
		return errors.New("no Tasks or Pipelines to bundle")
	}
	if len(rs) > MaxResources {
		return fmt.Errorf("%d resources do not fit in one Tekton bundle: Tekton resolves bundles of at most %d layers (one per Task or Pipeline); publish them as several bundles", len(rs), MaxResources)
	}
	seen := map[string]string{}
	var errs []error
	for _, r := range rs {
		if err := checkOne(r); err != nil {
			errs = append(errs, err)
			continue
		}
		key := r.APIVersion + "\x00" + strings.ToLower(r.Kind) + "\x00" + r.Name
		if prev, ok := seen[key]; ok {
			errs = append(errs, fmt.Errorf("%s is in the bundle twice (%s and %s): (apiVersion, kind, name) must be unique", r.ID(), prev, where(r)))
			continue
		}
		seen[key] = where(r)
	}
	return errors.Join(errs...)
}

func where(r Resource) string {
	if r.Source != "" {
		return r.Source
	}
	return "given"
}

func checkOne(r Resource) error {
	if !bundledKinds[r.Kind] {
		return fmt.Errorf("%s (%s): kind must be Task or Pipeline", r.ID(), where(r))
	}
	if msgs := validation.IsDNS1123Subdomain(r.Name); len(msgs) > 0 {
		return fmt.Errorf("%s (%s): invalid name %q: %s", r.ID(), where(r), r.Name, strings.Join(msgs, "; "))
	}
	obj, gvk, err := scheme.Codecs.UniversalDeserializer().Decode(r.Data, nil, nil)
	if err != nil {
		return fmt.Errorf("%s (%s): not a Tekton object Tekton can read: %w", r.ID(), where(r), err)
	}
	if gvk.GroupVersion().String() != r.APIVersion || gvk.Kind != r.Kind {
		return fmt.Errorf("%s (%s): the YAML is a %s %s", r.ID(), where(r), gvk.Kind, gvk.GroupVersion())
	}
	if m, ok := obj.(metav1.Object); !ok || m.GetName() != r.Name {
		return fmt.Errorf("%s (%s): the YAML's metadata.name differs from %q", r.ID(), where(r), r.Name)
	}
	return nil
}

// Image builds the bundle image from rs (see Check for what is accepted). Each resource is one gzip layer: a tar
// holding a single file named after the resource with the YAML as its content (mode 0600, mtime the epoch), with
// the annotations dev.tekton.image.apiVersion (the resource's apiVersion, e.g. tekton.dev/v1), dev.tekton.image.kind
// (lowercase singular: task, pipeline) and dev.tekton.image.name. Layers are ordered by the sha256 of the YAML, as
// `tkn bundle push` orders them, and the config's created time is Created: the same resources, in any order, give
// the same digest. Media types are Docker schema 2, as `tkn bundle push` writes.
func Image(rs []Resource) (v1.Image, error) {
	if err := Check(rs); err != nil {
		return nil, err
	}
	sorted := append([]Resource(nil), rs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		di, dj := sha256.Sum256(sorted[i].Data), sha256.Sum256(sorted[j].Data)
		if c := bytes.Compare(di[:], dj[:]); c != 0 {
			return c < 0
		}
		return sorted[i].ID() < sorted[j].ID()
	})
	adds := make([]mutate.Addendum, 0, len(sorted))
	for _, r := range sorted {
		l, err := layer(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.ID(), err)
		}
		adds = append(adds, mutate.Addendum{
			Layer: l,
			Annotations: map[string]string{
				AnnotationAPIVersion: r.APIVersion,
				AnnotationKind:       strings.ToLower(r.Kind),
				AnnotationName:       r.Name,
			},
			History: v1.History{Created: v1.Time{Time: Created}, CreatedBy: "canaryline bundle: " + strings.ToLower(r.Kind) + "/" + r.Name},
		})
	}
	img, err := mutate.Append(empty.Image, adds...)
	if err != nil {
		return nil, err
	}
	img, err = mutate.CreatedAt(img, v1.Time{Time: Created})
	if err != nil {
		return nil, err
	}
	return img, nil
}

// layer returns the gzip tar layer for one resource.
func layer(r Resource) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     r.Name,
		Mode:     0o600,
		Size:     int64(len(r.Data)),
		ModTime:  Created,
		Format:   tar.FormatPAX,
	}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(r.Data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithCompressedCaching)
}

// ParseRef parses an image reference; insecure allows plain HTTP (and self-signed TLS) to its registry.
func ParseRef(ref string, insecure bool) (name.Reference, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("bad image reference %q: %w", ref, err)
	}
	return r, nil
}

// Push writes img to ref, authenticating with the docker config (authn.DefaultKeychain: $DOCKER_CONFIG or
// ~/.docker/config.json, and podman's auth.json), and returns the image's digest. insecure allows a plain-HTTP
// registry. opts are added to the remote options (after the defaults, so they win).
func Push(ctx context.Context, img v1.Image, ref string, insecure bool, opts ...remote.Option) (v1.Hash, error) {
	r, err := ParseRef(ref, insecure)
	if err != nil {
		return v1.Hash{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	ro := append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, opts...)
	if err := remote.Write(r, img, ro...); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", r, err)
	}
	return digest, nil
}

// Pinned returns ref as given (its tag kept, an earlier digest dropped) pinned to digest: REF@sha256:....
// Tekton's bundles resolver, tkn and crane all accept REPO:TAG@sha256:... and use the digest.
func Pinned(ref string, digest v1.Hash) string {
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	return ref + "@" + digest.String()
}

// Pull reads a bundle back: every resource of the image at ref, from its layers' dev.tekton.image.* annotations
// and the single file each layer holds.
func Pull(ctx context.Context, ref string, insecure bool) ([]Resource, error) {
	opts := []name.Option{}
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("bundle %q: %w", ref, err)
	}
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return nil, fmt.Errorf("pull bundle %s: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	var out []Resource
	for i, l := range layers {
		ann := m.Layers[i].Annotations
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(rc)
		if _, err := tr.Next(); err != nil {
			rc.Close()
			return nil, fmt.Errorf("bundle %s layer %d: %w", ref, i, err)
		}
		data, err := io.ReadAll(tr)
		rc.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, Resource{APIVersion: ann[AnnotationAPIVersion], Kind: ann[AnnotationKind],
			Name: ann[AnnotationName], Data: data})
	}
	return out, nil
}
