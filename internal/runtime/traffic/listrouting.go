package traffic

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// listRouting is how a list router kind sends requests to the canary beside the weights: a match entry (an
// HTTPRoute rule, a VirtualService http entry) to the canary alone placed before each stable entry, and a mirror
// on each stable entry. What the release added is found again by its content: a match entry by its name and its
// backends (the canary Service alone), a mirror by its target (the canary Service).
type listRouting struct {
	// matchEntry makes the kind's match entry from a copy of the stable entry (name removed): its matches are the
	// stable entry's, each with one of the rules added; its backends canary alone (a copy of the stable entry's
	// backend to the canary Service); no mirror.
	matchEntry func(entry, canary map[string]any, rules []MatchRule) error
	// setMirror adds to the stable entry a mirror of percent of its requests to the canary Service.
	setMirror func(entry map[string]any, b Backends, percent int32) error
	// stripMirror removes the release's mirror from an entry, and says whether there was one.
	stripMirror func(entry map[string]any, b Backends) bool
	// maxEntries is how many entries the API takes (0: no limit).
	maxEntries int
}

// with sets the routing the router's SetWeights gives beside the weights.
func (r *listRouter) with(rt Routing) *listRouter {
	r.rt = rt
	return r
}

// matchEntryPrefix starts the names of the release's match entries: "canaryline-match-shop-canary-".
func matchEntryPrefix(b Backends) string { return "canaryline-match-" + b.Canary + "-" }

// isMatchEntry says whether entry is one of the release's match entries: named as the release names them, with
// backends to the canary Service alone.
func (k *listKind) isMatchEntry(entry any, b Backends) bool {
	m, ok := entry.(map[string]any)
	if !ok {
		return false
	}
	name, _, _ := unstructured.NestedString(m, "name")
	items, _, _ := unstructured.NestedSlice(m, k.field)
	if !strings.HasPrefix(name, matchEntryPrefix(b)) || len(items) == 0 {
		return false
	}
	role := k.itemRole(b)
	return !slices.ContainsFunc(items, func(it any) bool { return role(it) != backendCanary })
}

// stripRouting returns list without the release's match entries and mirrors, and whether it had any.
func (k *listKind) stripRouting(list []any, b Backends) ([]any, bool) {
	var out []any
	changed := false
	for _, entry := range list {
		if k.isMatchEntry(entry, b) {
			changed = true
			continue
		}
		if m, ok := entry.(map[string]any); ok && k.routing.stripMirror(m, b) {
			changed = true
		}
		out = append(out, entry)
	}
	return out, changed
}

// addRouting adds to list (the release's routing stripped, its stable entries at the indexes stable, their
// backends set) the match entries and mirrors of rt.
func (k *listKind) addRouting(list []any, stable []int, b Backends, rt Routing) ([]any, error) {
	if rt.Mirror > 0 {
		for _, i := range stable {
			if err := k.routing.setMirror(list[i].(map[string]any), b, rt.Mirror); err != nil {
				return nil, err
			}
		}
	}
	if len(rt.Match) == 0 {
		return list, nil
	}
	if n := len(list) + len(stable); k.routing.maxEntries > 0 && n > k.routing.maxEntries {
		return nil, &CheckError{Param: "MATCH", Msg: fmt.Sprintf("the %s would need %d %s with a match entry before each of its %d stable ones; the API takes at most %d",
			k.object, n, k.entries, len(stable), k.routing.maxEntries), Fix: "leave MATCH empty, or serve the application from fewer entries"}
	}
	for n := len(stable) - 1; n >= 0; n-- {
		i := stable[n]
		entry := runtime.DeepCopyJSON(list[i].(map[string]any))
		delete(entry, "name")
		canary, err := k.canaryItem(entry, b)
		if err != nil {
			return nil, err
		}
		if err := k.routing.matchEntry(entry, canary, rt.Match); err != nil {
			return nil, err
		}
		entry["name"] = matchEntryPrefix(b) + strconv.Itoa(n)
		list = slices.Insert(list, i, any(entry))
	}
	return list, nil
}

