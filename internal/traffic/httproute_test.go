package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	k8stesting "k8s.io/client-go/testing"
)

// httpRouteTestManifest routes /api (rule 0) and / (rule 2) to the stable Service shop, /static elsewhere.
const httpRouteTestManifest = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: shop
  namespace: apps
  labels: {app: shop}
  annotations:
    team: payments
    canaryline.dev/release: r-6
spec:
  parentRefs:
  - name: public
    namespace: gateways
    sectionName: https
  hostnames: [shop.example.com]
  rules:
  - name: api
    matches:
    - path: {type: PathPrefix, value: /api}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        add: [{name: x-app, value: shop}]
    backendRefs:
    - name: shop
      port: 8080
  - matches:
    - path: {type: PathPrefix, value: /static}
    backendRefs:
    - group: ""
      kind: Service
      name: static
      port: 80
  - matches:
    - path: {type: PathPrefix, value: /}
    timeouts: {request: 10s}
    backendRefs:
    - kind: Service
      name: shop
      port: 8080
      weight: 1
      filters:
      - type: ResponseHeaderModifier
        responseHeaderModifier:
          set: [{name: x-served-by, value: shop}]
`

// httpRouteTestWant is the test HTTPRoute as SetWeights(w) must leave it.
func httpRouteTestWant(t *testing.T, b Backends, w Weights) *unstructured.Unstructured {
	u := routerTestObject(t, httpRouteTestManifest)
	ref := func(kind bool, name string, weight int32, extra map[string]any) map[string]any {
		m := map[string]any{"name": name, "port": int64(8080), "weight": int64(weight)}
		if kind {
			m["kind"] = "Service"
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	refs := func(kind bool, stableExtra map[string]any) []any {
		out := []any{ref(kind, "shop", w.Stable(), stableExtra), ref(kind, "shop-canary", w.Canary, nil)}
		if b.Baseline != "" {
			out = append(out, ref(kind, "shop-baseline", w.Baseline, nil))
		}
		return out
	}
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	rules[0].(map[string]any)["backendRefs"] = refs(false, nil)
	filters, _, _ := unstructured.NestedSlice(rules[2].(map[string]any)["backendRefs"].([]any)[0].(map[string]any), "filters")
	rules[2].(map[string]any)["backendRefs"] = refs(true, map[string]any{"filters": filters})
	if err := unstructured.SetNestedSlice(u.Object, rules, "spec", "rules"); err != nil {
		t.Fatal(err)
	}
	anns := map[string]string{"team": "payments", "canaryline.dev/release": "r-6"} // r-6: an earlier release's shared key, not this one's
	maps.Copy(anns, b.Annotations)
	u.SetAnnotations(anns)
	return u
}

// httpRouteTestSplit is an HTTPRoute whose rule is split between shop and shop-canary, with one annotation.
func httpRouteTestSplit(annotation string) string {
	return `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: apps, annotations: {` + annotation + `}}
spec:
  rules:
  - backendRefs: [{name: shop, port: 80, weight: 100}, {name: shop-canary, port: 80, weight: 0}]
`
}

func httpRouteTestRouter(objs ...*unstructured.Unstructured) (*httpRoute, *k8stesting.Fake) {
	dyn := routerTestDynamic(objs...)
	return &httpRoute{name: "shop", c: Clients{Dynamic: dyn}}, &dyn.Fake
}

func TestHTTPRouteCheck(t *testing.T) {
	t.Parallel()
	good := httpRouteTestManifest
	for _, tc := range []struct {
		name     string
		manifest string // "" for none
		baseline bool
		want     string // "" for no error; else a CheckError that says this
	}{
		{name: "routes to stable", manifest: good},
		{name: "with baseline", manifest: good, baseline: true},
		{name: "missing", want: "HTTPRoute apps/shop does not exist; create it"},
		{name: "not routing to stable", manifest: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: apps}
spec:
  rules:
  - backendRefs: [{name: static, port: 80}]
  - filters: [{type: RequestRedirect, requestRedirect: {statusCode: 301}}]
`, want: "HTTPRoute apps/shop has no rule with a backendRef to the stable Service shop"},
		{name: "stable name but another kind", manifest: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: apps}
