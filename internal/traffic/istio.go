package traffic

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/dynamic"
)

// virtualServiceGVR is the Istio VirtualService resource.
var virtualServiceGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

// istio is an Istio VirtualService: every http entry whose route goes to the stable Service gets weighted
// destinations for the stable, canary (and baseline) Services. The object is handled as unstructured, so no
// Istio client is linked and every field the router does not touch is written back as it was.
type istio struct {
	name string
	c    Clients
}

var _ Router = (*istio)(nil)

func (r *istio) Kind() string { return KindIstio }

func (r *istio) client(ns string) dynamic.ResourceInterface {
	return r.c.Dynamic.Resource(virtualServiceGVR).Namespace(ns)
}

func (r *istio) get(ctx context.Context, ns string) (*unstructured.Unstructured, error) {
	u, err := r.client(ns).Get(ctx, r.name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get VirtualService %s/%s: %w", ns, r.name, err)
	}
	return u, nil
}

func (r *istio) Check(ctx context.Context, b Backends) error {
	if err := checkAnnotations(b); err != nil {
		return err
	}
	u, err := r.get(ctx, b.Namespace)
	if apierrors.IsNotFound(err) {
		return checkErrorf(fmt.Sprintf("create it (Istio must be installed) with an http route to host %s, "+
			"or set ROUTER_NAME to the VirtualService that serves the application", b.Stable),
			"VirtualService %s/%s does not exist", b.Namespace, r.name)
	}
	if err != nil {
		return err
	}
	entries, err := r.stableHTTP(u, b)
	if err != nil || b.Marked(u.GetAnnotations()) {
		return err
	}
	http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
	for _, i := range entries {
		route, _ := istioHTTPRoute(http, i)
		if idx, _, _ := r.routeRefs(route, i, b); idx.canary >= 0 || idx.baseline >= 0 {
			return unmarkedBackend(fmt.Sprintf("http[%d] of VirtualService %s/%s", i, b.Namespace, r.name), idx, b)
		}
	}
	return nil
}

// istioHostSuffix says whether host names Service svc of namespace ns, and returns what follows the Service's
// name in it: "" (short name), ".ns", ".ns.svc" or ".ns.svc.cluster.local" (any cluster domain).
func istioHostSuffix(host, svc, ns string) (string, bool) {
	if svc == "" {
		return "", false
	}
	if host == svc {
		return "", true
	}
	rest, ok := strings.CutPrefix(host, svc+"."+ns)
	if !ok {
		return "", false
	}
	if rest == "" || rest == ".svc" || (strings.HasPrefix(rest, ".svc.") && len(rest) > len(".svc.")) {
		return host[len(svc):], true
	}
	return "", false
}

// istioHostRole says which of the release's Services a destination host names, and the host's suffix.
func istioHostRole(host string, b Backends) (backendRole, string) {
	for _, x := range []struct {
		svc  string
		role backendRole
	}{{b.Stable, backendStable}, {b.Canary, backendCanary}, {b.Baseline, backendBaseline}} {
		if suffix, ok := istioHostSuffix(host, x.svc, b.Namespace); ok {
			return x.role, suffix
		}
	}
	return backendOther, ""
}

// istioDestinationHost returns route entry j's destination host.
func istioDestinationHost(route []any, j int) (string, error) {
	entry, ok := route[j].(map[string]any)
	if !ok {
		return "", fmt.Errorf("route[%d] is not an object", j)
	}
	host, found, err := unstructured.NestedString(entry, "destination", "host")
	if err != nil {
		return "", fmt.Errorf("route[%d].destination.host: %w", j, err)
	}
	if !found {
		return "", fmt.Errorf("route[%d] has no destination.host", j)
	}
	return host, nil
}