// routeObject strips the release's routing from the object obj and adds rt's; entries are the stable entries
// of obj once stripped (read by entriesOf).
func (r *listRouter) routeObject(obj map[string]any, b Backends, entriesOf func() ([]int, error)) error {
	if _, err := r.stripObject(obj, b); err != nil {
		return err
	}
	entries, err := entriesOf()
	if err != nil {
		return err
	}
	list, _, err := unstructured.NestedSlice(obj, r.kind.path...)
	if err != nil {
		return err
	}
	if list, err = r.kind.addRouting(list, entries, b, r.rt); err != nil {
		return err
	}
	return unstructured.SetNestedSlice(obj, list, r.kind.path...)
}

// stripObject removes the release's match entries and mirrors from the object obj, and says whether it had any.
func (r *listRouter) stripObject(obj map[string]any, b Backends) (bool, error) {
	list, found, err := unstructured.NestedSlice(obj, r.kind.path...)
	if err != nil || !found {
		return false, err
	}
	list, changed := r.kind.stripRouting(list, b)
	if !changed {
		return false, nil
	}
	return true, unstructured.SetNestedSlice(obj, list, r.kind.path...)
}

// stableOf returns the stable entries of the object u for the release.
func (r *listRouter) stableOf(u *unstructured.Unstructured, b Backends) ([]int, error) {
	obj, err := r.kind.read(u, b)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.what(b.Namespace), err)
	}
	return stableEntries(obj)
}

// checkRouting checks, read-only, that the routing can be added to the object u as it is: it makes it on a copy,
// whose stable entries first get the release's backends (at weight 0), as SetWeights gives them.
func (r *listRouter) checkRouting(u *unstructured.Unstructured, b Backends) error {
	if r.rt.empty() {
		return nil
	}
	c := u.DeepCopy()
	return r.routeObject(c.Object, b, func() ([]int, error) {
		obj, err := r.kind.read(c, b)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", r.what(b.Namespace), err)
		}
		entries, err := stableEntries(obj)
		if err != nil {
			return nil, err
		}
		return entries, changeLists(c.Object, r.kind.path, r.kind.field, entries, func(items []any, i int) ([]any, error) { return obj.backends(items, i, Weights{}) })
	})
}

// routed checks that the object as stored, u, holds the routing asked: made again from its stable entries, it
// is what is stored (a field the API server dropped, say of a CRD older than the router, is an error).
func (r *listRouter) routed(u *unstructured.Unstructured, b Backends) error {
	c := u.DeepCopy()
	if err := r.routeObject(c.Object, b, func() ([]int, error) { return r.stableOf(c, b) }); err != nil {
		return fmt.Errorf("read back %s: %w", r.what(b.Namespace), err)
	}
	want, _, _ := unstructured.NestedSlice(c.Object, r.kind.path...)
	got, _, _ := unstructured.NestedSlice(u.Object, r.kind.path...)
	if !apiequality.Semantic.DeepEqual(want, got) {
		return fmt.Errorf("read back %s: its %s do not hold the match and mirror the release wrote (%s): does the %s CRD know these fields?",
			r.what(b.Namespace), r.kind.entries, r.rt.describe(), r.kind.object)
	}
	return nil
}

// describe names the routing for messages and the log.
func (rt Routing) describe() string {
	var parts []string
	if len(rt.Match) > 0 {
		parts = append(parts, "match "+strings.ReplaceAll(FormatMatch(rt.Match), "\n", "; "))
	}
	if rt.Mirror > 0 {
		parts = append(parts, fmt.Sprintf("mirror %d%%", rt.Mirror))
	}
	if rt.TestHost != "" {
		parts = append(parts, "test host "+rt.TestHost)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// canaryItem returns a copy of the stable entry's backend to the canary Service (SetWeights put one there).
func (k *listKind) canaryItem(entry map[string]any, b Backends) (map[string]any, error) {
	items, _, _ := unstructured.NestedSlice(entry, k.field)
	role := k.itemRole(b)
	for _, it := range items {
		if m, ok := it.(map[string]any); ok && role(it) == backendCanary {
			return runtime.DeepCopyJSON(m), nil
		}
	}
	return nil, fmt.Errorf("%s: a stable entry has no backend to the canary Service %s", k.object, b.Canary)
}
