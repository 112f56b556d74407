package integration

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// routerGVR is the resource of the app's unstructured router object (httproute, istio), and the path of its list
// of entries.
func (a *app) routerGVR() (schema.GroupVersionResource, []string) {
	if a.kind == "istio" {
		return vsGVR, []string{"spec", "http"}
	}
	return httpRouteGVR, []string{"spec", "rules"}
}

// routerObject reads the app's router object "shop" (httproute, istio).
func (a *app) routerObject() *unstructured.Unstructured {
	a.t.Helper()
	gvr, _ := a.routerGVR()
	u, err := a.dyn.Resource(gvr).Namespace(a.ns).Get(context.Background(), "shop", metav1.GetOptions{})
	if err != nil {
		a.t.Fatal(err)
	}
	return u
}

// routerEntries are the entries of the router object (the rules of the HTTPRoute, the http entries of the
// VirtualService).
func (a *app) routerEntries(u *unstructured.Unstructured) []any {
	_, path := a.routerGVR()
	list, _, _ := unstructured.NestedSlice(u.Object, path...)
	return list
}

// insertFirst puts entry first in the router object's entries, as a team would, and returns it as stored.
func (a *app) insertFirst(entry map[string]any) any {
	a.t.Helper()
	gvr, path := a.routerGVR()
	u := a.routerObject()
	if err := unstructured.SetNestedSlice(u.Object, append([]any{entry}, a.routerEntries(u)...), path...); err != nil {
		a.t.Fatal(err)
	}
	stored, err := a.dyn.Resource(gvr).Namespace(a.ns).Update(context.Background(), u, metav1.UpdateOptions{})
	if err != nil {
		a.t.Fatal(err)
	}
	return a.routerEntries(stored)[0]
}

func jsonOf(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}

// TestRestoreByContent: while a release runs, a team puts a rule (HTTPRoute) or an http entry (VirtualService) of
// its own first, to its own Service. The release goes on, and its end, rollback or promote, finds its backends by
// content: the team's entry is left as the team made it, the application's is as before the release, and the
// object carries no canaryline annotation.
func TestRestoreByContent(t *testing.T) {
	t.Parallel()
	team := map[string]map[string]any{
		"httproute": {"matches": []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/team"}}},
			"backendRefs": []any{map[string]any{"name": "team-svc", "port": int64(9090)}}},
		"istio": {"name": "team", "match": []any{map[string]any{"uri": map[string]any{"prefix": "/team"}}},
			"route": []any{map[string]any{"destination": map[string]any{"host": "team-svc", "port": map[string]any{"number": int64(9090)}}}}},
	}
	for _, kind := range []string{"httproute", "istio"} {
		for _, decision := range []string{"rollback", "promote"} {
			t.Run(kind+"/"+decision, func(t *testing.T) {
				t.Parallel()
				a := newApp(t, kind, 2)
				before := a.routerObject()
				if r := a.shift(10, map[string]string{"BASELINE": "true"}); r.code != 0 {
					t.Fatalf("shift 10: exit %d\n%s", r.code, r.stderr)
				}
				teams := a.insertFirst(team[kind])
				if r := a.shift(30, nil); r.code != 0 {
					t.Fatalf("shift 30 after the team's change: exit %d\n%s", r.code, r.stderr)
				}
				if r := a.decide(map[string]string{"DECISION": decision}); r.code != 0 || r.results["DECISION"] != decision {
					t.Fatalf("%s: exit %d results %v\n%s", decision, r.code, r.results, r.stderr)
				}
				after := a.routerObject()
				entries := a.routerEntries(after)
				if len(entries) != 1+len(a.routerEntries(before)) {
					t.Fatalf("%d entries after the %s; want the team's and the application's %d", len(entries), decision, len(a.routerEntries(before)))
				}
				if got, want := jsonOf(entries[0]), jsonOf(teams); got != want {
					t.Errorf("the team's entry after the %s:\n%s\nas the team made it:\n%s", decision, got, want)
				}
				if got, want := jsonOf(entries[1:]), jsonOf(a.routerEntries(before)); got != want {
					t.Errorf("the application's entries after the %s:\n%s\nbefore the release:\n%s", decision, got, want)
				}
				if got, want := jsonOf(after.GetAnnotations()), jsonOf(before.GetAnnotations()); got != want {
					t.Errorf("annotations after the %s: %s; before the release: %s", decision, got, want)
				}
			})
		}
	}
}

