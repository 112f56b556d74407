// Package triggers checks the Tekton Triggers manifests in triggers/ and the Pipelines-as-Code PipelineRun in
// .tekton/: each parses strictly into its Go type (Triggers v1beta1, Tekton v1, core and RBAC types) and passes
// SetDefaults and Validate; the TriggerTemplate, the bindings and the EventListeners agree with each other and with
// the Pipelines in pipelines/; the interceptors check the webhook secret and the event type; the CEL filters and
// overlays compile and select the right pushes; no manifest has a script.
package triggers

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	celext "github.com/google/cel-go/ext"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/triggers/pkg/apis/triggers/contexts"
	triggersv1 "github.com/tektoncd/triggers/pkg/apis/triggers/v1beta1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const root = "../.."

// The names the manifests must agree on.
const (
	triggersSA       = "canaryline-triggers"
	pipelineSA       = "canaryline"
	templateName     = "canaryline-canary-release"
	githubSecret     = "canaryline-github-webhook"
	gitlabSecret     = "canaryline-gitlab-webhook"
	webhookSecretKey = "secret"
	zeroSHA          = "0000000000000000000000000000000000000000"
)

// doc is one YAML document of a manifest file, decoded into its Go type.
type doc struct {
	file string
	raw  []byte
	obj  any
}

// kustomization is the part of kustomize's Kustomization that triggers/kustomization.yaml uses; strict decoding
// fails on any other field, so a new field must be added here on purpose. It has no namespace: `oc apply -k
// triggers -n NAMESPACE` places the objects.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
}

// newObject returns an empty Go object for a manifest's apiVersion and kind.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + "/" + kind {
	case "triggers.tekton.dev/v1beta1/EventListener":
		return &triggersv1.EventListener{}, nil
	case "triggers.tekton.dev/v1beta1/TriggerBinding":
		return &triggersv1.TriggerBinding{}, nil
	case "triggers.tekton.dev/v1beta1/TriggerTemplate":
		return &triggersv1.TriggerTemplate{}, nil
	case "tekton.dev/v1/PipelineRun":
		return &pipelinev1.PipelineRun{}, nil
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "rbac.authorization.k8s.io/v1/Role":
		return &rbacv1.Role{}, nil
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		return &rbacv1.RoleBinding{}, nil
	case "kustomize.config.k8s.io/v1beta1/Kustomization":
		return &kustomization{}, nil
	}
	return nil, fmt.Errorf("unexpected apiVersion %q kind %q", apiVersion, kind)
}

// manifestFiles lists the YAML files under triggers/ and .tekton/, relative to the repository root.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, dir := range []string{"triggers", ".tekton"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				rel, err := filepath.Rel(root, path)
				if err != nil {
					return err
				}
				files = append(files, filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(files) == 0 {
		t.Fatal("no manifests under triggers/ and .tekton/")
	}
	sort.Strings(files)
	return files
}

// splitDocs splits a multi-document YAML file, dropping empty documents.
func splitDocs(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var probe map[string]any
		if err := yaml.Unmarshal(d, &probe); err != nil {
			return nil, err
		}
		if len(probe) > 0 {
			docs = append(docs, d)
		}
	}
}

// loadAll decodes every document of every manifest strictly into its Go type.
func loadAll(t *testing.T) []doc {
	t.Helper()
	var out []doc
	for _, file := range manifestFiles(t) {
		data, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		raws, err := splitDocs(data)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, raw := range raws {
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(raw, &meta); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			obj, err := newObject(meta.APIVersion, meta.Kind)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if err := yaml.UnmarshalStrict(raw, obj); err != nil {
				t.Fatalf("%s: %s does not parse strictly: %v", file, meta.Kind, err)
			}
			out = append(out, doc{file: file, raw: raw, obj: obj})
		}
	}
	return out
}

// only returns the objects of type T, with their files.
func only[T any](docs []doc) (objs []T, files []string) {
	for _, d := range docs {
		if o, ok := d.obj.(T); ok {
			objs = append(objs, o)
			files = append(files, d.file)
		}
	}
	return objs, files
}

func one[T any](t *testing.T, docs []doc, name func(T) string, want string) T {
	t.Helper()
	objs, _ := only[T](docs)
	for _, o := range objs {
		if name(o) == want {
			return o
		}
	}
	var zero T
	t.Fatalf("no %T named %q", zero, want)
	return zero
}

func eventListener(t *testing.T, docs []doc, name string) *triggersv1.EventListener {
	return one(t, docs, func(o *triggersv1.EventListener) string { return o.Name }, name)
}

func triggerBinding(t *testing.T, docs []doc, name string) *triggersv1.TriggerBinding {
	return one(t, docs, func(o *triggersv1.TriggerBinding) string { return o.Name }, name)
}

func triggerTemplate(t *testing.T, docs []doc) *triggersv1.TriggerTemplate {
	return one(t, docs, func(o *triggersv1.TriggerTemplate) string { return o.Name }, templateName)
}

// templatePipelineRun decodes, strictly, the PipelineRun that the TriggerTemplate creates.
func templatePipelineRun(t *testing.T, tt *triggersv1.TriggerTemplate) *pipelinev1.PipelineRun {
	t.Helper()
	if len(tt.Spec.ResourceTemplates) != 1 {
		t.Fatalf("TriggerTemplate %s: want one resource template, got %d", tt.Name, len(tt.Spec.ResourceTemplates))
	}
	pr := &pipelinev1.PipelineRun{}
	if err := yaml.UnmarshalStrict(tt.Spec.ResourceTemplates[0].Raw, pr); err != nil {
		t.Fatalf("TriggerTemplate %s: the resource template is not a strict tekton.dev/v1 PipelineRun: %v", tt.Name, err)
	}
	if pr.APIVersion != "tekton.dev/v1" || pr.Kind != "PipelineRun" {
		t.Fatalf("TriggerTemplate %s: resource template is %s %s, want tekton.dev/v1 PipelineRun", tt.Name, pr.APIVersion, pr.Kind)
	}
	return pr
}

