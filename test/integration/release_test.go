package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	routeclient "github.com/openshift/client-go/route/clientset/versioned"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryline/canaryline/internal/dev/devclustertest"
)

const (
	stableImage = "registry.example.com/team/shop@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	canaryImage = "registry.example.com/team/shop@sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

var (
	httpRouteGVR = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}
	vsGVR        = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
)

// app is an application running as stable: Deployment and Service "shop", and the router object of kind.
type app struct {
	t          *testing.T
	ns, kind   string
	kube       kubernetes.Interface
	dyn        dynamic.Interface
	routes     routeclient.Interface
	kubeconfig string
}

func newApp(t *testing.T, kind string, stableReplicas int32) *app {
	t.Helper()
	devclustertest.Require(t, cluster)
	a := &app{t: t, ns: devclustertest.Namespace(t, cluster), kind: kind, kube: kubernetes.NewForConfigOrDie(cluster.Config()),
		dyn: dynamic.NewForConfigOrDie(cluster.Config()), routes: routeclient.NewForConfigOrDie(cluster.Config())}
	ctx := context.Background()
	d := deployment("shop", stableReplicas)
	d.Spec.Template.Spec.Containers[0].Image = stableImage
	if _, err := a.kube.AppsV1().Deployments(a.ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "shop"},
		Ports: []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080)}}}}
	if _, err := a.kube.CoreV1().Services(a.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	switch kind {
	case "route":
		if _, err := a.routes.RouteV1().Routes(a.ns).Create(ctx, newRoute("shop", 100), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// newRoute points at "stable"; this application's Service is "shop".
		r, _ := a.routes.RouteV1().Routes(a.ns).Get(ctx, "shop", metav1.GetOptions{})
		r.Spec.To.Name = "shop"
		if _, err := a.routes.RouteV1().Routes(a.ns).Update(ctx, r, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	case "httproute":
		a.createUnstructured(httpRouteGVR, map[string]any{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
			"metadata": map[string]any{"name": "shop"},
			"spec": map[string]any{"parentRefs": []any{map[string]any{"name": "gw"}},
				"rules": []any{map[string]any{"backendRefs": []any{map[string]any{"name": "shop", "port": int64(8080)}}}}}})
	case "istio":
		a.createUnstructured(vsGVR, map[string]any{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
			"metadata": map[string]any{"name": "shop"},
			"spec": map[string]any{"hosts": []any{"shop"},
				"http": []any{map[string]any{"route": []any{map[string]any{"destination": map[string]any{"host": "shop", "port": map[string]any{"number": int64(8080)}}}}}}}})
	case "nginx":
		prefix := networkingv1.PathTypePrefix
		ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "shop"}, Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: "shop.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: "shop", Port: networkingv1.ServiceBackendPort{Number: 8080}}}}}}}}}}}
		if _, err := a.kube.NetworkingV1().Ingresses(a.ns).Create(ctx, ing, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	untilDeploymentAvailable(ctx, t, a.kube, a.ns, "shop")
	a.kubeconfig = stepsKubeconfig(t, a.ns, installedRole(t, kind))
	return a
}

func (a *app) createUnstructured(gvr schema.GroupVersionResource, obj map[string]any) {
	a.t.Helper()
	if _, err := a.dyn.Resource(gvr).Namespace(a.ns).Create(context.Background(), &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil {
		a.t.Fatal(err)
	}
}

// routerState is the router object's spec and annotations (or, for nginx, the canary Ingress), for comparing.
func (a *app) routerState() string {
	a.t.Helper()
	ctx := context.Background()
	var v any
	switch a.kind {
	case "route":
		r, err := a.routes.RouteV1().Routes(a.ns).Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			a.t.Fatal(err)
		}
		v = []any{r.Spec, r.Annotations}
	case "httproute", "istio":
		gvr := httpRouteGVR
		if a.kind == "istio" {
			gvr = vsGVR
		}
		u, err := a.dyn.Resource(gvr).Namespace(a.ns).Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			a.t.Fatal(err)
		}
		v = []any{u.Object["spec"], u.GetAnnotations()}
	case "nginx":
		_, err := a.kube.NetworkingV1().Ingresses(a.ns).Get(ctx, "shop-canary", metav1.GetOptions{})
		v = apierrors.IsNotFound(err)
	}
	data, _ := json.Marshal(v)
	return string(data)
}

// canaryWeightStored reads the canary's weight from the router object as the router kind expresses it.
func (a *app) canaryWeightStored() string {
	a.t.Helper()
	ctx := context.Background()
	switch a.kind {
	case "route":
		r, _ := a.routes.RouteV1().Routes(a.ns).Get(ctx, "shop", metav1.GetOptions{})
		for _, alt := range r.Spec.AlternateBackends {
			if alt.Name == "shop-canary" {
				return fmt.Sprintf("%d/%d", *alt.Weight, *r.Spec.To.Weight)
			}
		}
	case "httproute":
		u, _ := a.dyn.Resource(httpRouteGVR).Namespace(a.ns).Get(ctx, "shop", metav1.GetOptions{})
		refs, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
		for _, ref := range refs[0].(map[string]any)["backendRefs"].([]any) {
			if m := ref.(map[string]any); m["name"] == "shop-canary" {
				return fmt.Sprint(m["weight"])
			}
		}
	case "istio":
		u, _ := a.dyn.Resource(vsGVR).Namespace(a.ns).Get(ctx, "shop", metav1.GetOptions{})
		http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
		for _, r := range http[0].(map[string]any)["route"].([]any) {
			if m := r.(map[string]any); m["destination"].(map[string]any)["host"] == "shop-canary" {
				return fmt.Sprint(m["weight"])
			}
		}
	case "nginx":
		ing, err := a.kube.NetworkingV1().Ingresses(a.ns).Get(ctx, "shop-canary", metav1.GetOptions{})
		if err == nil {
			return ing.Annotations["nginx.ingress.kubernetes.io/canary-weight"]
		}
	case "replicas":
		d, err := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop-canary", metav1.GetOptions{})
		if err == nil {
			return fmt.Sprint(*d.Spec.Replicas)
		}
	}
	return ""
}

func (a *app) shift(weight int, extra map[string]string) stepRun {
	a.t.Helper()
	env := map[string]string{"APP": "shop", "ROUTER": a.kind, "IMAGE": canaryImage, "WEIGHT": strconv.Itoa(weight),
		"RELEASE_ID": "shop-release-1", "READY_TIMEOUT": "30s"}
	for k, v := range extra {
		env[k] = v
	}
	return runStep(a.t, "shift-canary", a.kubeconfig, env)
}

func (a *app) decide(env map[string]string) stepRun {
	a.t.Helper()
	e := map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1"}
	for k, v := range env {
		e[k] = v
	}
	return runStep(a.t, "promote-or-rollback", a.kubeconfig, e)
}

func (a *app) lease() *coordinationv1.Lease {
	a.t.Helper()
	l, err := a.kube.CoordinationV1().Leases(a.ns).Get(context.Background(), "canaryline-shop", metav1.GetOptions{})
	if err != nil {
		a.t.Fatal(err)
	}
	return l
}

func (a *app) exists(kind, name string) bool {
	a.t.Helper()
	var err error
	switch kind {
	case "deployment":
		_, err = a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), name, metav1.GetOptions{})
	case "service":
		_, err = a.kube.CoreV1().Services(a.ns).Get(context.Background(), name, metav1.GetOptions{})
	}
	return err == nil
}

