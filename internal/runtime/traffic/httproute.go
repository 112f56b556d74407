package traffic

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// httpRouteGVR is the Gateway API HTTPRoute resource.
var httpRouteGVR = schema.GroupVersionResource{Group: gatewayv1.GroupName, Version: "v1", Resource: "httproutes"}

// httpRouteKind is a Gateway API HTTPRoute: every rule whose backendRefs go to the stable Service gets weighted
// backendRefs to the stable, canary (and baseline) Services.
//
// The object is read with the dynamic client and converted to the typed HTTPRoute to find the rules; only the
// backendRefs of those rules (and the release annotations) are written back into the unstructured object, so
// fields this version of the Gateway API types does not know survive the update.
var httpRouteKind = &listKind{
	kind: KindHTTPRoute, object: "HTTPRoute", gvr: httpRouteGVR, path: []string{"spec", "rules"}, field: "backendRefs",
	entry:    func(i int) string { return fmt.Sprintf("rule %d", i) },
	entries:  "rules",
	read:     readHTTPRoute,
	itemRole: httpRouteItemRole,
	notFound: func(ns, name string, b Backends) error {
		return checkErrorf(fmt.Sprintf("create it (the Gateway API CRDs must be installed) with a rule whose backendRefs go to Service %s, "+
			"or set ROUTER_NAME to the HTTPRoute that serves the application", b.Stable),
			"HTTPRoute %s/%s does not exist", ns, name)
	},
	routing: httpRouteRouting,
	legacy:  func(s *listSnapshot) []savedList { return s.Rules },
}

// newHTTPRoute is the router of the HTTPRoute name.
func newHTTPRoute(name string, c Clients) *listRouter {
	return &listRouter{name: name, c: c, kind: httpRouteKind}
}

// httpRouteObject is an HTTPRoute as the typed Gateway API object, for the release b.
type httpRouteObject struct {
	hr *gatewayv1.HTTPRoute
	b  Backends
}

var _ listObject = httpRouteObject{}

// readHTTPRoute converts the stored HTTPRoute u to the typed Gateway API object.
func readHTTPRoute(u *unstructured.Unstructured, b Backends) (listObject, error) {
	var hr gatewayv1.HTTPRoute
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), &hr); err != nil {
		return nil, err
	}
	return httpRouteObject{hr: &hr, b: b}, nil
}

// entries is the number of rules.
func (o httpRouteObject) entries() (int, error) { return len(o.hr.Spec.Rules), nil }

// refs finds the release's backendRefs in rule i.
func (o httpRouteObject) refs(i int) (refIndexes, error) { return httpRouteRuleRefs(o.hr, i, o.b) }

// weight is backendRef j of rule i's weight; an unset weight is the Gateway API's default, 1.
func (o httpRouteObject) weight(i, j int) (int32, error) {
	if j < 0 {
		return -1, nil // missing
	}
	if w := o.hr.Spec.Rules[i].BackendRefs[j].Weight; w != nil {
		return *w, nil
	}
	return 1, nil
}

// backends builds the backendRefs of rule i for w (httpRouteBackendRefs).
func (o httpRouteObject) backends(items []any, i int, w Weights) ([]any, error) {
	return httpRouteBackendRefs(o.hr, items, i, o.b, w)
}

// verify: the Gateway API takes weights in any proportion.
func (o httpRouteObject) verify(int) error { return nil }

// warnings: the router splits every rule to the stable Service.
func (o httpRouteObject) warnings() []string { return nil }

// httpRouteRefRole says which of the release's Services a backendRef points at.
func httpRouteRefRole(ref gatewayv1.BackendObjectReference, b Backends) backendRole {
	if ref.Group != nil && *ref.Group != "" && *ref.Group != "core" {
		return backendOther
	}
	if ref.Kind != nil && *ref.Kind != "Service" {
		return backendOther
	}
	if ref.Namespace != nil && string(*ref.Namespace) != b.Namespace {
		return backendOther
	}
	return roleOfService(string(ref.Name), b)
}

