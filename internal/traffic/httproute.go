package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// httpRouteGVR is the Gateway API HTTPRoute resource.
var httpRouteGVR = schema.GroupVersionResource{Group: gatewayv1.GroupName, Version: "v1", Resource: "httproutes"}

// httpRoute is a Gateway API HTTPRoute: every rule whose backendRefs go to the stable Service gets weighted
// backendRefs to the stable, canary (and baseline) Services.
//
// The object is read with the dynamic client and converted to the typed HTTPRoute to find the rules; only the
// backendRefs of those rules (and the release annotations) are written back into the unstructured object, so
// fields this version of the Gateway API types does not know survive the update.
type httpRoute struct {
	name string
	c    Clients
}

var _ Router = (*httpRoute)(nil)

func (r *httpRoute) Kind() string { return KindHTTPRoute }

func (r *httpRoute) client(ns string) dynamic.ResourceInterface {
	return r.c.Dynamic.Resource(httpRouteGVR).Namespace(ns)
}

// get reads the HTTPRoute both as it is stored (to write back) and as the typed Gateway API object (to read).
func (r *httpRoute) get(ctx context.Context, ns string) (*unstructured.Unstructured, *gatewayv1.HTTPRoute, error) {
	u, err := r.client(ns).Get(ctx, r.name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("get HTTPRoute %s/%s: %w", ns, r.name, err)
	}
	var hr gatewayv1.HTTPRoute
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), &hr); err != nil {
		return nil, nil, fmt.Errorf("read HTTPRoute %s/%s: %w", ns, r.name, err)
	}
	return u, &hr, nil
}

func (r *httpRoute) Check(ctx context.Context, b Backends) error {
	if err := checkAnnotations(b); err != nil {
		return err
	}
	_, hr, err := r.get(ctx, b.Namespace)
	if apierrors.IsNotFound(err) {
		return checkErrorf(fmt.Sprintf("create it (the Gateway API CRDs must be installed) with a rule whose backendRefs go to Service %s, "+
			"or set ROUTER_NAME to the HTTPRoute that serves the application", b.Stable),
			"HTTPRoute %s/%s does not exist", b.Namespace, r.name)
	}
	if err != nil {
		return err
	}
	rules, err := httpRouteStableRules(hr, b)
	if err != nil || b.Marked(hr.Annotations) {
		return err
	}
	for _, i := range rules {
		if idx, _ := httpRouteRuleRefs(hr, i, b); idx.canary >= 0 || idx.baseline >= 0 {
			return unmarkedBackend(fmt.Sprintf("rule %d of HTTPRoute %s/%s", i, b.Namespace, r.name), idx, b)
		}
	}
	return nil
}

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
	idx := refIndexes{stable: -1, canary: -1, baseline: -1}
	var others []string
	var dup error
	for j, ref := range hr.Spec.Rules[i].BackendRefs {
		role := httpRouteRefRole(ref.BackendObjectReference, b)
		if role == backendOther {
			others = append(others, httpRouteRefString(ref.BackendObjectReference))
			continue
		}
		if err := idx.set(role, j); err != nil && dup == nil {
			dup = err
		}
	}
	if idx.stable < 0 {
		return idx, nil // not a rule of the release
	}
	if dup != nil {
		return idx, checkErrorf("leave one backendRef per Service in the rule before the release",
			"rule %d of HTTPRoute %s/%s has more than one backendRef to %s", i, hr.Namespace, hr.Name, dup)
	}
	if len(others) > 0 {
		return idx, checkErrorf(fmt.Sprintf("make the rule send its traffic to Service %s alone before the release", b.Stable),
			"rule %d of HTTPRoute %s/%s sends traffic to %s besides the stable Service %s: the shares of a release could not be controlled",
			i, hr.Namespace, hr.Name, strings.Join(others, ", "), b.Stable)
	}
	return idx, nil
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