func (a *app) events(reason string) int {
	evs, _ := a.kube.CoreV1().Events(a.ns).List(context.Background(), metav1.ListOptions{})
	n := 0
	for _, e := range evs.Items {
		if e.Reason == reason && e.InvolvedObject.Name == "shop" {
			n++
		}
	}
	return n
}

var routerKinds = []string{"route", "httproute", "istio", "nginx", "replicas"}

func TestShiftThenPromote(t *testing.T) {
	t.Parallel()
	for _, kind := range routerKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, kind, 3)
			ctx := context.Background()
			before := a.routerState()
			stableSvc, _ := a.kube.CoreV1().Services(a.ns).Get(ctx, "shop", metav1.GetOptions{})

			for _, w := range []int{10, 50} {
				r := a.shift(w, nil)
				if r.code != 0 || r.results["CANARY_WEIGHT"] != strconv.Itoa(w) || r.results["RELEASE_ID"] != "shop-release-1" {
					t.Fatalf("shift %d: exit %d results %v", w, r.code, r.results)
				}
				if got := a.canaryWeightStored(); got == "" || got == "0" {
					t.Errorf("shift %d: the router stores canary weight %q", w, got)
				}
			}
			d, err := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop-canary", metav1.GetOptions{})
			if err != nil || d.Spec.Template.Spec.Containers[0].Image != canaryImage || d.Labels["canaryline.dev/track"] != "canary" {
				t.Fatalf("canary Deployment %v (%v)", d, err)
			}
			canaryPods := a.podUIDs("shop-canary")
			if kind != "replicas" {
				svc, _ := a.kube.CoreV1().Services(a.ns).Get(ctx, "shop", metav1.GetOptions{})
				if svc.Spec.Selector["pod-template-hash"] == "" {
					t.Errorf("stable Service selector %v: want it pinned to the stable ReplicaSet", svc.Spec.Selector)
				}
			}
			if l := a.lease(); *l.Spec.HolderIdentity != "shop-release-1" {
				t.Errorf("Lease holder %q", *l.Spec.HolderIdentity)
			}

			r := a.decide(map[string]string{"DECISION": "auto", "PIPELINE_STATUS": "Succeeded", "VERDICT": "healthy"})
			if r.code != 0 || r.results["DECISION"] != "promote" || r.results["STABLE_IMAGE"] != canaryImage || r.results["CANARY_WEIGHT"] != "0" {
				t.Fatalf("promote: exit %d results %v", r.code, r.results)
			}
			st, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
			if st.Spec.Template.Spec.Containers[0].Image != canaryImage || st.Status.UpdatedReplicas != 3 || st.Status.AvailableReplicas != 3 {
				t.Errorf("stable Deployment after promote: image %s, %d updated %d available", st.Spec.Template.Spec.Containers[0].Image,
					st.Status.UpdatedReplicas, st.Status.AvailableReplicas)
			}
			if a.exists("deployment", "shop-canary") || a.exists("service", "shop-canary") {
				t.Error("the canary Deployment or Service is still there after promote")
			}
			// The canary's pods were not created twice: the stable Deployment runs them now.
			if kept := a.podUIDs("shop"); len(canaryPods) == 0 || !subset(canaryPods, kept) {
				t.Errorf("the canary's pods %v are not all among the stable Deployment's after promote %v", canaryPods, kept)
			}
			if st.Spec.Paused || st.Annotations["canaryline.dev/paused-by"] != "" {
				t.Errorf("stable Deployment after promote: paused %v, annotations %v", st.Spec.Paused, st.Annotations)
			}
			if after := a.routerState(); after != before {
				t.Errorf("router after promote:\n%s\nbefore the release:\n%s", after, before)
			}
			svc, _ := a.kube.CoreV1().Services(a.ns).Get(ctx, "shop", metav1.GetOptions{})
			if fmt.Sprint(svc.Spec.Selector) != fmt.Sprint(stableSvc.Spec.Selector) || svc.Annotations["canaryline.dev/release"] != "" {
				t.Errorf("stable Service after promote: selector %v annotations %v", svc.Spec.Selector, svc.Annotations)
			}
			l := a.lease()
			if *l.Spec.HolderIdentity != "" || l.Annotations["canaryline.dev/release-state"] != "" ||
				!strings.Contains(l.Annotations["canaryline.dev/last-release"], `"decision":"promote"`) {
				t.Errorf("Lease after promote: holder %q annotations %v", *l.Spec.HolderIdentity, l.Annotations)
			}
			if a.events("CanaryPromoted") != 1 || a.events("CanaryWeight") != 2 {
				t.Errorf("events: %d CanaryPromoted, %d CanaryWeight", a.events("CanaryPromoted"), a.events("CanaryWeight"))
			}
			// Running it again is harmless.
			again := a.decide(map[string]string{"DECISION": "auto", "PIPELINE_STATUS": "Succeeded"})
			if again.code != 0 || again.results["DECISION"] != "promote" || a.events("CanaryPromoted") != 1 {
				t.Errorf("second promote-or-rollback: exit %d results %v", again.code, again.results)
			}
		})
	}
}

