package release

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	routev1 "github.com/openshift/api/route/v1"
	routefake "github.com/openshift/client-go/route/clientset/versioned/fake"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient/kubeclienttest"
	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/step"
	"github.com/canaryline/canaryline/internal/runtime/traffic"
)

// shiftObjects are shop in namespace team before any release: its stable Deployment (one replica, rolled out),
// the Service selecting its pods, and the Route sending it all traffic; change edits them first.
func shiftObjects(change func(d *appsv1.Deployment, svc *corev1.Service)) []runtime.Object {
	one := int32(1)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "team", Generation: 1},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shop"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "shop", Image: "quay.io/team/shop:v1"}}}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, ReadyReplicas: 1}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "team"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "shop"}, Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}}
	if change != nil {
		change(d, svc)
	}
	return []runtime.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, d, svc}
}

func shiftRoute() *routefake.Clientset {
	w := int32(100)
	return routefake.NewSimpleClientset(&routev1.Route{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "team"},
		Spec: routev1.RouteSpec{To: routev1.RouteTargetReference{Kind: "Service", Name: "shop", Weight: &w}}})
}

// shiftConfig is shift-canary's first shift of release run-1 of shop to 10%, through the Route, validated.
func shiftConfig(t *testing.T, change func(*ShiftConfig)) *ShiftConfig {
	t.Helper()
	cfg := &ShiftConfig{Target: Target{App: "shop", Namespace: "team", ReleaseID: "run-1", LockTTL: time.Minute},
		Image: canaryImage, Router: traffic.KindRoute, Weight: "10", CanaryReplicas: "1", ReadyTimeout: 5 * time.Second}
	if change != nil {
		change(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the config is not valid: %v", err)
	}
	return cfg
}

// TestShiftPreflightPasses: the fixture the refusals below change is one that preflight accepts.
func TestShiftPreflightPasses(t *testing.T) {
	kube, rc := versioned(shiftObjects(nil)...), shiftRoute()
	s := &shift{cfg: shiftConfig(t, nil), ns: "team", c: Clients{Kube: kubeclienttest.Wrap(kube), Route: kubeclienttest.WrapRoute(rc.RouteV1())}, log: quiet}
	if err := s.preflight(context.Background()); err != nil {
		t.Fatalf("preflight: %v", err)
	}
	if s.names.CanaryDeployment != "shop-canary" || s.names.CanaryService != "shop-canary" || s.container != "shop" || s.stableImage != "quay.io/team/shop:v1" {
		t.Errorf("preflight found names %+v, container %s, stable image %s", s.names, s.container, s.stableImage)
	}
	if n := kubeWrites(kube, rc); n != 0 {
		t.Errorf("preflight made %d writes; want none", n)
	}
}

// TestShiftRefusesBeforeItsFirstChange: a name clash with an object canaryline did not create, or any other bad
// input found while reading, is refused naming the param (exit 2; exit 5 for a release in progress) before the
// first write: the fakes see no create, update, patch or delete, not even of the Lease.
func TestShiftRefusesBeforeItsFirstChange(t *testing.T) {
	canaryDeployment := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop-canary", Namespace: "team"}}
	canaryService := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop-canary", Namespace: "team"}}
	oldRelease := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop-canary", Namespace: "team",
		Labels: map[string]string{naming.TrackLabel: naming.TrackCanary}, Annotations: map[string]string{ReleaseAnnotation: "run-0"}}}
	for _, tc := range []struct {
		name   string
		extra  []runtime.Object
		change func(*appsv1.Deployment, *corev1.Service)
		cfg    func(*ShiftConfig)
		// setup runs on the clientset before the shift (e.g. another release's lock).
		setup func(t *testing.T, c Clients)
		exit  int
		want  []string
	}{
		{name: "a canary Deployment of someone else's", extra: []runtime.Object{canaryDeployment}, exit: step.ExitInvalid,
			want: []string{"CANARY_NAME", "Deployment team/shop-canary exists", "not made by canaryline"}},
		{name: "a canary Service of someone else's", extra: []runtime.Object{canaryService}, exit: step.ExitInvalid,
			want: []string{"CANARY_NAME", "Service team/shop-canary exists"}},
		{name: "a canary of a release that ended", extra: []runtime.Object{oldRelease}, exit: step.ExitInvalid,
			want: []string{"CANARY_NAME", "made by canaryline release run-0, which is not in progress"}},
		{name: "a baseline name clash", extra: []runtime.Object{&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop-baseline", Namespace: "team"}}},
			cfg: func(c *ShiftConfig) { c.Baseline = true }, exit: step.ExitInvalid, want: []string{"BASELINE_NAME", "shop-baseline"}},
		{name: "no stable Deployment", cfg: func(c *ShiftConfig) { c.App = "nope" }, exit: step.ExitInvalid,
			want: []string{"APP", "Deployment team/nope does not exist"}},
		{name: "no stable Service", cfg: func(c *ShiftConfig) { c.StableService = "nope" }, exit: step.ExitInvalid,
			want: []string{"STABLE_SERVICE", "Service team/nope does not exist"}},
		{name: "a Service that does not select the stable pods", change: func(_ *appsv1.Deployment, s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "cart"} },
			exit: step.ExitInvalid, want: []string{"STABLE_SERVICE", "does not select the pods of Deployment shop"}},
		{name: "a stable Deployment scaled to 0", change: func(d *appsv1.Deployment, _ *corev1.Service) { zero := int32(0); d.Spec.Replicas = &zero },
			exit: step.ExitInvalid, want: []string{"APP", "has 0 replicas"}},
		{name: "a stable Deployment rolling out", change: func(d *appsv1.Deployment, _ *corev1.Service) { d.Generation = 2 },
			exit: step.ExitInvalid, want: []string{"APP", "is rolling out"}},
		{name: "no such container", cfg: func(c *ShiftConfig) { c.Container = "web" }, exit: step.ExitInvalid,
			want: []string{"CONTAINER", `has no container "web"`}},
		{name: "a release id that ended", setup: func(t *testing.T, c Clients) {
			lk := newLock(c.Kube.CoordinationV1(), "team", "shop", "run-1", time.Minute, quiet)
			if _, err := lk.acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := lk.finish(context.Background(), Outcome{ID: "run-1", Decision: DecisionRollback}); err != nil {
				t.Fatal(err)
			}
		}, exit: step.ExitInvalid, want: []string{"RELEASE_ID", "release run-1 of team/shop already ended (rollback)"}},
		{name: "another release in progress", setup: func(t *testing.T, c Clients) {
			if _, err := newLock(c.Kube.CoordinationV1(), "team", "shop", "run-0", time.Minute, quiet).acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
		}, exit: step.ExitBusy, want: []string{`held by "run-0"`}},
		{name: "no Route", setup: func(t *testing.T, c Clients) {
			if err := c.Route.Routes("team").Delete(context.Background(), "shop", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, exit: step.ExitInvalid, want: []string{"ROUTER_NAME"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube, rc := versioned(append(shiftObjects(tc.change), tc.extra...)...), shiftRoute()
			c := Clients{Kube: kubeclienttest.Wrap(kube), Route: kubeclienttest.WrapRoute(rc.RouteV1())}
			if tc.setup != nil {
				tc.setup(t, c)
			}
			kube.ClearActions()
			rc.ClearActions()
			_, err := Shift(context.Background(), shiftConfig(t, tc.cfg), "team", c, quiet)
			if err == nil || step.ExitCode(err) != tc.exit {
				t.Fatalf("got %v (exit %d); want exit %d", err, step.ExitCode(err), tc.exit)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			var inv *step.InvalidError
			if tc.exit == step.ExitInvalid && !errors.As(err, &inv) {
				t.Errorf("error %T; want an InvalidError", err)
			}
			if n := kubeWrites(kube, rc); n != 0 {
				t.Errorf("%d writes before the refusal; want none: %v", n, append(kube.Actions(), rc.Actions()...))
			}
		})
	}
}
