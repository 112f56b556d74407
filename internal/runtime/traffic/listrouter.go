package traffic

import (
	"context"
	"encoding/json"
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
)

// listRouter is a router object that holds a list of entries (an HTTPRoute's rules, a VirtualService's http
// entries), each with a list of weighted backends: every entry whose backends go to the stable Service gets
// weighted backends to the stable, canary (and baseline) Services. The object is handled as unstructured: only the
// backends of those entries (and the release annotations) are written back, so every field the router does not
// touch, known to this version of the API types or not, survives the update. Its kind (listKind) says where the
// entries and backends are and how to read them; the snapshot, the update, the read-back and Restore are here.
type listRouter struct {
	name string
	c    Clients
	kind *listKind
	rt   Routing // what SetWeights sends to the canary beside the weights
}

var _ Router = (*listRouter)(nil)

// listKind adapts one kind of unstructured router object to the list-router core.
type listKind struct {
	kind   string                      // the router kind: KindHTTPRoute
	object string                      // the object's kind in messages: "HTTPRoute"
	gvr    schema.GroupVersionResource // its resource
	path   []string                    // the list of entries: spec.rules
	field  string                      // the list of backends in each entry: backendRefs
	// entry names entry i in messages ("rule 0"), entries several of them in the Detail ("rules").
	entry   func(i int) string
	entries string
	// read reads an object as stored; its error is wrapped by the caller ("read HTTPRoute apps/shop: ...").
	read func(u *unstructured.Unstructured, b Backends) (listObject, error)
	// itemRole says which of the release's Services a backend, as stored, goes to.
	itemRole func(b Backends) func(item any) backendRole
	// notFound is the CheckError for an object that does not exist.
	notFound func(ns, name string, b Backends) error
	// legacy are the lists a snapshot of a release recorded before saved by position.
	legacy func(s *listSnapshot) []savedList
	// routing is how the kind sends requests to the canary beside the weights (match entries, mirrors).
	routing listRouting
}

// listObject is one router object as its kind reads it.
type listObject interface {
	// entries is the number of entries, or a CheckError when the list cannot be read.
	entries() (int, error)
	// refs finds the stable, canary and baseline backends of entry i (-1: none), or a CheckError when the entry
	// cannot be read, or goes to the stable Service but cannot be split.
	refs(i int) (refIndexes, error)
	// noStable is the CheckError for an object without an entry to the stable Service.
	noStable() error
	// weight is backend j of entry i's weight as the data plane reads it; -1 when j < 0 (no such backend).
	weight(i, j int) (int32, error)
	// backends builds the backends of entry i for w from items, the entry's backends as stored.
	backends(items []any, i int, w Weights) ([]any, error)
	// verify checks entry i, as read back, for what the kind requires besides the weights asked (nil: nothing).
	verify(i int) error
	// warnings name what the release leaves unsplit in the object (nil: nothing).
	warnings() []string
}

// stableEntries returns the indexes of obj's entries whose backends go to the stable Service, or a CheckError
// when there is none or one cannot be split.
func stableEntries(obj listObject) ([]int, error) {
	n, err := obj.entries()
	if err != nil {
		return nil, err
	}
	var out []int
	for i := range n {
		idx, err := obj.refs(i)
		if err != nil {
			return nil, err
		}
		if idx.stable >= 0 {
			out = append(out, i)
		}
	}
	if len(out) == 0 {
		return nil, obj.noStable()
	}
	return out, nil
}

// entryRefs are the release's Services among the backends of one entry: their positions (-1: none), the other
// backends by name, and the first of the release's Services named twice (nil: none).
type entryRefs struct {
	refIndexes
	others []string
	dup    error
}

// sortRefs goes through an entry's n backends; role says which of the release's Services backend j is, and
// names it for messages.
func sortRefs(n int, role func(j int) (backendRole, string, error)) (entryRefs, error) {
	e := entryRefs{refIndexes: refIndexes{stable: -1, canary: -1, baseline: -1}}
	for j := range n {
		r, name, err := role(j)
		if err != nil {
			return e, err
		}
		if r == backendOther {
			e.others = append(e.others, name)
			continue
		}
		if err := e.set(r, j); err != nil && e.dup == nil {
			e.dup = err
		}
	}
	return e, nil
}

// Kind is the router kind of the object's kind.
func (r *listRouter) Kind() string { return r.kind.kind }

func (r *listRouter) client(ns string) dynamic.ResourceInterface {
	return r.c.Dynamic.Resource(r.kind.gvr).Namespace(ns)
}

// what names the router object in messages: "HTTPRoute apps/shop".
func (r *listRouter) what(ns string) string { return r.kind.object + " " + ns + "/" + r.name }

// get reads the router object both as it is stored (to write back) and as its kind reads it.
func (r *listRouter) get(ctx context.Context, b Backends) (*unstructured.Unstructured, listObject, error) {
	u, err := r.client(b.Namespace).Get(ctx, r.name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("get %s: %w", r.what(b.Namespace), err)
	}
	obj, err := r.kind.read(u, b)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", r.what(b.Namespace), err)
	}
	return u, obj, nil
}