// sharedRouterSetup makes the app's router object "shop" serve cart too: one more rule (HTTPRoute), http entry
// (VirtualService) or path (Ingress), to cart.
func (a *app) sharedRouterSetup() {
	a.t.Helper()
	ctx := context.Background()
	switch a.kind {
	case "httproute", "istio":
		gvr, path := a.routerGVR()
		u := a.routerObject()
		entries := a.routerEntries(u)
		if a.kind == "httproute" {
			entries = append(entries, map[string]any{"matches": []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/cart"}}},
				"backendRefs": []any{map[string]any{"name": "cart", "port": int64(8080)}}})
		} else { // Istio takes the first match: /cart before shop's catch-all
			entries = append([]any{map[string]any{"match": []any{map[string]any{"uri": map[string]any{"prefix": "/cart"}}},
				"route": []any{map[string]any{"destination": map[string]any{"host": "cart", "port": map[string]any{"number": int64(8080)}}}}}}, entries...)
		}
		if err := unstructured.SetNestedSlice(u.Object, entries, path...); err != nil {
			a.t.Fatal(err)
		}
		if _, err := a.dyn.Resource(gvr).Namespace(a.ns).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
			a.t.Fatal(err)
		}
	case "nginx":
		ing, err := a.kube.NetworkingV1().Ingresses(a.ns).Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			a.t.Fatal(err)
		}
		prefix := networkingv1.PathTypePrefix
		http := ing.Spec.Rules[0].HTTP
		http.Paths = append(http.Paths, networkingv1.HTTPIngressPath{Path: "/cart", PathType: &prefix, Backend: networkingv1.IngressBackend{
			Service: &networkingv1.IngressServiceBackend{Name: "cart", Port: networkingv1.ServiceBackendPort{Number: 8080}}}})
		if _, err := a.kube.NetworkingV1().Ingresses(a.ns).Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
			a.t.Fatal(err)
		}
	}
}

// sharedState is the shared router object (spec and annotations) and the names of the Ingresses in the namespace.
func (a *app) sharedState() string {
	a.t.Helper()
	ctx := context.Background()
	if a.kind != "nginx" {
		u := a.routerObject()
		return jsonOf([]any{u.Object["spec"], u.GetAnnotations()})
	}
	ings, err := a.kube.NetworkingV1().Ingresses(a.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		a.t.Fatal(err)
	}
	var names []string
	var primary any
	for _, ing := range ings.Items {
		names = append(names, ing.Name)
		if ing.Name == "shop" {
			primary = []any{ing.Spec, ing.Annotations}
		}
	}
	sort.Strings(names)
	return jsonOf([]any{primary, names})
}

// sharedEntry is the entry of the shared object that goes to Service svc, with the weights of svc and svc-canary
// in it ("" when there is no such backend).
func (a *app) sharedEntry(svc string) (entry any, stable, canary string) {
	a.t.Helper()
	for _, e := range a.routerEntries(a.routerObject()) {
		field, name := "backendRefs", func(m map[string]any) any { return m["name"] }
		if a.kind == "istio" {
			field, name = "route", func(m map[string]any) any { return m["destination"].(map[string]any)["host"] }
		}
		found := false
		for _, b := range e.(map[string]any)[field].([]any) {
			m := b.(map[string]any)
			switch name(m) {
			case svc:
				found, stable = true, jsonOf(m["weight"])
			case svc + "-canary":
				canary = jsonOf(m["weight"])
			}
		}
		if found {
			return e, stable, canary
		}
	}
	a.t.Fatalf("no entry of the shared router object goes to %s", svc)
	return nil, "", ""
}

