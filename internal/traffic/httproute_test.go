package traffic

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	u.SetAnnotations(map[string]string{"team": "payments", "canaryline.dev/release": "r-7", "canaryline.dev/weights": "set by the release"})
	return u
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
		{name: "already split by this release (a rerun)", manifest: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: apps, annotations: {canaryline.dev/release: r-7}}
spec:
  rules:
  - backendRefs: [{name: shop, port: 80, weight: 100}, {name: shop-canary, port: 80, weight: 0}]
`},
		{name: "split by someone else to a Service named like the canary", manifest: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: apps}
spec:
  rules:
  - backendRefs: [{name: shop, port: 80, weight: 100}, {name: shop-canary, port: 80, weight: 0}]
`, want: "rule 0 of HTTPRoute apps/shop already sends traffic to Service shop-canary, and no canaryline release set it"},
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
