package traffic

import (
	"context"
	"encoding/json"
	"maps"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
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

func httpRouteTestRouter(objs ...*unstructured.Unstructured) (*listRouter, *k8stesting.Fake) {
	dyn := routerTestDynamic(objs...)
	return newHTTPRoute("shop", Clients{Dynamic: dyn}), &dyn.Fake
}

// Check refuses rules the release could not split; the contract suite checks the rest.
func TestHTTPRouteCheck(t *testing.T) {
	t.Parallel()
	routerTestCheckCases(t, []routerTestCheckCase{
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
	}, func(t *testing.T, tc routerTestCheckCase) (Router, *k8stesting.Fake) {
		return httpRouteTestRouter(routerTestObject(t, tc.manifest))
	})
}

func httpRouteTestStored(t *testing.T, r *listRouter) *unstructured.Unstructured {
	t.Helper()
	return routerTestGet(t, r.c.Dynamic, httpRouteGVR, r.name)
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

// httpRouteTestTeamRule is a rule a team puts first while a release runs: its own path to its own Service.
func httpRouteTestTeamRule() map[string]any {
	return map[string]any{
		"matches":     []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/team"}}},
		"backendRefs": []any{map[string]any{"name": "team-svc", "port": int64(9090)}},
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
	routerTestRestoreByContent(t, httpRouteTestManifest, httpRouteTestRouter, httpRouteTestOldSnapshot, httpRouteTestTeamRule)
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

// shop and cart share an HTTPRoute, one rule each. Each release marks it with its own keys and restores its own
// rule: cart's release runs on after shop's promote, and in the end the HTTPRoute is as before both.
func TestHTTPRouteSharedByTwoApplications(t *testing.T) {
	t.Parallel()
	routerTestSharedList(t, httpRouteTestShared, newHTTPRoute, []any{
		map[string]any{"name": "cart", "port": int64(8080), "weight": int64(80)},
		map[string]any{"name": "cart-canary", "port": int64(8080), "weight": int64(20)}})
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

// httpRouteFixture is the HTTPRoute router for the contract suite: httpRouteTestManifest, two rules to shop.
func httpRouteFixture() routerFixture {
	return routerFixture{
		kind: KindHTTPRoute,
		setup: func(t *testing.T, o fixtureOptions) *routerEnv {
			var objs []*unstructured.Unstructured
			switch {
			case o.split != nil:
				u := routerTestObject(t, httpRouteTestSplit("team: payments"))
				u.SetAnnotations(o.split)
				objs = append(objs, u)
			case !o.missing:
				objs = append(objs, routerTestObject(t, httpRouteTestManifest))
			}
			r, fake := httpRouteTestRouter(objs...)
			return &routerEnv{r: r, fakes: []*k8stesting.Fake{fake}, fake: fake, resource: "httproutes",
				state: func(t *testing.T) any { return httpRouteTestStored(t, r).Object },
				held: func(t *testing.T, b Backends) Weights {
					return routerTestListHeld(t, httpRouteTestStored(t, r), []string{"spec", "rules"}, "backendRefs", b,
						func(ref map[string]any) string { return ref["name"].(string) }, func(int) int64 { return 1 })
				},
				want: func(t *testing.T, b Backends, w Weights) any {
					return routerTestStripped(httpRouteTestWant(t, b, w)).Object
				},
			}
		},
		steps: []contractStep{
			{w: Weights{}, want: Applied{Detail: "HTTPRoute shop: stable=100 canary=0 (2 rules)"}},
			{w: Weights{Canary: 10}, want: Applied{Stored: Weights{Canary: 10}, EffectiveCanary: 10,
				Detail: "HTTPRoute shop: stable=90 canary=10 (2 rules)"}},
			{w: Weights{Canary: 50}, want: Applied{Stored: Weights{Canary: 50}, EffectiveCanary: 50,
				Detail: "HTTPRoute shop: stable=50 canary=50 (2 rules)"}},
			{w: Weights{Canary: 100}, want: Applied{Stored: Weights{Canary: 100}, EffectiveCanary: 100,
				Detail: "HTTPRoute shop: stable=0 canary=100 (2 rules)"}},
			{baseline: true, w: Weights{}, want: Applied{
				Detail: "HTTPRoute shop: stable=100 canary=0 baseline=0 (2 rules)"}},
			{baseline: true, w: Weights{Canary: 10, Baseline: 10}, want: Applied{
				Stored: Weights{Canary: 10, Baseline: 10}, EffectiveCanary: 10, EffectiveBaseline: 10,
				Detail: "HTTPRoute shop: stable=80 canary=10 baseline=10 (2 rules)"}},
			{baseline: true, w: Weights{Canary: 25, Baseline: 25}, want: Applied{
				Stored: Weights{Canary: 25, Baseline: 25}, EffectiveCanary: 25, EffectiveBaseline: 25,
				Detail: "HTTPRoute shop: stable=50 canary=25 baseline=25 (2 rules)"}},
		},
		missing:       "HTTPRoute apps/shop does not exist; create it",
		foreign:       "rule 0 of HTTPRoute apps/shop already sends traffic to Service shop-canary, and no canaryline release set it",
		checksWeights: true, snapshots: true, kindedSnapshot: true, quietRestore: true, restoresDeleted: true,
		setConflict: "update", restoreConflict: "update",
		apiErrors: []apiErrorCase{
			{name: "check get", verb: "get", prepared: true, op: "check", verbObject: "get HTTPRoute apps/shop"},
			{name: "snapshot get", verb: "get", prepared: true, op: "snapshot", verbObject: "get HTTPRoute apps/shop"},
			{name: "set weights update", verb: "update", prepared: true, op: "set", verbObject: "update HTTPRoute apps/shop"},
			{name: "restore get", verb: "get", prepared: true, op: "restore", verbObject: "get HTTPRoute apps/shop"},
			{name: "restore update", verb: "update", prepared: true, op: "restore", verbObject: "restore HTTPRoute apps/shop"},
		},
	}
}
