package traffic

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// virtualServiceGVR is the Istio VirtualService resource.
var virtualServiceGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

// istioKind is an Istio VirtualService: every http entry whose route goes to the stable Service gets weighted
// destinations for the stable, canary (and baseline) Services. The object is handled as unstructured, so no
// Istio client is linked and every field the router does not touch is written back as it was.
var istioKind = &listKind{
	kind: KindIstio, object: "VirtualService", gvr: virtualServiceGVR, path: []string{"spec", "http"}, field: "route",
	entry:    func(i int) string { return fmt.Sprintf("http[%d]", i) },
	entries:  "http routes",
	read:     readVirtualService,
	itemRole: istioItemRole,
	notFound: func(ns, name string, b Backends) error {
		return checkErrorf(fmt.Sprintf("create it (Istio must be installed) with an http route to host %s, "+
			"or set ROUTER_NAME to the VirtualService that serves the application", b.Stable),
			"VirtualService %s/%s does not exist", ns, name)
	},
	routing: istioRouting,
	legacy:  func(s *listSnapshot) []savedList { return s.HTTP },
}

// newIstio is the router of the VirtualService name.
func newIstio(name string, c Clients) *listRouter {
	return &listRouter{name: name, c: c, kind: istioKind}
}

// virtualService is a VirtualService as stored, for the release b.
type virtualService struct {
	u *unstructured.Unstructured
	b Backends
}

var _ listObject = virtualService{}

// readVirtualService reads the stored VirtualService u; it never fails (entries and refs say what cannot be read).
func readVirtualService(u *unstructured.Unstructured, b Backends) (listObject, error) {
	return virtualService{u: u, b: b}, nil
}

// what names the VirtualService in messages: "VirtualService apps/shop".
func (v virtualService) what() string { return "VirtualService " + v.b.Namespace + "/" + v.u.GetName() }

// route returns http[i].route as stored (nil when the entry has none, as for a redirect).
func (v virtualService) route(i int) ([]any, error) {
	http, _, _ := unstructured.NestedSlice(v.u.Object, "spec", "http") // entries read it
	return istioHTTPRoute(http, i)
}

// refs finds the release's destinations in http[i].route.
func (v virtualService) refs(i int) (refIndexes, error) {
	route, err := v.route(i)
	if err != nil {
		return refIndexes{stable: -1, canary: -1, baseline: -1}, checkErrorf("fix the VirtualService", "http[%d] of %s cannot be read: %v", i, v.what(), err)
	}
	idx, _, err := v.routeRefs(route, i)
	return idx, err
}

// weight is destination j of http[i].route's weight (refs read the route).
func (v virtualService) weight(i, j int) (int32, error) {
	route, _ := v.route(i)
	return istioWeight(route, j)
}

// verify checks that the weights of http[i].route add up to 100, as Istio requires.
func (v virtualService) verify(i int) error {
	route, _ := v.route(i) // refs read it
	var sum int32
	for j := range route {
		w, err := istioWeight(route, j)
		if err != nil {
			return fmt.Errorf("read back %s: http[%d]: %w", v.what(), i, err)
		}
		sum += w
	}
	if sum != 100 {
		return fmt.Errorf("%s http[%d] weights add up to %d after the update, not 100 as Istio requires", v.what(), i, sum)
	}
	return nil
}

// warnings name the tcp and tls routes to the stable Service, which the release does not split.
func (v virtualService) warnings() []string { return istioUnsplitWarnings(v.u, v.b) }

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
func (v virtualService) routeRefs(route []any, i int) (refIndexes, string, error) {
	b := v.b
	e, err := sortRefs(len(route), func(j int) (backendRole, string, error) {
		host, err := istioDestinationHost(route, j)
		if err != nil {
			return backendOther, "", checkErrorf("fix the VirtualService", "http[%d] of %s cannot be read: %v", i, v.what(), err)
		}
		role, _ := istioHostRole(host, b)
		return role, host, nil
	})
	switch {
	case err != nil:
		return e.refIndexes, "", err
	case e.stable < 0:
		return e.refIndexes, "", nil // not a route of the release
	case e.dup != nil:
		return e.refIndexes, "", checkErrorf("leave one destination per Service in the route before the release (for subsets, use another router object)",
			"http[%d] of %s has more than one destination on %s", i, v.what(), e.dup)
	case len(e.others) > 0:
		return e.refIndexes, "", checkErrorf(fmt.Sprintf("make the route send its traffic to host %s alone before the release", b.Stable),
			"http[%d] of %s sends traffic to %s besides the stable Service %s: the shares of a release could not be controlled",
			i, v.what(), strings.Join(e.others, ", "), b.Stable)
	}
	host, _ := istioDestinationHost(route, e.stable)
	_, suffix := istioHostRole(host, b)
	return e.refIndexes, suffix, nil
}

// istioHTTPRoute returns http[i].route as stored (nil when the entry has none, as for a redirect).
func istioHTTPRoute(http []any, i int) ([]any, error) {
	return unstructuredRuleSlice(http, i, "route")
}

// entries is the number of http entries.
func (v virtualService) entries() (int, error) {
	http, _, err := unstructured.NestedSlice(v.u.Object, "spec", "http")
	if err != nil {
		return 0, checkErrorf("fix the VirtualService", "spec.http of %s cannot be read: %v", v.what(), err)
	}
	return len(http), nil
}

// noStable is the CheckError for a VirtualService without an http route to the stable Service.
func (v virtualService) noStable() error {
	return checkErrorf(fmt.Sprintf("add an http route with destination host %s to it, or set ROUTER_NAME to the VirtualService that has one", v.b.Stable),
		"%s has no http route to the stable Service %s", v.what(), v.b.Stable)
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

// backends builds http[i].route for w: the stable destination as it is (port, subset, headers and all), then the
// canary and the baseline destinations, kept as they are when the route already has them, else new ones with the
// host written like the stable one and the stable destination's port. Every weight is explicit, 0 included.
func (v virtualService) backends(route []any, i int, w Weights) ([]any, error) {
	b := v.b
	idx, suffix, err := v.routeRefs(route, i)
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
