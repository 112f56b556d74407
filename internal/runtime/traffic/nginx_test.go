package traffic

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient/kubeclienttest"
)

func nginxTestPath(path string, pathType networkingv1.PathType, svc string, port networkingv1.ServiceBackendPort) networkingv1.HTTPIngressPath {
	return networkingv1.HTTPIngressPath{Path: path, PathType: &pathType, Backend: networkingv1.IngressBackend{
		Service: &networkingv1.IngressServiceBackend{Name: svc, Port: port}}}
}

func nginxTestRule(host string, paths ...networkingv1.HTTPIngressPath) networkingv1.IngressRule {
	return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}}
}

var (
	nginxTestPort8080 = networkingv1.ServiceBackendPort{Number: 8080}
	nginxTestPortHTTP = networkingv1.ServiceBackendPort{Name: "http"}
)

// nginxTestPrimary is the primary Ingress: shop.example.com / and /api/health and shop.internal / go to the
// stable Service shop; /static and static.example.com go elsewhere.
func nginxTestPrimary() *networkingv1.Ingress {
	class := "nginx"
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: routerTestNS, Labels: map[string]string{"app": "shop"},
			Annotations: map[string]string{"nginx.ingress.kubernetes.io/proxy-body-size": "8m"}},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			TLS:              []networkingv1.IngressTLS{{Hosts: []string{"shop.example.com", "static.example.com"}, SecretName: "shop-tls"}},
			Rules: []networkingv1.IngressRule{
				nginxTestRule("shop.example.com",
					nginxTestPath("/", networkingv1.PathTypePrefix, "shop", nginxTestPort8080),
					nginxTestPath("/static", networkingv1.PathTypePrefix, "static", networkingv1.ServiceBackendPort{Number: 80}),
					nginxTestPath("/api/health", networkingv1.PathTypeExact, "shop", nginxTestPortHTTP)),
				nginxTestRule("static.example.com", nginxTestPath("/", networkingv1.PathTypePrefix, "static", networkingv1.ServiceBackendPort{Number: 80})),
				nginxTestRule("shop.internal", nginxTestPath("/", networkingv1.PathTypeImplementationSpecific, "shop", nginxTestPort8080)),
			},
		},
	}
}

// nginxTestCanary is the canary Ingress SetWeights(canary) must make for nginxTestPrimary.
func nginxTestCanary(b Backends, canary string) *networkingv1.Ingress {
	class := "nginx"
	anns := map[string]string{
		"nginx.ingress.kubernetes.io/canary":              "true",
		"nginx.ingress.kubernetes.io/canary-weight":       canary,
		"nginx.ingress.kubernetes.io/canary-weight-total": "100",
	}
	for k, v := range b.Annotations {
		anns[k] = v
	}
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "shop-canary", Namespace: routerTestNS, Annotations: anns},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			TLS:              []networkingv1.IngressTLS{{Hosts: []string{"shop.example.com", "static.example.com"}, SecretName: "shop-tls"}},
			Rules: []networkingv1.IngressRule{
				nginxTestRule("shop.example.com",
					nginxTestPath("/", networkingv1.PathTypePrefix, "shop-canary", nginxTestPort8080),
					nginxTestPath("/api/health", networkingv1.PathTypeExact, "shop-canary", nginxTestPortHTTP)),
				nginxTestRule("shop.internal", nginxTestPath("/", networkingv1.PathTypeImplementationSpecific, "shop-canary", nginxTestPort8080)),
			},
		},
	}
}

// nginxTestForeignCanary is a canary Ingress someone else made.
func nginxTestForeignCanary() *networkingv1.Ingress {
	return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "shop-canary", Namespace: routerTestNS,
		Annotations: map[string]string{"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-by-header": "x-beta"}},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{
			nginxTestRule("shop.example.com", nginxTestPath("/", networkingv1.PathTypePrefix, "shop-beta", nginxTestPort8080))}}}
}

func nginxTestRouter(objs ...runtime.Object) (*nginx, *kubefake.Clientset) {
	kube := kubefake.NewClientset(objs...)
	return &nginx{name: "shop", c: Clients{Kube: kubeclienttest.Wrap(kube)}}, kube
}

// nginxTestIngress reads an Ingress back (nil when there is none), keeping what the router sets.
func nginxTestIngress(t *testing.T, r *nginx, name string) *networkingv1.Ingress {
	t.Helper()
	ing, err := r.c.Kube.NetworkingV1().Ingresses(routerTestNS).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get Ingress %s: %v", name, err)
	}
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: ing.Name, Namespace: ing.Namespace, Labels: ing.Labels, Annotations: ing.Annotations},
		Spec:       ing.Spec,
	}
}