// TestSharedRouterObject: shop and cart, in one namespace, share one HTTPRoute (one rule each), one
// VirtualService (one http entry each) or one Ingress (one path each). Their releases interleave: shop shifts to
// 10, cart to 20, shop is promoted while cart runs, cart shifts on to 30 and is rolled back. Each release marks the
// object with its own keys and has its own NGINX canary Ingress: after shop's promote, cart's weights and canary
// Ingress are intact and shop's entry is as before; at the end the shared object is exactly as before both
// releases, and no canary Ingress is left.
func TestSharedRouterObject(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"httproute", "istio", "nginx"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, kind, 2)
			a.addApp("cart")
			a.sharedRouterSetup()
			before := a.sharedState()
			var shopBefore any
			if kind != "nginx" {
				shopBefore, _, _ = a.sharedEntry("shop")
			}
			cartImage := strings.Replace(canaryImage, "shop", "cart", 1)
			cart := func(step string, env map[string]string) stepRun {
				e := map[string]string{"APP": "cart", "ROUTER": kind, "ROUTER_NAME": "shop", "IMAGE": cartImage, "RELEASE_ID": "cart-release-1",
					"READY_TIMEOUT": "30s"}
				for k, v := range env {
					e[k] = v
				}
				if step == "promote-or-rollback" {
					delete(e, "ROUTER")
					delete(e, "ROUTER_NAME")
					delete(e, "IMAGE")
					delete(e, "READY_TIMEOUT")
				}
				return runStep(t, step, a.kubeconfig, e)
			}

			if r := a.shift(10, nil); r.code != 0 {
				t.Fatalf("shop: shift 10: exit %d\n%s", r.code, r.stderr)
			}
			if r := cart("shift-canary", map[string]string{"WEIGHT": "20"}); r.code != 0 {
				t.Fatalf("cart: shift 20 beside shop's release: exit %d\n%s", r.code, r.stderr)
			}
			if r := a.decide(map[string]string{"DECISION": "promote"}); r.code != 0 {
				t.Fatalf("shop: promote: exit %d\n%s", r.code, r.stderr)
			}

			// cart's release runs on, untouched by shop's end.
			if kind == "nginx" {
				ing, err := a.kube.NetworkingV1().Ingresses(a.ns).Get(context.Background(), "shop-cart-canary", metav1.GetOptions{})
				if err != nil {
					t.Fatalf("cart's canary Ingress after shop's promote: %v", err)
				}
				paths := ing.Spec.Rules[0].HTTP.Paths
				if w := ing.Annotations["nginx.ingress.kubernetes.io/canary-weight"]; w != "20" || len(paths) != 1 || paths[0].Path != "/cart" ||
					paths[0].Backend.Service.Name != "cart-canary" {
					t.Errorf("cart's canary Ingress after shop's promote: weight %s, paths %+v; want 20, /cart to cart-canary", w, paths)
				}
				if _, err := a.kube.NetworkingV1().Ingresses(a.ns).Get(context.Background(), "shop-canary", metav1.GetOptions{}); err == nil {
					t.Error("shop's canary Ingress is still there after its promote")
				}
			} else {
				if _, stable, canary := a.sharedEntry("cart"); stable != "80" || canary != "20" {
					t.Errorf("cart's weights after shop's promote: cart %s, cart-canary %s; want 80 and 20", stable, canary)
				}
				if shop, _, _ := a.sharedEntry("shop"); jsonOf(shop) != jsonOf(shopBefore) {
					t.Errorf("shop's entry after its promote:\n%s\nbefore:\n%s", jsonOf(shop), jsonOf(shopBefore))
				}
				anns := a.routerObject().GetAnnotations()
				for k := range anns {
					if strings.Contains(k, "canaryline.dev/") && !strings.HasPrefix(k, "cart.") {
						t.Errorf("annotation %s=%s after shop's promote: only cart's release is in progress", k, anns[k])
					}
				}
				if anns["cart.canaryline.dev/release"] != "cart-release-1" || anns["cart.canaryline.dev/weight"] != "20" {
					t.Errorf("annotations after shop's promote: %v; want cart's release and weight", anns)
				}
			}
			if r := cart("shift-canary", map[string]string{"WEIGHT": "30"}); r.code != 0 {
				t.Fatalf("cart: shift 30 after shop's promote: exit %d\n%s", r.code, r.stderr)
			}
			if r := cart("promote-or-rollback", map[string]string{"DECISION": "rollback"}); r.code != 0 || r.results["DECISION"] != "rollback" {
				t.Fatalf("cart: rollback: exit %d results %v\n%s", r.code, r.results, r.stderr)
			}
			if after := a.sharedState(); after != before {
				t.Errorf("the shared router object after both releases:\n%s\nbefore them:\n%s", after, before)
			}
		})
	}
}