// httpRouteStableRules returns the indexes of the rules that send traffic to the stable Service, or a
// CheckError when there is none or one cannot be split.
func httpRouteStableRules(hr *gatewayv1.HTTPRoute, b Backends) ([]int, error) {
	var rules []int
	for i := range hr.Spec.Rules {
		idx, err := httpRouteRuleRefs(hr, i, b)
		if err != nil {
			return nil, err
		}
		if idx.stable >= 0 {
			rules = append(rules, i)
		}
	}
	if len(rules) == 0 {
		return nil, checkErrorf(fmt.Sprintf("add a backendRef to Service %s (port as the Service) to the rules that serve the application, "+
			"or set ROUTER_NAME to the HTTPRoute that does", b.Stable),
			"HTTPRoute %s/%s has no rule with a backendRef to the stable Service %s", hr.Namespace, hr.Name, b.Stable)
	}
	return rules, nil
}

// httpRouteSnapshot is what the release changes on an HTTPRoute.
type httpRouteSnapshot struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Stable are the backendRefs to the stable Service before the release, as stored: Restore finds them again by
	// their content, never by their position, and puts their weights back.
	Stable []any `json:"stable,omitempty"`
	// Rules are what releases recorded before saved instead: the backendRefs of the rules that went to the stable
	// Service, by position. Restore reads only the backendRefs to the stable Service in them.
	Rules []savedList `json:"rules,omitempty"`
	// Annotations are the release annotations' keys the object already had, with their values.
	Annotations map[string]string `json:"annotations,omitempty"`
}

func (r *httpRoute) Snapshot(ctx context.Context, b Backends) (string, error) {
	u, hr, err := r.get(ctx, b.Namespace)
	if err != nil {
		return "", err
	}
	rules, err := httpRouteStableRules(hr, b)
	if err != nil {
		return "", err
	}
	uRules, _, err := unstructured.NestedSlice(u.Object, "spec", "rules")
	if err != nil {
		return "", fmt.Errorf("read HTTPRoute %s/%s: %w", b.Namespace, r.name, err)
	}
	s := httpRouteSnapshot{Kind: KindHTTPRoute, Name: r.name, Annotations: annotationsBeforeRelease(u.GetAnnotations(), b.Annotations)}
	for _, i := range rules {
		refs, err := unstructuredRuleSlice(uRules, i, "backendRefs")
		if err != nil {
			return "", fmt.Errorf("read HTTPRoute %s/%s: %w", b.Namespace, r.name, err)
		}
		s.Stable = appendStable(s.Stable, refs, httpRouteItemRole(b))
	}
	data, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("encode the HTTPRoute snapshot: %w", err)
	}
	return string(data), nil
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

func (r *httpRoute) SetWeights(ctx context.Context, b Backends, w Weights) (Applied, error) {
	if err := weightsFit(b, w); err != nil {
		return Applied{}, err
	}
	stored, err := setLists(ctx, r.client(b.Namespace), "HTTPRoute "+b.Namespace+"/"+r.name, r.name, []string{"spec", "rules"}, "backendRefs",
		b.Annotations, func(u *unstructured.Unstructured) ([]int, func([]any, int) ([]any, error), error) {
			var hr gatewayv1.HTTPRoute
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), &hr); err != nil {
				return nil, nil, fmt.Errorf("read HTTPRoute %s/%s: %w", b.Namespace, r.name, err)
			}
			rules, err := httpRouteStableRules(&hr, b)
			return rules, func(refs []any, i int) ([]any, error) { return httpRouteBackendRefs(&hr, refs, i, b, w) }, err
		})
	if err != nil {
		return Applied{}, err
	}
	return r.readBack(b, w, stored)
}

// readBack checks that every stable rule of the HTTPRoute as stored (the update's answer) holds the weights of w.
func (r *httpRoute) readBack(b Backends, w Weights, u *unstructured.Unstructured) (Applied, error) {
	var hr gatewayv1.HTTPRoute
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), &hr); err != nil {
		return Applied{}, readBackError("HTTPRoute "+b.Namespace+"/"+r.name, err)
	}
	rules, err := httpRouteStableRules(&hr, b)
	if err != nil {
		return Applied{}, readBackError("HTTPRoute "+b.Namespace+"/"+r.name, err)
	}
	var a Applied
	for n, i := range rules {
		idx, err := httpRouteRuleRefs(&hr, i, b)
		if err != nil {
			return Applied{}, readBackError("HTTPRoute "+b.Namespace+"/"+r.name, err)
		}
		refs := hr.Spec.Rules[i].BackendRefs
		weight := func(j int) int32 {
			if j < 0 {
				return -1 // missing
			}
			if refs[j].Weight == nil {
				return 1 // the Gateway API's default
			}
			return *refs[j].Weight
		}
		stable, canary, baseline := weight(idx.stable), weight(idx.canary), weight(idx.baseline)
		if b.Baseline == "" {
			baseline = 0
		}
		got := Weights{Canary: canary, Baseline: baseline}
		if n == 0 {
			a = Applied{Stored: got, EffectiveCanary: float64(canary), EffectiveBaseline: float64(baseline),
				Detail: splitDetail("HTTPRoute "+r.name, stable, canary, baseline, b.Baseline != "")}
			if len(rules) > 1 {
				a.Detail += fmt.Sprintf(" (%d rules)", len(rules))
			}
		}
		if stable != w.Stable() || canary != w.Canary || baseline != w.Baseline {
			return a, fmt.Errorf("HTTPRoute %s/%s rule %d holds %s after the update; want %s", b.Namespace, r.name, i,
				splitDetail("", stable, canary, baseline, b.Baseline != ""), splitDetail("", w.Stable(), w.Canary, w.Baseline, b.Baseline != ""))
		}
	}
	return a, nil
}