// samplePush is what the bindings give for a push, a commit message with quotes and a newline included.
var samplePush = map[string]string{
	"git-revision": "8f6c3b2a1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a",
	"git-url":      "https://github.com/acme/my-app.git",
	"git-branch":   "refs/heads/main",
	"git-author":   "Mona <mona@example.com>",
	"git-message":  "Fix \"checkout\"\n\nCloses #12",
}

// renderedPipelineRun substitutes the TriggerTemplate's params the way Triggers does (values from the binding,
// else the defaults; JSON-escaped into the raw template), then decodes the PipelineRun strictly and gives it the
// name the API server would derive from generateName.
func renderedPipelineRun(t *testing.T, tt *triggersv1.TriggerTemplate, values map[string]string) *pipelinev1.PipelineRun {
	t.Helper()
	if len(tt.Spec.ResourceTemplates) != 1 {
		t.Fatalf("TriggerTemplate %s: want one resource template, got %d", tt.Name, len(tt.Spec.ResourceTemplates))
	}
	raw := tt.Spec.ResourceTemplates[0].Raw
	for _, p := range tt.Spec.Params {
		v, ok := values[p.Name]
		if !ok {
			if p.Default == nil {
				t.Fatalf("no value for param %s, which has no default", p.Name)
			}
			v = *p.Default
		}
		quoted, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		raw = bytes.ReplaceAll(raw, []byte("$(tt.params."+p.Name+")"), quoted[1:len(quoted)-1])
	}
	if m := ttParamRef.Find(raw); m != nil {
		t.Fatalf("TriggerTemplate %s: %s left after substitution", tt.Name, m)
	}
	pr := &pipelinev1.PipelineRun{}
	if err := yaml.UnmarshalStrict(raw, pr); err != nil {
		t.Fatalf("TriggerTemplate %s: the rendered PipelineRun does not parse strictly: %v", tt.Name, err)
	}
	if pr.Name == "" {
		pr.Name = pr.GenerateName + "x7k2p"
	}
	return pr
}

// pacPipelineRun returns the Pipelines-as-Code PipelineRun in .tekton/.
func pacPipelineRun(t *testing.T, docs []doc) *pipelinev1.PipelineRun {
	t.Helper()
	prs, files := only[*pipelinev1.PipelineRun](docs)
	for i, pr := range prs {
		if strings.HasPrefix(files[i], ".tekton/") {
			return pr
		}
	}
	t.Fatal("no PipelineRun in .tekton/")
	return nil
}

// interceptorParams decodes an interceptor's params into a JSON object by name.
func interceptorParams(t *testing.T, ic *triggersv1.TriggerInterceptor) map[string]json.RawMessage {
	t.Helper()
	out := map[string]json.RawMessage{}
	for _, p := range ic.Params {
		if _, dup := out[p.Name]; dup {
			t.Errorf("interceptor %s: param %s twice", ic.Ref.Name, p.Name)
		}
		out[p.Name] = p.Value.Raw
	}
	return out
}

// decodeStrict decodes JSON, failing on unknown fields.
func decodeStrict(t *testing.T, what string, raw json.RawMessage, into any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s: %v (%s)", what, err, raw)
	}
}

func TestManifestsParseStrictlyAndValidate(t *testing.T) {
	docs := loadAll(t)
	ctx := contexts.WithUpgradeViaDefaulting(context.Background())
	kinds := map[string]int{}
	for _, d := range docs {
		var (
			kind string
			errs *apis.FieldError
		)
		switch o := d.obj.(type) {
		case *triggersv1.EventListener:
			kind = "EventListener"
			o.SetDefaults(ctx)
			errs = o.Validate(ctx)
		case *triggersv1.TriggerBinding:
			kind = "TriggerBinding"
			o.SetDefaults(ctx)
			errs = o.Validate(ctx)
		case *triggersv1.TriggerTemplate:
			kind = "TriggerTemplate"
			o.SetDefaults(ctx)
			errs = o.Validate(ctx)
			// Validate the PipelineRun it creates too, as Tekton will when Triggers creates it from a push.
			pr := renderedPipelineRun(t, o, samplePush)
			pr.SetDefaults(ctx)
			if err := pr.Validate(ctx); err != nil {
				t.Errorf("%s: the PipelineRun it creates: %v", d.file, err)
			}
		case *pipelinev1.PipelineRun:
			kind = "PipelineRun"
			o.SetDefaults(ctx)
			errs = o.Validate(ctx)
		case *corev1.ServiceAccount:
			kind = "ServiceAccount"
		case *rbacv1.Role:
			kind = "Role"
		case *rbacv1.RoleBinding:
			kind = "RoleBinding"
		case *kustomization:
			kind = "Kustomization"
		}
		if errs != nil {
			t.Errorf("%s: %s does not validate: %v", d.file, kind, errs)
		}
		kinds[kind]++
	}
	want := map[string]int{"EventListener": 2, "TriggerBinding": 2, "TriggerTemplate": 1, "PipelineRun": 1,
		"ServiceAccount": 1, "Role": 1, "RoleBinding": 1, "Kustomization": 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d %s objects, want %d (all: %v)", kinds[k], k, n, kinds)
		}
	}
}