// Check takes a canary Ingress an earlier release left, and refuses what NGINX or the release could not use; the
// contract suite checks the rest.
func TestNginxCheck(t *testing.T) {
	t.Parallel()
	leftover := nginxTestCanary(routerTestBackends(false), "30")
	noStable := nginxTestPrimary()
	noStable.Spec.Rules = noStable.Spec.Rules[1:2]
	noStable.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "shop", Port: nginxTestPort8080}}
	isCanary := nginxTestPrimary()
	isCanary.Annotations["nginx.ingress.kubernetes.io/canary"] = "true"
	routerTestCheckCases(t, []routerTestCheckCase{
		{name: "canary Ingress left by an earlier release", objs: []runtime.Object{nginxTestPrimary(), leftover}},
		{name: "baseline", objs: []runtime.Object{nginxTestPrimary()}, baseline: true,
			want: "the nginx router cannot send traffic to a baseline; use another router or BASELINE=false"},
		{name: "not routing to stable", objs: []runtime.Object{noStable},
			want: "Ingress apps/shop has no rule with a backend on the stable Service shop"},
		{name: "primary is a canary", objs: []runtime.Object{isCanary},
			want: "Ingress apps/shop is itself a canary Ingress"},
		{name: "canary Ingress of someone else", objs: []runtime.Object{nginxTestPrimary(), nginxTestForeignCanary()},
			want: "Ingress apps/shop-canary exists and was not made by canaryline; delete it"},
	}, func(t *testing.T, tc routerTestCheckCase) (Router, *k8stesting.Fake) {
		r, kube := nginxTestRouter(tc.objs...)
		return r, &kube.Fake
	})
}

func TestNginxCheckNames(t *testing.T) {
	t.Parallel()
	long := &nginx{name: strings.Repeat("a", 250), c: Clients{Kube: kubeclienttest.Wrap(kubefake.NewClientset())}}
	routerTestWantCheckError(t, long.Check(context.Background(), routerTestBackends(false)), "is not valid")

	r, _ := nginxTestRouter(nginxTestPrimary())
	b := routerTestBackends(false)
	b.Annotations = nil
	var ce *CheckError
	if err := r.Check(context.Background(), b); err == nil || errors.As(err, &ce) {
		t.Errorf("Check without release annotations = %v; want a plain error", err)
	}
}

// The primary Ingress is never written: not by SetWeights, which makes and updates the canary Ingress, nor by
// Restore, which deletes it.
func TestNginxNeverWritesThePrimary(t *testing.T) {
	t.Parallel()
	for _, s := range nginxFixture().steps {
		ctx := context.Background()
		b := routerTestBackends(false)
		r, kube := nginxTestRouter(nginxTestPrimary())
		snap, err := r.Snapshot(ctx, b)
		if err != nil {
			t.Fatalf("Snapshot: %v", err)
		}
		for _, w := range []Weights{s.w, {Canary: 1}, s.w} {
			if _, err := r.SetWeights(ctx, b, w); err != nil {
				t.Fatalf("SetWeights(%s): %v", w, err)
			}
		}
		for range 2 {
			if err := r.Restore(ctx, b, snap); err != nil {
				t.Fatal(err)
			}
		}
		for _, a := range kube.Actions() {
			var name string
			switch a := a.(type) {
			case k8stesting.CreateAction:
				name = a.GetObject().(*networkingv1.Ingress).Name
			case k8stesting.UpdateAction:
				name = a.GetObject().(*networkingv1.Ingress).Name
			case k8stesting.DeleteAction:
				name = a.GetName()
			case k8stesting.PatchAction:
				name = a.GetName()
			}
			if name == "shop" {
				t.Errorf("%s of the primary Ingress; it is never changed", a.GetVerb())
			}
		}
	}
}