func TestShiftThenRollback(t *testing.T) {
	t.Parallel()
	for _, kind := range routerKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, kind, 2)
			ctx := context.Background()
			before := a.routerState()
			stable, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
			extra := map[string]string{"BASELINE": "true"}
			if kind == "nginx" {
				extra = nil // NGINX has one canary per host: no baseline
			}
			if r := a.shift(20, extra); r.code != 0 {
				t.Fatalf("shift: exit %d", r.code)
			}
			if extra != nil && (!a.exists("deployment", "shop-baseline") || !a.exists("service", "shop-baseline")) {
				t.Error("no baseline Deployment and Service")
			}
			r := a.decide(map[string]string{"DECISION": "auto", "PIPELINE_STATUS": "Failed", "REASON": "error rate 12% > 1%"})
			if r.code != 0 || r.results["DECISION"] != "rollback" || r.results["STABLE_IMAGE"] != stableImage {
				t.Fatalf("rollback: exit %d results %v", r.code, r.results)
			}
			after, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
			if after.Generation != stable.Generation || after.Spec.Template.Spec.Containers[0].Image != stableImage ||
				fmt.Sprint(after.Annotations) != fmt.Sprint(stable.Annotations) {
				t.Errorf("the stable Deployment was touched by the rollback (generation %d -> %d)", stable.Generation, after.Generation)
			}
			for _, n := range []string{"shop-canary", "shop-baseline"} {
				if a.exists("deployment", n) || a.exists("service", n) {
					t.Errorf("%s is still there after rollback", n)
				}
			}
			if got := a.routerState(); got != before {
				t.Errorf("router after rollback:\n%s\nbefore:\n%s", got, before)
			}
			if !strings.Contains(a.lease().Annotations["canaryline.dev/last-release"], "error rate 12%") || a.events("CanaryRolledBack") != 1 {
				t.Errorf("the rollback's reason or Event was not recorded: %v", a.lease().Annotations)
			}
		})
	}
}