func (r *httpRoute) Restore(ctx context.Context, b Backends, snapshot string) error {
	var s httpRouteSnapshot
	if err := utiljson.Unmarshal([]byte(snapshot), &s); err != nil {
		return fmt.Errorf("read the HTTPRoute snapshot: %w", err)
	}
	if s.Kind != KindHTTPRoute {
		return fmt.Errorf("read the HTTPRoute snapshot: it is of router kind %q", s.Kind)
	}
	role := httpRouteItemRole(b)
	saved := s.Stable
	for _, l := range s.Rules {
		saved = appendStable(saved, l.Items, role)
	}
	return restoreLists(ctx, r.client(b.Namespace), "HTTPRoute "+b.Namespace+"/"+r.name, r.name,
		listRestore{path: []string{"spec", "rules"}, field: "backendRefs", role: role, saved: saved}, b, s.Annotations)
}

// setLists sets field of the entries of the list at path in the named object (the backendRefs of an HTTPRoute's
// rules, the route of a VirtualService's http entries), with the release's annotations, retrying on conflict, and
// returns the object as stored. plan reads the object: which entries to change, and how.
func setLists(ctx context.Context, c dynamic.ResourceInterface, what, name string, path []string, field string, release map[string]string,
	plan func(*unstructured.Unstructured) ([]int, func(items []any, i int) ([]any, error), error)) (*unstructured.Unstructured, error) {
	var stored *unstructured.Unstructured
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		u, err := c.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get %s: %w", what, err)
		}
		entries, change, err := plan(u)
		if err != nil {
			return err
		}
		list, _, err := unstructured.NestedSlice(u.Object, path...)
		if err != nil {
			return fmt.Errorf("update %s: %w", what, err)
		}
		for _, i := range entries {
			items, err := unstructuredRuleSlice(list, i, field)
			if err == nil {
				items, err = change(items, i)
			}
			if err != nil {
				return fmt.Errorf("update %s: %w", what, err)
			}
			list[i].(map[string]any)[field] = items
		}
		if err := unstructured.SetNestedSlice(u.Object, list, path...); err != nil {
			return fmt.Errorf("update %s: %w", what, err)
		}
		u.SetAnnotations(annotationsWithRelease(u.GetAnnotations(), release))
		if stored, err = c.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update %s: %w", what, err)
		}
		return nil
	})
	return stored, err
}

// listRestore says how Restore finds the release's backends in the lists of an unstructured router object (the
// backendRefs of an HTTPRoute's rules, the route of a VirtualService's http entries): by their content, never by
// their position, since a team may add, remove or reorder entries during the release.
type listRestore struct {
	path  []string // the list of entries
	field string   // the list of backends in each entry
	// role says which of the release's Services a backend, as stored, goes to.
	role func(item any) backendRole
	// saved are the backends to the stable Service before the release, as stored.
	saved []any
}

