package traffic

import (
	"context"
	"errors"
	"maps"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	routev1 "github.com/openshift/api/route/v1"
	routefake "github.com/openshift/client-go/route/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient/kubeclienttest"
)

func TestRouteWeights(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		w                        Weights
		stable, canary, baseline int32
	}{
		{Weights{}, 256, 0, 0},
		{Weights{Canary: 10}, 256, 28, 0},
		{Weights{Canary: 1}, 256, 3, 0},
		{Weights{Canary: 50}, 256, 256, 0},
		{Weights{Canary: 90}, 28, 256, 0},
		{Weights{Canary: 100}, 0, 256, 0},
		{Weights{Canary: 20, Baseline: 20}, 256, 85, 85},
	} {
		s, c, b := routeWeights(tc.w)
		if s != tc.stable || c != tc.canary || b != tc.baseline {
			t.Errorf("routeWeights(%v) = %d %d %d; want %d %d %d", tc.w, s, c, b, tc.stable, tc.canary, tc.baseline)
		}
	}
}

// TestHAProxyShares checks the OpenShift router's arithmetic on the example in its own source (services A weight 20
// with 2 endpoints, B weight 10 with 4 endpoints) and on the small-percentage distortion.
func TestHAProxyShares(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		weights   map[string]int32
		endpoints map[string]int32
		want      map[string]float64
	}{
		{"router source example", map[string]int32{"a": 20, "b": 10}, map[string]int32{"a": 2, "b": 4},
			map[string]float64{"a": 100 * 512.0 / 768, "b": 100 * 256.0 / 768}},
		{"even", map[string]int32{"s": 256, "c": 28}, map[string]int32{"s": 3, "c": 3},
			map[string]float64{"s": 100 * 768.0 / 852, "c": 100 * 84.0 / 852}},
		{"minimum 1 per endpoint distorts a tiny weight", map[string]int32{"s": 256, "c": 3}, map[string]int32{"s": 1, "c": 10},
			map[string]float64{"s": 100 * 256.0 / 266, "c": 100 * 10.0 / 266}},
		{"no endpoints, no traffic", map[string]int32{"s": 256, "c": 28}, map[string]int32{"s": 2, "c": 0},
			map[string]float64{"s": 100}},
	} {
		got := haproxyShares(tc.weights, tc.endpoints)
		if d := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-6 })); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, d)
		}
	}
}

// testRouteRouter is the route router on the Route shop of namespace ns, with two stable and canaryPods canary
// endpoints.
func testRouteRouter(t *testing.T, canaryPods int32) (*route, *routefake.Clientset, Backends) {
	t.Helper()
	w := int32(100)
	rt := &routev1.Route{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "ns", Annotations: map[string]string{"keep": "me"}},
		Spec: routev1.RouteSpec{To: routev1.RouteTargetReference{Kind: "Service", Name: "shop", Weight: &w}}}
	rc := routefake.NewSimpleClientset(rt)
	objs := routeTestEndpoints("ns", map[string]int32{"shop": 2, "shop-canary": canaryPods})
	r := &route{name: "shop", c: Clients{Route: kubeclienttest.WrapRoute(rc.RouteV1()), Kube: kubeclienttest.Wrap(kubefake.NewClientset(objs...))}}
	return r, rc, Backends{Namespace: "ns", Stable: "shop", Canary: "shop-canary", StableDeployment: "shop",
		Annotations: map[string]string{"shop.canaryline.dev/release": "r1"}}
}

// Check refuses a Route to another Service, and one with an alternate backend of its own; the contract suite
// checks the rest.
func TestRouteRouterRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, rc, b := testRouteRouter(t, 1)
	other := b
	other.Stable = "web"
	if err := r.Check(ctx, other); err == nil {
		t.Error("a Route to another Service passed Check")
	}
	rt, _ := rc.RouteV1().Routes("ns").Get(ctx, "shop", metav1.GetOptions{})
	w := int32(10)
	rt.Spec.AlternateBackends = []routev1.RouteTargetReference{{Kind: "Service", Name: "legacy", Weight: &w}}
	_, _ = rc.RouteV1().Routes("ns").Update(ctx, rt, metav1.UpdateOptions{})
	if err := r.Check(ctx, b); err == nil {
		t.Error("a Route with a foreign alternate backend passed Check")
	}
}

func TestCanaryReplicas(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ stable, percent, want int32 }{
		{4, 0, 0}, {4, 20, 1}, {9, 10, 1}, {3, 50, 3}, {10, 1, 1}, {2, 90, 18},
	} {
		got, err := canaryReplicas(tc.stable, tc.percent)
		if err != nil || got != tc.want {
			t.Errorf("canaryReplicas(%d, %d) = %d, %v; want %d", tc.stable, tc.percent, got, err, tc.want)
		}
	}
	if _, err := canaryReplicas(3, 100); err == nil {
		t.Error("100% by replicas must be refused")
	}
}