// TestShiftCanaryNeverReady: a canary that cannot become Ready (a ResourceQuota leaves no room for its pods) moves
// no traffic and fails with a clear timeout that says why.
func TestShiftCanaryNeverReady(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	ctx := context.Background()
	before := a.routerState()
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "pods"}, Spec: corev1.ResourceQuotaSpec{
		Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("2")}}}
	if _, err := a.kube.CoreV1().ResourceQuotas(a.ns).Create(ctx, quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := a.shift(10, map[string]string{"READY_TIMEOUT": "3s"})
	if r.code != 1 || !strings.Contains(r.stderr, "no traffic was moved") || !strings.Contains(r.stderr, "exceeded quota") {
		t.Errorf("exit %d; want 1 saying no traffic moved and why (exceeded quota)", r.code)
	}
	if got := a.routerState(); got != before {
		t.Errorf("the Route changed although the canary never became Ready:\n%s", got)
	}
	// The release can still be undone cleanly.
	if d := a.decide(map[string]string{"DECISION": "rollback"}); d.code != 0 || a.exists("deployment", "shop-canary") {
		t.Errorf("rollback after the timeout: exit %d", d.code)
	}
}

// TestRouteEffectiveShare: the OpenShift router splits a Service's weight across its endpoints, so the canary's
// real share is read back and reported, with a warning when it is not what was asked.
func TestRouteEffectiveShare(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                  string
		stable                int32
		canaryReplicas        string
		weight                int
		wantStored, wantShare string
		wantWarning           bool
	}{
		{"close to asked", 3, "3", 10, "28/256", "9.86", false},
		{"tiny weight, many canary pods", 1, "10", 1, "3/256", "3.76", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, "route", tc.stable)
			r := a.shift(tc.weight, map[string]string{"CANARY_REPLICAS": tc.canaryReplicas})
			if r.code != 0 {
				t.Fatalf("exit %d", r.code)
			}
			if got := a.canaryWeightStored(); got != tc.wantStored {
				t.Errorf("Route weights canary/stable %s; want %s", got, tc.wantStored)
			}
			if r.results["CANARY_SHARE"] != tc.wantShare {
				t.Errorf("CANARY_SHARE %s; want %s", r.results["CANARY_SHARE"], tc.wantShare)
				pods, _ := a.kube.CoreV1().Pods(a.ns).List(context.Background(), metav1.ListOptions{})
				for _, p := range pods.Items {
					t.Logf("pod %s phase %s labels %v deleting %v node %s ip %s", p.Name, p.Status.Phase, p.Labels, p.DeletionTimestamp, p.Spec.NodeName, p.Status.PodIP)
				}
				slices, _ := a.kube.DiscoveryV1().EndpointSlices(a.ns).List(context.Background(), metav1.ListOptions{})
				for _, sl := range slices.Items {
					for _, ep := range sl.Endpoints {
						t.Logf("slice %s (%s) endpoint %v ready %v target %v", sl.Name, sl.Labels["kubernetes.io/service-name"], ep.Addresses, *ep.Conditions.Ready, ep.TargetRef.Name)
					}
				}
			}
			if warned := strings.Contains(r.stderr, "WARN the canary gets"); warned != tc.wantWarning {
				t.Errorf("warning %v; want %v", warned, tc.wantWarning)
			}
			rt, _ := a.routes.RouteV1().Routes(a.ns).Get(context.Background(), "shop", metav1.GetOptions{})
			if rt.Annotations["haproxy.router.openshift.io/disable_cookies"] != "true" {
				t.Errorf("sticky cookies are still on during the release: %v", rt.Annotations)
			}
		})
	}
}