// ttParamRef matches the TriggerTemplate param references, as Triggers' own validation does.
var ttParamRef = regexp.MustCompile(`\$\(tt\.params\.([_a-zA-Z][_a-zA-Z0-9.-]*)\)`)

func TestTemplateParamsDeclaredAndUsed(t *testing.T) {
	tt := triggerTemplate(t, loadAll(t))
	declared := map[string]bool{}
	for _, p := range tt.Spec.Params {
		declared[p.Name] = true
	}
	used := map[string]bool{}
	for _, rt := range tt.Spec.ResourceTemplates {
		for _, m := range ttParamRef.FindAllSubmatch(rt.Raw, -1) {
			used[string(m[1])] = true
		}
	}
	if len(used) == 0 {
		t.Fatal("the TriggerTemplate uses no $(tt.params.*)")
	}
	for name := range used {
		if !declared[name] {
			t.Errorf("$(tt.params.%s) is used but not declared in spec.params", name)
		}
	}
	for name := range declared {
		if !used[name] {
			t.Errorf("param %s is declared but never used", name)
		}
	}
	// app names the PipelineRun (generateName): an empty default would give "-release-", not a valid name.
	for _, p := range tt.Spec.Params {
		if p.Name == "app" && (p.Default == nil || *p.Default == "") {
			t.Error("param app needs a non-empty default: it is part of the PipelineRun's generateName")
		}
	}
}

func TestBindingsMatchTemplate(t *testing.T) {
	docs := loadAll(t)
	tt := triggerTemplate(t, docs)
	ttParams := map[string]triggersv1.ParamSpec{}
	for _, p := range tt.Spec.Params {
		ttParams[p.Name] = p
	}
	bindings, files := only[*triggersv1.TriggerBinding](docs)
	for i, tb := range bindings {
		provided := map[string]bool{}
		for _, p := range tb.Spec.Params {
			provided[p.Name] = true
			if _, ok := ttParams[p.Name]; !ok {
				t.Errorf("%s: binding param %s is not a param of TriggerTemplate %s", files[i], p.Name, tt.Name)
			}
		}
		// A template param without a default must come from every binding, or Triggers rejects the event.
		for name, p := range ttParams {
			if p.Default == nil && !provided[name] {
				t.Errorf("%s: TriggerTemplate param %s has no default and the binding does not set it", files[i], name)
			}
		}
	}
	// Every EventListener refers to this template and to bindings that exist.
	els, elFiles := only[*triggersv1.EventListener](docs)
	names := map[string]bool{}
	for _, tb := range bindings {
		names[tb.Name] = true
	}
	for i, el := range els {
		for _, tr := range el.Spec.Triggers {
			if tr.Template == nil || tr.Template.Ref == nil || *tr.Template.Ref != tt.Name {
				t.Errorf("%s: trigger %s must use template ref %s", elFiles[i], tr.Name, tt.Name)
			}
			if len(tr.Bindings) == 0 {
				t.Errorf("%s: trigger %s has no bindings", elFiles[i], tr.Name)
			}
			for _, b := range tr.Bindings {
				if b.Ref != "" && !names[b.Ref] {
					t.Errorf("%s: trigger %s refers to binding %s, which is not in triggers/", elFiles[i], tr.Name, b.Ref)
				}
				if b.Ref == "" {
					if _, ok := ttParams[b.Name]; !ok {
						t.Errorf("%s: inline binding %s is not a TriggerTemplate param", elFiles[i], b.Name)
					}
				}
			}
		}
	}
}

func TestTemplatePipelineRun(t *testing.T) {
	pr := templatePipelineRun(t, triggerTemplate(t, loadAll(t)))
	if pr.GenerateName != "$(tt.params.app)-release-" || pr.Name != "" {
		t.Errorf("metadata: name %q generateName %q, want generateName $(tt.params.app)-release-", pr.Name, pr.GenerateName)
	}
	if pr.Spec.PipelineRef == nil || pr.Spec.PipelineRef.Name != "canary-release" {
		t.Errorf("pipelineRef %+v, want name canary-release", pr.Spec.PipelineRef)
	}
	checkRunSettings(t, pr)
}

// checkRunSettings checks what every canaryline PipelineRun needs: the ServiceAccount, the timeouts, the evidence
// workspace on a small volume claim template.
func checkRunSettings(t *testing.T, pr *pipelinev1.PipelineRun) {
	t.Helper()
	if pr.Spec.TaskRunTemplate.ServiceAccountName != pipelineSA {
		t.Errorf("taskRunTemplate.serviceAccountName %q, want %s", pr.Spec.TaskRunTemplate.ServiceAccountName, pipelineSA)
	}
	to := pr.Spec.Timeouts
	if to == nil || to.Pipeline == nil || to.Pipeline.Duration.String() != "1h0m0s" || to.Finally == nil ||
		to.Finally.Duration.String() != "15m0s" {
		t.Errorf("timeouts %+v, want pipeline 1h and finally 15m", to)
	}
	var evidence *pipelinev1.WorkspaceBinding
	for i := range pr.Spec.Workspaces {
		if pr.Spec.Workspaces[i].Name == "evidence" {
			evidence = &pr.Spec.Workspaces[i]
		}
	}
	if evidence == nil || evidence.VolumeClaimTemplate == nil {
		t.Fatalf("workspaces %+v: want evidence on a volumeClaimTemplate", pr.Spec.Workspaces)
	}
	if got := evidence.VolumeClaimTemplate.Spec.Resources.Requests.Storage().String(); got != "100Mi" {
		t.Errorf("evidence volume claim requests %s, want 100Mi", got)
	}
}