// restoreLists puts an unstructured router object (what names it in errors) back as it was before the release
// (putBackLists), and its annotations: the release's removed, those the object had before (before) put back. An
// object deleted since has nothing of the release left.
func restoreLists(ctx context.Context, c dynamic.ResourceInterface, what, name string, lr listRestore, b Backends, before map[string]string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		u, err := c.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get %s: %w", what, err)
		}
		changed, err := putBackLists(u.Object, lr)
		if err != nil {
			return fmt.Errorf("restore %s: %w", what, err)
		}
		anns := annotationsAfterRestore(u.GetAnnotations(), b, before)
		if !maps.Equal(anns, u.GetAnnotations()) {
			u.SetAnnotations(anns)
			changed = true
		}
		if !changed {
			return nil
		}
		if _, err := c.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("restore %s: %w", what, err)
		}
		return nil
	})
}

// savedList is, in snapshots of releases recorded before, a list field of one entry of a list in an
// unstructured object, as it was stored before the release, with the entry's position then.
type savedList struct {
	Index int   `json:"index"`
	Items []any `json:"items"`
}

// appendStable appends to saved the items that go to the stable Service (role), each content once.
func appendStable(saved, items []any, role func(any) backendRole) []any {
	for _, item := range items {
		if role(item) != backendStable || slices.ContainsFunc(saved, func(s any) bool { return apiequality.Semantic.DeepEqual(s, item) }) {
			continue
		}
		saved = append(saved, item)
	}
	return saved
}

// putBackLists changes only the entries of the list that hold a backend of the release's canary or baseline
// Service: it removes those backends, and gives the entry's stable backend its weight from before the release
// when it is, but for its weight, one lr.saved recorded (a stable backend the team changed meanwhile, say to
// another port, keeps its weight as it is). Every other entry is left exactly as it is now: a rule a team added,
// moved or changed during the release stays as the team made it. It says whether anything changed.
func putBackLists(obj map[string]any, lr listRestore) (bool, error) {
	list, found, err := unstructured.NestedSlice(obj, lr.path...)
	if err != nil || !found {
		return false, err
	}
	changed := false
	for i := range list {
		items, err := unstructuredRuleSlice(list, i, lr.field)
		if err != nil {
			return false, fmt.Errorf("%s[%d]: %w", strings.Join(lr.path, "."), i, err)
		}
		kept, ours := withoutRelease(items, lr)
		if !ours {
			continue
		}
		if len(kept) == 0 {
			delete(list[i].(map[string]any), lr.field) // it held the release's backends alone, whose Services are removed
		} else {
			list[i].(map[string]any)[lr.field] = kept
		}
		changed = true
	}
	if !changed {
		return false, nil
	}
	return true, unstructured.SetNestedSlice(obj, list, lr.path...)
}

// withoutRelease returns items without the release's canary and baseline backends, and its stable backend with
// the weight it had before the release; ours says whether items held a backend of the release at all.
func withoutRelease(items []any, lr listRestore) (kept []any, ours bool) {
	for _, item := range items {
		switch lr.role(item) {
		case backendCanary, backendBaseline:
			ours = true
			continue
		case backendStable:
			item = withSavedWeight(item, lr.saved)
		}
		kept = append(kept, item)
	}
	return kept, ours
}

// withSavedWeight returns the stable backend item with the weight of the saved backend that equals it but for
// the weight (none: no weight), or item as it is when none does.
func withSavedWeight(item any, saved []any) any {
	m, ok := item.(map[string]any)
	if !ok {
		return item
	}
	for _, sv := range saved {
		s, ok := sv.(map[string]any)
		if !ok || !apiequality.Semantic.DeepEqual(withoutWeight(m), withoutWeight(s)) {
			continue
		}
		out := withoutWeight(m)
		if w, found := s["weight"]; found {
			out["weight"] = w
		}
		return out
	}
	return item
}

// withoutWeight is a copy of backend m without its weight.
func withoutWeight(m map[string]any) map[string]any {
	out := runtime.DeepCopyJSON(m)
	delete(out, "weight")
	return out
}

// unstructuredRuleSlice returns field (a list) of rules[i], as stored.
func unstructuredRuleSlice(rules []any, i int, field string) ([]any, error) {
	if i >= len(rules) {
		return nil, fmt.Errorf("no rule %d", i)
	}
	rule, ok := rules[i].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("rule %d is not an object", i)
	}
	v, found, err := unstructured.NestedSlice(rule, field)
	if err != nil {
		return nil, fmt.Errorf("rule %d: %w", i, err)
	}
	if !found {
		return nil, nil
	}
	return v, nil
}

// The helpers below are shared by the httproute, istio and nginx routers.

