package traffic

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// istioRouting is how a VirtualService sends requests to the canary beside the weights: an http entry to the
// canary alone with the stable entry's matches and header matches (a cookie is matched on the cookie header by a
// regular expression), and mirror and mirrorPercentage on the stable entry.
var istioRouting = listRouting{
	matchEntry:  istioMatchEntry,
	setMirror:   istioSetMirror,
	stripMirror: istioStripMirror,
}

// istioMatchEntry makes the match entry from entry, a copy of the stable http entry: its match blocks, each with
// one rule's header; canary its only destination; no mirror.
func istioMatchEntry(entry, canary map[string]any, rules []MatchRule) error {
	delete(canary, "weight")
	entry["route"] = []any{canary}
	for _, k := range []string{"mirror", "mirrorPercentage", "mirrors", "mirror_percent"} {
		delete(entry, k)
	}
	base, _, _ := unstructured.NestedSlice(entry, "match")
	if len(base) == 0 {
		base = []any{map[string]any{}}
	}
	var matches []any
	for _, m := range base {
		for _, mr := range rules {
			c := runtime.DeepCopyJSON(asMap(m))
			headers := asMap(c["headers"])
			if headers == nil {
				headers = map[string]any{}
			}
			name, cond := istioHeaderMatch(mr)
			headers[name] = cond
			c["headers"] = headers
			matches = append(matches, c)
		}
	}
	entry["match"] = matches
	return nil
}

// istioHeaderMatch is a MATCH rule as an Istio header match: its key (lowercase, as Istio requires) and condition.
func istioHeaderMatch(m MatchRule) (string, map[string]any) {
	switch {
	case m.Kind == MatchCookie:
		return "cookie", map[string]any{"regex": m.cookieRegex()}
	case m.Regex:
		return strings.ToLower(m.Name), map[string]any{"regex": m.Value}
	}
	return strings.ToLower(m.Name), map[string]any{"exact": m.Value}
}

// istioSetMirror mirrors percent of the stable http entry's requests to the canary Service, its host written like
// the stable destination's, on its port. An entry that already mirrors elsewhere is refused: Istio takes one mirror.
func istioSetMirror(entry map[string]any, b Backends, percent int32) error {
	if m, found, _ := unstructured.NestedMap(entry, "mirror"); found {
		host, _, _ := unstructured.NestedString(m, "host")
		return &CheckError{Param: "MIRROR", Msg: fmt.Sprintf("an http route to the stable Service already mirrors its requests to %s", host),
			Fix: "leave MIRROR at 0, or remove that mirror before the release"}
	}
	if mirrors, _, _ := unstructured.NestedSlice(entry, "mirrors"); len(mirrors) > 0 {
		return &CheckError{Param: "MIRROR", Msg: "an http route to the stable Service already has mirrors",
			Fix: "leave MIRROR at 0, or remove its mirrors before the release"}
	}
	route, _, _ := unstructured.NestedSlice(entry, "route")
	mirror := map[string]any{"host": b.Canary}
	for _, d := range route {
		host, _, _ := unstructured.NestedString(asMap(d), "destination", "host")
		if role, suffix := istioHostRole(host, b); role == backendStable {
			mirror["host"] = b.Canary + suffix
			if port, found, _ := unstructured.NestedFieldCopy(asMap(d), "destination", "port"); found {
				mirror["port"] = port
			}
		}
	}
	entry["mirror"] = mirror
	entry["mirrorPercentage"] = map[string]any{"value": int64(percent)}
	return nil
}

// istioStripMirror removes the mirror to the canary Service from an http entry, with its percentage.
func istioStripMirror(entry map[string]any, b Backends) bool {
	host, found, _ := unstructured.NestedString(entry, "mirror", "host")
	if !found {
		return false
	}
	if role, _ := istioHostRole(host, b); role != backendCanary {
		return false
	}
	delete(entry, "mirror")
	delete(entry, "mirrorPercentage")
	return true
}