// pipelines loads pipelines/*.yaml by name; it skips the test when there are none yet.
func pipelines(t *testing.T) map[string]*pipelinev1.Pipeline {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "pipelines", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skip("pipelines/ has no *.yaml yet: cannot check the referenced Pipeline and its params")
	}
	out := map[string]*pipelinev1.Pipeline{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p := &pipelinev1.Pipeline{}
		if err := yaml.Unmarshal(data, p); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if p.Kind == "Pipeline" {
			out[p.Name] = p
		}
	}
	return out
}

// pipelineName returns the Pipeline a PipelineRun runs: by name, or by the cluster resolver's name param.
func pipelineName(t *testing.T, pr *pipelinev1.PipelineRun) string {
	t.Helper()
	ref := pr.Spec.PipelineRef
	if ref == nil {
		t.Fatal("no pipelineRef")
	}
	if ref.Resolver == "" {
		return ref.Name
	}
	if ref.Resolver != "cluster" {
		t.Fatalf("pipelineRef resolver %q: only the cluster resolver is expected", ref.Resolver)
	}
	params := map[string]string{}
	for _, p := range ref.Params {
		params[p.Name] = p.Value.StringVal
	}
	if params["kind"] != "pipeline" {
		t.Errorf("cluster resolver kind %q, want pipeline", params["kind"])
	}
	if params["namespace"] == "" {
		t.Error("cluster resolver needs a namespace param")
	}
	return params["name"]
}

func TestPipelineRunsMatchPipelines(t *testing.T) {
	docs := loadAll(t)
	runs := map[string]*pipelinev1.PipelineRun{
		"triggers/template.yaml":      templatePipelineRun(t, triggerTemplate(t, docs)),
		".tekton/canary-release.yaml": pacPipelineRun(t, docs),
	}
	ps := pipelines(t)
	for where, pr := range runs {
		name := pipelineName(t, pr)
		p, ok := ps[name]
		if !ok {
			t.Errorf("%s: Pipeline %q is not in pipelines/ (have %v)", where, name, slices.Sorted(maps.Keys(ps)))
			continue
		}
		declared := map[string]bool{}
		for _, ps := range p.Spec.Params {
			declared[ps.Name] = true
		}
		for _, param := range pr.Spec.Params {
			if !declared[param.Name] {
				t.Errorf("%s: param %s is not declared by Pipeline %s", where, param.Name, name)
			}
		}
		for _, ps := range p.Spec.Params {
			if ps.Default == nil && !slices.ContainsFunc(pr.Spec.Params, func(x pipelinev1.Param) bool { return x.Name == ps.Name }) {
				t.Errorf("%s: Pipeline %s param %s has no default and is not passed", where, name, ps.Name)
			}
		}
		workspaces := map[string]bool{}
		for _, w := range p.Spec.Workspaces {
			workspaces[w.Name] = true
		}
		for _, w := range pr.Spec.Workspaces {
			if !workspaces[w.Name] {
				t.Errorf("%s: workspace %s is not declared by Pipeline %s", where, w.Name, name)
			}
		}
	}
}

// findInterceptor returns the trigger's interceptor that refers to the named ClusterInterceptor, and its index.
func findInterceptor(t *testing.T, tr triggersv1.EventListenerTrigger, name string) (*triggersv1.TriggerInterceptor, int) {
	t.Helper()
	for i, ic := range tr.Interceptors {
		if ic.Ref.Name == name {
			if ic.Ref.Kind != triggersv1.ClusterInterceptorKind {
				t.Errorf("trigger %s: interceptor %s has kind %q, want ClusterInterceptor", tr.Name, name, ic.Ref.Kind)
			}
			return ic, i
		}
	}
	t.Fatalf("trigger %s has no %s interceptor", tr.Name, name)
	return nil, -1
}

// webhookInterceptor is the params of Triggers' github and gitlab interceptors that the manifests use.
type webhookInterceptor struct {
	SecretRef  *triggersv1.SecretRef
	EventTypes []string
}

func checkWebhookInterceptor(t *testing.T, el *triggersv1.EventListener, provider, secret string, events []string) {
	t.Helper()
	if el.Spec.ServiceAccountName != triggersSA {
		t.Errorf("%s: serviceAccountName %q, want %s", el.Name, el.Spec.ServiceAccountName, triggersSA)
	}
	if len(el.Spec.Triggers) != 1 {
		t.Fatalf("%s: want one trigger, got %d", el.Name, len(el.Spec.Triggers))
	}
	tr := el.Spec.Triggers[0]
	ic, idx := findInterceptor(t, tr, provider)
	if idx != 0 {
		t.Errorf("%s: the %s interceptor must come first, so nothing runs on an unverified payload", el.Name, provider)
	}
	params := interceptorParams(t, ic)
	for name := range params {
		if name != "secretRef" && name != "eventTypes" {
			t.Errorf("%s: unexpected %s interceptor param %s", el.Name, provider, name)
		}
	}
	var got webhookInterceptor
	raw, ok := params["secretRef"]
	if !ok {
		t.Fatalf("%s: the %s interceptor has no secretRef: any request would be accepted", el.Name, provider)
	}
	got.SecretRef = &triggersv1.SecretRef{}
	decodeStrict(t, el.Name+" secretRef", raw, got.SecretRef)
	decodeStrict(t, el.Name+" eventTypes", params["eventTypes"], &got.EventTypes)
	if got.SecretRef.SecretName != secret || got.SecretRef.SecretKey != webhookSecretKey {
		t.Errorf("%s: secretRef %+v, want secretName %s secretKey %s", el.Name, *got.SecretRef, secret, webhookSecretKey)
	}
	if !slices.Equal(got.EventTypes, events) {
		t.Errorf("%s: eventTypes %q, want %q", el.Name, got.EventTypes, events)
	}
}

