package traffic

import (
	"context"
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
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"
)

// Shared by the router tests.

const routerTestNS = "apps"

// routerTestBackends are the Services (and Deployments) of the router tests: shop, shop-canary and (with
// baseline) shop-baseline, of the application shop, whose release r-7 marks the router object with its own keys.
func routerTestBackends(baseline bool) Backends {
	b := Backends{
		Namespace:        routerTestNS,
		Stable:           "shop",
		Canary:           "shop-canary",
		StableDeployment: "shop",
		CanaryDeployment: "shop-canary",
		Annotations: map[string]string{
			"shop.canaryline.dev/release": "r-7",
			"shop.canaryline.dev/weight":  "set by the release",
		},
	}
	if baseline {
		b.Baseline, b.BaselineDeployment = "shop-baseline", "shop-baseline"
	}
	return b
}

// routerTestObject parses a YAML manifest into an unstructured object (integers as int64, as the API gives them).
func routerTestObject(t *testing.T, manifest string) *unstructured.Unstructured {
	t.Helper()
	data, err := yaml.YAMLToJSON([]byte(manifest))
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	return u
}

// routerTestDynamic is a fake dynamic client holding objs, with the HTTPRoute and VirtualService list kinds.
func routerTestDynamic(objs ...*unstructured.Unstructured) *dynamicfake.FakeDynamicClient {
	var ros []runtime.Object
	for _, o := range objs {
		ros = append(ros, o.DeepCopy())
	}
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		httpRouteGVR:      "HTTPRouteList",
		virtualServiceGVR: "VirtualServiceList",
	}, ros...)
}

// routerTestGet reads an object from the fake dynamic client's tracker, without resourceVersion.
func routerTestGet(t *testing.T, dyn dynamic.Interface, gvr schema.GroupVersionResource, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := dyn.Resource(gvr).Namespace(routerTestNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get %s %s: %v", gvr.Resource, name, err)
	}
	return routerTestStripped(u)
}

// routerTestStripped drops the fields the API server (or the fake) sets on every write.
func routerTestStripped(u *unstructured.Unstructured) *unstructured.Unstructured {
	u = u.DeepCopy()
	for _, f := range []string{"resourceVersion", "generation", "managedFields", "uid", "creationTimestamp"} {
		unstructured.RemoveNestedField(u.Object, "metadata", f)
	}
	return u
}

// routerTestWantCheckError fails unless err is a *CheckError whose text has want.
func routerTestWantCheckError(t *testing.T, err error, want string) {
	t.Helper()
	var ce *CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v (%T), want a *CheckError", err, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to say %q", err, want)
	}
}

// routerTestFailOnce makes the first verb on resource fail with err, and lets later calls through.
func routerTestFailOnce(f *k8stesting.Fake, verb, resource string, err error) {
	done := false
	f.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		if done {
			return false, nil, nil
		}
		done = true
		return true, nil, err
	})
}

// routerTestAPIError is an injected API failure.
var routerTestAPIError = apierrors.NewInternalError(errors.New("etcd is on fire"))

// routerTestWantAPIError fails unless err wraps routerTestAPIError and names verbObject ("update HTTPRoute apps/shop").
func routerTestWantAPIError(t *testing.T, err error, verbObject string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want the injected API error")
	}
	if !apierrors.IsInternalError(err) {
		t.Errorf("error = %v; want it to wrap the injected internal error", err)
	}
	var ce *CheckError
	if errors.As(err, &ce) {
		t.Errorf("error = %v is a CheckError; an API failure is not bad input", err)
	}
	if !strings.HasPrefix(err.Error(), verbObject+": ") {
		t.Errorf("error = %q; want it to start with %q", err, verbObject+": ")
	}
}

// routerTestWrites counts the write verbs that reached the fake.
func routerTestWrites(f *k8stesting.Fake) int {
	n := 0
	for _, a := range f.Actions() {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete":
			n++
		}
	}
	return n
}