// routeRefs finds the stable, canary and baseline destinations of http[i].route (-1: none), and the
// stable host's suffix. It fails when the route goes to the stable Service together with another host, or to one
// of the Services more than once: the release could not control the shares of such a route.
func (r *istio) routeRefs(route []any, i int, b Backends) (refIndexes, string, error) {
	idx := refIndexes{stable: -1, canary: -1, baseline: -1}
	var others []string
	var dup error
	suffix := ""
	for j := range route {
		host, err := istioDestinationHost(route, j)
		if err != nil {
			return idx, "", checkErrorf("fix the VirtualService", "http[%d] of VirtualService %s/%s cannot be read: %v", i, b.Namespace, r.name, err)
		}
		role, sfx := istioHostRole(host, b)
		if role == backendOther {
			others = append(others, host)
			continue
		}
		if role == backendStable {
			suffix = sfx
		}
		if err := idx.set(role, j); err != nil && dup == nil {
			dup = err
		}
	}
	if idx.stable < 0 {
		return idx, "", nil // not a route of the release
	}
	if dup != nil {
		return idx, "", checkErrorf("leave one destination per Service in the route before the release (for subsets, use another router object)",
			"http[%d] of VirtualService %s/%s has more than one destination on %s", i, b.Namespace, r.name, dup)
	}
	if len(others) > 0 {
		return idx, "", checkErrorf(fmt.Sprintf("make the route send its traffic to host %s alone before the release", b.Stable),
			"http[%d] of VirtualService %s/%s sends traffic to %s besides the stable Service %s: the shares of a release could not be controlled",
			i, b.Namespace, r.name, strings.Join(others, ", "), b.Stable)
	}
	return idx, suffix, nil
}

// istioHTTPRoute returns http[i].route as stored (nil when the entry has none, as for a redirect).
func istioHTTPRoute(http []any, i int) ([]any, error) {
	return unstructuredRuleSlice(http, i, "route")
}

// stableHTTP returns the indexes of the http entries whose route goes to the stable Service, or a
// CheckError when there is none or one cannot be split.
func (r *istio) stableHTTP(u *unstructured.Unstructured, b Backends) ([]int, error) {
	http, _, err := unstructured.NestedSlice(u.Object, "spec", "http")
	if err != nil {
		return nil, checkErrorf("fix the VirtualService", "spec.http of VirtualService %s/%s cannot be read: %v", b.Namespace, r.name, err)
	}
	var out []int
	for i := range http {
		route, err := istioHTTPRoute(http, i)
		if err != nil {
			return nil, checkErrorf("fix the VirtualService", "http[%d] of VirtualService %s/%s cannot be read: %v", i, b.Namespace, r.name, err)
		}
		idx, _, err := r.routeRefs(route, i, b)
		if err != nil {
			return nil, err
		}
		if idx.stable >= 0 {
			out = append(out, i)
		}
	}
	if len(out) == 0 {
		return nil, checkErrorf(fmt.Sprintf("add an http route with destination host %s to it, or set ROUTER_NAME to the VirtualService that has one", b.Stable),
			"VirtualService %s/%s has no http route to the stable Service %s", b.Namespace, r.name, b.Stable)
	}
	return out, nil
}

// istioSnapshot is what the release changes on a VirtualService.
type istioSnapshot struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Stable are the route destinations to the stable Service before the release, as stored: Restore finds them
	// again by their content, never by their position, and puts their weights back.
	Stable []any `json:"stable,omitempty"`
	// HTTP are what releases recorded before saved instead: the routes of the http entries that went to the
	// stable Service, by position. Restore reads only the destinations to the stable Service in them.
	HTTP []savedList `json:"http,omitempty"`
	// Annotations are the release annotations' keys the object already had, with their values.
	Annotations map[string]string `json:"annotations,omitempty"`
}

func (r *istio) Snapshot(ctx context.Context, b Backends) (string, error) {
	u, err := r.get(ctx, b.Namespace)
	if err != nil {
		return "", err
	}
	entries, err := r.stableHTTP(u, b)
	if err != nil {
		return "", err
	}
	http, _, err := unstructured.NestedSlice(u.Object, "spec", "http")
	if err != nil {
		return "", fmt.Errorf("read VirtualService %s/%s: %w", b.Namespace, r.name, err)
	}
	s := istioSnapshot{Kind: KindIstio, Name: r.name, Annotations: annotationsBeforeRelease(u.GetAnnotations(), b.Annotations)}
	for _, i := range entries {
		route, err := istioHTTPRoute(http, i)
		if err != nil {
			return "", fmt.Errorf("read VirtualService %s/%s: %w", b.Namespace, r.name, err)
		}
		s.Stable = appendStable(s.Stable, route, istioItemRole(b))
	}
	data, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("encode the VirtualService snapshot: %w", err)
	}
	return string(data), nil
}