spec:
  rules:
  - backendRefs: [{group: example.com, kind: Backend, name: shop}]
`, want: "has no rule with a backendRef to the stable Service shop"},
		{name: "stable name in another namespace", manifest: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: apps}
spec:
  rules:
  - backendRefs: [{name: shop, namespace: other, port: 80}]
`, want: "has no rule with a backendRef to the stable Service shop"},
		{name: "stable shares a rule with another backend", manifest: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: apps}
spec:
  rules:
  - backendRefs: [{name: shop, port: 80, weight: 3}, {name: legacy, port: 80, weight: 1}]
`, want: "rule 0 of HTTPRoute apps/shop sends traffic to Service legacy besides the stable Service shop"},
		{name: "stable twice in a rule", manifest: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: apps}
spec:
  rules:
  - backendRefs: [{name: shop, port: 80}, {name: shop, port: 81}]
`, want: "rule 0 of HTTPRoute apps/shop has more than one backendRef to the stable Service"},
		{name: "already split by the release", manifest: httpRouteTestSplit("shop.canaryline.dev/release: r-7")},
		{name: "already split by the release, recorded before with the shared key", manifest: httpRouteTestSplit("canaryline.dev/release: r-7")},
		{name: "split, marked by another application's release", manifest: httpRouteTestSplit("cart.canaryline.dev/release: r-7"),
			want: "rule 0 of HTTPRoute apps/shop already sends traffic to Service shop-canary, and no canaryline release set it"},
		{name: "split, unmarked", manifest: httpRouteTestSplit("team: payments"),
			want: "rule 0 of HTTPRoute apps/shop already sends traffic to Service shop-canary, and no canaryline release set it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var objs []*unstructured.Unstructured
			if tc.manifest != "" {
				objs = append(objs, routerTestObject(t, tc.manifest))
			}
			r, fake := httpRouteTestRouter(objs...)
			err := r.Check(context.Background(), routerTestBackends(tc.baseline))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
			} else {
				routerTestWantCheckError(t, err, tc.want)
			}
			if n := routerTestWrites(fake); n != 0 {
				t.Errorf("Check made %d writes; want none", n)
			}
		})
	}
}