// Check verifies, read-only, that the object exists, has entries to the stable Service that can be split, and
// sends no traffic to a Service named like the canary or baseline unless it carries the release's mark.
func (r *listRouter) Check(ctx context.Context, b Backends) error {
	if err := checkAnnotations(b); err != nil {
		return err
	}
	u, obj, err := r.get(ctx, b)
	if apierrors.IsNotFound(err) {
		return r.kind.notFound(b.Namespace, r.name, b)
	}
	if err != nil {
		return err
	}
	entries, err := stableEntries(obj)
	if err != nil {
		return err
	}
	if !b.Marked(u.GetAnnotations()) {
		for _, i := range entries {
			if idx, _ := obj.refs(i); idx.canary >= 0 || idx.baseline >= 0 {
				return unmarkedBackend(r.kind.entry(i)+" of "+r.what(b.Namespace), idx, b)
			}
		}
	}
	return r.checkRouting(u, b)
}

// listSnapshot is what the release changes on a list router object.
type listSnapshot struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Stable are the backends to the stable Service before the release, as stored: Restore finds them again by
	// their content, never by their position, and puts their weights back.
	Stable []any `json:"stable,omitempty"`
	// Rules (HTTPRoute) and HTTP (VirtualService) are what releases recorded before saved instead: the backends of
	// the entries that went to the stable Service, by position. Restore reads only the backends to the stable
	// Service in them.
	Rules []savedList `json:"rules,omitempty"`
	HTTP  []savedList `json:"http,omitempty"`
	// Annotations are the release annotations' keys the object already had, with their values.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// savedList is, in snapshots of releases recorded before, a list field of one entry of a list in an
// unstructured object, as it was stored before the release, with the entry's position then.
type savedList struct {
	Index int   `json:"index"`
	Items []any `json:"items"`
}

// Snapshot records the stable backends of the stable entries, and the release annotations the object already has.
func (r *listRouter) Snapshot(ctx context.Context, b Backends) (string, error) {
	u, obj, err := r.get(ctx, b)
	if err != nil {
		return "", err
	}
	entries, err := stableEntries(obj)
	if err != nil {
		return "", err
	}
	list, _, err := unstructured.NestedSlice(u.Object, r.kind.path...)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", r.what(b.Namespace), err)
	}
	s := listSnapshot{Kind: r.kind.kind, Name: r.name, Annotations: annotationsBeforeRelease(u.GetAnnotations(), b.Annotations)}
	for _, i := range entries {
		items, err := unstructuredRuleSlice(list, i, r.kind.field)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", r.what(b.Namespace), err)
		}
		s.Stable = appendStable(s.Stable, items, r.kind.itemRole(b))
	}
	data, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("encode the %s snapshot: %w", r.kind.object, err)
	}
	return string(data), nil
}

// SetWeights gives every stable entry the weights of w, and reads them back.
func (r *listRouter) SetWeights(ctx context.Context, b Backends, w Weights) (Applied, error) {
	if err := weightsFit(b, w); err != nil {
		return Applied{}, err
	}
	stored, err := r.setLists(ctx, b, func(u *unstructured.Unstructured) ([]int, func([]any, int) ([]any, error), error) {
		obj, err := r.kind.read(u, b)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", r.what(b.Namespace), err)
		}
		entries, err := stableEntries(obj)
		return entries, func(items []any, i int) ([]any, error) { return obj.backends(items, i, w) }, err
	})
	if err != nil {
		return Applied{}, err
	}
	return r.readBack(b, w, stored)
}

// setLists sets the backends of the entries of the router object, with the release's annotations, retrying on
// conflict, and returns the object as stored. plan reads the object: which entries to change, and how.
func (r *listRouter) setLists(ctx context.Context, b Backends,
	plan func(*unstructured.Unstructured) ([]int, func(items []any, i int) ([]any, error), error)) (*unstructured.Unstructured, error) {
	c, what, path, field := r.client(b.Namespace), r.what(b.Namespace), r.kind.path, r.kind.field
	var stored *unstructured.Unstructured
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		u, err := c.Get(ctx, r.name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get %s: %w", what, err)
		}
		if _, err := r.stripObject(u.Object, b); err != nil { // the routing of the shift before: rt's is added again
			return fmt.Errorf("update %s: %w", what, err)
		}
		entries, change, err := plan(u)
		if err != nil {
			return err
		}
		if err := changeLists(u.Object, path, field, entries, change); err != nil {
			return fmt.Errorf("update %s: %w", what, err)
		}
		if err := r.routeObject(u.Object, b, func() ([]int, error) { return entries, nil }); err != nil {
			return fmt.Errorf("update %s: %w", what, err)
		}
		u.SetAnnotations(annotationsWithRelease(u.GetAnnotations(), b.Annotations))
		if stored, err = c.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update %s: %w", what, err)
		}
		return nil
	})
	return stored, err
}

