package integration

import (
	"context"
	"strings"
	"testing"

	routev1 "github.com/openshift/api/route/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// matchTestRules is the MATCH of these tests: a header exactly and a cookie (NGINX takes a cookie as "always").
const matchTestRules = "header X-Canary: always\ncookie canary=always"

// matchTestCookieRegex is how the httproute and istio routers match the cookie canary=always.
const matchTestCookieRegex = `^(.*;\s*)?canary=always(;.*)?$`

// matchTestTeamEntry is a team's own rule (HTTPRoute) or http entry (VirtualService), added during a release.
var matchTestTeamEntry = map[string]map[string]any{
	"httproute": {"matches": []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/team"}}},
		"backendRefs": []any{map[string]any{"name": "team-svc", "port": int64(9090)}}},
	"istio": {"name": "team", "match": []any{map[string]any{"uri": map[string]any{"prefix": "/team"}}},
		"route": []any{map[string]any{"destination": map[string]any{"host": "team-svc", "port": map[string]any{"number": int64(9090)}}}}},
}

// matchEntryWant is the match rule (HTTPRoute) or http entry (VirtualService) the release must put first, as the
// API server stores it.
func matchEntryWant(kind string) map[string]any {
	if kind == "istio" {
		return map[string]any{"name": "canaryline-match-shop-canary-0",
			"match": []any{map[string]any{"headers": map[string]any{"x-canary": map[string]any{"exact": "always"}}},
				map[string]any{"headers": map[string]any{"cookie": map[string]any{"regex": matchTestCookieRegex}}}},
			"route": []any{map[string]any{"destination": map[string]any{"host": "shop-canary", "port": map[string]any{"number": int64(8080)}}}}}
	}
	path := map[string]any{"type": "PathPrefix", "value": "/"} // the API server's default, on the stable rule and on the copy
	return map[string]any{"name": "canaryline-match-shop-canary-0",
		"matches": []any{map[string]any{"path": path, "headers": []any{map[string]any{"type": "Exact", "name": "X-Canary", "value": "always"}}},
			map[string]any{"path": path, "headers": []any{map[string]any{"type": "RegularExpression", "name": "Cookie", "value": matchTestCookieRegex}}}},
		"backendRefs": []any{map[string]any{"group": "", "kind": "Service", "name": "shop-canary", "port": int64(8080), "weight": int64(1)}}}
}

// TestMatchHeaderRoutesPerRouter: for each router with header matching, a weight-0 shift with MATCH puts the match
// on the router object exactly as the router expresses it; a later shift without MATCH removes it and one with it
// puts it back; a team's entry added during the release survives the end of the release, and the application's
// entries and annotations are as before it.
func TestMatchHeaderRoutesPerRouter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ kind, decision string }{{"httproute", "rollback"}, {"istio", "promote"}, {"nginx", "rollback"}} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, tc.kind, 2)
			before := a.matchState()
			if r := a.shift(0, map[string]string{"MATCH": matchTestRules}); r.code != 0 {
				t.Fatalf("shift 0 with MATCH: exit %d\n%s", r.code, r.stderr)
			}
			a.wantMatch(true)
			if r := a.shift(10, nil); r.code != 0 {
				t.Fatalf("shift 10 without MATCH: exit %d\n%s", r.code, r.stderr)
			}
			a.wantMatch(false)
			if r := a.shift(10, map[string]string{"MATCH": matchTestRules}); r.code != 0 {
				t.Fatalf("shift 10 with MATCH: exit %d\n%s", r.code, r.stderr)
			}
			a.wantMatch(true)
			var team any
			if tc.kind != "nginx" {
				team = a.insertFirst(matchTestTeamEntry[tc.kind])
			}
			if r := a.decide(map[string]string{"DECISION": tc.decision}); r.code != 0 {
				t.Fatalf("%s: exit %d\n%s", tc.decision, r.code, r.stderr)
			}
			if tc.kind == "nginx" {
				if got := a.matchState(); got != before {
					t.Errorf("after the %s:\n%s\nbefore the release:\n%s", tc.decision, got, before)
				}
				return
			}
			entries := a.routerEntries(a.routerObject())
			if len(entries) == 0 || jsonOf(entries[0]) != jsonOf(team) {
				t.Errorf("the team's entry after the %s: %s; want %s", tc.decision, jsonOf(entries), jsonOf(team))
			}
			if got := a.matchState(); got != before {
				t.Errorf("the application's entries and annotations after the %s:\n%s\nbefore the release:\n%s", tc.decision, got, before)
			}
		})
	}
}