func TestReleaseLock(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	ctx := context.Background()
	if r := a.shift(10, map[string]string{"LOCK_TTL": "10s"}); r.code != 0 {
		t.Fatalf("first release: exit %d", r.code)
	}
	// A second release fails fast, naming the holder, and changes nothing.
	state := a.routerState()
	r := a.shift(10, map[string]string{"RELEASE_ID": "shop-release-2", "LOCK_TTL": "10s"})
	if r.code != 5 || !strings.Contains(r.stderr, `held by "shop-release-1"`) {
		t.Errorf("second release: exit %d; want 5 naming the holder", r.code)
	}
	if a.routerState() != state {
		t.Error("the second release changed the Route")
	}
	// The first release's run crashes: nothing renews its lock. Once it expires, the next release takes over and
	// first rolls the abandoned one back.
	time.Sleep(11 * time.Second)
	r = a.shift(10, map[string]string{"RELEASE_ID": "shop-release-2", "LOCK_TTL": "10s", "IMAGE": strings.Replace(canaryImage, "2222", "3333", 1)})
	if r.code != 0 || !strings.Contains(r.stderr, "release shop-release-1 was abandoned") {
		t.Fatalf("takeover: exit %d", r.code)
	}
	l := a.lease()
	if *l.Spec.HolderIdentity != "shop-release-2" || !strings.Contains(l.Annotations["canaryline.dev/last-release"], `"id":"shop-release-1","decision":"rollback"`) {
		t.Errorf("Lease after takeover: holder %q, %v", *l.Spec.HolderIdentity, l.Annotations)
	}
	d, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop-canary", metav1.GetOptions{})
	if d.Annotations["canaryline.dev/release"] != "shop-release-2" {
		t.Errorf("canary Deployment belongs to %q; want shop-release-2", d.Annotations["canaryline.dev/release"])
	}
}

