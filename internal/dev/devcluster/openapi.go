package devcluster

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The OpenShift build and image APIs are aggregated APIs in OpenShift, not CRDs. For the local control plane they
// are served as CRDs whose structural schemas are generated from openshift/api's own OpenAPI definitions
// (openapi/openapi.json), so what the API server accepts, prunes and returns matches the Go types.

type oaSchema struct {
	Type                 string               `json:"type"`
	Format               string               `json:"format"`
	Ref                  string               `json:"$ref"`
	Properties           map[string]*oaSchema `json:"properties"`
	Items                *oaSchema            `json:"items"`
	AdditionalProperties json.RawMessage      `json:"additionalProperties"`
	Enum                 []any                `json:"enum"`
	AllOf                []*oaSchema          `json:"allOf"`
}

type openShiftKind struct {
	group, kind, plural, singular, list string
	statusSubresource                   bool
	shortNames                          []string
}

// Build and BuildConfig have no status subresource in OpenShift: status is written with Update
// (`oc cancel-build` sets status.cancelled that way). ImageStream has one.
var openShiftKinds = []openShiftKind{
	{"build.openshift.io", "BuildConfig", "buildconfigs", "buildconfig", "BuildConfigList", false, []string{"bc"}},
	{"build.openshift.io", "Build", "builds", "build", "BuildList", false, nil},
	{"image.openshift.io", "ImageStream", "imagestreams", "imagestream", "ImageStreamList", true, []string{"is"}},
}

func openShiftCRDs(openapiPath string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	data, err := os.ReadFile(openapiPath)
	if err != nil {
		return nil, fmt.Errorf("read openshift/api OpenAPI definitions: %w", err)
	}
	var doc struct {
		Definitions map[string]*oaSchema `json:"definitions"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode %s: %w", openapiPath, err)
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, k := range openShiftKinds {
		group := strings.TrimSuffix(k.group, ".openshift.io")
		def := "com.github.openshift.api." + group + ".v1." + k.kind
		root, ok := doc.Definitions[def]
		if !ok {
			return nil, fmt.Errorf("%s: no definition %s", openapiPath, def)
		}
		c := converter{defs: doc.Definitions, seen: map[string]bool{}}
		schema := apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"apiVersion": {Type: "string"}, "kind": {Type: "string"}, "metadata": {Type: "object"},
		}}
		for _, f := range []string{"spec", "status"} {
			if p, ok := root.Properties[f]; ok {
				schema.Properties[f] = c.convert(p)
			}
		}
		crd := &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: k.plural + "." + k.group,
				Annotations: map[string]string{"canaryline.dev/generated-from": OpenShiftAPI + " openapi/openapi.json " + def}},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: k.group, Scope: apiextensionsv1.NamespaceScoped,
				Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: k.kind, ListKind: k.list, Plural: k.plural,
					Singular: k.singular, ShortNames: k.shortNames},
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
					Name: "v1", Served: true, Storage: true,
					Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &schema},
				}},
			},
		}
		if k.statusSubresource {
			crd.Spec.Versions[0].Subresources = &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}}
		}
		out = append(out, crd)
	}
	return out, nil
}

type converter struct {
	defs map[string]*oaSchema
	seen map[string]bool // definitions on the current path, to cut recursion
}

var preserve = apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr(true)}

func ptr[T any](v T) *T { return &v }

// convert turns one OpenAPI v2 schema into a structural schema: refs inlined, apimachinery types mapped the way
// the API server serializes them, everything else kept by type.
func (c *converter) convert(s *oaSchema) apiextensionsv1.JSONSchemaProps {
	if s.Ref == "" && len(s.AllOf) == 1 {
		return c.convert(s.AllOf[0])
	}
	if s.Ref != "" {
		name := strings.TrimPrefix(s.Ref, "#/definitions/")
		switch name {
		case "io.k8s.apimachinery.pkg.apis.meta.v1.Time", "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime":
			return apiextensionsv1.JSONSchemaProps{Type: "string", Format: "date-time"}
		case "io.k8s.apimachinery.pkg.apis.meta.v1.Duration":
			return apiextensionsv1.JSONSchemaProps{Type: "string"}
		case "io.k8s.apimachinery.pkg.util.intstr.IntOrString", "io.k8s.apimachinery.pkg.api.resource.Quantity":
			return apiextensionsv1.JSONSchemaProps{XIntOrString: true}
		case "io.k8s.apimachinery.pkg.runtime.RawExtension", "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta":
			return preserve
		}
		def, ok := c.defs[name]
		if !ok || c.seen[name] {
			return preserve
		}
		c.seen[name] = true
		defer delete(c.seen, name)
		return c.convert(def)
	}
	if s.Format == "int-or-string" {
		return apiextensionsv1.JSONSchemaProps{XIntOrString: true}
	}
	switch s.Type {
	case "string", "boolean", "integer", "number":
		out := apiextensionsv1.JSONSchemaProps{Type: s.Type}
		switch s.Format {
		case "int32", "int64", "double", "float", "byte", "date-time":
			out.Format = s.Format
		}
		return out
	case "array":
		if s.Items == nil {
			return apiextensionsv1.JSONSchemaProps{Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &preserve}}
		}
		item := c.convert(s.Items)
		return apiextensionsv1.JSONSchemaProps{Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &item}}
	}
	if len(s.Properties) > 0 {
		out := apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{}}
		for name, p := range s.Properties {
			out.Properties[name] = c.convert(p)
		}
		return out
	}
	if len(s.AdditionalProperties) > 0 && string(s.AdditionalProperties) != "true" && string(s.AdditionalProperties) != "false" {
		var ap oaSchema
		if err := json.Unmarshal(s.AdditionalProperties, &ap); err == nil {
			v := c.convert(&ap)
			return apiextensionsv1.JSONSchemaProps{Type: "object", AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Allows: true, Schema: &v}}
		}
	}
	return preserve
}