// changeLists replaces field of the given entries of the list at path in obj by what change makes of it.
func changeLists(obj map[string]any, path []string, field string, entries []int, change func(items []any, i int) ([]any, error)) error {
	list, _, err := unstructured.NestedSlice(obj, path...)
	if err != nil {
		return err
	}
	for _, i := range entries {
		items, err := unstructuredRuleSlice(list, i, field)
		if err == nil {
			items, err = change(items, i)
		}
		if err != nil {
			return err
		}
		list[i].(map[string]any)[field] = items
	}
	return unstructured.SetNestedSlice(obj, list, path...)
}

// readBack checks that every stable entry of the router object as stored (the update's answer) holds the
// weights of w.
func (r *listRouter) readBack(b Backends, w Weights, u *unstructured.Unstructured) (Applied, error) {
	what := r.what(b.Namespace)
	obj, err := r.kind.read(u, b)
	if err != nil {
		return Applied{}, readBackError(what, err)
	}
	entries, err := stableEntries(obj)
	if err != nil {
		return Applied{}, readBackError(what, err)
	}
	var a Applied
	for n, i := range entries {
		got, err := r.entryWeights(obj, i, b)
		if err != nil {
			return Applied{}, err
		}
		if n == 0 {
			a = r.applied(got, b, len(entries))
		}
		if err := r.entryHolds(obj, i, got, w, b); err != nil {
			return a, err
		}
	}
	a.Warnings = obj.warnings()
	if !r.rt.empty() {
		a.Detail += "; " + r.rt.describe()
	}
	return a, r.routed(u, b)
}

// entryWeights reads the stable, canary and baseline weights of entry i (baseline 0 without a baseline Service).
func (r *listRouter) entryWeights(obj listObject, i int, b Backends) ([3]int32, error) {
	var ws [3]int32
	idx, err := obj.refs(i)
	if err != nil {
		return ws, readBackError(r.what(b.Namespace), err)
	}
	for k, j := range []int{idx.stable, idx.canary, idx.baseline} {
		if ws[k], err = obj.weight(i, j); err != nil {
			return ws, fmt.Errorf("read back %s: %s: %w", r.what(b.Namespace), r.kind.entry(i), err)
		}
	}
	if b.Baseline == "" {
		ws[2] = 0
	}
	return ws, nil
}

// applied is what the first stable entry holds, got, for the log; the Detail counts the stable entries, n.
func (r *listRouter) applied(got [3]int32, b Backends, n int) Applied {
	stable, canary, baseline := got[0], got[1], got[2]
	a := Applied{Stored: Weights{Canary: canary, Baseline: baseline}, EffectiveCanary: float64(canary), EffectiveBaseline: float64(baseline),
		Detail: splitDetail(r.kind.object+" "+r.name, stable, canary, baseline, b.Baseline != "")}
	if n > 1 {
		a.Detail += fmt.Sprintf(" (%d %s)", n, r.kind.entries)
	}
	return a
}

// entryHolds checks that entry i, holding got, holds the weights of w and what its kind requires.
func (r *listRouter) entryHolds(obj listObject, i int, got [3]int32, w Weights, b Backends) error {
	stable, canary, baseline := got[0], got[1], got[2]
	if stable != w.Stable() || canary != w.Canary || baseline != w.Baseline {
		return fmt.Errorf("%s %s holds %s after the update; want %s", r.what(b.Namespace), r.kind.entry(i),
			splitDetail("", stable, canary, baseline, b.Baseline != ""), splitDetail("", w.Stable(), w.Canary, w.Baseline, b.Baseline != ""))
	}
	return obj.verify(i)
}

// Restore removes the release's backends and puts the stable backends' weights and the annotations back.
func (r *listRouter) Restore(ctx context.Context, b Backends, snapshot string) error {
	var s listSnapshot
	if err := utiljson.Unmarshal([]byte(snapshot), &s); err != nil {
		return fmt.Errorf("read the %s snapshot: %w", r.kind.object, err)
	}
	if s.Kind != r.kind.kind {
		return fmt.Errorf("read the %s snapshot: it is of router kind %q", r.kind.object, s.Kind)
	}
	role := r.kind.itemRole(b)
	saved := s.Stable
	for _, l := range r.kind.legacy(&s) {
		saved = appendStable(saved, l.Items, role)
	}
	return r.restoreLists(ctx, b, listRestore{path: r.kind.path, field: r.kind.field, role: role, saved: saved}, s.Annotations)
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

// restoreLists puts the router object back as it was before the release (putBackLists), and its annotations:
// the release's removed, those the object had before (before) put back. An object deleted since has nothing of
// the release left.
func (r *listRouter) restoreLists(ctx context.Context, b Backends, lr listRestore, before map[string]string) error {
	c, what := r.client(b.Namespace), r.what(b.Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		u, err := c.Get(ctx, r.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get %s: %w", what, err)
		}
		stripped, err := r.stripObject(u.Object, b)
		if err != nil {
			return fmt.Errorf("restore %s: %w", what, err)
		}
		changed, err := putBackLists(u.Object, lr)
		changed = changed || stripped
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
