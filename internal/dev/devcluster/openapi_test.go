package devcluster

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	buildv1 "github.com/openshift/api/build/v1"
	imagev1 "github.com/openshift/api/image/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/randfill"
)

func generatedCRDs(t *testing.T) map[string]*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	dir, err := moduleDir(context.Background(), OpenShiftAPI)
	if err != nil {
		t.Fatal(err)
	}
	crds, err := openShiftCRDs(filepath.Join(dir, "openapi", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*apiextensionsv1.CustomResourceDefinition{}
	for _, c := range crds {
		out[c.Spec.Names.Kind] = c
	}
	return out
}

func structural(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) *structuralschema.Structural {
	t.Helper()
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, &internal, nil); err != nil {
		t.Fatal(err)
	}
	s, err := structuralschema.NewStructural(&internal)
	if err != nil {
		t.Fatalf("%s: not structural: %v", crd.Name, err)
	}
	if errs := structuralschema.ValidateStructural(field.NewPath("openAPIV3Schema"), s); len(errs) > 0 {
		t.Fatalf("%s: %v", crd.Name, errs.ToAggregate())
	}
	return s
}

// TestGeneratedSchemasKeepEveryField fills openshift/api objects with random values in every field, encodes them
// as the API server would receive them, and prunes them with the API server's own structural-schema code: a
// schema that did not match the Go types would drop fields.
func TestGeneratedSchemasKeepEveryField(t *testing.T) {
	t.Parallel()
	crds := generatedCRDs(t)
	if len(crds) != 3 {
		t.Fatalf("generated %d CRDs; want BuildConfig, Build, ImageStream", len(crds))
	}
	filler := randfill.New().NilChance(0).NumElements(1, 2).MaxDepth(12).Funcs(
		func(q *resource.Quantity, c randfill.Continue) { *q = resource.MustParse("250m") },
		func(x *intstr.IntOrString, c randfill.Continue) { *x = intstr.FromString("http") },
		func(r *runtime.RawExtension, c randfill.Continue) { r.Raw = []byte(`{"a":1}`) },
		func(m *metav1.ObjectMeta, c randfill.Continue) { m.Name = "x" },
		func(tm *metav1.Time, c randfill.Continue) { *tm = metav1.Unix(1700000000, 0) },
		func(tm **metav1.Time, c randfill.Continue) { v := metav1.Unix(1700000000, 0); *tm = &v },
	)
	for kind, newObj := range map[string]func() any{
		"BuildConfig": func() any { return &buildv1.BuildConfig{} },
		"Build":       func() any { return &buildv1.Build{} },
		"ImageStream": func() any { return &imagev1.ImageStream{} },
	} {
		s := structural(t, crds[kind])
		for i := range 20 {
			obj := newObj()
			filler.Fill(obj)
			data, err := json.Marshal(obj)
			if err != nil {
				t.Fatalf("%s: marshal: %v", kind, err)
			}
			var u map[string]any
			if err := json.Unmarshal(data, &u); err != nil {
				t.Fatal(err)
			}
			u["apiVersion"], u["kind"] = "x/v1", kind
			pruned := pruning.PruneWithOptions(u, s, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
			if pruned = withoutNewerKubeFields(pruned); len(pruned) > 0 {
				t.Fatalf("%s (round %d): the schema prunes fields the Go type has: %v", kind, i, pruned)
			}
		}
	}
}

// newerKubeFields are fields of k8s.io/api (v0.37, in go.mod) that the Kubernetes version behind openshift/api's
// OpenAPI definitions (1.34) does not have yet. The CRDs follow openshift/api, as an OpenShift API server would.
var newerKubeFields = []string{".configMap.defaultUser", ".secret.defaultUser"}

func withoutNewerKubeFields(paths []string) []string {
	var out []string
	for _, p := range paths {
		newer := false
		for _, f := range newerKubeFields {
			newer = newer || strings.HasSuffix(p, f)
		}
		if !newer {
			out = append(out, p)
		}
	}
	return out
}

func TestGeneratedSchemaShape(t *testing.T) {
	t.Parallel()
	crds := generatedCRDs(t)
	prop := func(kind string, path ...string) apiextensionsv1.JSONSchemaProps {
		s := *crds[kind].Spec.Versions[0].Schema.OpenAPIV3Schema
		for _, p := range path {
			next, ok := s.Properties[p]
			if !ok {
				t.Fatalf("%s: no property %s", kind, strings.Join(path, "."))
			}
			s = next
		}
		return s
	}
	for _, tc := range []struct {
		kind, typ, format string
		path              []string
	}{
		{"BuildConfig", "integer", "int64", []string{"status", "lastVersion"}},
		{"BuildConfig", "string", "", []string{"spec", "strategy", "sourceStrategy", "from", "name"}},
		{"Build", "string", "date-time", []string{"status", "completionTimestamp"}},
		{"Build", "string", "", []string{"status", "output", "to", "imageDigest"}},
		{"Build", "boolean", "", []string{"status", "cancelled"}},
		{"ImageStream", "array", "", []string{"status", "tags"}},
	} {
		got := prop(tc.kind, tc.path...)
		if got.Type != tc.typ || got.Format != tc.format {
			t.Errorf("%s %s: type %q format %q; want %q %q", tc.kind, strings.Join(tc.path, "."), got.Type, got.Format, tc.typ, tc.format)
		}
	}
	// OpenShift serves status of builds and build configs through the main resource; image streams have /status.
	for kind, want := range map[string]bool{"BuildConfig": false, "Build": false, "ImageStream": true} {
		sub := crds[kind].Spec.Versions[0].Subresources
		if got := sub != nil && sub.Status != nil; got != want {
			t.Errorf("%s status subresource %v; want %v", kind, got, want)
		}
	}
}

func TestOpenShiftAPIVersionMatchesGoMod(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Path}}@{{.Version}}", "github.com/openshift/api").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != OpenShiftAPI {
		t.Errorf("go.mod has %s, the CRDs come from %s: update OpenShiftAPI", got, OpenShiftAPI)
	}
}
