// Package catalog generates canaryline's Tekton catalog (catalog/ in the repository) from the Tasks in tasks/ and the
// Pipelines in pipelines/, in the directory-based tektoncd/catalog layout that Artifact Hub indexes:
//
//	catalog/README.md                                   index of every Task and Pipeline
//	catalog/artifacthub-repo.yml                        Artifact Hub repository metadata
//	catalog/task/<name>/<version>/<name>.yaml           the Task, step image pinned, Artifact Hub annotations added
//	catalog/task/<name>/<version>/README.md             generated from the Task
//	catalog/task/<name>/<version>/samples/<name>-run.yaml   an example TaskRun
//	catalog/pipeline/<name>/<version>/...               the same for each Pipeline, with a PipelineRun sample
//
// catalog/IMAGE_DIGEST (the step image's digest, written when the image is built) is an input: it is read, never
// generated, and Write keeps it.
//
// Every generated resource keeps the source's layout and comments; only the file's header comment is replaced, the
// artifacthub.io annotations are added (sorted with the source's annotations; an artifacthub.io annotation the source
// already sets is kept, so a later release can describe its changes in the source) and the step image
// ghcr.io/canaryline/canaryline-steps:vX becomes ghcr.io/canaryline/canaryline-steps:vX@sha256:.... The sources are
// only read.
//
// Generate fails, naming the file and the fix, when a resource would not pass catlin (the tektoncd/catalog linter) or
// Tekton's own validation: a version that is not X.Y or differs from the app.kubernetes.io/version label, a missing
// tekton.dev annotation or description, a category that is not in the Hub's list, a step image that is not fully
// qualified, uses :latest, or cannot be pinned by digest.
package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	yaml "go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"
)

// Names and places the generator uses.
const (
	// Dir is the catalog directory under the repository root.
	Dir = "catalog"
	// DigestFile is the file under Dir that holds the step image's digest (an input, never generated).
	DigestFile = "IMAGE_DIGEST"
	// StepImage is the step image's repository; its tag in the sources is pinned with the digest in the catalog.
	StepImage = "ghcr.io/canaryline/canaryline-steps"

	sourceURL  = "https://github.com/canaryline/canaryline"
	provider   = "canaryline"
	license    = "Apache-2.0"
	hubRepo    = "canaryline" // the repository's name on Artifact Hub, for recommendation URLs
	versionKey = "app.kubernetes.io/version"
)

// ErrNoDigest is returned when no step image digest is known: neither Options.ImageDigest nor catalog/IMAGE_DIGEST.
var ErrNoDigest = errors.New("pin the step image: run make image, or give --image-digest")

// Options say what to generate from.
type Options struct {
	// Root is the repository root: Tasks are read from Root/tasks, Pipelines from Root/pipelines. Default ".".
	Root string
	// ImageDigest is the step image's digest (sha256:...). Every step image StepImage:vX is written as
	// StepImage:vX@ImageDigest. Empty: the digest is read from Root/catalog/IMAGE_DIGEST; without that file
	// Generate fails with ErrNoDigest.
	ImageDigest string
	// Version is the catalog version directory (X.Y). Empty: each resource's app.kubernetes.io/version label.
	// When set, every resource's label must equal it.
	Version string
}

// Hub categories (tektoncd/hub config, as catlin checks them).
var hubCategories = []string{
	"Automation", "Build Tools", "CLI", "Cloud", "Code Quality", "Continuous Integration", "Deployment",
	"Developer Tools", "Image Build", "Integration & Delivery", "Git", "Kubernetes", "Messaging", "Monitoring",
	"Networking", "Openshift", "Publishing", "Security", "Storage", "Testing",
}

// Annotations every resource must have (catlin requires the first two; the project requires all).
var requiredAnnotations = []string{
	"tekton.dev/pipelines.minVersion",
	"tekton.dev/categories",
	"tekton.dev/tags",
	"tekton.dev/displayName",
	"tekton.dev/platforms",
}