// matchState is what a release with MATCH changes on the router: the router object's entries but a team's, and
// its annotations (httproute, istio), or the primary and canary Ingresses (nginx).
func (a *app) matchState() string {
	a.t.Helper()
	if a.kind == "nginx" {
		ctx := context.Background()
		primary, err := a.kube.NetworkingV1().Ingresses(a.ns).Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			a.t.Fatal(err)
		}
		_, err = a.kube.NetworkingV1().Ingresses(a.ns).Get(ctx, "shop-canary", metav1.GetOptions{})
		return jsonOf([]any{primary.Spec, primary.Annotations, apierrors.IsNotFound(err)})
	}
	u := a.routerObject()
	var entries []any
	for _, e := range a.routerEntries(u) {
		if !strings.Contains(jsonOf(e), "team-svc") {
			entries = append(entries, e)
		}
	}
	return jsonOf([]any{entries, u.GetAnnotations()})
}

// wantMatch checks that the router object holds the match of matchTestRules (on) or none (off).
func (a *app) wantMatch(on bool) {
	a.t.Helper()
	if a.kind == "nginx" {
		ing, err := a.kube.NetworkingV1().Ingresses(a.ns).Get(context.Background(), "shop-canary", metav1.GetOptions{})
		if err != nil {
			a.t.Fatal(err)
		}
		want := map[string]string{"nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
			"nginx.ingress.kubernetes.io/canary-by-header-value": "always", "nginx.ingress.kubernetes.io/canary-by-cookie": "canary"}
		for k, v := range want {
			if got, ok := ing.Annotations[k]; on && got != v || !on && ok {
				a.t.Errorf("canary Ingress %s = %q (set: %v); want %q: %v", k, got, ok, v, on)
			}
		}
		return
	}
	entries := a.routerEntries(a.routerObject())
	if !on {
		if strings.Contains(jsonOf(entries), "canaryline-match") {
			a.t.Errorf("a shift without MATCH left the match: %s", jsonOf(entries))
		}
		return
	}
	if len(entries) != 2 || jsonOf(entries[0]) != jsonOf(matchEntryWant(a.kind)) {
		a.t.Errorf("entries after a shift with MATCH:\n%s\nwant first:\n%s", jsonOf(entries), jsonOf(matchEntryWant(a.kind)))
	}
}

// TestMatchRefusedOnReplicas: the replicas router has no router object to match on: exit 2 naming MATCH, and no
// release starts.
func TestMatchRefusedOnReplicas(t *testing.T) {
	t.Parallel()
	a := newApp(t, "replicas", 2)
	r := a.shift(0, map[string]string{"MATCH": matchTestRules})
	if r.code != 2 || !strings.Contains(r.stderr, "MATCH") {
		t.Fatalf("shift with MATCH on replicas: exit %d; want 2 naming MATCH\n%s", r.code, r.stderr)
	}
	if a.exists("deployment", "shop-canary") {
		t.Error("a canary Deployment was made")
	}
	if _, err := a.kube.CoordinationV1().Leases(a.ns).Get(context.Background(), "canaryline-shop", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a release was recorded: %v", err)
	}
}

// testRoute reads the Route shop-canary (nil when there is none).
func (a *app) testRoute() *routev1.Route {
	a.t.Helper()
	rt, err := a.routes.RouteV1().Routes(a.ns).Get(context.Background(), "shop-canary", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		a.t.Fatal(err)
	}
	return rt
}