func TestGitHubInterceptor(t *testing.T) {
	checkWebhookInterceptor(t, eventListener(t, loadAll(t), "canaryline-github"), "github", githubSecret, []string{"push"})
}

func TestGitLabInterceptor(t *testing.T) {
	checkWebhookInterceptor(t, eventListener(t, loadAll(t), "canaryline-gitlab"), "gitlab", gitlabSecret, []string{"Push Hook"})
}

// celParams is the params of Triggers' cel interceptor.
type celParams struct {
	Filter   string `json:"filter"`
	Overlays []struct {
		Key        string `json:"key"`
		Expression string `json:"expression"`
	} `json:"overlays"`
}

func celInterceptor(t *testing.T, el *triggersv1.EventListener) celParams {
	t.Helper()
	ic, _ := findInterceptor(t, el.Spec.Triggers[0], "cel")
	params := interceptorParams(t, ic)
	var p celParams
	if raw, ok := params["filter"]; ok {
		decodeStrict(t, el.Name+" filter", raw, &p.Filter)
	}
	if raw, ok := params["overlays"]; ok {
		decodeStrict(t, el.Name+" overlays", raw, &p.Overlays)
	}
	for name := range params {
		if name != "filter" && name != "overlays" {
			t.Errorf("%s: unexpected cel interceptor param %s", el.Name, name)
		}
	}
	if !strings.Contains(p.Filter, "refs/heads/") {
		t.Errorf("%s: the CEL filter %q does not filter on a branch (refs/heads/...)", el.Name, p.Filter)
	}
	return p
}

// celEnv mirrors the environment of Triggers' cel interceptor (pkg/interceptors/cel makeCelEnv): the variables
// body, header, extensions and requestURL and cel-go's extension libraries. Triggers' own functions (match,
// truncate, compareSecret, parseJSON...) are left out: an expression using them fails here, on purpose, until
// this environment grows them.
func celEnv(t *testing.T) *cel.Env {
	t.Helper()
	mapStrDyn := cel.MapType(cel.StringType, cel.DynType)
	env, err := cel.NewEnv(celext.Strings(), celext.Encoders(), celext.Sets(), celext.Lists(), celext.Math(),
		cel.Variable("body", mapStrDyn), cel.Variable("header", mapStrDyn),
		cel.Variable("extensions", mapStrDyn), cel.Variable("requestURL", cel.StringType))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func evalCEL(t *testing.T, env *cel.Env, expr, body string) any {
	t.Helper()
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		t.Fatalf("CEL %q does not compile: %v", expr, iss.Err())
	}
	prg, err := env.Program(ast)
	if err != nil {
		t.Fatal(err)
	}
	var b map[string]any
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatal(err)
	}
	out, _, err := prg.Eval(map[string]any{"body": b, "header": map[string][]string{}, "extensions": map[string]any{},
		"requestURL": "http://el-canaryline:8080"})
	if err != nil {
		t.Fatalf("CEL %q: %v", expr, err)
	}
	if out.Type() == types.BoolType || out.Type() == types.StringType {
		return out.Value()
	}
	t.Fatalf("CEL %q returned %v (%s), want a bool or a string", expr, out, out.Type())
	return nil
}

func githubPush(ref, after string) string {
	return fmt.Sprintf(`{"ref": %q, "before": "1111111111111111111111111111111111111111", "after": %q,
		"deleted": %t, "repository": {"clone_url": "https://github.com/acme/my-app.git"},
		"pusher": {"name": "octocat", "email": "octocat@example.com"},
		"head_commit": {"id": %q, "message": "Fix the checkout", "author": {"name": "Mona", "email": "mona@example.com"}}}`,
		ref, after, after == zeroSHA, after)
}

func TestGitHubCELFilter(t *testing.T) {
	p := celInterceptor(t, eventListener(t, loadAll(t), "canaryline-github"))
	env := celEnv(t)
	sha := "8f6c3b2a1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a"
	for _, tc := range []struct {
		name string
		body string
		want bool
	}{
		{"push to main", githubPush("refs/heads/main", sha), true},
		{"push to a feature branch", githubPush("refs/heads/feature", sha), false},
		{"branch named like main", githubPush("refs/heads/main-old", sha), false},
		{"tag", githubPush("refs/tags/main", sha), false},
		{"main deleted", githubPush("refs/heads/main", zeroSHA), false},
	} {
		if got := evalCEL(t, env, p.Filter, tc.body); got != tc.want {
			t.Errorf("%s: filter = %v, want %v", tc.name, got, tc.want)
		}
	}
	if len(p.Overlays) != 0 {
		t.Errorf("unexpected overlays %+v: the GitHub binding reads head_commit directly", p.Overlays)
	}
}

func gitlabPush(ref, after string, commits ...[3]string) string {
	var cs []string
	for _, c := range commits {
		cs = append(cs, fmt.Sprintf(`{"id": %q, "message": %q, "author": {"name": %q, "email": "dev@example.com"}}`,
			c[0], c[1], c[2]))
	}
	checkout := after
	if after == zeroSHA {
		checkout = ""
	}
	return fmt.Sprintf(`{"object_kind": "push", "ref": %q, "before": "1111111111111111111111111111111111111111",
		"after": %q, "checkout_sha": %q, "user_username": "jsmith",
		"project": {"git_http_url": "https://gitlab.example.com/acme/my-app.git"}, "commits": [%s]}`,
		ref, after, checkout, strings.Join(cs, ","))
}