// backendRole is which of a release's Services a backend is.
type backendRole int

const (
	backendOther backendRole = iota
	backendStable
	backendCanary
	backendBaseline
)

func (r backendRole) String() string {
	return [...]string{"another backend", "the stable Service", "the canary Service", "the baseline Service"}[r]
}

// roleOfService says which of the release's Services svc is.
func roleOfService(svc string, b Backends) backendRole {
	switch {
	case svc == "":
		return backendOther
	case svc == b.Stable:
		return backendStable
	case svc == b.Canary:
		return backendCanary
	case svc == b.Baseline:
		return backendBaseline
	}
	return backendOther
}

// refIndexes are the positions of the stable, canary and baseline backends in one list (-1: absent).
type refIndexes struct{ stable, canary, baseline int }

// set records backend j as role; it fails when the role was already seen.
func (x *refIndexes) set(role backendRole, j int) error {
	p := map[backendRole]*int{backendStable: &x.stable, backendCanary: &x.canary, backendBaseline: &x.baseline}[role]
	if p == nil {
		return nil
	}
	if *p >= 0 {
		return fmt.Errorf("%s", role)
	}
	*p = j
	return nil
}

// unmarkedBackend is a rule (or route) of a router object that carries no canaryline mark but already sends
// traffic to a Service named like the release's canary or baseline: someone else's backend, never the release's.
func unmarkedBackend(where string, idx refIndexes, b Backends) error {
	svc, param := b.Canary, "CANARY_NAME"
	if idx.canary < 0 {
		svc, param = b.Baseline, "BASELINE_NAME"
	}
	return &CheckError{Param: param, Msg: fmt.Sprintf("%s already sends traffic to Service %s, and no canaryline release set it: it is not the release's", where, svc),
		Fix: fmt.Sprintf("give the release's Services other names with %s, or remove that backend before the release", param)}
}

// readBackError is a router object that no longer has a shape the release can use when it is read back after
// the update. It is no CheckError: the release did change the object.
func readBackError(what string, err error) error {
	var ce *CheckError
	if errors.As(err, &ce) {
		return fmt.Errorf("read back %s: it changed under the release: %s", what, ce.Msg)
	}
	return fmt.Errorf("read back %s: %w", what, err)
}

// weightsFit checks that w can be given to b: shares in 0..100 that add up to at most 100, and a baseline share
// only with a baseline Service.
func weightsFit(b Backends, w Weights) error {
	if w.Canary < 0 || w.Baseline < 0 || w.Stable() < 0 {
		return fmt.Errorf("weights %s: shares must be 0 to 100 percent and add up to at most 100", w)
	}
	if w.Baseline > 0 && b.Baseline == "" {
		return fmt.Errorf("weights %s: the release has no baseline Service", w)
	}
	return nil
}

// splitDetail describes a split for the log: "HTTPRoute shop: stable=90 canary=10 baseline=5".
func splitDetail(what string, stable, canary, baseline int32, withBaseline bool) string {
	s := fmt.Sprintf("stable=%d canary=%d", stable, canary)
	if withBaseline {
		s += fmt.Sprintf(" baseline=%d", baseline)
	}
	if what == "" {
		return s
	}
	return what + ": " + s
}

// annotationsWithRelease returns cur with the release annotations set (a new map).
func annotationsWithRelease(cur, release map[string]string) map[string]string {
	out := maps.Clone(cur)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, release)
	if len(out) == 0 {
		return nil
	}
	return out
}

// annotationsBeforeRelease returns the release annotations' keys that cur already has, with their values.
func annotationsBeforeRelease(cur, release map[string]string) map[string]string {
	out := map[string]string{}
	for k := range release {
		if v, ok := cur[k]; ok {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// annotationsAfterRestore returns cur with the release annotations of b removed again, and those the object had
// before the release (before) put back (a new map; nil when empty). The shared keys a release recorded before
// used are removed too when they carry b's release, and only then: another application's release may hold them.
func annotationsAfterRestore(cur map[string]string, b Backends, before map[string]string) map[string]string {
	out := maps.Clone(cur)
	for k := range b.Annotations {
		delete(out, k)
	}
	if id := out[ReleaseAnnotation]; id != "" && id == b.release() {
		for _, k := range legacyAnnotations {
			delete(out, k)
		}
	}
	for k, v := range before {
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