var (
	versionRE    = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)
	digestRE     = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	minVersionRE = regexp.MustCompile(`^v?[0-9]+\.[0-9]+(\.[0-9]+)?$`)
	platformRE   = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$`)
	tagRE        = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// Kinds of resource in the catalog.
const (
	kindTask     = "Task"
	kindPipeline = "Pipeline"
)

// resource is one Task or Pipeline read from the sources.
type resource struct {
	kind    string
	name    string
	version string
	source  string     // slash path relative to the root, e.g. tasks/start-build.yaml
	doc     *yaml.Node // the YAML document, modified in place into the generated resource
	meta    objectMeta
}

type objectMeta struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// dirName is the lowercase kind: the catalog's top directory.
func (r *resource) dirName() string { return strings.ToLower(r.kind) }

// dir is the resource's version directory relative to the root.
func (r *resource) dir() string { return path.Join(Dir, r.dirName(), r.name, r.version) }

func (r *resource) String() string { return fmt.Sprintf("%s: %s %s", r.source, r.kind, r.name) }

// sources is what was read from tasks/ and pipelines/.
type sources struct {
	resources      []*resource
	serviceAccount string   // the one ServiceAccount the sources define, if exactly one: runs use it
	rbacFiles      []string // the source files that define it and its RBAC
}

// Generate returns the catalog tree as slash path (relative to the root, starting with catalog/) -> content. The
// same sources and options give the same bytes.
func Generate(o Options) (map[string][]byte, error) {
	root := o.Root
	if root == "" {
		root = "."
	}
	digest, err := resolveDigest(root, o.ImageDigest)
	if err != nil {
		return nil, err
	}
	if o.Version != "" && !versionRE.MatchString(o.Version) {
		return nil, fmt.Errorf("catalog version %q: want MAJOR.MINOR such as 0.1 (the tektoncd/catalog version directory)", o.Version)
	}
	src, err := load(root)
	if err != nil {
		return nil, err
	}
	if len(src.resources) == 0 {
		return nil, fmt.Errorf("no Tekton Tasks or Pipelines in %s or %s",
			filepath.Join(root, "tasks"), filepath.Join(root, "pipelines"))
	}

	var errs []error
	seen := map[string]*resource{}
	for _, r := range src.resources {
		if err := r.check(o.Version); err != nil {
			errs = append(errs, err)
		}
		key := r.kind + "/" + r.name
		if prev, ok := seen[key]; ok {
			errs = append(errs, fmt.Errorf("%s: %s %s is also defined in %s: names must be unique", r.source, r.kind, r.name, prev.source))
		}
		seen[key] = r
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(src.resources, func(i, j int) bool {
		a, b := src.resources[i], src.resources[j]
		if a.kind != b.kind {
			return a.kind == kindTask
		}
		return a.name < b.name
	})

	g := &generator{digest: digest, src: src, files: map[string][]byte{}}
	for _, r := range src.resources {
		if r.kind == kindTask {
			g.taskNames = append(g.taskNames, r.name)
			g.taskVersions = append(g.taskVersions, r.version)
		}
	}
	for _, r := range src.resources {
		if err := g.resource(r); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	g.files[path.Join(Dir, "README.md")] = g.index()
	g.files[path.Join(Dir, "artifacthub-repo.yml")] = artifactHubRepo()
	return g.files, nil
}

// resolveDigest returns the step image digest from the option or from catalog/IMAGE_DIGEST.
func resolveDigest(root, digest string) (string, error) {
	if digest != "" {
		if !digestRE.MatchString(digest) {
			return "", fmt.Errorf("image digest %q: want sha256: and 64 lowercase hex digits", digest)
		}
		return digest, nil
	}
	file := filepath.Join(root, Dir, DigestFile)
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return "", ErrNoDigest
	}
	if err != nil {
		return "", fmt.Errorf("read the step image digest: %w", err)
	}
	// The first line that is not blank or a # comment; REF@sha256:... is accepted too.
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndex(line, "@"); i >= 0 {
			line = line[i+1:]
		}
		if !digestRE.MatchString(line) {
			return "", fmt.Errorf("%s: %q is not a digest (want sha256: and 64 lowercase hex digits): run make image again, or give --image-digest", file, line)
		}
		return line, nil
	}
	return "", fmt.Errorf("%s is empty: %w", file, ErrNoDigest)
}

// load reads every YAML document of tasks/ and pipelines/ (files ending .yaml or .yml, in name order). Tekton
// Tasks and Pipelines become resources; other kinds (RBAC, kustomization) are skipped.
func load(root string) (*sources, error) {
	l := &loader{src: &sources{}}
	for _, dir := range []string{"tasks", "pipelines"} {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
				continue
			}
			if err := l.file(filepath.Join(root, dir, name), dir+"/"+name); err != nil {
				return nil, err
			}
		}
	}
	if len(l.serviceAccounts) == 1 {
		l.src.serviceAccount = l.serviceAccounts[0]
		l.src.rbacFiles = l.rbacFiles
	}
	return l.src, nil
}

// loader collects the sources: the Tasks and Pipelines, the ServiceAccounts and the files with RBAC objects.
type loader struct {
	src                        *sources
	serviceAccounts, rbacFiles []string
}

// file reads the YAML documents of one file (rel is its path in the repository).
func (l *loader) file(path, rel string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for i := 0; ; i++ {
		doc := new(yaml.Node)
		err := dec.Decode(doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			continue // an empty document, or not an object
		}
		if err := l.document(rel, i, doc); err != nil {
			return err
		}
	}
}

// document notes a ServiceAccount or an RBAC object, and adds a Task or a Pipeline (tekton.dev/v1 only) to the
// resources.
func (l *loader) document(rel string, i int, doc *yaml.Node) error {
	m := doc.Content[0]
	apiVersion, kind := scalar(mapGet(m, "apiVersion")), scalar(mapGet(m, "kind"))
	switch {
	case kind == "ServiceAccount" && apiVersion == "v1":
		l.serviceAccounts = append(l.serviceAccounts, scalar(mapGet(mapGet(m, "metadata"), "name")))
		fallthrough
	case strings.HasPrefix(apiVersion, "rbac.authorization.k8s.io/"):
		if !slices.Contains(l.rbacFiles, rel) {
			l.rbacFiles = append(l.rbacFiles, rel)
		}
	}
	if kind != kindTask && kind != kindPipeline {
		return nil
	}
	where := rel
	if i > 0 {
		where = fmt.Sprintf("%s (document %d)", rel, i+1)
	}
	if apiVersion != "tekton.dev/v1" {
		return fmt.Errorf("%s: %s has apiVersion %q: the catalog ships tekton.dev/v1 only (convert it with `tkn` or by hand)", where, kind, apiVersion)
	}
	r := &resource{kind: kind, source: where, doc: doc}
	var head struct {
		Metadata objectMeta `json:"metadata"`
	}
	if err := decodeNode(m, &head); err != nil {
		return fmt.Errorf("%s: metadata: %w", where, err)
	}
	r.meta = head.Metadata
	r.name = r.meta.Name
	l.src.resources = append(l.src.resources, r)
	return nil
}

// check validates what catlin checks in the metadata, and sets the version.
func (r *resource) check(version string) error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{r}, args...)...))
	}
	if r.name == "" {
		fail("metadata.name is missing")
	}
	label, ok := r.meta.Labels[versionKey]
	switch {
	case !ok || label == "":
		fail("label %s is missing: set it to the catalog version (MAJOR.MINOR, e.g. \"0.1\")", versionKey)
	case !versionRE.MatchString(label):
		fail("label %s is %q: want MAJOR.MINOR such as \"0.1\" (it names the catalog version directory)", versionKey, label)
	case version != "" && label != version:
		fail("label %s is %q but the catalog version is %q: they must be equal", versionKey, label, version)
	default:
		r.version = label
	}
	for _, key := range requiredAnnotations {
		if strings.TrimSpace(r.meta.Annotations[key]) == "" {
			fail("annotation %s is missing", key)
		}
	}
	if v := r.meta.Annotations["tekton.dev/pipelines.minVersion"]; v != "" && !minVersionRE.MatchString(v) {
		fail("annotation tekton.dev/pipelines.minVersion is %q: want a Tekton Pipelines version such as \"0.56.0\"", v)
	}
	if v := r.meta.Annotations["tekton.dev/categories"]; v != "" {
		for _, c := range splitList(v) {
			if !slices.Contains(hubCategories, c) {
				fail("category %q (tekton.dev/categories) is not one of the Hub's: %s", c, strings.Join(hubCategories, ", "))
			}
		}
	}
	if v := r.meta.Annotations["tekton.dev/platforms"]; v != "" {
		for _, p := range splitList(v) {
			if !platformRE.MatchString(p) {
				fail("platform %q (tekton.dev/platforms) is not OS/ARCH such as linux/amd64", p)
			}
		}
	}
	spec := mapGet(r.doc.Content[0], "spec")
	if strings.TrimSpace(scalar(mapGet(spec, "description"))) == "" {
		fail("spec.description is missing (its first line is the catalog summary)")
	}
	return errors.Join(errs...)
}

// generator holds what every generated file needs.
type generator struct {
	digest       string
	src          *sources
	taskNames    []string // sorted
	taskVersions []string // parallel to taskNames
	stepImages   []string // the pinned step images the resources run, without duplicates
	files        map[string][]byte
}

func (g *generator) stepImageRef(tag string) string { return StepImage + ":" + tag + "@" + g.digest }

// resource generates the resource's manifest, README and sample.
func (g *generator) resource(r *resource) error {
	m := r.doc.Content[0]

	// Header: replaces the source's own (e.g. "generated by make pipelines").
	r.doc.HeadComment = fmt.Sprintf("Generated by `canaryline catalog generate` from %s. Do not edit: change the source and generate again.", r.source)
	if len(m.Content) > 0 {
		m.Content[0].HeadComment = ""
	}
	m.HeadComment = ""

	// Images.
	var errs []error
	pinImages(m, "", g.digest, func(where, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: "+format, append([]any{r, where}, args...)...))
	})
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := g.annotate(r); err != nil {
		return err
	}
	out, err := encode(r.doc)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", r, err)
	}
	g.files[path.Join(r.dir(), r.name+".yaml")] = out

	// Parse the generated resource back with Tekton's types: it must be valid as published.
	if r.kind == kindTask {
		return g.taskFiles(r, out)
	}
	if r.kind == kindPipeline {
		return g.pipelineFiles(r, out)
	}
	return nil
}

// annotate adds the Artifact Hub annotations the resource does not have yet, and sorts its annotations.
func (g *generator) annotate(r *resource) error {
	m := r.doc.Content[0]
	meta := mapGet(m, "metadata")
	ann := mapGet(meta, "annotations")
	if ann == nil {
		ann = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		mapSet(meta, "annotations", ann)
	}
	var used []string
	if r.kind == kindPipeline {
		var p v1.Pipeline
		if err := decodeNode(m, &p); err != nil {
			return fmt.Errorf("%s: %w", r, err)
		}
		used = g.referencedTasks(&p)
	}
	for _, a := range g.artifactHubAnnotations(r, used) {
		if mapGet(ann, a.key) == nil {
			v := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: a.value}
			if strings.Contains(a.value, "\n") {
				v.Style = yaml.LiteralStyle
			}
			mapSet(ann, a.key, v)
		}
	}
	sortMapping(ann)
	return nil
}

// taskFiles checks the generated Task (out) and writes its sample TaskRun and README.
func (g *generator) taskFiles(r *resource, out []byte) error {
	base := r.dir()
	t, err := parseTask(out)
	if err != nil {
		return fmt.Errorf("%s: generated %s: %w", r, path.Join(base, r.name+".yaml"), err)
	}
	if err := g.checkPinned(taskImages(&t.Spec)); err != nil {
		return fmt.Errorf("%s: %w", r, err)
	}
	sample := g.taskRun(t)
	g.files[path.Join(base, "samples", r.name+"-run.yaml")] = sample
	g.files[path.Join(base, "README.md")] = g.taskREADME(r, t, sample)
	return nil
}

// pipelineFiles checks the generated Pipeline (out) and writes its sample PipelineRun and README.
func (g *generator) pipelineFiles(r *resource, out []byte) error {
	base := r.dir()
	p, err := parsePipeline(out)
	if err != nil {
		return fmt.Errorf("%s: generated %s: %w", r, path.Join(base, r.name+".yaml"), err)
	}
	if err := g.checkPinned(pipelineImages(p)); err != nil {
		return fmt.Errorf("%s: %w", r, err)
	}
	sample := g.pipelineRun(p)
	g.files[path.Join(base, "samples", r.name+"-run.yaml")] = sample
	g.files[path.Join(base, "README.md")] = g.pipelineREADME(r, p, sample)
	return nil
}

type annotation struct{ key, value string }

// artifactHubAnnotations are the artifacthub.io annotations of a generated resource, in key order. A Task
// recommends the other Tasks; a Pipeline the catalog Tasks it runs (or, running none, every Task).
func (g *generator) artifactHubAnnotations(r *resource, used []string) []annotation {
	recommend := g.taskNames
	if r.kind == kindPipeline && len(used) > 0 {
		recommend = used
	}
	var recs strings.Builder
	for _, t := range recommend {
		if r.kind == kindTask && t == r.name {
			continue
		}
		fmt.Fprintf(&recs, "- url: https://artifacthub.io/packages/tekton-task/%s/%s\n", hubRepo, t)
	}
	out := []annotation{
		{"artifacthub.io/changes", "- kind: added\n  description: first release\n"},
		{"artifacthub.io/license", license},
		{"artifacthub.io/links", "- name: source\n  url: " + sourceURL + "\n"},
		{"artifacthub.io/maintainers", "- name: " + provider + "\n"},
		{"artifacthub.io/provider", provider},
	}
	if recs.Len() > 0 {
		out = append(out, annotation{"artifacthub.io/recommendations", recs.String()})
	}
	return out
}

// artifactHubRepo is catalog/artifacthub-repo.yml.
func artifactHubRepo() []byte {
	return []byte(`# Artifact Hub repository metadata. Generated by ` + "`canaryline catalog generate`" + `: do not edit.