func TestGitLabCELFilterAndOverlays(t *testing.T) {
	docs := loadAll(t)
	el := eventListener(t, docs, "canaryline-gitlab")
	p := celInterceptor(t, el)
	env := celEnv(t)
	head := "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
	old := "b6568db1bc1dcd7f8b4d5a946b0b91f9dacd7327"
	headCommit := [3]string{head, "Fix the checkout\n", "Jordi"}
	oldCommit := [3]string{old, "Update the translation\n", "Ann"}

	for _, tc := range []struct {
		name string
		body string
		want bool
	}{
		{"push to main", gitlabPush("refs/heads/main", head, oldCommit, headCommit), true},
		{"push to a feature branch", gitlabPush("refs/heads/feature", head, headCommit), false},
		{"tag", gitlabPush("refs/tags/v1", head, headCommit), false},
		{"main deleted", gitlabPush("refs/heads/main", zeroSHA), false},
	} {
		if got := evalCEL(t, env, p.Filter, tc.body); got != tc.want {
			t.Errorf("%s: filter = %v, want %v", tc.name, got, tc.want)
		}
	}

	overlays := map[string]string{}
	for _, o := range p.Overlays {
		overlays[o.Key] = o.Expression
	}
	// The head commit is found by checkout_sha whatever the order of commits (GitLab's order has varied), and a
	// push whose head commit is not listed still gets values.
	for _, tc := range []struct {
		name                string
		body                string
		wantMsg, wantAuthor string
	}{
		{"oldest first", gitlabPush("refs/heads/main", head, oldCommit, headCommit), "Fix the checkout\n", "Jordi <dev@example.com>"},
		{"newest first", gitlabPush("refs/heads/main", head, headCommit, oldCommit), "Fix the checkout\n", "Jordi <dev@example.com>"},
		{"head not listed", gitlabPush("refs/heads/main", head, oldCommit), "", "jsmith"},
	} {
		if got := evalCEL(t, env, overlays["git_message"], tc.body); got != tc.wantMsg {
			t.Errorf("%s: git_message = %q, want %q", tc.name, got, tc.wantMsg)
		}
		if got := evalCEL(t, env, overlays["git_author"], tc.body); got != tc.wantAuthor {
			t.Errorf("%s: git_author = %q, want %q", tc.name, got, tc.wantAuthor)
		}
	}

	// Every $(extensions.x) the GitLab binding reads is an overlay.
	tb := triggerBinding(t, docs, "canaryline-gitlab-push")
	ext := regexp.MustCompile(`\$\(extensions\.([A-Za-z0-9_]+)\)`)
	for _, param := range tb.Spec.Params {
		for _, m := range ext.FindAllStringSubmatch(param.Value, -1) {
			if _, ok := overlays[m[1]]; !ok {
				t.Errorf("binding param %s reads $(extensions.%s), which no overlay sets", param.Name, m[1])
			}
		}
	}
}

// bindingPath matches the $(body.x.y) paths of a binding.
var bindingPath = regexp.MustCompile(`\$\(body\.([A-Za-z0-9_.\[\]]+)\)`)

// lookup follows a dotted path through decoded JSON.
func lookup(v any, path string) (any, bool) {
	for _, part := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[part]; !ok {
			return nil, false
		}
	}
	return v, true
}

func TestBindingsReadPayloadFields(t *testing.T) {
	docs := loadAll(t)
	sha := "8f6c3b2a1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a"
	for _, tc := range []struct {
		binding, body string
	}{
		{"canaryline-github-push", githubPush("refs/heads/main", sha)},
		{"canaryline-gitlab-push", gitlabPush("refs/heads/main", sha, [3]string{sha, "m", "a"})},
	} {
		var body any
		if err := json.Unmarshal([]byte(tc.body), &body); err != nil {
			t.Fatal(err)
		}
		tb := triggerBinding(t, docs, tc.binding)
		for _, p := range tb.Spec.Params {
			for _, m := range bindingPath.FindAllStringSubmatch(p.Value, -1) {
				if v, ok := lookup(body, m[1]); !ok || v == nil {
					t.Errorf("%s: param %s reads body.%s, which a push payload does not have", tc.binding, p.Name, m[1])
				}
			}
		}
		got := map[string]string{}
		for _, p := range tb.Spec.Params {
			got[p.Name] = p.Value
		}
		if !strings.HasPrefix(got["git-revision"], "$(body.") {
			t.Errorf("%s: git-revision %q must come from the payload", tc.binding, got["git-revision"])
		}
	}
}

