package traffic

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// httpRouteRouting is how an HTTPRoute sends requests to the canary beside the weights: a rule to the canary
// alone with the stable rule's matches and header matches (a cookie is matched on the Cookie header by a regular
// expression), and a RequestMirror filter on the stable rule with a percent.
var httpRouteRouting = listRouting{
	matchEntry:  httpRouteMatchRule,
	setMirror:   httpRouteSetMirror,
	stripMirror: httpRouteStripMirror,
	maxEntries:  16, // spec.rules maxItems
}

// httpRouteMaxMatches is the Gateway API's limit of matches in one rule.
const httpRouteMaxMatches = 64

// httpRouteMatchRule makes the match rule from rule, a copy of the stable rule: its matches, each with one rule's
// header match; canary its only backendRef; no RequestMirror filter.
func httpRouteMatchRule(rule, canary map[string]any, rules []MatchRule) error {
	canary["weight"] = int64(1)
	rule["backendRefs"] = []any{canary}
	filters, _, _ := unstructured.NestedSlice(rule, "filters")
	var kept []any
	for _, f := range filters {
		if t, _, _ := unstructured.NestedString(asMap(f), "type"); t != "RequestMirror" {
			kept = append(kept, f)
		}
	}
	if len(kept) == 0 {
		delete(rule, "filters")
	} else {
		rule["filters"] = kept
	}
	base, _, _ := unstructured.NestedSlice(rule, "matches")
	if len(base) == 0 {
		base = []any{map[string]any{}}
	}
	if n := len(base) * len(rules); n > httpRouteMaxMatches {
		return &CheckError{Param: "MATCH", Msg: fmt.Sprintf("%d rules on a stable rule of %d matches make %d matches; the Gateway API takes at most %d in a rule",
			len(rules), len(base), n, httpRouteMaxMatches), Fix: "give fewer MATCH rules"}
	}
	var matches []any
	for _, m := range base {
		for _, mr := range rules {
			c := runtime.DeepCopyJSON(asMap(m))
			c["headers"] = withHeader(c["headers"], httpRouteHeaderMatch(mr))
			matches = append(matches, c)
		}
	}
	rule["matches"] = matches
	return nil
}

// httpRouteHeaderMatch is the HTTPHeaderMatch of a MATCH rule.
func httpRouteHeaderMatch(m MatchRule) map[string]any {
	switch {
	case m.Kind == MatchCookie:
		return map[string]any{"type": "RegularExpression", "name": "Cookie", "value": m.cookieRegex()}
	case m.Regex:
		return map[string]any{"type": "RegularExpression", "name": m.Name, "value": m.Value}
	}
	return map[string]any{"type": "Exact", "name": m.Name, "value": m.Value}
}

// withHeader returns the header matches headers (as stored) with h in place of any of the same name (header names
// are case-insensitive, and the Gateway API takes one match per name).
func withHeader(headers any, h map[string]any) []any {
	list, _ := headers.([]any)
	var out []any
	for _, x := range list {
		if name, _, _ := unstructured.NestedString(asMap(x), "name"); !strings.EqualFold(name, h["name"].(string)) {
			out = append(out, x)
		}
	}
	return append(out, h)
}

// httpRouteSetMirror adds to the stable rule a RequestMirror filter of percent to the canary Service, on the
// stable backendRef's port.
func httpRouteSetMirror(rule map[string]any, b Backends, percent int32) error {
	refs, _, _ := unstructured.NestedSlice(rule, "backendRefs")
	role := httpRouteItemRole(b)
	ref := map[string]any{"name": b.Canary}
	for _, r := range refs {
		if role(r) != backendStable {
			continue
		}
		for _, k := range []string{"group", "kind", "namespace", "port"} {
			if v, ok := asMap(r)[k]; ok {
				ref[k] = runtime.DeepCopyJSONValue(v)
			}
		}
	}
	filters, _, _ := unstructured.NestedSlice(rule, "filters")
	rule["filters"] = append(filters, map[string]any{"type": "RequestMirror",
		"requestMirror": map[string]any{"backendRef": ref, "percent": int64(percent)}})
	return nil
}

// httpRouteStripMirror removes from a rule the RequestMirror filters to the canary Service.
func httpRouteStripMirror(rule map[string]any, b Backends) bool {
	filters, _, _ := unstructured.NestedSlice(rule, "filters")
	role := httpRouteItemRole(b)
	var kept []any
	for _, f := range filters {
		ref, found, _ := unstructured.NestedMap(asMap(f), "requestMirror", "backendRef")
		if t, _, _ := unstructured.NestedString(asMap(f), "type"); t == "RequestMirror" && found && role(ref) == backendCanary {
			continue
		}
		kept = append(kept, f)
	}
	if len(kept) == len(filters) {
		return false
	}
	if len(kept) == 0 {
		delete(rule, "filters")
	} else {
		rule["filters"] = kept
	}
	return true
}

// asMap is v as an object (nil when it is not one).
func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