owners:
  - name: ` + provider + `
`)
}

// parseTask parses a generated Task strictly into Tekton's v1 type, sets its defaults and validates it.
func parseTask(b []byte) (*v1.Task, error) {
	var t v1.Task
	if err := sigsyaml.UnmarshalStrict(b, &t); err != nil {
		return nil, fmt.Errorf("not a valid tekton.dev/v1 Task: %w", err)
	}
	ctx := context.Background()
	t.SetDefaults(ctx)
	if err := t.Validate(ctx); err != nil {
		return nil, fmt.Errorf("Tekton rejects the Task: %w", err)
	}
	return &t, nil
}

// parsePipeline parses a generated Pipeline strictly into Tekton's v1 type, sets its defaults and validates it.
func parsePipeline(b []byte) (*v1.Pipeline, error) {
	var p v1.Pipeline
	if err := sigsyaml.UnmarshalStrict(b, &p); err != nil {
		return nil, fmt.Errorf("not a valid tekton.dev/v1 Pipeline: %w", err)
	}
	ctx := context.Background()
	p.SetDefaults(ctx)
	if err := p.Validate(ctx); err != nil {
		return nil, fmt.Errorf("Tekton rejects the Pipeline: %w", err)
	}
	return &p, nil
}

// taskImages lists the images of a Task's steps, sidecars and step template.
func taskImages(s *v1.TaskSpec) []string {
	var out []string
	for _, st := range s.Steps {
		if st.Image != "" {
			out = append(out, st.Image)
		}
	}
	for _, sc := range s.Sidecars {
		if sc.Image != "" {
			out = append(out, sc.Image)
		}
	}
	if s.StepTemplate != nil && s.StepTemplate.Image != "" {
		out = append(out, s.StepTemplate.Image)
	}
	return out
}

// pipelineImages are the images of the Pipeline's embedded Tasks.
func pipelineImages(p *v1.Pipeline) []string {
	var images []string
	for _, pt := range append(slices.Clone(p.Spec.Tasks), p.Spec.Finally...) {
		if pt.TaskSpec != nil {
			images = append(images, taskImages(&pt.TaskSpec.TaskSpec)...)
		}
	}
	return images
}

// checkPinned verifies that every image of a generated resource is fully qualified and pinned by digest, and
// records the step images.
func (g *generator) checkPinned(images []string) error {
	for _, img := range images {
		name, dig, ok := strings.Cut(img, "@")
		if !ok || !digestRE.MatchString(dig) || !qualified(name) {
			return fmt.Errorf("image %q in the generated resource is not fully qualified and pinned by digest", img)
		}
		if strings.HasPrefix(img, StepImage+":") && !slices.Contains(g.stepImages, img) {
			g.stepImages = append(g.stepImages, img)
		}
	}
	return nil
}

// splitList splits a comma-separated annotation value.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// decodeNode decodes a YAML node into v through JSON (sigs.k8s.io/yaml), as Kubernetes does.
func decodeNode(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	return sigsyaml.Unmarshal(b, v)
}

// encode writes a YAML document with two-space indentation.
func encode(doc *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// mapGet returns the value of key in a mapping node, or nil.
func mapGet(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// mapSet sets key to v in a mapping node.
func mapSet(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

// sortMapping sorts a mapping node's keys.
func sortMapping(m *yaml.Node) {
	type pair struct{ k, v *yaml.Node }
	pairs := make([]pair, 0, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		pairs = append(pairs, pair{m.Content[i], m.Content[i+1]})
	}
	sort.SliceStable(pairs, func(i, j int) bool { return pairs[i].k.Value < pairs[j].k.Value })
	m.Content = m.Content[:0]
	for _, p := range pairs {
		m.Content = append(m.Content, p.k, p.v)
	}
}

// scalar is a scalar node's value, or "".
func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}