func TestNewUnknownKind(t *testing.T) {
	t.Parallel()
	_, err := New("traefik", "x", Clients{}, Options{})
	var u *UnknownKindError
	if err == nil || !asUnknown(err, &u) || u.Kind != "traefik" {
		t.Errorf("New(traefik): %v; want an UnknownKindError", err)
	}
	for _, k := range Kinds {
		if r, err := New(k, "x", Clients{}, Options{}); err != nil || r.Kind() != k {
			t.Errorf("New(%s) = %v, %v", k, r, err)
		}
	}
}

func asUnknown(err error, target **UnknownKindError) bool { return errors.As(err, target) }

// A team adds an alternate backend of its own while the release runs. The rollback (weight 0, then Restore) and
// the promote (Restore) keep it with the weight the team gave it, remove the release's, and put spec.to's weight
// back.
func TestRouteRestoreKeepsATeamsAlternateBackend(t *testing.T) {
	t.Parallel()
	for _, rollback := range []bool{true, false} {
		ctx := context.Background()
		r, rc, b := testRouteRouter(t, 2)
		b.Baseline = "shop-baseline"
		snap, err := r.Snapshot(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.SetWeights(ctx, b, Weights{Canary: 20, Baseline: 20}); err != nil {
			t.Fatal(err)
		}
		rt, _ := rc.RouteV1().Routes("ns").Get(ctx, "shop", metav1.GetOptions{})
		ten := int32(10)
		preview := routev1.RouteTargetReference{Kind: "Service", Name: "shop-preview", Weight: &ten}
		rt.Spec.AlternateBackends = append([]routev1.RouteTargetReference{preview}, rt.Spec.AlternateBackends...)
		if _, err := rc.RouteV1().Routes("ns").Update(ctx, rt, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		next := &route{name: "shop", c: r.c} // the next step's run
		if rollback {
			if _, err := next.SetWeights(ctx, b, Weights{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := next.Restore(ctx, b, snap); err != nil {
			t.Fatal(err)
		}
		got, _ := rc.RouteV1().Routes("ns").Get(ctx, "shop", metav1.GetOptions{})
		hundred := int32(100)
		want := routev1.RouteSpec{To: routev1.RouteTargetReference{Kind: "Service", Name: "shop", Weight: &hundred},
			AlternateBackends: []routev1.RouteTargetReference{preview}}
		if d := cmp.Diff(want, got.Spec); d != "" || !cmp.Equal(map[string]string{"keep": "me"}, got.Annotations) {
			t.Errorf("rollback %v: Route after Restore: spec (-want +got):\n%s annotations %v", rollback, d, got.Annotations)
		}
	}
}

// routeTestEndpoints are the EndpointSlices of the Services in namespace ns, n pods each.
func routeTestEndpoints(ns string, pods map[string]int32) []runtime.Object {
	var objs []runtime.Object
	for svc, n := range pods {
		var eps []discoveryv1.Endpoint
		for i := range n {
			eps = append(eps, discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}, // the same IP: endpoints are counted by pod
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: svc + "-" + string(rune('a'+i))}})
		}
		objs = append(objs, &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: svc + "-x", Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}}, Endpoints: eps})
	}
	return objs
}

// routeTestState is what the route router changes on the Route.
type routeTestState struct {
	Spec        routev1.RouteSpec
	Annotations map[string]string
}

// routeTestWeights are the Route weights (0..256) of the contract steps, as TestRouteWeights computes them.
var routeTestWeights = map[Weights][3]int32{
	{}: {256, 0, 0}, {Canary: 10}: {256, 28, 0}, {Canary: 25}: {256, 85, 0}, {Canary: 50}: {256, 256, 0}, {Canary: 100}: {0, 256, 0},
	{Canary: 20, Baseline: 20}: {256, 85, 85},
}