func TestHTTPRouteSetWeightsAndRestore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		baseline bool
		w        Weights
		want     Applied
	}{
		{name: "0", w: Weights{}, want: Applied{Detail: "HTTPRoute shop: stable=100 canary=0 (2 rules)"}},
		{name: "10", w: Weights{Canary: 10}, want: Applied{Stored: Weights{Canary: 10}, EffectiveCanary: 10,
			Detail: "HTTPRoute shop: stable=90 canary=10 (2 rules)"}},
		{name: "50", w: Weights{Canary: 50}, want: Applied{Stored: Weights{Canary: 50}, EffectiveCanary: 50,
			Detail: "HTTPRoute shop: stable=50 canary=50 (2 rules)"}},
		{name: "100", w: Weights{Canary: 100}, want: Applied{Stored: Weights{Canary: 100}, EffectiveCanary: 100,
			Detail: "HTTPRoute shop: stable=0 canary=100 (2 rules)"}},
		{name: "baseline at 0", baseline: true, w: Weights{}, want: Applied{
			Detail: "HTTPRoute shop: stable=100 canary=0 baseline=0 (2 rules)"}},
		{name: "baseline 10 canary 10", baseline: true, w: Weights{Canary: 10, Baseline: 10}, want: Applied{
			Stored: Weights{Canary: 10, Baseline: 10}, EffectiveCanary: 10, EffectiveBaseline: 10,
			Detail: "HTTPRoute shop: stable=80 canary=10 baseline=10 (2 rules)"}},
		{name: "baseline 25 canary 25", baseline: true, w: Weights{Canary: 25, Baseline: 25}, want: Applied{
			Stored: Weights{Canary: 25, Baseline: 25}, EffectiveCanary: 25, EffectiveBaseline: 25,
			Detail: "HTTPRoute shop: stable=50 canary=25 baseline=25 (2 rules)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := routerTestBackends(tc.baseline)
			orig := routerTestObject(t, httpRouteTestManifest)
			r, fake := httpRouteTestRouter(orig)

			snap, err := r.Snapshot(ctx, b)
			if err != nil {
				t.Fatalf("Snapshot: %v", err)
			}
			// A first step, then the one under test: the second write starts from the split route.
			if _, err := r.SetWeights(ctx, b, Weights{Canary: 1}); err != nil {
				t.Fatalf("SetWeights(1%%): %v", err)
			}
			got, err := r.SetWeights(ctx, b, tc.w)
			if err != nil {
				t.Fatalf("SetWeights: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Applied (-want +got):\n%s", diff)
			}
			stored := httpRouteTestStored(t, r)
			if diff := cmp.Diff(routerTestStripped(httpRouteTestWant(t, b, tc.w)).Object, stored.Object); diff != "" {
				t.Errorf("stored HTTPRoute (-want +got):\n%s", diff)
			}
			if err := r.Check(ctx, b); err != nil {
				t.Errorf("Check during the release: %v", err)
			}

			for i := range 2 {
				if err := r.Restore(ctx, b, snap); err != nil {
					t.Fatalf("Restore #%d: %v", i+1, err)
				}
				if diff := cmp.Diff(routerTestStripped(orig).Object, httpRouteTestStored(t, r).Object); diff != "" {
					t.Errorf("HTTPRoute after Restore #%d (-want +got):\n%s", i+1, diff)
				}
			}
			writes := routerTestWrites(fake)
			if err := r.Restore(ctx, b, snap); err != nil {
				t.Fatalf("Restore again: %v", err)
			}
			if n := routerTestWrites(fake) - writes; n != 0 {
				t.Errorf("Restore of a restored HTTPRoute made %d writes; want none", n)
			}
		})
	}
}

func httpRouteTestStored(t *testing.T, r *httpRoute) *unstructured.Unstructured {
	t.Helper()
	return routerTestGet(t, r.c.Dynamic, httpRouteGVR, r.name)
}

func TestHTTPRouteAPIErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := routerTestBackends(false)
	for _, tc := range []struct {
		name       string
		verb       string
		run        func(r *httpRoute, snap string) error
		verbObject string
	}{
		{name: "check get", verb: "get", verbObject: "get HTTPRoute apps/shop",
			run: func(r *httpRoute, _ string) error { return r.Check(ctx, b) }},
		{name: "snapshot get", verb: "get", verbObject: "get HTTPRoute apps/shop",
			run: func(r *httpRoute, _ string) error { _, err := r.Snapshot(ctx, b); return err }},
		{name: "set weights update", verb: "update", verbObject: "update HTTPRoute apps/shop",
			run: func(r *httpRoute, _ string) error { _, err := r.SetWeights(ctx, b, Weights{Canary: 10}); return err }},
		{name: "restore get", verb: "get", verbObject: "get HTTPRoute apps/shop",
			run: func(r *httpRoute, snap string) error { return r.Restore(ctx, b, snap) }},
		{name: "restore update", verb: "update", verbObject: "restore HTTPRoute apps/shop",
			run: func(r *httpRoute, snap string) error { return r.Restore(ctx, b, snap) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, fake := httpRouteTestRouter(routerTestObject(t, httpRouteTestManifest))
			snap, err := r.Snapshot(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.SetWeights(ctx, b, Weights{Canary: 5}); err != nil {
				t.Fatal(err)
			}
			fake.PrependReactor(tc.verb, "httproutes", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, routerTestAPIError
			})
			routerTestWantAPIError(t, tc.run(r, snap), tc.verbObject)
		})
	}
}

func TestHTTPRouteRetriesConflicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := routerTestBackends(false)
	r, fake := httpRouteTestRouter(routerTestObject(t, httpRouteTestManifest))
	snap, err := r.Snapshot(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	conflict := apierrors.NewConflict(httpRouteGVR.GroupResource(), "shop", nil)
	routerTestFailOnce(fake, "update", "httproutes", conflict)
	if _, err := r.SetWeights(ctx, b, Weights{Canary: 20}); err != nil {
		t.Fatalf("SetWeights after a conflict: %v", err)
	}
	routerTestFailOnce(fake, "update", "httproutes", conflict)
	if err := r.Restore(ctx, b, snap); err != nil {
		t.Fatalf("Restore after a conflict: %v", err)
	}
	if diff := cmp.Diff(routerTestStripped(routerTestObject(t, httpRouteTestManifest)).Object, httpRouteTestStored(t, r).Object); diff != "" {
		t.Errorf("HTTPRoute after Restore (-want +got):\n%s", diff)
	}
}

// An admission webhook that changes the weights: the read-back catches it.
func TestHTTPRouteSetWeightsReadBackMismatch(t *testing.T) {
	t.Parallel()
	r, fake := httpRouteTestRouter(routerTestObject(t, httpRouteTestManifest))
	fake.PrependReactor("update", "httproutes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		u := a.(k8stesting.UpdateAction).GetObject().(*unstructured.Unstructured)
		rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
		rules[0].(map[string]any)["backendRefs"].([]any)[1].(map[string]any)["weight"] = int64(1)
		_ = unstructured.SetNestedSlice(u.Object, rules, "spec", "rules")
		return false, nil, nil // the tracker stores the changed object
	})
	_, err := r.SetWeights(context.Background(), routerTestBackends(false), Weights{Canary: 10})
	if err == nil || err.Error() != "HTTPRoute apps/shop rule 0 holds stable=90 canary=1 after the update; want stable=90 canary=10" {
		t.Errorf("SetWeights = %v; want the read-back mismatch", err)
	}
}

func TestHTTPRouteRestoreEdgeCases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := routerTestBackends(false)

	// Nothing was changed: Restore writes nothing.
	r, fake := httpRouteTestRouter(routerTestObject(t, httpRouteTestManifest))
	snap, err := r.Snapshot(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(ctx, b, snap); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if n := routerTestWrites(fake); n != 0 {
		t.Errorf("Restore of an unchanged HTTPRoute made %d writes", n)
	}

	// Deleted since: nothing to put back.
	empty, _ := httpRouteTestRouter()
	if err := empty.Restore(ctx, b, snap); err != nil {
		t.Errorf("Restore of a deleted HTTPRoute: %v", err)
	}

	// Another router's snapshot, or garbage.
	for _, bad := range []string{`{"kind":"istio"}`, "", "{"} {
		if err := r.Restore(ctx, b, bad); err == nil {
			t.Errorf("Restore(%q) = nil; want an error", bad)
		}
	}

	// Weights out of range, or a baseline share without a baseline Service.
	for _, w := range []Weights{{Canary: -1}, {Canary: 101}, {Canary: 60, Baseline: 50}, {Baseline: 5}} {
		if _, err := r.SetWeights(ctx, b, w); err == nil {
			t.Errorf("SetWeights(%+v) = nil; want an error", w)
		}
	}
}

// httpRouteTestTeamRule is a rule a team puts first while a release runs: its own path to its own Service.
func httpRouteTestTeamRule() map[string]any {
	return map[string]any{
		"matches":     []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/team"}}},
		"backendRefs": []any{map[string]any{"name": "team-svc", "port": int64(9090)}},
	}
}

