package traffic

import (
	"context"
	"errors"
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

	"github.com/canaryline/canaryline/internal/kubeclient/kubeclienttest"
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

func testRouteRouter(t *testing.T, canaryPods int32) (*route, *routefake.Clientset, Backends) {
	t.Helper()
	w := int32(100)
	rt := &routev1.Route{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "ns", Annotations: map[string]string{"keep": "me"}},
		Spec: routev1.RouteSpec{To: routev1.RouteTargetReference{Kind: "Service", Name: "shop", Weight: &w}}}
	rc := routefake.NewSimpleClientset(rt)
	var objs []runtime.Object
	for svc, n := range map[string]int32{"shop": 2, "shop-canary": canaryPods} {
		var eps []discoveryv1.Endpoint
		for i := range n {
			eps = append(eps, discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}, // the same IP: endpoints are counted by pod
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: svc + "-" + string(rune('a'+i))}})
		}
		objs = append(objs, &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: svc + "-x", Namespace: "ns",
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}}, Endpoints: eps})
	}
	r := &route{name: "shop", c: Clients{Route: kubeclienttest.WrapRoute(rc.RouteV1()), Kube: kubeclienttest.Wrap(kubefake.NewClientset(objs...))}}
	return r, rc, Backends{Namespace: "ns", Stable: "shop", Canary: "shop-canary", StableDeployment: "shop",
		Annotations: map[string]string{"shop.canaryline.dev/release": "r1"}}
}

func TestRouteRouter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, rc, b := testRouteRouter(t, 2)
	if err := r.Check(ctx, b); err != nil {
		t.Fatal(err)
	}
	snap, err := r.Snapshot(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := rc.RouteV1().Routes("ns").Get(ctx, "shop", metav1.GetOptions{})
	a, err := r.SetWeights(ctx, b, Weights{Canary: 25})
	if err != nil {
		t.Fatal(err)
	}
	if a.Stored.Canary != 25 || math.Abs(a.EffectiveCanary-25) > 0.5 || len(a.Warnings) != 0 {
		t.Errorf("applied %+v; want 25%% stored and effective, no warning", a)
	}
	got, _ := rc.RouteV1().Routes("ns").Get(ctx, "shop", metav1.GetOptions{})
	if *got.Spec.To.Weight != 256 || len(got.Spec.AlternateBackends) != 1 || *got.Spec.AlternateBackends[0].Weight != 85 ||
		got.Annotations[DisableCookiesAnnotation] != "true" || got.Annotations["shop.canaryline.dev/release"] != "r1" {
		t.Errorf("route after SetWeights: %+v %v", got.Spec, got.Annotations)
	}
	for range 2 { // restoring twice is harmless
		if err := r.Restore(ctx, b, snap); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := rc.RouteV1().Routes("ns").Get(ctx, "shop", metav1.GetOptions{})
	if d := cmp.Diff(before.Spec, after.Spec); d != "" || !cmp.Equal(before.Annotations, after.Annotations) {
		t.Errorf("restore: spec diff %s, annotations %v", d, after.Annotations)
	}
}

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
	missing := &route{name: "nope", c: r.c}
	var ce *CheckError
	if err := missing.Check(ctx, b); err == nil || !asCheck(err, &ce) {
		t.Errorf("missing Route: %v; want a CheckError", err)
	}
	rc.PrependReactor("update", "routes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errBoom
	})
	if _, err := r.SetWeights(ctx, b, Weights{Canary: 10}); err == nil {
		t.Error("an API error did not surface")
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

var errBoom = errors.New("boom")

func asCheck(err error, target **CheckError) bool         { return errors.As(err, target) }
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
