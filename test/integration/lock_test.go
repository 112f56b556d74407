package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const otherImage = "registry.example.com/team/shop@sha256:5555555555555555555555555555555555555555555555555555555555555555"

// verifyEnv is a verify-health of release id measuring the pods only, count times a second.
func verifyEnv(id string, count string) map[string]string {
	return map[string]string{"APP": "shop", "RELEASE_ID": id, "INTERVAL": "1s", "COUNT": count}
}

// TestVerifyHealthRenewsTheLock: with LOCK_TTL 10s, a 16 s analysis keeps its release's lock: a second release
// started 12 s in is refused (exit 5, naming the first), and the first release's verdict is about its own canary.
func TestVerifyHealthRenewsTheLock(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	if r := a.shift(10, map[string]string{"LOCK_TTL": "10s"}); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	_, wait := startStep(t, "verify-health", a.kubeconfig, verifyEnv("shop-release-1", "16"))
	time.Sleep(12 * time.Second) // past LOCK_TTL since shift-canary last renewed the lock
	second := runStep(t, "shift-canary", a.kubeconfig, map[string]string{"APP": "shop", "ROUTER": "route", "IMAGE": otherImage,
		"WEIGHT": "10", "RELEASE_ID": "shop-release-2", "READY_TIMEOUT": "30s", "LOCK_TTL": "10s"})
	if second.code != 5 || !strings.Contains(second.stderr, "shop-release-1") {
		t.Errorf("a second release 12 s into the analysis: exit %d; want 5 naming shop-release-1", second.code)
	}
	v := wait()
	if v.code != 0 || v.results["VERDICT"] != "healthy" {
		t.Errorf("the first release's verify-health: exit %d, verdict %q; want 0, healthy", v.code, v.results["VERDICT"])
	}
	canary, err := a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), "shop-canary", metav1.GetOptions{})
	if err != nil || canary.Spec.Template.Spec.Containers[0].Image != canaryImage {
		t.Errorf("the canary is not the first release's any more: %v", err)
	}
	if d := a.decide(map[string]string{"DECISION": "promote"}); d.code != 0 {
		t.Errorf("promote: exit %d", d.code)
	}
}

// takeLock makes the application's Lease held by holder, as another release taking over an expired lock does.
func (a *app) takeLock(holder string) {
	a.t.Helper()
	l := a.lease()
	now := metav1.NewMicroTime(time.Now())
	l.Spec.HolderIdentity, l.Spec.RenewTime = &holder, &now
	if _, err := a.kube.CoordinationV1().Leases(a.ns).Update(context.Background(), l, metav1.UpdateOptions{}); err != nil {
		a.t.Fatal(err)
	}
}

// TestAStepWhoseLockIsTakenStops: when the lock is taken from a release while its verify-health runs, the step
// stops at its next renewal (exit 5, naming the new holder) and hands on no verdict about someone else's canary.
func TestAStepWhoseLockIsTakenStops(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	if r := a.shift(10, map[string]string{"LOCK_TTL": "10s"}); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	_, wait := startStep(t, "verify-health", a.kubeconfig, verifyEnv("shop-release-1", "60"))
	time.Sleep(2 * time.Second)
	a.takeLock("shop-release-2")
	v := wait()
	if v.code != 5 || !strings.Contains(v.stderr, "release shop-release-2") || v.results["VERDICT"] != "" {
		t.Errorf("verify-health after its lock was taken: exit %d, verdict %q; want 5 naming shop-release-2 and no verdict", v.code, v.results["VERDICT"])
	}
	if n := strings.Count(v.stderr, "pods: "); n >= 60 {
		t.Errorf("verify-health took all %d measurements instead of stopping", n)
	}
}

// TestAReleaseIDIsUsedOnce: a RELEASE_ID that names a finished release is refused (exit 2), with nothing changed.
func TestAReleaseIDIsUsedOnce(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	if r := a.shift(10, nil); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	if d := a.decide(map[string]string{"DECISION": "promote"}); d.code != 0 {
		t.Fatalf("promote: exit %d", d.code)
	}
	before := namespaceState(t, a.ns)
	r := a.shift(10, map[string]string{"IMAGE": otherImage})
	if r.code != 2 || !strings.Contains(r.stderr, "param RELEASE_ID") || !strings.Contains(r.stderr, "already ended (promote)") {
		t.Errorf("a second release under a finished release's id: exit %d; want 2 naming RELEASE_ID", r.code)
	}
	if got := namespaceState(t, a.ns); got != before {
		t.Errorf("the namespace changed:\nbefore %s\nafter  %s", before, got)
	}
	// A rerun of the finished release's promote is still harmless, and says how it ended.
	if d := a.decide(map[string]string{"DECISION": "promote"}); d.code != 0 || d.results["DECISION"] != "promote" {
		t.Errorf("promote again: exit %d, %v", d.code, d.results)
	}
}

// expireLock moves the Lease's renewal back past its duration, as a crashed run's lock expires.
func (a *app) expireLock() {
	a.t.Helper()
	l := a.lease()
	past := metav1.NewMicroTime(time.Now().Add(-time.Hour))
	l.Spec.RenewTime = &past
	if _, err := a.kube.CoordinationV1().Leases(a.ns).Update(context.Background(), l, metav1.UpdateOptions{}); err != nil {
		a.t.Fatal(err)
	}
}