// signature256 computes GitHub's X-Hub-Signature-256 header: "sha256=" and the lowercase hex HMAC-SHA256 of the
// raw request body, keyed with the webhook secret. The key is the webhook's "Secret" field on GitHub, and the same
// string must be in the Secret canaryline-github-webhook under the key "secret".
func signature256(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// verify256 is the check the github interceptor makes: the header's HMAC equals the body's, in constant time.
func verify256(secret, body []byte, header string) bool {
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

func TestGitHubSignatureScheme(t *testing.T) {
	// GitHub's documented test values ("Validating webhook deliveries").
	if got, want := signature256([]byte("It's a Secret to Everybody"), []byte("Hello, World!")),
		"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"; got != want {
		t.Fatalf("signature %s, want GitHub's documented %s", got, want)
	}

	secret := []byte("0123456789abcdef0123456789abcdef01234567")
	body := []byte(githubPush("refs/heads/main", "8f6c3b2a1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a"))
	sig := signature256(secret, body)
	if !regexp.MustCompile(`^sha256=[0-9a-f]{64}$`).MatchString(sig) {
		t.Fatalf("X-Hub-Signature-256 %q is not sha256=<64 lowercase hex digits>", sig)
	}
	if !verify256(secret, body, sig) {
		t.Error("a correctly signed body does not verify")
	}
	tampered := bytes.Replace(body, []byte("refs/heads/main"), []byte("refs/heads/evil"), 1)
	if verify256(secret, tampered, sig) {
		t.Error("a changed body verifies")
	}
	if verify256([]byte("another secret"), body, sig) {
		t.Error("a body signed with another secret verifies")
	}
	// The legacy SHA-1 header (X-Hub-Signature: sha1=...) is not what the interceptor reads.
	if verify256(secret, body, strings.Replace(sig, "sha256=", "sha1=", 1)) {
		t.Error("a sha1= header verifies")
	}

	// The EventListener points at the Secret and key this scheme is keyed with, and says so for whoever wires the
	// webhook.
	el := eventListener(t, loadAll(t), "canaryline-github")
	ic, _ := findInterceptor(t, el.Spec.Triggers[0], "github")
	var ref triggersv1.SecretRef
	decodeStrict(t, "secretRef", interceptorParams(t, ic)["secretRef"], &ref)
	if ref.SecretName != githubSecret || ref.SecretKey != webhookSecretKey {
		t.Errorf("secretRef %+v, want %s/%s", ref, githubSecret, webhookSecretKey)
	}
	data, err := os.ReadFile(filepath.Join(root, "triggers/github/eventlistener.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("X-Hub-Signature-256")) {
		t.Error("github/eventlistener.yaml should tell how the webhook is signed (X-Hub-Signature-256)")
	}
}

// scriptKey matches a script: field anywhere in a YAML file.
var scriptKey = regexp.MustCompile(`(?m)^[\s-]*"?script"?\s*:`)

func TestNoScripts(t *testing.T) {
	for _, file := range manifestFiles(t) {
		data, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		if loc := scriptKey.FindIndex(data); loc != nil {
			t.Errorf("%s: has a script: field (line %d); params reach steps through env only", file,
				bytes.Count(data[:loc[0]], []byte("\n"))+1)
		}
	}
}

// pacVariables are the Pipelines-as-Code dynamic variables for a push (an unknown one silently gives no run).
var pacVariables = map[string]bool{"repo_owner": true, "repo_name": true, "repo_url": true, "revision": true,
	"sender": true, "source_branch": true, "target_branch": true, "target_namespace": true, "event": true,
	"event_type": true, "git_auth_secret": true, "source_url": true, "git_tag": true}

var pacVariable = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_.\[\]'"-]+)\s*\}\}`)

func TestPipelinesAsCode(t *testing.T) {
	pr := pacPipelineRun(t, loadAll(t))
	for k, v := range map[string]string{
		"pipelinesascode.tekton.dev/on-event":         "[push]",
		"pipelinesascode.tekton.dev/on-target-branch": "[main]",
		"pipelinesascode.tekton.dev/max-keep-runs":    "5",
	} {
		if got := pr.Annotations[k]; got != v {
			t.Errorf("annotation %s = %q, want %q", k, got, v)
		}
	}
	if pr.Name == "" {
		t.Error("the PipelineRun needs a name (Pipelines-as-Code turns it into a generateName)")
	}
	if name := pipelineName(t, pr); name != "canary-release" {
		t.Errorf("runs Pipeline %q, want canary-release", name)
	}
	// A bare pipelineRef name is resolved by Pipelines-as-Code from .tekton/ only, and fails the run otherwise.
	if pr.Spec.PipelineRef.Resolver == "" {
		t.Error("pipelineRef needs a resolver: Pipelines-as-Code cannot find a Pipeline that is not in .tekton/")
	}

	data, err := os.ReadFile(filepath.Join(root, ".tekton/canary-release.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, m := range pacVariable.FindAllSubmatch(data, -1) {
		name := string(m[1])
		used[name] = true
		if !pacVariables[name] {
			t.Errorf("unknown Pipelines-as-Code variable {{ %s }}", name)
		}
	}
	for _, v := range []string{"revision", "repo_url", "target_branch", "sender"} {
		if !used[v] {
			t.Errorf("does not use {{ %s }}", v)
		}
	}
	params := map[string]string{}
	for _, p := range pr.Spec.Params {
		params[p.Name] = p.Value.StringVal
	}
	for name, want := range map[string]string{"git-revision": "revision", "git-url": "repo_url",
		"git-branch": "target_branch", "git-author": "sender"} {
		if m := pacVariable.FindStringSubmatch(params[name]); m == nil || m[1] != want {
			t.Errorf("param %s = %q, want {{ %s }}", name, params[name], want)
		}
	}
	for _, name := range []string{"app", "build-config"} {
		if params[name] == "" {
			t.Errorf("param %s: give an example value", name)
		}
	}
	checkRunSettings(t, pr)
}

// grants lists "group/resource verb" for every verb a set of rules grants.
func grants(rules []rbacv1.PolicyRule) map[string]bool {
	out := map[string]bool{}
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out[g+"/"+res+" "+v] = true
				}
			}
		}
	}
	return out
}

// moduleDir is the directory of a module in go.mod, in the module cache.
func moduleDir(t *testing.T, module string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go list -m %s: %v", module, err)
	}
	return strings.TrimSpace(string(out))
}