// istioItemRole says which of the release's Services a route destination, as stored, goes to.
func istioItemRole(b Backends) func(item any) backendRole {
	return func(item any) backendRole {
		m, ok := item.(map[string]any)
		if !ok {
			return backendOther
		}
		host, _, err := unstructured.NestedString(m, "destination", "host")
		if err != nil {
			return backendOther
		}
		role, _ := istioHostRole(host, b)
		return role
	}
}

// newRoute builds http[i].route for w: the stable destination as it is (port, subset, headers and all), then the
// canary and the baseline destinations, kept as they are when the route already has them, else new ones with the
// host written like the stable one and the stable destination's port. Every weight is explicit, 0 included.
func (r *istio) newRoute(route []any, i int, b Backends, w Weights) ([]any, error) {
	idx, suffix, err := r.routeRefs(route, i, b)
	if err != nil {
		return nil, err
	}
	stable := route[idx.stable].(map[string]any) // routeRefs checked it is an object
	var out []any
	var sum int32
	for _, x := range []struct {
		j      int
		svc    string
		weight int32
	}{{idx.stable, b.Stable, w.Stable()}, {idx.canary, b.Canary, w.Canary}, {idx.baseline, b.Baseline, w.Baseline}} {
		if x.svc == "" {
			continue
		}
		var entry map[string]any
		if x.j >= 0 {
			entry = runtime.DeepCopyJSON(route[x.j].(map[string]any))
		} else {
			dest := map[string]any{"host": x.svc + suffix}
			if port, found, _ := unstructured.NestedFieldCopy(stable, "destination", "port"); found {
				dest["port"] = port
			}
			entry = map[string]any{"destination": dest}
		}
		entry["weight"] = int64(x.weight)
		sum += x.weight
		out = append(out, entry)
	}
	if sum != 100 {
		return nil, fmt.Errorf("the weights of http[%d] add up to %d, not 100 as Istio requires", i, sum)
	}
	return out, nil
}

func (r *istio) SetWeights(ctx context.Context, b Backends, w Weights) (Applied, error) {
	if err := weightsFit(b, w); err != nil {
		return Applied{}, err
	}
	stored, err := setLists(ctx, r.client(b.Namespace), "VirtualService "+b.Namespace+"/"+r.name, r.name, []string{"spec", "http"}, "route",
		b.Annotations, func(u *unstructured.Unstructured) ([]int, func([]any, int) ([]any, error), error) {
			entries, err := r.stableHTTP(u, b)
			return entries, func(route []any, i int) ([]any, error) { return r.newRoute(route, i, b, w) }, err
		})
	if err != nil {
		return Applied{}, err
	}
	return r.readBack(b, w, stored)
}

// istioWeight is route entry j's weight as Istio reads it: a lone destination gets everything, an unset weight
// among several is 0.
func istioWeight(route []any, j int) (int32, error) {
	if j < 0 {
		return -1, nil // missing
	}
	entry, _ := route[j].(map[string]any)
	v, found := entry["weight"]
	if !found || v == nil {
		if len(route) == 1 {
			return 100, nil
		}
		return 0, nil
	}
	switch n := v.(type) {
	case int64:
		return int32(n), nil
	case float64:
		return int32(n), nil
	case int32:
		return n, nil
	case int:
		return int32(n), nil
	}
	return 0, fmt.Errorf("route[%d].weight is %T, not a number", j, v)
}

