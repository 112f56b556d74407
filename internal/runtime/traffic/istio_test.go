package traffic

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// istioTestManifest routes http[0] (FQDN host, port and subset) and http[3] (short host) to the stable Service.
const istioTestManifest = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: shop
  namespace: apps
  annotations: {team: payments}
spec:
  hosts: [shop.example.com]
  gateways: [istio-system/public]
  http:
  - name: api
    match: [{uri: {prefix: /api}}]
    timeout: 5s
    route:
    - destination:
        host: shop.apps.svc.cluster.local
        port: {number: 8080}
        subset: v1
      headers:
        response: {set: {x-served-by: shop}}
  - name: docs
    redirect: {uri: /docs/, authority: docs.example.com}
  - name: static
    route:
    - destination: {host: static}
  - name: web
    route:
    - destination: {host: shop}
  tcp:
  - match: [{port: 9000}]
    route:
    - destination: {host: shop.apps, port: {number: 9000}}
`

// istioTestWant is the test VirtualService as SetWeights(w) must leave it.
func istioTestWant(t *testing.T, b Backends, w Weights) *unstructured.Unstructured {
	u := routerTestObject(t, istioTestManifest)
	http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
	dest := func(host string, port bool) map[string]any {
		d := map[string]any{"host": host}
		if port {
			d["port"] = map[string]any{"number": int64(8080)}
		}
		return d
	}
	route := func(suffix string, port bool, stable map[string]any) []any {
		stable["weight"] = int64(w.Stable())
		out := []any{stable, map[string]any{"destination": dest("shop-canary"+suffix, port), "weight": int64(w.Canary)}}
		if b.Baseline != "" {
			out = append(out, map[string]any{"destination": dest("shop-baseline"+suffix, port), "weight": int64(w.Baseline)})
		}
		return out
	}
	api := http[0].(map[string]any)
	api["route"] = route(".apps.svc.cluster.local", true, api["route"].([]any)[0].(map[string]any))
	web := http[3].(map[string]any)
	web["route"] = route("", false, web["route"].([]any)[0].(map[string]any))
	if err := unstructured.SetNestedSlice(u.Object, http, "spec", "http"); err != nil {
		t.Fatal(err)
	}
	anns := map[string]string{"team": "payments"}
	maps.Copy(anns, b.Annotations)
	u.SetAnnotations(anns)
	return u
}

func istioTestRouter(objs ...*unstructured.Unstructured) (*listRouter, *k8stesting.Fake) {
	dyn := routerTestDynamic(objs...)
	return newIstio("shop", Clients{Dynamic: dyn}), &dyn.Fake
}

func istioTestStored(t *testing.T, r *listRouter) *unstructured.Unstructured {
	t.Helper()
	return routerTestGet(t, r.c.Dynamic, virtualServiceGVR, r.name)
}

// istioTestVS is a VirtualService with one http route of the given destinations.
func istioTestVS(route string) string {
	return fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: apps}
spec:
  hosts: [shop]
  http:
  - route: %s
`, route)
}

// istioTestSplit is a VirtualService whose http route is split between shop and shop-canary, with one annotation.
func istioTestSplit(annotation string) string {
	return strings.Replace(istioTestVS(`[{destination: {host: shop}, weight: 100}, {destination: {host: shop-canary}, weight: 0}]`),
		"metadata: {name: shop, namespace: apps}", "metadata: {name: shop, namespace: apps, annotations: {"+annotation+"}}", 1)
}

func TestIstioHostSuffix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		host   string
		suffix string
		ok     bool
	}{
		{"shop", "", true},
		{"shop.apps", ".apps", true},
		{"shop.apps.svc", ".apps.svc", true},
		{"shop.apps.svc.cluster.local", ".apps.svc.cluster.local", true},
		{"shop.apps.svc.corp.example", ".apps.svc.corp.example", true},
		{"shop.other", "", false},
		{"shop.other.svc.cluster.local", "", false},
		{"shop.apps.svcx", "", false},
		{"shop.apps.svc.", "", false},
		{"shopping", "", false},
		{"shop.example.com", "", false},
	} {
		suffix, ok := istioHostSuffix(tc.host, "shop", "apps")
		if suffix != tc.suffix || ok != tc.ok {
			t.Errorf("istioHostSuffix(%q) = %q, %v; want %q, %v", tc.host, suffix, ok, tc.suffix, tc.ok)
		}
	}
}