// TestMatchTestRouteOnOpenShift: with the route router, MATCH makes a separate test Route named like the canary
// Service, marked as the release's, to the canary Service alone, with the stable Route's port; a later shift
// without it deletes it, TEST_HOST alone makes it again on that host, and a rollback deletes it and leaves the
// stable Route as before the release.
func TestMatchTestRouteOnOpenShift(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	before := a.routerState()
	if r := a.shift(0, map[string]string{"MATCH": "header X-Canary: always"}); r.code != 0 {
		t.Fatalf("shift 0 with MATCH: exit %d\n%s", r.code, r.stderr)
	}
	rt := a.testRoute()
	if rt == nil {
		t.Fatal("no test Route shop-canary after a shift with MATCH")
	}
	stable, _ := a.routes.RouteV1().Routes(a.ns).Get(context.Background(), "shop", metav1.GetOptions{})
	if rt.Annotations["shop.canaryline.dev/release"] != "shop-release-1" || rt.Spec.To.Kind != "Service" || rt.Spec.To.Name != "shop-canary" ||
		len(rt.Spec.AlternateBackends) != 0 || jsonOf(rt.Spec.Port) != jsonOf(stable.Spec.Port) || rt.Spec.Host == stable.Spec.Host {
		t.Errorf("test Route: annotations %v spec %s; want marked, to shop-canary alone, on the stable Route's port %s", rt.Annotations, jsonOf(rt.Spec), jsonOf(stable.Spec.Port))
	}
	if r := a.shift(10, nil); r.code != 0 {
		t.Fatalf("shift 10 without MATCH: exit %d\n%s", r.code, r.stderr)
	}
	if a.testRoute() != nil {
		t.Error("a shift without MATCH or TEST_HOST left the test Route")
	}
	if r := a.shift(10, map[string]string{"TEST_HOST": "shop-test.apps.example.com"}); r.code != 0 {
		t.Fatalf("shift 10 with TEST_HOST: exit %d\n%s", r.code, r.stderr)
	}
	if rt := a.testRoute(); rt == nil || rt.Spec.Host != "shop-test.apps.example.com" {
		t.Errorf("test Route after a shift with TEST_HOST: %v", rt)
	}
	if r := a.decide(map[string]string{"DECISION": "rollback"}); r.code != 0 {
		t.Fatalf("rollback: exit %d\n%s", r.code, r.stderr)
	}
	if a.testRoute() != nil {
		t.Error("the rollback left the test Route")
	}
	if got := a.routerState(); got != before {
		t.Errorf("the Route after the rollback:\n%s\nbefore the release:\n%s", got, before)
	}
}

// TestMatchTestRouteClash: a team's Route named like the canary Service is refused before any write (exit 2
// naming CANARY_NAME), and stays as the team made it; with CANARY_NAME the release runs beside it and its
// promotion leaves it alone.
func TestMatchTestRouteClash(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	ctx := context.Background()
	team := newRoute("shop-canary", 100)
	team.Spec.To.Name = "shop-beta"
	created, err := a.routes.RouteV1().Routes(a.ns).Create(ctx, team, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := a.routerState()
	r := a.shift(0, map[string]string{"MATCH": "header X-Canary: always"})
	if r.code != 2 || !strings.Contains(r.stderr, "CANARY_NAME") {
		t.Fatalf("shift with MATCH beside a team's Route shop-canary: exit %d; want 2 naming CANARY_NAME\n%s", r.code, r.stderr)
	}
	if got := a.testRoute(); got == nil || got.ResourceVersion != created.ResourceVersion {
		t.Errorf("the team's Route changed: %v", got)
	}
	if a.exists("deployment", "shop-canary") || a.routerState() != before {
		t.Error("the refused shift changed the namespace")
	}
	if _, err := a.kube.CoordinationV1().Leases(a.ns).Get(ctx, "canaryline-shop", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a release was recorded: %v", err)
	}
	if r := a.shift(0, map[string]string{"MATCH": "header X-Canary: always", "CANARY_NAME": "shop-next"}); r.code != 0 {
		t.Fatalf("shift with CANARY_NAME: exit %d\n%s", r.code, r.stderr)
	}
	if rt, err := a.routes.RouteV1().Routes(a.ns).Get(ctx, "shop-next", metav1.GetOptions{}); err != nil || rt.Spec.To.Name != "shop-next" {
		t.Errorf("test Route shop-next: %v %v", rt, err)
	}
	if r := a.decide(map[string]string{"DECISION": "promote"}); r.code != 0 {
		t.Fatalf("promote: exit %d\n%s", r.code, r.stderr)
	}
	if got := a.testRoute(); got == nil || got.ResourceVersion != created.ResourceVersion {
		t.Errorf("the promotion changed the team's Route: %v", got)
	}
	if _, err := a.routes.RouteV1().Routes(a.ns).Get(ctx, "shop-next", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the promotion left the test Route shop-next: %v", err)
	}
}

// TestMirrorPerRouter: httproute and istio mirror MIRROR percent of the stable's requests to the canary at weight
// 0, as the API server stores it; a team's own mirror added during the release survives the promotion, which
// removes the release's. The other routers refuse MIRROR (exit 2 naming it) and start no release.
func TestMirrorPerRouter(t *testing.T) {
	t.Parallel()
	for _, kind := range routerKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, kind, 2)
			if kind != "httproute" && kind != "istio" {
				r := a.shift(0, map[string]string{"MIRROR": "20"})
				if r.code != 2 || !strings.Contains(r.stderr, "MIRROR") || !strings.Contains(r.stderr, "httproute and istio") {
					t.Fatalf("shift with MIRROR on %s: exit %d; want 2 naming MIRROR and the routers that can\n%s", kind, r.code, r.stderr)
				}
				if a.exists("deployment", "shop-canary") {
					t.Error("a canary Deployment was made")
				}
				return
			}
			before := a.routerObject()
			if r := a.shift(0, map[string]string{"MIRROR": "20"}); r.code != 0 {
				t.Fatalf("shift 0 with MIRROR: exit %d\n%s", r.code, r.stderr)
			}
			a.wantMirror(20)
			if r := a.shift(10, map[string]string{"MIRROR": "50"}); r.code != 0 {
				t.Fatalf("shift 10 with MIRROR 50: exit %d\n%s", r.code, r.stderr)
			}
			a.wantMirror(50)
			teams := a.addTeamEdit()
			if r := a.decide(map[string]string{"DECISION": "promote"}); r.code != 0 {
				t.Fatalf("promote: exit %d\n%s", r.code, r.stderr)
			}
			want := a.routerEntries(before)
			a.putTeamEdit(want[0].(map[string]any), teams)
			if got := a.routerEntries(a.routerObject()); jsonOf(got) != jsonOf(want) {
				t.Errorf("entries after the promotion:\n%s\nwant as before the release with the team's mirror:\n%s", jsonOf(got), jsonOf(want))
			}
		})
	}
}