// eventListenerClusterRole is Tekton Triggers' ClusterRole for EventListeners (config/200-clusterrole.yaml).
func eventListenerClusterRole(t *testing.T, name string) *rbacv1.ClusterRole {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(moduleDir(t, "github.com/tektoncd/triggers"), "config", "200-clusterrole.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	raws, err := splitDocs(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range raws {
		cr := &rbacv1.ClusterRole{}
		if err := yaml.Unmarshal(raw, cr); err != nil {
			t.Fatal(err)
		}
		if cr.Kind == "ClusterRole" && cr.Name == name {
			return cr
		}
	}
	t.Fatalf("tektoncd/triggers config/200-clusterrole.yaml has no ClusterRole %s", name)
	return nil
}

// tektonServes reports whether Tekton Pipelines (go.mod's version) has a CRD for tekton.dev/resource.
func tektonServes(t *testing.T, resource string) bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(moduleDir(t, "github.com/tektoncd/pipeline"), "config", "300-crds", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no CRDs in tektoncd/pipeline config/300-crds")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte("name: "+resource+".tekton.dev\n")) {
			return true
		}
	}
	return false
}

// TestRBAC: the EventListeners' ServiceAccount is bound in its namespace to a Role with the rules of Tekton
// Triggers' tekton-triggers-eventlistener-roles (read from the Triggers module), except those on tekton.dev
// resources that Tekton Pipelines no longer serves, which a project admin cannot grant. The subject has no
// namespace, so the binding holds in whichever namespace `oc apply -n` puts it. The cluster-scoped binding is a
// command for the cluster admin in kustomization.yaml, not a manifest.
func TestRBAC(t *testing.T) {
	docs := loadAll(t)
	sas, _ := only[*corev1.ServiceAccount](docs)
	if len(sas) != 1 || sas[0].Name != triggersSA {
		t.Fatalf("ServiceAccounts %v, want one named %s", sas, triggersSA)
	}
	roles, _ := only[*rbacv1.Role](docs)
	if len(roles) != 1 {
		t.Fatalf("want one Role, got %d", len(roles))
	}
	upstream := eventListenerClusterRole(t, "tekton-triggers-eventlistener-roles")
	want, got := grants(upstream.Rules), grants(roles[0].Rules)
	for g := range want {
		group, rest, _ := strings.Cut(g, "/")
		resource, _, _ := strings.Cut(rest, " ")
		if group == "tekton.dev" && !tektonServes(t, resource) {
			if got[g] {
				t.Errorf("Role %s grants %s, which Tekton Pipelines no longer serves", roles[0].Name, g)
			}
			delete(want, g)
			continue
		}
		if !got[g] {
			t.Errorf("Role %s lacks %s, which %s grants", roles[0].Name, g, upstream.Name)
		}
	}
	for g := range got {
		if !want[g] {
			t.Errorf("Role %s grants %s, which %s does not", roles[0].Name, g, upstream.Name)
		}
	}
	rbs, _ := only[*rbacv1.RoleBinding](docs)
	if len(rbs) != 1 || rbs[0].RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: roles[0].Name}) ||
		len(rbs[0].Subjects) != 1 || rbs[0].Subjects[0] != (rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: triggersSA}) {
		t.Errorf("want one RoleBinding of %s (no namespace: the binding's) to Role %s, got %+v", triggersSA, roles[0].Name, rbs)
	}
	els, _ := only[*triggersv1.EventListener](docs)
	for _, el := range els {
		if el.Spec.ServiceAccountName != triggersSA {
			t.Errorf("EventListener %s runs as %q, want %s", el.Name, el.Spec.ServiceAccountName, triggersSA)
		}
	}

	// The cluster admin's command.
	data, err := os.ReadFile(filepath.Join(root, "triggers", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := regexp.MustCompile(`(?m)^#\s+(oc create clusterrolebinding .*)$`).FindSubmatch(data)
	wantCmd := "oc create clusterrolebinding canaryline-triggers-NAMESPACE --clusterrole=tekton-triggers-eventlistener-clusterroles --serviceaccount=NAMESPACE:" + triggersSA
	if cmd == nil || string(cmd[1]) != wantCmd {
		t.Errorf("kustomization.yaml: want the cluster admin's command\n  %s", wantCmd)
	}
	eventListenerClusterRole(t, "tekton-triggers-eventlistener-clusterroles") // the command binds a ClusterRole Triggers installs
}

// TestKustomization: kustomization.yaml lists every manifest under triggers/, once, and sets no namespace, so that
// kustomize builds every object without one and `oc apply -k triggers -n NAMESPACE` places them all.
func TestKustomization(t *testing.T) {
	docs := loadAll(t)
	ks, _ := only[*kustomization](docs)
	if len(ks) != 1 {
		t.Fatalf("want one kustomization.yaml, got %d", len(ks))
	}
	k := ks[0]
	var want []string
	for _, f := range manifestFiles(t) {
		if rest, ok := strings.CutPrefix(f, "triggers/"); ok && rest != "kustomization.yaml" {
			want = append(want, rest)
		}
	}
	got := slices.Clone(k.Resources)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("resources %v, want %v", got, want)
	}

	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(root, "triggers"))
	if err != nil {
		t.Fatalf("kustomize build triggers/: %v", err)
	}
	if n := len(m.Resources()); n != len(docs)-2 { // all but the Kustomization and the .tekton PipelineRun
		t.Errorf("kustomize built %d objects, want %d", n, len(docs)-2)
	}
	for _, r := range m.Resources() {
		if r.GetNamespace() != "" {
			t.Errorf("built %s %s in namespace %q; want none, for oc apply -n", r.GetKind(), r.GetName(), r.GetNamespace())
		}
	}
}