// Check takes the Service's host in every form, and refuses routes the release could not split; the contract
// suite checks the rest.
func TestIstioCheck(t *testing.T) {
	t.Parallel()
	routerTestCheckCases(t, []routerTestCheckCase{
		{name: "ns host", manifest: istioTestVS(`[{destination: {host: shop.apps}}]`)},
		{name: "svc host", manifest: istioTestVS(`[{destination: {host: shop.apps.svc}}]`)},
		{name: "not routing to stable", manifest: istioTestVS(`[{destination: {host: static}}]`),
			want: "VirtualService apps/shop has no http route to the stable Service shop"},
		{name: "stable of another namespace", manifest: istioTestVS(`[{destination: {host: shop.other.svc.cluster.local}}]`),
			want: "VirtualService apps/shop has no http route to the stable Service shop"},
		{name: "stable only on tcp", manifest: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: apps}
spec:
  tcp:
  - route: [{destination: {host: shop}}]
`, want: "has no http route to the stable Service shop"},
		{name: "stable shares a route with another host", manifest: istioTestVS(
			`[{destination: {host: shop}, weight: 90}, {destination: {host: legacy}, weight: 10}]`),
			want: "http[0] of VirtualService apps/shop sends traffic to legacy besides the stable Service shop"},
		{name: "stable split by subsets", manifest: istioTestVS(
			`[{destination: {host: shop, subset: v1}, weight: 90}, {destination: {host: shop, subset: v2}, weight: 10}]`),
			want: "http[0] of VirtualService apps/shop has more than one destination on the stable Service"},
		{name: "destination without host", manifest: istioTestVS(`[{destination: {subset: v1}}]`),
			want: "http[0] of VirtualService apps/shop cannot be read"},
	}, func(t *testing.T, tc routerTestCheckCase) (Router, *k8stesting.Fake) {
		return istioTestRouter(routerTestObject(t, tc.manifest))
	})
}

// The canary destination's host is written like the stable one, and gets its port but not its subset (a subset
// belongs to the stable host's DestinationRule).
func TestIstioHostForms(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		stable, canary string
	}{
		{"{host: shop}", "{host: shop-canary}"},
		{"{host: shop.apps}", "{host: shop-canary.apps}"},
		{"{host: shop.apps.svc, port: {number: 80}}", "{host: shop-canary.apps.svc, port: {number: 80}}"},
		{"{host: shop.apps.svc.cluster.local, subset: stable, port: {number: 8080}}", "{host: shop-canary.apps.svc.cluster.local, port: {number: 8080}}"},
		{"{host: shop.apps.svc.cluster.local, subset: stable}", "{host: shop-canary.apps.svc.cluster.local}"},
	} {
		t.Run(tc.stable, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := routerTestBackends(false)
			orig := routerTestObject(t, istioTestVS(`[{destination: `+tc.stable+`}]`))
			r, _ := istioTestRouter(orig)
			snap, err := r.Snapshot(ctx, b)
			if err != nil {
				t.Fatalf("Snapshot: %v", err)
			}
			if _, err := r.SetWeights(ctx, b, Weights{Canary: 30}); err != nil {
				t.Fatalf("SetWeights: %v", err)
			}
			want := routerTestObject(t, istioTestVS(`[{destination: `+tc.stable+`, weight: 70}, {destination: `+tc.canary+`, weight: 30}]`))
			want.SetAnnotations(b.Annotations)
			if diff := cmp.Diff(routerTestStripped(want).Object, istioTestStored(t, r).Object); diff != "" {
				t.Errorf("stored VirtualService (-want +got):\n%s", diff)
			}
			if err := r.Restore(ctx, b, snap); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if diff := cmp.Diff(routerTestStripped(orig).Object, istioTestStored(t, r).Object); diff != "" {
				t.Errorf("VirtualService after Restore (-want +got):\n%s", diff)
			}
		})
	}
}

// A canary destination that the VirtualService already has (prepared at weight 0) is kept as it is while the
// release runs, and removed with the release's other backends at its end: its Service is the release's.
func TestIstioKeepsPreparedCanary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := routerTestBackends(false)
	orig := routerTestObject(t, istioTestVS(`[{destination: {host: shop, port: {number: 80}}, weight: 100}, {destination: {host: shop-canary.apps, port: {number: 8080}}, weight: 0}]`))
	r, _ := istioTestRouter(orig)
	snap, err := r.Snapshot(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetWeights(ctx, b, Weights{Canary: 25}); err != nil {
		t.Fatalf("SetWeights: %v", err)
	}
	want := routerTestObject(t, istioTestVS(`[{destination: {host: shop, port: {number: 80}}, weight: 75}, {destination: {host: shop-canary.apps, port: {number: 8080}}, weight: 25}]`))
	want.SetAnnotations(b.Annotations)
	if diff := cmp.Diff(routerTestStripped(want).Object, istioTestStored(t, r).Object); diff != "" {
		t.Errorf("stored VirtualService (-want +got):\n%s", diff)
	}
	if err := r.Restore(ctx, b, snap); err != nil {
		t.Fatal(err)
	}
	restored := routerTestObject(t, istioTestVS(`[{destination: {host: shop, port: {number: 80}}, weight: 100}]`))
	if diff := cmp.Diff(routerTestStripped(restored).Object, istioTestStored(t, r).Object); diff != "" {
		t.Errorf("VirtualService after Restore (-want +got):\n%s", diff)
	}
}

// Something that changes the route on the way (a webhook, another controller): the read-back catches it.
func TestIstioSetWeightsReadBackMismatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(route []any)
		want   string
	}{
		{name: "different split", change: func(route []any) {
			route[0].(map[string]any)["weight"] = int64(95)
			route[1].(map[string]any)["weight"] = int64(5)
		}, want: "VirtualService apps/shop http[0] holds stable=95 canary=5 after the update; want stable=90 canary=10"},
		{name: "second canary destination", change: func(route []any) {
			route[0].(map[string]any)["destination"] = map[string]any{"host": "shop-canary.apps"}
		}, want: "read back VirtualService apps/shop: it changed under the release: VirtualService apps/shop has no http route to the stable Service shop"},
		{name: "canary weight dropped", change: func(route []any) {
			delete(route[1].(map[string]any), "weight")
		}, want: "VirtualService apps/shop http[0] holds stable=90 canary=0 after the update; want stable=90 canary=10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, fake := istioTestRouter(routerTestObject(t, istioTestVS(`[{destination: {host: shop}}]`)))
			fake.PrependReactor("update", "virtualservices", func(a k8stesting.Action) (bool, runtime.Object, error) {
				u := a.(k8stesting.UpdateAction).GetObject().(*unstructured.Unstructured)
				http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
				tc.change(http[0].(map[string]any)["route"].([]any))
				_ = unstructured.SetNestedSlice(u.Object, http, "spec", "http")
				return false, nil, nil // the tracker stores the changed object
			})
			_, err := r.SetWeights(context.Background(), routerTestBackends(false), Weights{Canary: 10})
			if err == nil || err.Error() != tc.want {
				t.Errorf("SetWeights = %v; want %q", err, tc.want)
			}
		})
	}
}

// istioTestTeamEntry is an http entry a team puts first while a release runs: its own path to its own Service.
func istioTestTeamEntry() map[string]any {
	return map[string]any{
		"name":  "team",
		"match": []any{map[string]any{"uri": map[string]any{"prefix": "/team"}}},
		"route": []any{map[string]any{"destination": map[string]any{"host": "team-svc"}}},
	}
}

// istioTestOldSnapshot is the snapshot a release recorded before saved for istioTestManifest: the routes of its
// stable http entries by position.
func istioTestOldSnapshot(t *testing.T) string {
	http, _, _ := unstructured.NestedSlice(routerTestObject(t, istioTestManifest).Object, "spec", "http")
	data, err := json.Marshal(map[string]any{"kind": "istio", "name": "shop", "http": []any{
		map[string]any{"index": 0, "items": http[0].(map[string]any)["route"]},
		map[string]any{"index": 3, "items": http[3].(map[string]any)["route"]},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// A team puts an http entry of its own first while the release runs. Restore finds the release's destinations
// by content: the team's entry stays as the team made it, and the application's entries are as before the
// release, on rollback and on promote, with the snapshot of this version or of a release recorded before.
func TestIstioRestoreByContent(t *testing.T) {
	t.Parallel()
	routerTestRestoreByContent(t, istioTestManifest, istioTestRouter, istioTestOldSnapshot, istioTestTeamEntry)
}

// istioTestShared routes /cart to cart and / to shop: one VirtualService, two applications, one http entry each.
const istioTestShared = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: storefront, namespace: apps, annotations: {team: web}}
spec:
  hosts: [storefront.example.com]
  http:
  - match: [{uri: {prefix: /cart}}]
    route: [{destination: {host: cart.apps.svc.cluster.local}}]
  - route: [{destination: {host: shop.apps.svc.cluster.local}}]
`

// shop and cart share a VirtualService, one http entry each: each release marks it with its own keys and
// restores its own entry; in the end the VirtualService is as before both.
func TestIstioSharedByTwoApplications(t *testing.T) {
	t.Parallel()
	routerTestSharedList(t, istioTestShared, newIstio, []any{
		map[string]any{"destination": map[string]any{"host": "cart.apps.svc.cluster.local"}, "weight": int64(80)},
		map[string]any{"destination": map[string]any{"host": "cart-canary.apps.svc.cluster.local"}, "weight": int64(20)}})
}

// istioTestHost is the Service a destination's host names: its first label.
func istioTestHost(dest map[string]any) string {
	host, _, _ := unstructured.NestedString(dest, "destination", "host")
	svc, _, _ := strings.Cut(host, ".")
	return svc
}

// istioTestUnsetWeight is the weight of a destination without one among n: all of it when alone, else 0.
func istioTestUnsetWeight(n int) int64 {
	if n == 1 {
		return 100
	}
	return 0
}

// istioFixture is the Istio router for the contract suite: istioTestManifest, two http routes to shop.
func istioFixture() routerFixture {
	warnings := []string{"VirtualService shop: tcp[0] goes to the stable Service shop and keeps doing so: only http routes are split"}
	return routerFixture{
		kind: KindIstio,
		setup: func(t *testing.T, o fixtureOptions) *routerEnv {
			var objs []*unstructured.Unstructured
			switch {
			case o.split != nil:
				u := routerTestObject(t, istioTestSplit("team: payments"))
				u.SetAnnotations(o.split)
				objs = append(objs, u)
			case !o.missing:
				objs = append(objs, routerTestObject(t, istioTestManifest))
			}
			r, fake := istioTestRouter(objs...)
			return &routerEnv{r: r, fakes: []*k8stesting.Fake{fake}, fake: fake, resource: "virtualservices",
				state: func(t *testing.T) any { return istioTestStored(t, r).Object },
				held: func(t *testing.T, b Backends) Weights {
					return routerTestListHeld(t, istioTestStored(t, r), []string{"spec", "http"}, "route", b, istioTestHost,
						istioTestUnsetWeight)
				},
				want: func(t *testing.T, b Backends, w Weights) any {
					return routerTestStripped(istioTestWant(t, b, w)).Object
				},
			}
		},
		steps: []contractStep{
			{w: Weights{}, want: Applied{Detail: "VirtualService shop: stable=100 canary=0 (2 http routes)", Warnings: warnings}},
			{w: Weights{Canary: 10}, want: Applied{Stored: Weights{Canary: 10}, EffectiveCanary: 10,
				Detail: "VirtualService shop: stable=90 canary=10 (2 http routes)", Warnings: warnings}},
			{w: Weights{Canary: 50}, want: Applied{Stored: Weights{Canary: 50}, EffectiveCanary: 50,
				Detail: "VirtualService shop: stable=50 canary=50 (2 http routes)", Warnings: warnings}},
			{w: Weights{Canary: 100}, want: Applied{Stored: Weights{Canary: 100}, EffectiveCanary: 100,
				Detail: "VirtualService shop: stable=0 canary=100 (2 http routes)", Warnings: warnings}},
			{baseline: true, w: Weights{}, want: Applied{
				Detail: "VirtualService shop: stable=100 canary=0 baseline=0 (2 http routes)", Warnings: warnings}},
			{baseline: true, w: Weights{Canary: 10, Baseline: 10}, want: Applied{
				Stored: Weights{Canary: 10, Baseline: 10}, EffectiveCanary: 10, EffectiveBaseline: 10,
				Detail: "VirtualService shop: stable=80 canary=10 baseline=10 (2 http routes)", Warnings: warnings}},
			{baseline: true, w: Weights{Canary: 50, Baseline: 50}, want: Applied{
				Stored: Weights{Canary: 50, Baseline: 50}, EffectiveCanary: 50, EffectiveBaseline: 50,
				Detail: "VirtualService shop: stable=0 canary=50 baseline=50 (2 http routes)", Warnings: warnings}},
		},
		missing:       "VirtualService apps/shop does not exist; create it",
		foreign:       "http[0] of VirtualService apps/shop already sends traffic to Service shop-canary, and no canaryline release set it",
		checksWeights: true, snapshots: true, kindedSnapshot: true, quietRestore: true, restoresDeleted: true,
		setConflict: "update", restoreConflict: "update",
		apiErrors: []apiErrorCase{
			{name: "check get", verb: "get", prepared: true, op: "check", verbObject: "get VirtualService apps/shop"},
			{name: "snapshot get", verb: "get", prepared: true, op: "snapshot", verbObject: "get VirtualService apps/shop"},
			{name: "set weights update", verb: "update", prepared: true, op: "set", verbObject: "update VirtualService apps/shop"},
			{name: "restore get", verb: "get", prepared: true, op: "restore", verbObject: "get VirtualService apps/shop"},
			{name: "restore update", verb: "update", prepared: true, op: "restore", verbObject: "restore VirtualService apps/shop"},
		},
	}
}