// routeFixture is the route router for the contract suite: the Route shop to the Service shop at weight 100, and
// two ready endpoints behind each Service.
func routeFixture() routerFixture {
	return routerFixture{
		kind: KindRoute,
		setup: func(t *testing.T, o fixtureOptions) *routerEnv {
			hundred := int32(100)
			rt := &routev1.Route{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: routerTestNS, Annotations: map[string]string{"keep": "me"}},
				Spec: routev1.RouteSpec{To: routev1.RouteTargetReference{Kind: "Service", Name: "shop", Weight: &hundred}}}
			if o.split != nil {
				zero := int32(0)
				rt.Annotations = o.split
				rt.Spec.AlternateBackends = []routev1.RouteTargetReference{{Kind: "Service", Name: "shop-canary", Weight: &zero}}
			}
			var objs []runtime.Object
			if !o.missing {
				objs = append(objs, rt)
			}
			rc := routefake.NewSimpleClientset(objs...)
			kube := kubefake.NewClientset(routeTestEndpoints(routerTestNS, map[string]int32{"shop": 2, "shop-canary": 2, "shop-baseline": 2})...)
			r := &route{name: "shop", c: Clients{Route: kubeclienttest.WrapRoute(rc.RouteV1()), Kube: kubeclienttest.Wrap(kube)}}
			stored := func(t *testing.T) *routev1.Route {
				got, err := rc.RouteV1().Routes(routerTestNS).Get(context.Background(), "shop", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				return got
			}
			return &routerEnv{r: r, fakes: []*k8stesting.Fake{&rc.Fake, &kube.Fake}, fake: &rc.Fake, resource: "routes",
				state: func(t *testing.T) any {
					got := stored(t)
					return routeTestState{Spec: got.Spec, Annotations: got.Annotations}
				},
				held: func(t *testing.T, b Backends) Weights { return routeTestHeld(stored(t), b) },
				want: func(t *testing.T, b Backends, w Weights) any { return routeTestWant(t, b, w) },
			}
		},
		steps: []contractStep{
			{w: Weights{}, want: Applied{Detail: "Route shop: to shop=256, alternates shop-canary=0; ready endpoints: shop=2 shop-canary=2"}},
			{w: Weights{Canary: 10}, want: Applied{Stored: Weights{Canary: 10}, EffectiveCanary: 10,
				Detail: "Route shop: to shop=256, alternates shop-canary=28; ready endpoints: shop=2 shop-canary=2"}},
			{w: Weights{Canary: 25}, want: Applied{Stored: Weights{Canary: 25}, EffectiveCanary: 25,
				Detail: "Route shop: to shop=256, alternates shop-canary=85; ready endpoints: shop=2 shop-canary=2"}},
			{w: Weights{Canary: 50}, want: Applied{Stored: Weights{Canary: 50}, EffectiveCanary: 50,
				Detail: "Route shop: to shop=256, alternates shop-canary=256; ready endpoints: shop=2 shop-canary=2"}},
			{w: Weights{Canary: 100}, want: Applied{Stored: Weights{Canary: 100}, EffectiveCanary: 100,
				Detail: "Route shop: to shop=0, alternates shop-canary=256; ready endpoints: shop=2 shop-canary=2"}},
			{baseline: true, w: Weights{Canary: 20, Baseline: 20}, want: Applied{Stored: Weights{Canary: 20, Baseline: 20},
				EffectiveCanary: 20, EffectiveBaseline: 20,
				Detail: "Route shop: to shop=256, alternates shop-canary=85 shop-baseline=85; ready endpoints: shop=2 shop-canary=2"}},
		},
		approx:    0.5,
		missing:   "Route apps/shop does not exist; create it",
		foreign:   `Route apps/shop already sends traffic to "shop-canary", and no canaryline release set it`,
		snapshots: true, setConflict: "update", restoreConflict: "update",
		apiErrors: []apiErrorCase{
			{name: "check get", verb: "get", op: "check", verbObject: "get Route apps/shop"},
			{name: "set weights update", verb: "update", prepared: true, op: "set", verbObject: "update Route apps/shop"},
			{name: "restore update", verb: "update", prepared: true, op: "restore", verbObject: "restore Route apps/shop"},
		},
	}
}

// routeTestHeld is the share of each Service in the Route's weights, in whole percent.
func routeTestHeld(rt *routev1.Route, b Backends) Weights {
	got := map[string]float64{rt.Spec.To.Name: float64(*rt.Spec.To.Weight)}
	total := got[rt.Spec.To.Name]
	for _, a := range rt.Spec.AlternateBackends {
		got[a.Name] = float64(*a.Weight)
		total += float64(*a.Weight)
	}
	pct := func(svc string) int32 { return int32(math.Round(100 * got[svc] / total)) }
	w := Weights{Canary: pct(b.Canary)}
	if b.Baseline != "" {
		w.Baseline = pct(b.Baseline)
	}
	return w
}

// routeTestWant is the Route after SetWeights(w): its weights, the release's annotations and no sticky cookies.
func routeTestWant(t *testing.T, b Backends, w Weights) routeTestState {
	ws, ok := routeTestWeights[w]
	if !ok {
		t.Fatalf("no Route weights for %s", w)
	}
	want := routeTestState{Annotations: map[string]string{"keep": "me", DisableCookiesAnnotation: "true"},
		Spec: routev1.RouteSpec{To: routev1.RouteTargetReference{Kind: "Service", Name: "shop", Weight: &ws[0]},
			AlternateBackends: []routev1.RouteTargetReference{{Kind: "Service", Name: "shop-canary", Weight: &ws[1]}}}}
	if b.Baseline != "" {
		want.Spec.AlternateBackends = append(want.Spec.AlternateBackends, routev1.RouteTargetReference{Kind: "Service", Name: "shop-baseline", Weight: &ws[2]})
	}
	maps.Copy(want.Annotations, b.Annotations)
	return want
}