// TestTakeoverRecordsTheRouterAsTheRollbackLeftIt: a release abandoned at weight 28 (its lock expired) is rolled back
// by the next release, which then records the Route as that rollback left it. When the new release ends, the Route
// is as it was before both: no alternate backend naming a deleted Service, cookies as they were.
func TestTakeoverRecordsTheRouterAsTheRollbackLeftIt(t *testing.T) {
	t.Parallel()
	for _, end := range []string{"rollback", "promote"} {
		t.Run(end, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, "route", 2)
			before := a.routerState()
			if r := a.shift(28, nil); r.code != 0 {
				t.Fatalf("shift: exit %d", r.code)
			}
			a.expireLock()
			next := map[string]string{"RELEASE_ID": "shop-release-2", "IMAGE": otherImage}
			if r := a.shift(10, next); r.code != 0 || !strings.Contains(r.stderr, "abandoned") {
				t.Fatalf("the next release: exit %d; want 0 after rolling the abandoned one back", r.code)
			}
			if d := a.decide(map[string]string{"RELEASE_ID": "shop-release-2", "DECISION": end}); d.code != 0 {
				t.Fatalf("%s: exit %d", end, d.code)
			}
			if got := a.routerState(); got != before {
				t.Errorf("the Route after the takeover and %s:\n%s\nwant as before both releases:\n%s", end, got, before)
			}
		})
	}
}

// TestStablePreconditions: a stable Deployment scaled to 0 is refused (nothing to compare with, every request
// would go to the canary), and one whose pods are not Ready is refused saying so, not that it is rolling out.
func TestStablePreconditions(t *testing.T) {
	t.Parallel()
	t.Run("scaled to 0", func(t *testing.T) {
		t.Parallel()
		a := newApp(t, "route", 2)
		ctx := context.Background()
		d, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
		zero := int32(0)
		d.Spec.Replicas = &zero
		if _, err := a.kube.AppsV1().Deployments(a.ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, time.Minute, "the scale-down", func() bool {
			d, err := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
			return err == nil && d.Status.ObservedGeneration == d.Generation && d.Status.Replicas == 0
		})
		before := namespaceState(t, a.ns)
		r := a.shift(10, nil)
		if r.code != 2 || !strings.Contains(r.stderr, "param APP") || !strings.Contains(r.stderr, "0 replicas") {
			t.Errorf("exit %d; want 2 saying the stable Deployment has 0 replicas", r.code)
		}
		if got := namespaceState(t, a.ns); got != before {
			t.Errorf("the namespace changed:\nbefore %s\nafter  %s", before, got)
		}
	})
	t.Run("pods not Ready", func(t *testing.T) {
		t.Parallel()
		a := newApp(t, "route", 1)
		ctx := context.Background()
		// cart: a settled Deployment (no rollout in progress) whose pods cannot be scheduled.
		d := deployment("cart", 2)
		d.Spec.Template.Spec.NodeSelector = map[string]string{"canaryline.dev/no-such-node": "true"}
		if _, err := a.kube.AppsV1().Deployments(a.ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "cart"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "cart"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080)}}}}
		if _, err := a.kube.CoreV1().Services(a.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		rt := newRoute("cart", 100)
		rt.Spec.To.Name = "cart"
		if _, err := a.routes.RouteV1().Routes(a.ns).Create(ctx, rt, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, time.Minute, "cart's pods", func() bool {
			d, err := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "cart", metav1.GetOptions{})
			return err == nil && settledUnavailable(d)
		})
		before := namespaceState(t, a.ns)
		r := runStep(t, "shift-canary", a.kubeconfig, map[string]string{"APP": "cart", "ROUTER": "route", "IMAGE": canaryImage,
			"WEIGHT": "10", "RELEASE_ID": "cart-release-1"})
		if r.code != 2 || strings.Contains(r.stderr, "rolling out") || !strings.Contains(r.stderr, "0 of 2 replicas are available") ||
			!strings.Contains(r.stderr, "Unschedulable") {
			t.Errorf("exit %d; want 2 saying 0 of 2 replicas are available and why (Unschedulable), not that it is rolling out", r.code)
		}
		if got := namespaceState(t, a.ns); got != before {
			t.Errorf("the namespace changed:\nbefore %s\nafter  %s", before, got)
		}
	})
}

func settledUnavailable(d *appsv1.Deployment) bool {
	return d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == 2 && d.Status.Replicas == 2 && d.Status.AvailableReplicas == 0
}

// TestStatusOfAnApplicationThatDoesNotExist: canaryline status exits 2 naming APP, as the steps do.
func TestStatusOfAnApplicationThatDoesNotExist(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 1)
	_, stderr, code := cli(t, buildCLI(t), "status", "nope", "--kubeconfig", cluster.Kubeconfig, "--namespace", a.ns)
	if code != 2 || !strings.Contains(stderr, "param APP") || !strings.Contains(stderr, "nope does not exist") {
		t.Errorf("canaryline status nope: exit %d\n%s\nwant 2 naming APP", code, stderr)
	}
	out, _, code := cli(t, buildCLI(t), "status", "shop", "--kubeconfig", cluster.Kubeconfig, "--namespace", a.ns)
	if code != 0 || !strings.Contains(out, "lock          free") {
		t.Errorf("canaryline status shop: exit %d\n%s", code, out)
	}
}