// routerTestListHeld reads the weights that the entries of the list at path of u (an HTTPRoute's rules, a
// VirtualService's http entries) with a backend to the stable Service hold in their backends (field), which must
// all hold the same. service says which Service a backend goes to; unset is the weight of a backend without one
// among n.
func routerTestListHeld(t *testing.T, u *unstructured.Unstructured, path []string, field string, b Backends,
	service func(item map[string]any) string, unset func(n int) int64) Weights {
	t.Helper()
	list, _, _ := unstructured.NestedSlice(u.Object, path...)
	var held []Weights
	for i, entry := range list {
		items, _, _ := unstructured.NestedSlice(entry.(map[string]any), field)
		ws := map[string]int64{b.Stable: -1, b.Canary: -1}
		if b.Baseline != "" {
			ws[b.Baseline] = -1
		}
		for _, item := range items {
			m := item.(map[string]any)
			w, ok := m["weight"].(int64)
			if !ok {
				w = unset(len(items))
			}
			if _, ours := ws[service(m)]; ours {
				ws[service(m)] = w
			}
		}
		if ws[b.Stable] < 0 {
			continue // not an entry of the release
		}
		got := Weights{Canary: int32(ws[b.Canary]), Baseline: int32(ws[b.Baseline])}
		if got.Stable() != int32(ws[b.Stable]) {
			t.Errorf("%s[%d] holds stable=%d %s: not 100 in all", strings.Join(path, "."), i, ws[b.Stable], got)
		}
		held = append(held, got)
	}
	if len(held) == 0 {
		t.Fatalf("no entry goes to the stable Service")
	}
	for _, h := range held[1:] {
		if h != held[0] {
			t.Errorf("the stable entries hold %v; want the same in all", held)
		}
	}
	return held[0]
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

// routerTestRestoreByContent releases the application of manifest, a list router object, through the router of
// newRouter; a team puts an entry of its own (team) first while the release runs. Restore finds the release's
// backends by content: the team's entry stays as the team made it, and the application's entries are as before
// the release, on rollback (weight 0 first) and on promote, with the snapshot of this version or of a release
// recorded before (old).
func routerTestRestoreByContent(t *testing.T, manifest string, newRouter func(...*unstructured.Unstructured) (*listRouter, *k8stesting.Fake),
	old func(*testing.T) string, team func() map[string]any) {
	t.Helper()
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
			r, _ := newRouter(routerTestObject(t, manifest))
			snap, err := r.Snapshot(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			if tc.old {
				snap = old(t)
			}
			if _, err := r.SetWeights(ctx, b, Weights{Canary: 10, Baseline: 10}); err != nil {
				t.Fatal(err)
			}
			routerTestInsertFirst(t, r.c.Dynamic, r.kind.gvr, "shop", team(), r.kind.path...)
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
			want := routerTestObject(t, manifest)
			list, _, _ := unstructured.NestedSlice(want.Object, r.kind.path...)
			_ = unstructured.SetNestedSlice(want.Object, append([]any{team()}, list...), r.kind.path...)
			if diff := cmp.Diff(routerTestStripped(want).Object, routerTestGet(t, r.c.Dynamic, r.kind.gvr, r.name).Object); diff != "" {
				t.Errorf("%s after Restore (-want +got):\n%s", r.kind.object, diff)
			}
		})
	}
}

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

// routerTestSharedList runs routerTestSharedSteps on manifest, the list router object storefront whose first entry
// goes to cart and second to shop, through the router newRouter makes: while cart's release runs, the object
// carries cart's marks alone, cart's entry holds wantCart and shop's is as before shop's release; in the end the
// object is as before both.
func routerTestSharedList(t *testing.T, manifest string, newRouter func(name string, c Clients) *listRouter, wantCart []any) {
	t.Helper()
	dyn := routerTestDynamic(routerTestObject(t, manifest))
	kind := newRouter("storefront", Clients{Dynamic: dyn}).kind
	routerTestSharedSteps(t, func() Router { return newRouter("storefront", Clients{Dynamic: dyn}) }, func() {
		u := routerTestGet(t, dyn, kind.gvr, "storefront")
		wantAnns := map[string]string{"team": "web"}
		maps.Copy(wantAnns, routerTestCart().Annotations)
		if diff := cmp.Diff(wantAnns, u.GetAnnotations()); diff != "" {
			t.Errorf("annotations while cart's release runs (-want +got):\n%s", diff)
		}
		list, _, _ := unstructured.NestedSlice(u.Object, kind.path...)
		if diff := cmp.Diff(wantCart, list[0].(map[string]any)[kind.field]); diff != "" {
			t.Errorf("cart's entry while its release runs (-want +got):\n%s", diff)
		}
		want, _, _ := unstructured.NestedSlice(routerTestObject(t, manifest).Object, kind.path...)
		if diff := cmp.Diff(want[1], list[1]); diff != "" {
			t.Errorf("shop's entry after its promote (-want +got):\n%s", diff)
		}
	})
	if diff := cmp.Diff(routerTestStripped(routerTestObject(t, manifest)).Object, routerTestGet(t, dyn, kind.gvr, "storefront").Object); diff != "" {
		t.Errorf("%s after both releases (-want +got):\n%s", kind.object, diff)
	}
}

// A release's mark is its application's own key, or the shared key of a release recorded before; another
// application's key never is, even with the same id.
func TestMarked(t *testing.T) {
	t.Parallel()
	b := routerTestBackends(false)
	b.Abandoned = "r-5"
	for _, tc := range []struct {
		anns map[string]string
		want bool
	}{
		{map[string]string{"shop.canaryline.dev/release": "r-7"}, true},
		{map[string]string{"shop.canaryline.dev/release": "r-5"}, true},
		{map[string]string{"canaryline.dev/release": "r-7"}, true},
		{map[string]string{"canaryline.dev/release": "r-5"}, true},
		{map[string]string{"cart.canaryline.dev/release": "r-7"}, false},
		{map[string]string{"shop.canaryline.dev/release": "r-6", "canaryline.dev/release": "r-6"}, false},
		{map[string]string{"shop.canaryline.dev/release": ""}, false},
		{nil, false},
	} {
		if got := b.Marked(tc.anns); got != tc.want {
			t.Errorf("Marked(%v) = %v; want %v", tc.anns, got, tc.want)
		}
	}
}