// routerTestInsertFirst puts entry first in the list at path of the object gvr/name, as a team would.
func routerTestInsertFirst(t *testing.T, dyn dynamic.Interface, gvr schema.GroupVersionResource, name string, entry map[string]any, path ...string) {
	t.Helper()
	ctx := context.Background()
	u, err := dyn.Resource(gvr).Namespace(routerTestNS).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list, _, _ := unstructured.NestedSlice(u.Object, path...)
	if err := unstructured.SetNestedSlice(u.Object, append([]any{entry}, list...), path...); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(gvr).Namespace(routerTestNS).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// httpRouteTestOldSnapshot is the snapshot a release recorded before saved for httpRouteTestManifest: the
// backendRefs of its stable rules by position.
func httpRouteTestOldSnapshot(t *testing.T) string {
	rules, _, _ := unstructured.NestedSlice(routerTestObject(t, httpRouteTestManifest).Object, "spec", "rules")
	data, err := json.Marshal(map[string]any{"kind": "httproute", "name": "shop", "annotations": map[string]string{"canaryline.dev/release": "r-6"},
		"rules": []any{
			map[string]any{"index": 0, "items": rules[0].(map[string]any)["backendRefs"]},
			map[string]any{"index": 2, "items": rules[2].(map[string]any)["backendRefs"]},
		}})
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// A team puts a rule of its own first while the release runs. Restore finds the release's backends by content:
// the team's rule stays as the team made it, and the application's rules are as before the release, on rollback
// (weight 0 first) and on promote, with the snapshot of this version or of a release recorded before.
func TestHTTPRouteRestoreByContent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		rollback bool
		old      bool // a snapshot recorded before, by position
	}{
		{name: "rollback", rollback: true},
		{name: "promote"},
		{name: "rollback, snapshot recorded before", rollback: true, old: true},
		{name: "promote, snapshot recorded before", old: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := routerTestBackends(true)
			r, _ := httpRouteTestRouter(routerTestObject(t, httpRouteTestManifest))
			snap, err := r.Snapshot(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			if tc.old {
				snap = httpRouteTestOldSnapshot(t)
			}
			if _, err := r.SetWeights(ctx, b, Weights{Canary: 10, Baseline: 10}); err != nil {
				t.Fatal(err)
			}
			routerTestInsertFirst(t, r.c.Dynamic, httpRouteGVR, "shop", httpRouteTestTeamRule(), "spec", "rules")
			if _, err := r.SetWeights(ctx, b, Weights{Canary: 30, Baseline: 30}); err != nil {
				t.Fatalf("SetWeights after the team's change: %v", err)
			}
			if tc.rollback {
				if _, err := r.SetWeights(ctx, b, Weights{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Restore(ctx, b, snap); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			want := routerTestObject(t, httpRouteTestManifest)
			rules, _, _ := unstructured.NestedSlice(want.Object, "spec", "rules")
			_ = unstructured.SetNestedSlice(want.Object, append([]any{httpRouteTestTeamRule()}, rules...), "spec", "rules")
			if diff := cmp.Diff(routerTestStripped(want).Object, httpRouteTestStored(t, r).Object); diff != "" {
				t.Errorf("HTTPRoute after Restore (-want +got):\n%s", diff)
			}
		})
	}
}

// Restore changes only the rules that hold the release's backends, and on the stable backendRef only a weight
// it recorded: a rule the team split by hand to another Service stays split, and a stable backendRef the team
// moved to another port keeps the weight it has now.
func TestHTTPRouteRestoreLeavesTheTeamsChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := routerTestBackends(false)
	r, _ := httpRouteTestRouter(routerTestObject(t, httpRouteTestManifest))
	snap, err := r.Snapshot(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetWeights(ctx, b, Weights{Canary: 40}); err != nil {
		t.Fatal(err)
	}
	u, _ := r.c.Dynamic.Resource(httpRouteGVR).Namespace(routerTestNS).Get(ctx, "shop", metav1.GetOptions{})
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	refs := rules[2].(map[string]any)["backendRefs"].([]any)
	refs[0].(map[string]any)["port"] = int64(8443)    // the team moves the stable backendRef of rule 2
	rules[1].(map[string]any)["backendRefs"] = []any{ // and splits /static itself
		map[string]any{"name": "static", "port": int64(80), "weight": int64(90)},
		map[string]any{"name": "static-next", "port": int64(80), "weight": int64(10)}}
	_ = unstructured.SetNestedSlice(u.Object, rules, "spec", "rules")
	if _, err := r.c.Dynamic.Resource(httpRouteGVR).Namespace(routerTestNS).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(ctx, b, snap); err != nil {
		t.Fatal(err)
	}
	got, _, _ := unstructured.NestedSlice(httpRouteTestStored(t, r).Object, "spec", "rules")
	orig, _, _ := unstructured.NestedSlice(routerTestObject(t, httpRouteTestManifest).Object, "spec", "rules")
	if diff := cmp.Diff(orig[0], got[0]); diff != "" {
		t.Errorf("rule 0 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(rules[1], got[1]); diff != "" {
		t.Errorf("the team's rule 1 (-want +got):\n%s", diff)
	}
	moved := runtime.DeepCopyJSON(refs[0].(map[string]any))
	moved["weight"] = int64(60)
	if diff := cmp.Diff([]any{moved}, got[2].(map[string]any)["backendRefs"]); diff != "" {
		t.Errorf("rule 2's backendRefs (-want +got):\n%s", diff)
	}
}

// httpRouteTestShared routes / to shop and /cart to cart: one HTTPRoute, two applications, one rule each.
const httpRouteTestShared = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: storefront
  namespace: apps
  annotations: {team: web}
spec:
  rules:
  - matches: [{path: {type: PathPrefix, value: /cart}}]
    backendRefs: [{name: cart, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: shop, port: 8080}]
`

// routerTestCart are the Services of a second application, cart, whose release c-1 marks with its own keys.
func routerTestCart() Backends {
	return Backends{Namespace: routerTestNS, Stable: "cart", Canary: "cart-canary", StableDeployment: "cart",
		Annotations: map[string]string{"cart.canaryline.dev/release": "c-1", "cart.canaryline.dev/weight": "set by the release"}}
}

// routerTestSharedSteps interleaves the releases of shop and cart on one router object: shop shifts to 10, cart
// to 20, shop is promoted while cart runs (then cartRunning checks cart's part), cart shifts to 30 and is rolled
// back.
func routerTestSharedSteps(t *testing.T, router func() Router, cartRunning func()) {
	t.Helper()
	ctx := context.Background()
	shop, cart := routerTestBackends(false), routerTestCart()
	snaps := map[string]string{}
	step := func(b Backends, w int32) {
		t.Helper()
		r := router()
		if err := r.Check(ctx, b); err != nil {
			t.Fatalf("Check of %s's release at %d%%: %v", b.StableDeployment, w, err)
		}
		if snaps[b.StableDeployment] == "" {
			snap, err := r.Snapshot(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			snaps[b.StableDeployment] = snap
		}
		if _, err := r.SetWeights(ctx, b, Weights{Canary: w}); err != nil {
			t.Fatalf("SetWeights of %s's release at %d%%: %v", b.StableDeployment, w, err)
		}
	}
	step(shop, 10)
	step(cart, 20)
	if err := router().Restore(ctx, shop, snaps["shop"]); err != nil {
		t.Fatalf("Restore of shop's release: %v", err)
	}
	cartRunning()
	step(cart, 30)
	if _, err := router().SetWeights(ctx, cart, Weights{}); err != nil {
		t.Fatal(err)
	}
	if err := router().Restore(ctx, cart, snaps["cart"]); err != nil {
		t.Fatalf("Restore of cart's release: %v", err)
	}
}

// shop and cart share an HTTPRoute, one rule each. Each release marks it with its own keys and restores its own
// rule: cart's release runs on after shop's promote, and in the end the HTTPRoute is as before both.
func TestHTTPRouteSharedByTwoApplications(t *testing.T) {
	t.Parallel()
	dyn := routerTestDynamic(routerTestObject(t, httpRouteTestShared))
	router := func() Router { return &httpRoute{name: "storefront", c: Clients{Dynamic: dyn}} }
	routerTestSharedSteps(t, router, func() {
		u := routerTestGet(t, dyn, httpRouteGVR, "storefront")
		wantAnns := map[string]string{"team": "web"}
		maps.Copy(wantAnns, routerTestCart().Annotations)
		if diff := cmp.Diff(wantAnns, u.GetAnnotations()); diff != "" {
			t.Errorf("annotations while cart's release runs (-want +got):\n%s", diff)
		}
		rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
		wantCart := []any{map[string]any{"name": "cart", "port": int64(8080), "weight": int64(80)},
			map[string]any{"name": "cart-canary", "port": int64(8080), "weight": int64(20)}}
		if diff := cmp.Diff(wantCart, rules[0].(map[string]any)["backendRefs"]); diff != "" {
			t.Errorf("cart's rule while its release runs (-want +got):\n%s", diff)
		}
		want, _, _ := unstructured.NestedSlice(routerTestObject(t, httpRouteTestShared).Object, "spec", "rules")
		if diff := cmp.Diff(want[1], rules[1]); diff != "" {
			t.Errorf("shop's rule after its promote (-want +got):\n%s", diff)
		}
	})
	if diff := cmp.Diff(routerTestStripped(routerTestObject(t, httpRouteTestShared)).Object, routerTestGet(t, dyn, httpRouteGVR, "storefront").Object); diff != "" {
		t.Errorf("HTTPRoute after both releases (-want +got):\n%s", diff)
	}
}

// A release recorded before marked the HTTPRoute with the shared keys: it is still the release's, and its end
// removes those keys (the shared keys of another release stay).
func TestHTTPRouteReleaseRecordedBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := routerTestBackends(false)
	split := routerTestObject(t, httpRouteTestSplit("canaryline.dev/release: r-7"))
	split.SetAnnotations(map[string]string{"team": "payments", "canaryline.dev/release": "r-7", "canaryline.dev/image": "shop@sha256:77",
		"canaryline.dev/weight": "0"})
	r, _ := httpRouteTestRouter(split)
	snap := `{"kind":"httproute","name":"shop","rules":[{"index":0,"items":[{"name":"shop","port":80}]}]}`
	if err := r.Check(ctx, b); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if _, err := r.SetWeights(ctx, b, Weights{Canary: 50}); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(ctx, b, snap); err != nil {
		t.Fatal(err)
	}
	want := routerTestObject(t, httpRouteTestSplit("team: payments"))
	_ = unstructured.SetNestedSlice(want.Object, []any{map[string]any{"backendRefs": []any{map[string]any{"name": "shop", "port": int64(80)}}}}, "spec", "rules")
	if diff := cmp.Diff(routerTestStripped(want).Object, httpRouteTestStored(t, r).Object); diff != "" {
		t.Errorf("HTTPRoute after Restore (-want +got):\n%s", diff)
	}
}

// An application name too long to prefix annotation keys is refused before any write.
func TestHTTPRouteCheckRefusesAnApplicationNameTooLongForItsKeys(t *testing.T) {
	t.Parallel()
	app := strings.Repeat("a", 239)
	b := routerTestBackends(false)
	b.StableDeployment = app
	b.Annotations = map[string]string{AppAnnotation(app, ReleaseAnnotation): "r-7"}
	r, fake := httpRouteTestRouter(routerTestObject(t, httpRouteTestManifest))
	err := r.Check(context.Background(), b)
	routerTestWantCheckError(t, err, "at most 238 characters")
	var ce *CheckError
	if errors.As(err, &ce) && ce.Param != "APP" {
		t.Errorf("param %q; want APP", ce.Param)
	}
	if n := routerTestWrites(fake); n != 0 {
		t.Errorf("Check made %d writes", n)
	}
	b.StableDeployment = app[:238]
	b.Annotations = map[string]string{AppAnnotation(app[:238], ReleaseAnnotation): "r-7"}
	if err := r.Check(context.Background(), b); err != nil {
		t.Errorf("Check with a 238-character name: %v", err)
	}
}