// httpRouteRuleRefs finds the stable, canary and baseline backendRefs of one rule (-1: none). It fails when the
// rule goes to the stable Service together with another backend, or names one of the Services more than once:
// the release could not control the shares of such a rule.
func httpRouteRuleRefs(hr *gatewayv1.HTTPRoute, i int, b Backends) (refIndexes, error) {
	refs := hr.Spec.Rules[i].BackendRefs
	e, _ := sortRefs(len(refs), func(j int) (backendRole, string, error) {
		ref := refs[j].BackendObjectReference
		return httpRouteRefRole(ref, b), httpRouteRefString(ref), nil
	})
	switch {
	case e.stable < 0:
		return e.refIndexes, nil // not a rule of the release
	case e.dup != nil:
		return e.refIndexes, checkErrorf("leave one backendRef per Service in the rule before the release",
			"rule %d of HTTPRoute %s/%s has more than one backendRef to %s", i, hr.Namespace, hr.Name, e.dup)
	case len(e.others) > 0:
		return e.refIndexes, checkErrorf(fmt.Sprintf("make the rule send its traffic to Service %s alone before the release", b.Stable),
			"rule %d of HTTPRoute %s/%s sends traffic to %s besides the stable Service %s: the shares of a release could not be controlled",
			i, hr.Namespace, hr.Name, strings.Join(e.others, ", "), b.Stable)
	}
	return e.refIndexes, nil
}

func httpRouteRefString(ref gatewayv1.BackendObjectReference) string {
	kind := "Service"
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	s := kind + " " + string(ref.Name)
	if ref.Namespace != nil {
		s = kind + " " + string(*ref.Namespace) + "/" + string(ref.Name)
	}
	return s
}

// noStable is the CheckError for an HTTPRoute without a rule to the stable Service.
func (o httpRouteObject) noStable() error {
	return checkErrorf(fmt.Sprintf("add a backendRef to Service %s (port as the Service) to the rules that serve the application, "+
		"or set ROUTER_NAME to the HTTPRoute that does", o.b.Stable),
		"HTTPRoute %s/%s has no rule with a backendRef to the stable Service %s", o.hr.Namespace, o.hr.Name, o.b.Stable)
}

// httpRouteItemRole says which of the release's Services a backendRef, as stored, points at.
func httpRouteItemRole(b Backends) func(item any) backendRole {
	return func(item any) backendRole {
		m, ok := item.(map[string]any)
		if !ok {
			return backendOther
		}
		var ref gatewayv1.HTTPBackendRef
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &ref); err != nil {
			return backendOther
		}
		return httpRouteRefRole(ref.BackendObjectReference, b)
	}
}

// httpRouteBackendRefs builds the backendRefs of one stable rule for w: the stable ref as it is (with its filters
// and any field this version of the types does not know), then the canary and the baseline refs, kept as they are
// when the rule already has them, else new ones on the stable ref's port. Every weight is explicit, 0 included.
func httpRouteBackendRefs(hr *gatewayv1.HTTPRoute, uRefs []any, i int, b Backends, w Weights) ([]any, error) {
	idx, err := httpRouteRuleRefs(hr, i, b)
	if err != nil {
		return nil, err
	}
	stableRef := hr.Spec.Rules[i].BackendRefs[idx.stable]
	ref := func(j int, svc string, weight int32) (any, error) {
		if j >= 0 {
			m, ok := uRefs[j].(map[string]any)
			if !ok {
				return nil, fmt.Errorf("backendRef %d of rule %d is not an object", j, i)
			}
			m = runtime.DeepCopyJSON(m)
			m["weight"] = int64(weight)
			return m, nil
		}
		obj := stableRef.BackendObjectReference.DeepCopy()
		obj.Name = gatewayv1.ObjectName(svc)
		return runtime.DefaultUnstructuredConverter.ToUnstructured(&gatewayv1.HTTPBackendRef{
			BackendRef: gatewayv1.BackendRef{BackendObjectReference: *obj, Weight: &weight},
		})
	}
	var out []any
	for _, x := range []struct {
		j      int
		svc    string
		weight int32
	}{{idx.stable, b.Stable, w.Stable()}, {idx.canary, b.Canary, w.Canary}, {idx.baseline, b.Baseline, w.Baseline}} {
		if x.svc == "" {
			continue
		}
		v, err := ref(x.j, x.svc, x.weight)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
