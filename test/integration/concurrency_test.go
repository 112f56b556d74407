package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestConcurrentReleasesOfOneApplication starts two releases of the same application at the same moment, several
// times over: each time exactly one proceeds, and the other fails fast (exit 5) naming the holder and changes
// nothing. The winner's release then ends cleanly. (A crashed run's lock expiring and being taken over is
// TestReleaseLock.)
func TestConcurrentReleasesOfOneApplication(t *testing.T) {
	t.Parallel()
	for round := range 4 {
		t.Run(fmt.Sprintf("round-%d", round), func(t *testing.T) {
			t.Parallel()
			a := newApp(t, "route", 2)
			ids := []string{"shop-release-a", "shop-release-b"}
			runs := make([]stepRun, 2)
			waits := make([]func() stepRun, 2)
			for i, id := range ids { // both started at once, before either is waited for
				_, waits[i] = startStep(t, "shift-canary", a.kubeconfig, map[string]string{"APP": "shop", "ROUTER": "route",
					"IMAGE": canaryImage, "WEIGHT": "10", "RELEASE_ID": id, "READY_TIMEOUT": "60s"})
			}
			var wg sync.WaitGroup
			for i := range waits {
				wg.Add(1)
				go func() { defer wg.Done(); runs[i] = waits[i]() }()
			}
			wg.Wait()
			winner := -1
			for i, r := range runs {
				switch r.code {
				case 0:
					if winner >= 0 {
						t.Fatalf("both releases proceeded")
					}
					winner = i
				case 5:
					other := ids[1-i]
					if !strings.Contains(r.stderr, fmt.Sprintf("held by %q", other)) {
						t.Errorf("the refused release does not name the holder %s:\n%s", other, r.stderr)
					}
				default:
					t.Errorf("release %s: exit %d; want 0 for one and 5 for the other", ids[i], r.code)
				}
			}
			if winner < 0 {
				t.Fatal("neither release proceeded")
			}
			d, err := a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), "shop-canary", metav1.GetOptions{})
			if err != nil || d.Annotations["canaryline.dev/release"] != ids[winner] {
				t.Errorf("canary Deployment %v (%v); want it the winner's, %s", d.Annotations, err, ids[winner])
			}
			if got := a.canaryWeightStored(); got == "" {
				t.Error("the winner moved no traffic")
			}
			if r := a.decide(map[string]string{"RELEASE_ID": ids[winner], "DECISION": "promote"}); r.code != 0 {
				t.Errorf("promote: exit %d", r.code)
			}
		})
	}
}

// TestReleasesOfTwoApplicationsInOneNamespace: shop and cart share a namespace; shop is promoted while cart, at the
// same time, is rolled back. Each ends in its own right state, each has its own lock, and neither touches the
// other's Deployment, Service, Route or Lease.
func TestReleasesOfTwoApplicationsInOneNamespace(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	ctx := context.Background()
	cart := a.addApp("cart") // a second application next to shop
	shopBefore := a.routerState()
	cartRoute := func() string {
		r, err := a.routes.RouteV1().Routes(a.ns).Get(ctx, "cart", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal([]any{r.Spec, r.Annotations})
		return string(data)
	}
	cartBefore := cartRoute()
	cartImage := strings.Replace(canaryImage, "shop", "cart", 1)

	release := func(app, image, id string, promote bool) error {
		for _, w := range []string{"20", "50"} {
			r := runStep(t, "shift-canary", a.kubeconfig, map[string]string{"APP": app, "ROUTER": "route", "IMAGE": image,
				"WEIGHT": w, "RELEASE_ID": id, "READY_TIMEOUT": "60s", "BASELINE": "true"})
			if r.code != 0 {
				return fmt.Errorf("%s: shift %s: exit %d", app, w, r.code)
			}
		}
		status := "Failed"
		if promote {
			status = "Succeeded"
		}
		if r := runStep(t, "promote-or-rollback", a.kubeconfig, map[string]string{"APP": app, "RELEASE_ID": id, "DECISION": "auto",
			"PIPELINE_STATUS": status}); r.code != 0 {
			return fmt.Errorf("%s: promote-or-rollback: exit %d", app, r.code)
		}
		return nil
	}
	errs := make(chan error, 2)
	go func() { errs <- release("shop", canaryImage, "shop-release-1", true) }()
	go func() { errs <- release("cart", cartImage, "cart-release-1", false) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}
	shop, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
	cartAfter, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "cart", metav1.GetOptions{})
	if shop.Spec.Template.Spec.Containers[0].Image != canaryImage {
		t.Errorf("shop was not promoted: %s", shop.Spec.Template.Spec.Containers[0].Image)
	}
	if cartAfter.Generation != 1 || cartAfter.Spec.Template.Spec.Containers[0].Image != cart.Spec.Template.Spec.Containers[0].Image {
		t.Errorf("cart was rolled back, yet its Deployment changed: generation %d, image %s", cartAfter.Generation,
			cartAfter.Spec.Template.Spec.Containers[0].Image)
	}
	for _, n := range []string{"shop-canary", "shop-baseline", "cart-canary", "cart-baseline"} {
		if a.exists("deployment", n) || a.exists("service", n) {
			t.Errorf("%s is still there", n)
		}
	}
	if a.routerState() != shopBefore || cartRoute() != cartBefore {
		t.Errorf("a Route was not restored: shop %v, cart %v", a.routerState() == shopBefore, cartRoute() == cartBefore)
	}
	for app, want := range map[string]string{"shop": `"id":"shop-release-1","decision":"promote"`, "cart": `"id":"cart-release-1","decision":"rollback"`} {
		l, err := a.kube.CoordinationV1().Leases(a.ns).Get(ctx, "canaryline-"+app, metav1.GetOptions{})
		if err != nil || !strings.Contains(l.Annotations["canaryline.dev/last-release"], want) {
			t.Errorf("Lease canaryline-%s: %v (%v); want %s", app, l.Annotations, err, want)
		}
	}
	for _, s := range []string{"shop", "cart"} {
		got, _ := a.kube.CoreV1().Services(a.ns).Get(ctx, s, metav1.GetOptions{})
		if fmt.Sprint(got.Spec.Selector) != fmt.Sprintf("map[app:%s]", s) {
			t.Errorf("Service %s selector %v after the releases", s, got.Spec.Selector)
		}
	}
}

// addApp adds a second application, name, next to the app's: its Deployment (2 replicas), Service and Route.
func (a *app) addApp(name string) *appsv1.Deployment {
	t := a.t
	t.Helper()
	ctx := context.Background()
	d := deployment(name, 2)
	d.Spec.Template.Spec.Containers[0].Image = strings.Replace(stableImage, "shop", name, 1)
	d, err := a.kube.AppsV1().Deployments(a.ns).Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
		Ports: []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080)}}}}
	if _, err := a.kube.CoreV1().Services(a.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rt := newRoute(name, 100)
	rt.Spec.To.Name = name
	if _, err := a.routes.RouteV1().Routes(a.ns).Create(ctx, rt, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	untilDeploymentAvailable(ctx, t, a.kube, a.ns, name)
	return d
}