// TestShiftRerunAfterKill: shift-canary killed mid-way (here while it waits for the canary) converges when run
// again to the same end state as an uninterrupted run.
func TestShiftRerunAfterKill(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	ctx := context.Background()
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "pods"}, Spec: corev1.ResourceQuotaSpec{
		Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("2")}}}
	if _, err := a.kube.CoreV1().ResourceQuotas(a.ns).Create(ctx, quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cmd, wait := startStep(t, "shift-canary", a.kubeconfig, map[string]string{"APP": "shop", "ROUTER": "route", "IMAGE": canaryImage,
		"WEIGHT": "25", "RELEASE_ID": "shop-release-1", "READY_TIMEOUT": "1m"})
	waitUntil(t, 20*time.Second, "the canary Deployment", func() bool { return a.exists("deployment", "shop-canary") })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if r := wait(); r.code != -int(syscall.SIGKILL) {
		t.Fatalf("exit %d; want killed", r.code)
	}
	if err := a.kube.CoreV1().ResourceQuotas(a.ns).Delete(ctx, "pods", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r := a.shift(25, nil)
	if r.code != 0 || r.results["CANARY_WEIGHT"] != "25" || a.canaryWeightStored() != "85/256" {
		t.Fatalf("rerun: exit %d results %v weights %s", r.code, r.results, a.canaryWeightStored())
	}
	svc, _ := a.kube.CoreV1().Services(a.ns).Get(ctx, "shop-canary", metav1.GetOptions{})
	stableSvc, _ := a.kube.CoreV1().Services(a.ns).Get(ctx, "shop", metav1.GetOptions{})
	if hash := svc.Spec.Selector["pod-template-hash"]; hash == "" || hash == stableSvc.Spec.Selector["pod-template-hash"] || svc.Spec.Selector["app"] != "shop" {
		t.Errorf("canary Service selector %v (stable's %v): want the canary's pod-template-hash", svc.Spec.Selector, stableSvc.Spec.Selector)
	}
	if d := a.decide(map[string]string{"DECISION": "promote"}); d.code != 0 {
		t.Errorf("promote after the rerun: exit %d", d.code)
	}
}

// TestPromoteRerunAfterKill: promote-or-rollback killed while the canary is scaled to the stable's size for the
// hand-over (held back by a quota) continues the promotion when run again, even with another decision asked.
func TestPromoteRerunAfterKill(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	ctx := context.Background()
	before := a.routerState()
	if r := a.shift(30, nil); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	// 2 stable pods and 1 canary pod: no room for the canary's second pod.
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "pods"}, Spec: corev1.ResourceQuotaSpec{
		Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("3")}}}
	if _, err := a.kube.CoreV1().ResourceQuotas(a.ns).Create(ctx, quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cmd, wait := startStep(t, "promote-or-rollback", a.kubeconfig, map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1", "DECISION": "promote"})
	waitUntil(t, 20*time.Second, "the canary Deployment to be scaled to the stable's 2 replicas", func() bool {
		d, err := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop-canary", metav1.GetOptions{})
		return err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas == 2
	})
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if r := wait(); r.code != -int(syscall.SIGKILL) {
		t.Fatalf("exit %d; want killed", r.code)
	}
	if err := a.kube.CoreV1().ResourceQuotas(a.ns).Delete(ctx, "pods", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// A finally task asking for a rollback now cannot undo a half-done promotion: it finishes it.
	r := a.decide(map[string]string{"DECISION": "auto", "PIPELINE_STATUS": "Failed"})
	if r.code != 0 || r.results["DECISION"] != "promote" || !strings.Contains(r.stderr, "the promotion is finished instead") {
		t.Fatalf("rerun: exit %d results %v", r.code, r.results)
	}
	st, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
	if st.Status.UpdatedReplicas != 2 || st.Status.AvailableReplicas != 2 || a.exists("deployment", "shop-canary") || a.routerState() != before {
		t.Errorf("after the rerun: stable %d updated %d available, canary exists %v, router restored %v",
			st.Status.UpdatedReplicas, st.Status.AvailableReplicas, a.exists("deployment", "shop-canary"), a.routerState() == before)
	}
}