// readBack checks that every stable http route of the VirtualService as stored (the update's answer) holds the weights of w,
// adding up to 100.
func (r *istio) readBack(b Backends, w Weights, u *unstructured.Unstructured) (Applied, error) {
	entries, err := r.stableHTTP(u, b)
	if err != nil {
		return Applied{}, readBackError("VirtualService "+b.Namespace+"/"+r.name, err)
	}
	http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http") // stableHTTP read it
	var a Applied
	for n, i := range entries {
		route, _ := istioHTTPRoute(http, i)
		idx, _, err := r.routeRefs(route, i, b)
		if err != nil {
			return Applied{}, readBackError("VirtualService "+b.Namespace+"/"+r.name, err)
		}
		var ws [3]int32
		for k, j := range []int{idx.stable, idx.canary, idx.baseline} {
			if ws[k], err = istioWeight(route, j); err != nil {
				return Applied{}, fmt.Errorf("read back VirtualService %s/%s: http[%d]: %w", b.Namespace, r.name, i, err)
			}
		}
		stable, canary, baseline := ws[0], ws[1], ws[2]
		if b.Baseline == "" {
			baseline = 0
		}
		if n == 0 {
			a = Applied{Stored: Weights{Canary: canary, Baseline: baseline}, EffectiveCanary: float64(canary), EffectiveBaseline: float64(baseline),
				Detail: splitDetail("VirtualService "+r.name, stable, canary, baseline, b.Baseline != "")}
			if len(entries) > 1 {
				a.Detail += fmt.Sprintf(" (%d http routes)", len(entries))
			}
		}
		if stable != w.Stable() || canary != w.Canary || baseline != w.Baseline {
			return a, fmt.Errorf("VirtualService %s/%s http[%d] holds %s after the update; want %s", b.Namespace, r.name, i,
				splitDetail("", stable, canary, baseline, b.Baseline != ""), splitDetail("", w.Stable(), w.Canary, w.Baseline, b.Baseline != ""))
		}
		var sum int32
		for j := range route {
			v, err := istioWeight(route, j)
			if err != nil {
				return a, fmt.Errorf("read back VirtualService %s/%s: http[%d]: %w", b.Namespace, r.name, i, err)
			}
			sum += v
		}
		if sum != 100 {
			return a, fmt.Errorf("VirtualService %s/%s http[%d] weights add up to %d after the update, not 100 as Istio requires", b.Namespace, r.name, i, sum)
		}
	}
	a.Warnings = istioUnsplitWarnings(u, b)
	return a, nil
}

// istioUnsplitWarnings names the tcp and tls routes to the stable Service: the release does not split them.
func istioUnsplitWarnings(u *unstructured.Unstructured, b Backends) []string {
	var out []string
	for _, proto := range []string{"tcp", "tls"} {
		list, _, _ := unstructured.NestedSlice(u.Object, "spec", proto)
		for i := range list {
			route, err := unstructuredRuleSlice(list, i, "route")
			if err != nil {
				continue
			}
			for j := range route {
				host, err := istioDestinationHost(route, j)
				if err != nil {
					continue
				}
				if role, _ := istioHostRole(host, b); role == backendStable {
					out = append(out, fmt.Sprintf("VirtualService %s: %s[%d] goes to the stable Service %s and keeps doing so: only http routes are split",
						u.GetName(), proto, i, b.Stable))
					break
				}
			}
		}
	}
	return out
}

func (r *istio) Restore(ctx context.Context, b Backends, snapshot string) error {
	var s istioSnapshot
	if err := utiljson.Unmarshal([]byte(snapshot), &s); err != nil {
		return fmt.Errorf("read the VirtualService snapshot: %w", err)
	}
	if s.Kind != KindIstio {
		return fmt.Errorf("read the VirtualService snapshot: it is of router kind %q", s.Kind)
	}
	role := istioItemRole(b)
	saved := s.Stable
	for _, l := range s.HTTP {
		saved = appendStable(saved, l.Items, role)
	}
	return restoreLists(ctx, r.client(b.Namespace), "VirtualService "+b.Namespace+"/"+r.name, r.name,
		listRestore{path: []string{"spec", "http"}, field: "route", role: role, saved: saved}, b, s.Annotations)
}