// Legacy class annotation, a default backend to stable, and a canary Ingress left by an earlier release.
func TestNginxLegacyClassAndLeftover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := routerTestBackends(false)
	primary := nginxTestPrimary()
	primary.Spec.IngressClassName = nil
	primary.Annotations["kubernetes.io/ingress.class"] = "nginx-public"
	primary.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "shop", Port: nginxTestPort8080}}
	leftover := nginxTestCanary(b, "40")
	leftover.Spec.Rules = leftover.Spec.Rules[:1]
	r, _ := nginxTestRouter(primary, leftover)

	snap, err := r.Snapshot(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"kind":"nginx","name":"shop","canaryIngress":"shop-canary","canaryExisted":true}`; snap != want {
		t.Errorf("Snapshot = %s; want %s", snap, want)
	}
	got, err := r.SetWeights(ctx, b, Weights{Canary: 20})
	if err != nil {
		t.Fatalf("SetWeights: %v", err)
	}
	want := Applied{Stored: Weights{Canary: 20}, EffectiveCanary: 20, Detail: "Ingress shop-canary (canary of shop): stable=80 canary=20",
		Warnings: []string{"the default backend of Ingress shop goes to the stable Service shop and keeps doing so: only the paths of its rules are split"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Applied (-want +got):\n%s", diff)
	}
	wantCanary := nginxTestCanary(b, "20")
	wantCanary.Spec.IngressClassName = nil
	wantCanary.Annotations["kubernetes.io/ingress.class"] = "nginx-public"
	if diff := cmp.Diff(wantCanary, nginxTestIngress(t, r, "shop-canary")); diff != "" {
		t.Errorf("canary Ingress (-want +got):\n%s", diff)
	}
	if err := r.Restore(ctx, b, snap); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := nginxTestIngress(t, r, "shop-canary"); got != nil {
		t.Errorf("canary Ingress after Restore: %+v; want none", got)
	}
}

// Someone else's canary Ingress is neither changed nor deleted.
func TestNginxRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _ := nginxTestRouter(nginxTestPrimary(), nginxTestForeignCanary())
	if _, err := r.SetWeights(ctx, routerTestBackends(false), Weights{Canary: 10}); err == nil ||
		!strings.HasPrefix(err.Error(), "update Ingress apps/shop-canary: Ingress apps/shop-canary exists and was not made by canaryline") {
		t.Errorf("SetWeights over a foreign canary Ingress = %v", err)
	}
	if err := r.Restore(ctx, routerTestBackends(false), `{"kind":"nginx"}`); err == nil ||
		!strings.HasPrefix(err.Error(), "delete Ingress apps/shop-canary: Ingress apps/shop-canary exists and was not made by canaryline") {
		t.Errorf("Restore of a foreign canary Ingress = %v", err)
	}
	if diff := cmp.Diff(nginxTestForeignCanary(), nginxTestIngress(t, r, "shop-canary")); diff != "" {
		t.Errorf("the foreign canary Ingress changed (-want +got):\n%s", diff)
	}
}

// A canary Ingress made by someone else between the read and the create is read again; one deleted between the
// read and the delete is gone all the same. The contract suite checks conflicts.
func TestNginxRetries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := routerTestBackends(false)
	r, kube := nginxTestRouter(nginxTestPrimary())
	gr := networkingv1.Resource("ingresses")
	// Made by someone else between the read and the create: read again.
	routerTestFailOnce(&kube.Fake, "create", "ingresses", apierrors.NewAlreadyExists(gr, "shop-canary"))
	if _, err := r.SetWeights(ctx, b, Weights{Canary: 10}); err != nil {
		t.Fatalf("SetWeights after AlreadyExists: %v", err)
	}
	// Deleted between the read and the delete: done all the same.
	routerTestFailOnce(&kube.Fake, "delete", "ingresses", apierrors.NewNotFound(gr, "shop-canary"))
	if err := r.Restore(ctx, b, `{"kind":"nginx"}`); err != nil {
		t.Errorf("Restore after NotFound: %v", err)
	}
}

// Something that changes the weight on the way (a webhook): the read-back catches it.
func TestNginxSetWeightsReadBackMismatch(t *testing.T) {
	t.Parallel()
	r, kube := nginxTestRouter(nginxTestPrimary())
	kube.PrependReactor("create", "ingresses", func(a k8stesting.Action) (bool, runtime.Object, error) {
		a.(k8stesting.CreateAction).GetObject().(*networkingv1.Ingress).Annotations["nginx.ingress.kubernetes.io/canary-weight"] = "1"
		return false, nil, nil // the tracker stores the changed object
	})
	_, err := r.SetWeights(context.Background(), routerTestBackends(false), Weights{Canary: 10})
	if err == nil || err.Error() != "Ingress apps/shop-canary holds nginx.ingress.kubernetes.io/canary-weight=1 after the update; want 10" {
		t.Errorf("SetWeights = %v; want the read-back mismatch", err)
	}
}

func TestNginxCanaryName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ ingress, stable, want string }{
		{"shop", "shop", "shop-canary"},
		{"shop", "cart", "shop-cart-canary"},
		{"storefront", "shop", "storefront-shop-canary"},
	} {
		if got := NginxCanaryName(tc.ingress, tc.stable); got != tc.want {
			t.Errorf("NginxCanaryName(%q, %q) = %q; want %q", tc.ingress, tc.stable, got, tc.want)
		}
	}
	// Together the names must make a valid Ingress name: refused before any write.
	long := strings.Repeat("s", 245)
	primary := nginxTestPrimary()
	primary.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = long
	r, kube := nginxTestRouter(primary)
	b := routerTestBackends(false)
	b.Stable = long
	routerTestWantCheckError(t, r.Check(context.Background(), b), `the canary Ingress name "shop-`+long+`-canary" is not valid`)
	if n := routerTestWrites(&kube.Fake); n != 0 {
		t.Errorf("Check made %d writes", n)
	}
}

// nginxTestShared is the Ingress shop: / goes to shop, /cart to cart.
func nginxTestShared() *networkingv1.Ingress {
	ing := nginxTestPrimary()
	ing.Spec.TLS = nil
	ing.Spec.Rules = []networkingv1.IngressRule{nginxTestRule("shop.example.com",
		nginxTestPath("/", networkingv1.PathTypePrefix, "shop", nginxTestPort8080),
		nginxTestPath("/cart", networkingv1.PathTypePrefix, "cart", nginxTestPort8080))}
	return ing
}

// shop and cart share the Ingress shop, one path each: each release has its own canary Ingress (shop-canary,
// shop-cart-canary) with its own path; shop's promote leaves cart's alone, and in the end both are gone.
func TestNginxSharedByTwoApplications(t *testing.T) {
	t.Parallel()
	r, kube := nginxTestRouter(nginxTestShared())
	router := func() Router { return r }
	paths := func(name string) string {
		ing := nginxTestIngress(t, r, name)
		if ing == nil {
			return "none"
		}
		var out []string
		for _, rule := range ing.Spec.Rules {
			for _, p := range rule.HTTP.Paths {
				out = append(out, p.Path+" "+p.Backend.Service.Name)
			}
		}
		return strings.Join(out, ", ") + " at " + ing.Annotations["nginx.ingress.kubernetes.io/canary-weight"] + " of release " +
			ing.Annotations["shop.canaryline.dev/release"] + ing.Annotations["cart.canaryline.dev/release"]
	}
	routerTestSharedSteps(t, router, func() {
		if got := paths("shop-cart-canary"); got != "/cart cart-canary at 20 of release c-1" {
			t.Errorf("cart's canary Ingress while its release runs: %s", got)
		}
		if got := paths("shop-canary"); got != "none" {
			t.Errorf("shop's canary Ingress after its promote: %s", got)
		}
	})
	for _, name := range []string{"shop-canary", "shop-cart-canary"} {
		if got := nginxTestIngress(t, r, name); got != nil {
			t.Errorf("canary Ingress %s after both releases: %+v", name, got)
		}
	}
	if diff := cmp.Diff(nginxTestShared(), nginxTestIngress(t, r, "shop")); diff != "" {
		t.Errorf("the shared Ingress changed (-want +got):\n%s", diff)
	}
	for _, a := range kube.Actions() {
		if d, ok := a.(k8stesting.DeleteAction); ok && d.GetName() == "shop" {
			t.Error("the shared Ingress was deleted")
		}
	}
}

// A release recorded before made <ingress>-canary for an Ingress named otherwise than its Service: the release
// keeps using and removes that one. Another release's <ingress>-canary is never taken: the release makes its own.
func TestNginxCanaryOfAReleaseRecordedBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := routerTestBackends(false)
	web := func() *networkingv1.Ingress { ing := nginxTestPrimary(); ing.Name = "web"; return ing }
	old := func(release string) *networkingv1.Ingress {
		ing := nginxTestCanary(b, "10")
		ing.Name = "web-canary"
		ing.Annotations = map[string]string{"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "10",
			"canaryline.dev/release": release}
		return ing
	}

	r, _ := nginxTestRouter(web(), old("r-7"))
	r.name = "web"
	if err := r.Check(ctx, b); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if a, err := r.SetWeights(ctx, b, Weights{Canary: 40}); err != nil || a.Detail != "Ingress web-canary (canary of web): stable=60 canary=40" {
		t.Fatalf("SetWeights = %+v, %v; want web-canary at 40", a, err)
	}
	if got := nginxTestIngress(t, r, "web-shop-canary"); got != nil {
		t.Errorf("a second canary Ingress for the release: %+v", got)
	}
	if err := r.Restore(ctx, b, `{"kind":"nginx"}`); err != nil {
		t.Fatal(err)
	}
	if got := nginxTestIngress(t, r, "web-canary"); got != nil {
		t.Errorf("the release's web-canary after Restore: %+v", got)
	}

	r, _ = nginxTestRouter(web(), old("r-6"))
	r.name = "web"
	if err := r.Check(ctx, b); err != nil {
		t.Fatalf("Check beside another release's web-canary: %v", err)
	}
	if a, err := r.SetWeights(ctx, b, Weights{Canary: 40}); err != nil || a.Detail != "Ingress web-shop-canary (canary of web): stable=60 canary=40" {
		t.Fatalf("SetWeights = %+v, %v; want web-shop-canary at 40", a, err)
	}
	if err := r.Restore(ctx, b, `{"kind":"nginx"}`); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(old("r-6"), nginxTestIngress(t, r, "web-canary")); diff != "" {
		t.Errorf("another release's web-canary changed (-want +got):\n%s", diff)
	}
	if got := nginxTestIngress(t, r, "web-shop-canary"); got != nil {
		t.Errorf("web-shop-canary after Restore: %+v", got)
	}
}

// nginxTestState is what the nginx router changes: the canary Ingress (nil: none) and the primary.
type nginxTestState struct{ Canary, Primary *networkingv1.Ingress }

// nginxFixture is the nginx router for the contract suite: nginxTestPrimary, three paths to shop.
func nginxFixture() routerFixture {
	return routerFixture{
		kind: KindNginx,
		setup: func(t *testing.T, o fixtureOptions) *routerEnv {
			var objs []runtime.Object
			if !o.missing {
				objs = append(objs, nginxTestPrimary())
			}
			if o.split != nil {
				canary := nginxTestCanary(routerTestBackends(false), "0")
				canary.Annotations = map[string]string{"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "0"}
				maps.Copy(canary.Annotations, o.split)
				objs = append(objs, canary)
			}
			r, kube := nginxTestRouter(objs...)
			return &routerEnv{r: r, fakes: []*k8stesting.Fake{&kube.Fake}, fake: &kube.Fake, resource: "ingresses",
				state: func(t *testing.T) any {
					return nginxTestState{Canary: nginxTestIngress(t, r, "shop-canary"), Primary: nginxTestIngress(t, r, "shop")}
				},
				held: func(t *testing.T, b Backends) Weights {
					canary := nginxTestIngress(t, r, "shop-canary")
					if canary == nil {
						t.Fatal("no canary Ingress")
					}
					w, err := strconv.Atoi(canary.Annotations["nginx.ingress.kubernetes.io/canary-weight"])
					if err != nil || canary.Annotations["nginx.ingress.kubernetes.io/canary-weight-total"] != "100" {
						t.Errorf("canary Ingress annotations %v", canary.Annotations)
					}
					return Weights{Canary: int32(w)}
				},
				want: func(t *testing.T, b Backends, w Weights) any {
					return nginxTestState{Canary: nginxTestCanary(b, strconv.Itoa(int(w.Canary))), Primary: nginxTestPrimary()}
				},
			}
		},
		steps: []contractStep{
			{w: Weights{}, want: Applied{Detail: "Ingress shop-canary (canary of shop): stable=100 canary=0"}},
			{w: Weights{Canary: 10}, want: Applied{Stored: Weights{Canary: 10}, EffectiveCanary: 10,
				Detail: "Ingress shop-canary (canary of shop): stable=90 canary=10"}},
			{w: Weights{Canary: 50}, want: Applied{Stored: Weights{Canary: 50}, EffectiveCanary: 50,
				Detail: "Ingress shop-canary (canary of shop): stable=50 canary=50"}},
			{w: Weights{Canary: 100}, want: Applied{Stored: Weights{Canary: 100}, EffectiveCanary: 100,
				Detail: "Ingress shop-canary (canary of shop): stable=0 canary=100"}},
		},
		missing:       "Ingress apps/shop does not exist; create it",
		foreign:       "Ingress apps/shop-canary exists and was not made by canaryline; delete it",
		checksWeights: true, snapshots: true, kindedSnapshot: true, quietRestore: true, restoresDeleted: true,
		setConflict: "update",
		apiErrors: []apiErrorCase{
			{name: "check get", verb: "get", op: "check", verbObject: "get Ingress apps/shop"},
			{name: "snapshot get", verb: "get", op: "snapshot", verbObject: "get Ingress apps/shop"},
			{name: "set weights create", verb: "create", op: "set", verbObject: "create Ingress apps/shop-canary"},
			{name: "set weights update", verb: "update", prepared: true, op: "set", verbObject: "update Ingress apps/shop-canary"},
			{name: "restore get", verb: "get", prepared: true, op: "restore", verbObject: "get Ingress apps/shop-canary"},
			{name: "restore delete", verb: "delete", prepared: true, op: "restore", verbObject: "delete Ingress apps/shop-canary"},
		},
	}
}