// wantMirror checks that the stable entry mirrors percent of its requests to the canary, as the router expresses it.
func (a *app) wantMirror(percent int64) {
	a.t.Helper()
	entries := a.routerEntries(a.routerObject())
	if len(entries) != 1 {
		a.t.Fatalf("%d entries; want the stable one alone", len(entries))
	}
	e := entries[0].(map[string]any)
	if a.kind == "istio" {
		want := []any{map[string]any{"host": "shop-canary", "port": map[string]any{"number": int64(8080)}}, map[string]any{"value": percent}}
		if got := []any{e["mirror"], e["mirrorPercentage"]}; jsonOf(got) != jsonOf(want) {
			a.t.Errorf("mirror, mirrorPercentage = %s; want %s", jsonOf(got), jsonOf(want))
		}
		return
	}
	want := []any{map[string]any{"type": "RequestMirror", "requestMirror": map[string]any{
		"backendRef": map[string]any{"group": "", "kind": "Service", "name": "shop-canary", "port": int64(8080)}, "percent": percent}}}
	if got, _, _ := unstructured.NestedSlice(e, "filters"); jsonOf(got) != jsonOf(want) {
		a.t.Errorf("filters of the stable rule = %s; want %s", jsonOf(got), jsonOf(want))
	}
}

// addTeamEdit changes the stable entry as a team would during the release (HTTPRoute: a RequestMirror filter of
// its own, to shadow; VirtualService: a request header to set), and returns what it added, as stored.
func (a *app) addTeamEdit() any {
	a.t.Helper()
	gvr, path := a.routerGVR()
	u := a.routerObject()
	entries := a.routerEntries(u)
	e := entries[0].(map[string]any)
	var add any = map[string]any{"request": map[string]any{"set": map[string]any{"x-team": "on"}}}
	if a.kind == "httproute" {
		add = map[string]any{"type": "RequestMirror", "requestMirror": map[string]any{"backendRef": map[string]any{"name": "shadow", "port": int64(8080)}, "percent": int64(5)}}
	}
	a.putTeamEdit(e, add)
	if err := unstructured.SetNestedSlice(u.Object, entries, path...); err != nil {
		a.t.Fatal(err)
	}
	stored, err := a.dyn.Resource(gvr).Namespace(a.ns).Update(context.Background(), u, metav1.UpdateOptions{})
	if err != nil {
		a.t.Fatal(err)
	}
	se := a.routerEntries(stored)[0].(map[string]any)
	if a.kind == "httproute" {
		filters := se["filters"].([]any)
		return filters[len(filters)-1]
	}
	return se["headers"]
}

// putTeamEdit puts the team's addition into entry e.
func (a *app) putTeamEdit(e map[string]any, add any) {
	if a.kind == "httproute" {
		filters, _ := e["filters"].([]any)
		e["filters"] = append(filters, add)
		return
	}
	e["headers"] = add
}
