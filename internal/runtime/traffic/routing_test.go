package traffic

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	routev1 "github.com/openshift/api/route/v1"
	routefake "github.com/openshift/client-go/route/clientset/versioned/fake"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient/kubeclienttest"
)

func TestParseMatch(t *testing.T) {
	t.Parallel()
	got, err := ParseMatch("header X-Canary: always\n\n# a comment\n  header x-beta ~ ^(yes|1)$ \ncookie canary=always\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []MatchRule{{Kind: MatchHeader, Name: "X-Canary", Value: "always"}, {Kind: MatchHeader, Name: "x-beta", Value: "^(yes|1)$", Regex: true},
		{Kind: MatchCookie, Name: "canary", Value: "always"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ParseMatch (-want +got):\n%s", d)
	}
	if again, _ := ParseMatch(FormatMatch(got)); !cmp.Equal(again, got) {
		t.Errorf("FormatMatch does not read back: %q", FormatMatch(got))
	}
	for _, bad := range []string{"x-canary: always", "header X Canary: always", "header X-Canary:", "header X-Canary ~ (", "cookie canary=a;b",
		"cookie canary", "header X-Canary: a\x01b", "header Ä: 1", strings.Repeat("header a: b\n", MaxMatchRules+1)} {
		_, err := ParseMatch(bad)
		var ce *CheckError
		if !errors.As(err, &ce) || ce.Param != "MATCH" || ce.Fix == "" {
			t.Errorf("ParseMatch(%q) = %v; want a CheckError naming MATCH with a fix", bad, err)
		}
	}
}

func TestCheckRouting(t *testing.T) {
	t.Parallel()
	header := []MatchRule{{Kind: MatchHeader, Name: "x-canary", Value: "always"}}
	for _, tc := range []struct {
		kind, param string
		rt          Routing
	}{
		{KindReplicas, "MATCH", Routing{Match: header}},
		{KindReplicas, "MIRROR", Routing{Mirror: 5}},
		{KindRoute, "MIRROR", Routing{Mirror: 5}},
		{KindNginx, "MIRROR", Routing{Mirror: 5}},
		{KindHTTPRoute, "TEST_HOST", Routing{TestHost: "t.example.com"}},
		{KindNginx, "MATCH", Routing{Match: append(header, MatchRule{Kind: MatchHeader, Name: "x-b", Value: "1"})}},
		{KindNginx, "MATCH", Routing{Match: []MatchRule{{Kind: MatchCookie, Name: "c", Value: "yes"}}}},
		{KindRoute, "", Routing{Match: header, TestHost: "t.example.com"}},
		{KindHTTPRoute, "", Routing{Match: header, Mirror: 100}},
		{KindIstio, "", Routing{Match: header, Mirror: 1}},
		{KindNginx, "", Routing{Match: append(header, MatchRule{Kind: MatchCookie, Name: "c", Value: "always"})}},
	} {
		tr, _ := TraitsOf(tc.kind)
		err := tr.CheckRouting(tc.kind, tc.rt)
		var ce *CheckError
		switch {
		case tc.param == "" && err != nil:
			t.Errorf("%s %+v: %v; want it allowed", tc.kind, tc.rt, err)
		case tc.param != "" && (!errors.As(err, &ce) || ce.Param != tc.param):
			t.Errorf("%s %+v: %v; want a CheckError naming %s", tc.kind, tc.rt, err, tc.param)
		}
	}
}

// routingTestRules are the MATCH of the router tests: a header exactly, and a cookie.
var routingTestRules = []MatchRule{{Kind: MatchHeader, Name: "X-Canary", Value: "always"}, {Kind: MatchCookie, Name: "canary", Value: "always"}}

// routingTestList shifts the list router object before (named shop) to w with rt, then runs check on the object as
// stored; shifts again with rt (nothing changes), then without routing (the match and mirror go), then with rt
// again, lets a team add an entry, restores, and checks the object is before plus the team's entry.
func routingTestList(t *testing.T, before *unstructured.Unstructured, newRouter func(string, Clients) *listRouter, rt Routing,
	check func(t *testing.T, u *unstructured.Unstructured)) {
	t.Helper()
	ctx, b, w := context.Background(), routerTestBackends(false), Weights{}
	dyn := routerTestDynamic(before)
	plain := newRouter("shop", Clients{Dynamic: dyn})
	r := newRouter("shop", Clients{Dynamic: dyn}).with(rt)
	gvr, path := r.kind.gvr, r.kind.path
	if err := r.Check(ctx, b); err != nil {
		t.Fatalf("Check: %v", err)
	}
	snap, err := r.Snapshot(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetWeights(ctx, b, w); err != nil {
		t.Fatalf("SetWeights with %s: %v", rt.describe(), err)
	}
	shifted := routerTestGet(t, dyn, gvr, "shop")
	check(t, shifted)
	if _, err := r.SetWeights(ctx, b, w); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(shifted.Object, routerTestGet(t, dyn, gvr, "shop").Object); d != "" {
		t.Errorf("a rerun of the shift changed the object (-first +rerun):\n%s", d)
	}
	if _, err := plain.SetWeights(ctx, b, Weights{Canary: 10}); err != nil {
		t.Fatal(err)
	}
	list, _, _ := unstructured.NestedSlice(routerTestGet(t, dyn, gvr, "shop").Object, path...)
	if n, _, _ := unstructured.NestedSlice(before.Object, path...); len(list) != len(n) || strings.Contains(mustJSON(t, list), "canaryline-match") ||
		strings.Contains(mustJSON(t, list), "irror") {
		t.Errorf("a shift without routing left the match or mirror: %s", mustJSON(t, list))
	}
	if _, err := r.SetWeights(ctx, b, w); err != nil {
		t.Fatal(err)
	}
	team := map[string]any{"name": "team", "route": []any{map[string]any{"destination": map[string]any{"host": "other"}}},
		"backendRefs": []any{map[string]any{"name": "other", "port": int64(80)}}}
	routerTestInsertFirst(t, dyn, gvr, "shop", team, path...)
	if err := plain.Restore(ctx, b, snap); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	want := routerTestStripped(before)
	wl, _, _ := unstructured.NestedSlice(want.Object, path...)
	_ = unstructured.SetNestedSlice(want.Object, append([]any{team}, wl...), path...)
	if d := cmp.Diff(want.Object, routerTestGet(t, dyn, gvr, "shop").Object); d != "" {
		t.Errorf("after Restore (-want +got):\n%s", d)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	u := unstructured.Unstructured{Object: map[string]any{"v": v}}
	data, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// The HTTPRoute gets, before each stable rule, a rule to the canary alone with the stable rule's matches and the
// header matches, and a RequestMirror filter on the stable rule; Restore removes them and keeps a team's rule.
func TestHTTPRouteMatchAndMirror(t *testing.T) {
	t.Parallel()
	routingTestList(t, routerTestObject(t, httpRouteTestManifest), newHTTPRoute, Routing{Match: routingTestRules, Mirror: 10}, func(t *testing.T, u *unstructured.Unstructured) {
		rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
		if len(rules) != 5 {
			t.Fatalf("%d rules; want 3 and a match rule before each of the 2 stable ones", len(rules))
		}
		m := rules[0].(map[string]any)
		want := map[string]any{"name": "canaryline-match-shop-canary-0",
			"matches": []any{
				map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/api"},
					"headers": []any{map[string]any{"type": "Exact", "name": "X-Canary", "value": "always"}}},
				map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/api"},
					"headers": []any{map[string]any{"type": "RegularExpression", "name": "Cookie", "value": `^(.*;\s*)?canary=always(;.*)?$`}}}},
			"filters":     []any{map[string]any{"type": "RequestHeaderModifier", "requestHeaderModifier": map[string]any{"add": []any{map[string]any{"name": "x-app", "value": "shop"}}}}},
			"backendRefs": []any{map[string]any{"name": "shop-canary", "port": int64(8080), "weight": int64(1)}}}
		if d := cmp.Diff(want, m); d != "" {
			t.Errorf("match rule (-want +got):\n%s", d)
		}
		if name := rules[1].(map[string]any)["name"]; name != "api" {
			t.Errorf("rule 1 is %v; want the stable rule api after its match rule", name)
		}
		filters, _, _ := unstructured.NestedSlice(rules[1].(map[string]any), "filters")
		mirror := map[string]any{"type": "RequestMirror", "requestMirror": map[string]any{"backendRef": map[string]any{"name": "shop-canary", "port": int64(8080)}, "percent": int64(10)}}
		if len(filters) != 2 || !cmp.Equal(filters[1], any(mirror)) {
			t.Errorf("stable rule filters = %v; want its own and %v", filters, mirror)
		}
		if n := rules[3].(map[string]any)["name"]; n != "canaryline-match-shop-canary-1" {
			t.Errorf("rule 3 is %v; want the match rule of the stable rule /", n)
		}
	})
}

// The VirtualService gets, before each stable http entry, an entry to the canary alone with the stable entry's
// match blocks and a header each, and mirror and mirrorPercentage on the stable entry.
func TestIstioMatchAndMirror(t *testing.T) {
	t.Parallel()
	routingTestList(t, routerTestObject(t, istioTestManifest), newIstio, Routing{Match: routingTestRules, Mirror: 25}, func(t *testing.T, u *unstructured.Unstructured) {
		http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
		if len(http) != 6 {
			t.Fatalf("%d http entries; want 4 and a match entry before each of the 2 stable ones", len(http))
		}
		m := http[0].(map[string]any)
		want := map[string]any{"name": "canaryline-match-shop-canary-0", "timeout": "5s",
			"match": []any{
				map[string]any{"uri": map[string]any{"prefix": "/api"}, "headers": map[string]any{"x-canary": map[string]any{"exact": "always"}}},
				map[string]any{"uri": map[string]any{"prefix": "/api"}, "headers": map[string]any{"cookie": map[string]any{"regex": `^(.*;\s*)?canary=always(;.*)?$`}}}},
			"route": []any{map[string]any{"destination": map[string]any{"host": "shop-canary.apps.svc.cluster.local", "port": map[string]any{"number": int64(8080)}}}}}
		if d := cmp.Diff(want, m); d != "" {
			t.Errorf("match entry (-want +got):\n%s", d)
		}
		api := http[1].(map[string]any)
		if d := cmp.Diff(map[string]any{"host": "shop-canary.apps.svc.cluster.local", "port": map[string]any{"number": int64(8080)}}, api["mirror"]); d != "" {
			t.Errorf("mirror (-want +got):\n%s", d)
		}
		if d := cmp.Diff(map[string]any{"value": int64(25)}, api["mirrorPercentage"]); d != "" {
			t.Errorf("mirrorPercentage (-want +got):\n%s", d)
		}
		if web := http[5].(map[string]any); web["name"] != "web" || web["mirror"] == nil {
			t.Errorf("http[5] = %v; want the stable entry web, mirrored", web)
		}
	})
}

// An http route to the stable Service that already mirrors elsewhere: MIRROR is refused before any write.
func TestIstioMirrorRefusesAForeignMirror(t *testing.T) {
	t.Parallel()
	u := routerTestObject(t, istioTestManifest)
	http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
	http[3].(map[string]any)["mirror"] = map[string]any{"host": "shadow"}
	_ = unstructured.SetNestedSlice(u.Object, http, "spec", "http")
	r, fake := istioTestRouter(u)
	r.rt = Routing{Mirror: 5}
	err := r.Check(context.Background(), routerTestBackends(false))
	var ce *CheckError
	if !errors.As(err, &ce) || ce.Param != "MIRROR" {
		t.Errorf("Check = %v; want a CheckError naming MIRROR", err)
	}
	if n := routerTestWrites(fake); n != 0 {
		t.Errorf("Check made %d writes", n)
	}
}

// NGINX: the canary Ingress carries canary-by-header (and value or pattern) and canary-by-cookie; a shift without
// MATCH drops them.
func TestNginxMatch(t *testing.T) {
	t.Parallel()
	ctx, b := context.Background(), routerTestBackends(false)
	r, _ := nginxTestRouter(nginxTestPrimary())
	r.rt = Routing{Match: []MatchRule{{Kind: MatchHeader, Name: "X-Canary", Value: "^(yes|1)$", Regex: true}, {Kind: MatchCookie, Name: "canary", Value: "always"}}}
	if err := r.Check(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetWeights(ctx, b, Weights{}); err != nil {
		t.Fatal(err)
	}
	anns := nginxTestIngress(t, r, "shop-canary").Annotations
	for k, v := range map[string]string{nginxCanaryByHeader: "X-Canary", nginxCanaryByHeaderPattern: "^(yes|1)$", nginxCanaryByCookie: "canary", nginxCanaryWeightAnnotation: "0"} {
		if anns[k] != v {
			t.Errorf("%s = %q; want %q", k, anns[k], v)
		}
	}
	if _, ok := anns[nginxCanaryByHeaderValue]; ok {
		t.Errorf("a regex rule set %s", nginxCanaryByHeaderValue)
	}
	r.rt = Routing{}
	if _, err := r.SetWeights(ctx, b, Weights{Canary: 10}); err != nil {
		t.Fatal(err)
	}
	for k := range nginxTestIngress(t, r, "shop-canary").Annotations {
		if strings.Contains(k, "canary-by-") {
			t.Errorf("a shift without MATCH left %s", k)
		}
	}
}

// routingTestRoute is the route router on Route shop (host shop.apps.example.com, edge TLS with a certificate).
func routingTestRoute(objs ...*routev1.Route) (*route, *routefake.Clientset, Backends) {
	w := int32(100)
	stable := &routev1.Route{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "ns"},
		Spec: routev1.RouteSpec{Host: "shop.apps.example.com", Path: "/", To: routev1.RouteTargetReference{Kind: "Service", Name: "shop", Weight: &w},
			Port: &routev1.RoutePort{}, TLS: &routev1.TLSConfig{Termination: routev1.TLSTerminationEdge, Certificate: "CERT", Key: "KEY"}}}
	rc := routefake.NewSimpleClientset(stable)
	for _, o := range objs {
		_, _ = rc.RouteV1().Routes(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{})
	}
	objsK := routeTestEndpoints("ns", map[string]int32{"shop": 2, "shop-canary": 1})
	r := &route{name: "shop", c: Clients{Route: kubeclienttest.WrapRoute(rc.RouteV1()), Kube: kubeclienttest.Wrap(kubefake.NewClientset(objsK...))}}
	return r, rc, Backends{Namespace: "ns", Stable: "shop", Canary: "shop-canary", StableDeployment: "shop",
		Annotations: map[string]string{"shop.canaryline.dev/release": "r1"}}
}

// The route router makes a test Route for MATCH or TEST_HOST: marked, to the canary alone, with the stable
// Route's path and TLS termination but not its certificate; a later shift without them, and Restore, delete it.
func TestRouteTestRoute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, rc, b := routingTestRoute()
	r.rt = Routing{Match: routingTestRules[:1], TestHost: "shop-test.apps.example.com"}
	if err := r.Check(ctx, b); err != nil {
		t.Fatal(err)
	}
	snap, err := r.Snapshot(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.SetWeights(ctx, b, Weights{})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Warnings) == 0 || !strings.Contains(a.Detail, "test Route shop-canary") {
		t.Errorf("Applied = %+v; want the test Route in the detail and a warning that MATCH is not matched", a)
	}
	tr, err := rc.RouteV1().Routes("ns").Get(ctx, "shop-canary", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := routev1.RouteSpec{Host: "shop-test.apps.example.com", Path: "/", To: routev1.RouteTargetReference{Kind: "Service", Name: "shop-canary", Weight: ptrTo(int32(100))},
		Port: &routev1.RoutePort{}, TLS: &routev1.TLSConfig{Termination: routev1.TLSTerminationEdge}, WildcardPolicy: routev1.WildcardPolicyNone}
	if d := cmp.Diff(want, tr.Spec); d != "" || !b.Marked(tr.Annotations) {
		t.Errorf("test Route (-want +got):\n%s\nannotations %v", d, tr.Annotations)
	}
	r.rt = Routing{}
	if _, err := r.SetWeights(ctx, b, Weights{Canary: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.RouteV1().Routes("ns").Get(ctx, "shop-canary", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a shift without MATCH left the test Route: %v", err)
	}
	r.rt = Routing{TestHost: "shop-test.apps.example.com"}
	if _, err := r.SetWeights(ctx, b, Weights{Canary: 10}); err != nil {
		t.Fatal(err)
	}
	if err := (&route{name: "shop", c: r.c}).Restore(ctx, b, snap); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.RouteV1().Routes("ns").Get(ctx, "shop-canary", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Restore left the test Route: %v", err)
	}
}

// A team's Route named like the canary, or a TEST_HOST another Route serves, is refused by Check; Restore and a
// shift without MATCH leave the team's Route alone.
func TestRouteTestRouteClash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	team := &routev1.Route{ObjectMeta: metav1.ObjectMeta{Name: "shop-canary", Namespace: "ns"},
		Spec: routev1.RouteSpec{Host: "beta.example.com", To: routev1.RouteTargetReference{Kind: "Service", Name: "shop-beta"}}}
	r, rc, b := routingTestRoute(team)
	r.rt = Routing{Match: routingTestRules[:1]}
	var ce *CheckError
	if err := r.Check(ctx, b); !errors.As(err, &ce) || ce.Param != "CANARY_NAME" {
		t.Errorf("Check with a team's Route shop-canary = %v; want a CheckError naming CANARY_NAME", err)
	}
	b2 := b
	b2.Canary = "shop-next"
	r.rt = Routing{TestHost: "beta.example.com"}
	if err := r.Check(ctx, b2); !errors.As(err, &ce) || ce.Param != "TEST_HOST" {
		t.Errorf("Check with a TEST_HOST of another Route = %v; want a CheckError naming TEST_HOST", err)
	}
	r.rt = Routing{TestHost: "shop.apps.example.com"}
	if err := r.Check(ctx, b2); !errors.As(err, &ce) || ce.Param != "TEST_HOST" {
		t.Errorf("Check with the stable Route's host = %v; want a CheckError naming TEST_HOST", err)
	}
	r.rt = Routing{}
	if _, err := r.SetWeights(ctx, b, Weights{Canary: 10}); err != nil {
		t.Fatal(err)
	}
	if got, err := rc.RouteV1().Routes("ns").Get(ctx, "shop-canary", metav1.GetOptions{}); err != nil || got.Spec.To.Name != "shop-beta" {
		t.Errorf("the team's Route after a shift: %v %v", got, err)
	}
}

func ptrTo[T any](v T) *T { return &v }

// shop and cart share a router object, both with MATCH and MIRROR: shop's end removes its own match entry and
// mirror alone, cart's stay until cart's end, and in the end the object is as before both.
func TestRoutingOnASharedObject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		manifest  string
		newRouter func(string, Clients) *listRouter
	}{{httpRouteTestShared, newHTTPRoute}, {istioTestShared, newIstio}} {
		dyn := routerTestDynamic(routerTestObject(t, tc.manifest))
		rt := Routing{Match: routingTestRules[:1], Mirror: 10}
		kind := tc.newRouter("storefront", Clients{Dynamic: dyn}).kind
		routerTestSharedSteps(t, func() Router { return tc.newRouter("storefront", Clients{Dynamic: dyn}).with(rt) }, func() {
			list, _, _ := unstructured.NestedSlice(routerTestGet(t, dyn, kind.gvr, "storefront").Object, kind.path...)
			s := mustJSON(t, list)
			if strings.Contains(s, "shop-canary") || !strings.Contains(s, "canaryline-match-cart-canary-0") || strings.Count(s, "cart-canary") < 3 {
				t.Errorf("%s while cart's release runs, after shop's end: %s; want cart's match entry, weights and mirror, and nothing of shop's", kind.object, s)
			}
		})
		if d := cmp.Diff(routerTestStripped(routerTestObject(t, tc.manifest)).Object, routerTestGet(t, dyn, kind.gvr, "storefront").Object); d != "" {
			t.Errorf("%s after both releases (-want +got):\n%s", kind.object, d)
		}
	}
}
