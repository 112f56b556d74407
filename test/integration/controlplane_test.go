package integration

import (
	"context"
	"testing"
	"time"

	routev1 "github.com/openshift/api/route/v1"
	routeclient "github.com/openshift/client-go/route/clientset/versioned"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/canaryline/canaryline/internal/dev/devclustertest"
)

func kube(t *testing.T) kubernetes.Interface {
	t.Helper()
	devclustertest.Require(t, cluster)
	return kubernetes.NewForConfigOrDie(cluster.Config())
}

func deployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app",
					Image: "registry.example.com/team/" + name + "@sha256:" + zeros,
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
			},
		},
	}
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

// untilDeploymentAvailable waits, with list+watch, until the Deployment's replicas are all updated and available.
func untilDeploymentAvailable(ctx context.Context, t *testing.T, k kubernetes.Interface, ns, name string) *appsv1.Deployment {
	t.Helper()
	lw := &cache.ListWatch{
		ListFunc: func(o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			return k.AppsV1().Deployments(ns).List(ctx, o)
		},
		WatchFunc: func(o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			return k.AppsV1().Deployments(ns).Watch(ctx, o)
		},
	}
	ev, err := watchtools.UntilWithSync(ctx, lw, &appsv1.Deployment{}, nil, func(e watch.Event) (bool, error) {
		d, ok := e.Object.(*appsv1.Deployment)
		return ok && d.Status.ObservedGeneration >= d.Generation && d.Spec.Replicas != nil &&
			d.Status.UpdatedReplicas == *d.Spec.Replicas && d.Status.AvailableReplicas == *d.Spec.Replicas &&
			d.Status.Replicas == *d.Spec.Replicas, nil
	})
	if err != nil {
		t.Fatalf("wait for Deployment %s/%s to be available: %v", ns, name, err)
	}
	return ev.Object.(*appsv1.Deployment)
}

func TestDeploymentPodsBecomeReady(t *testing.T) {
	t.Parallel()
	k := kube(t)
	ns := devclustertest.Namespace(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if _, err := k.AppsV1().Deployments(ns).Create(ctx, deployment("web", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	untilDeploymentAvailable(ctx, t, k, ns, "web")

	pods, err := k.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 3 {
		t.Fatalf("got %d pods, want 3", len(pods.Items))
	}
	for _, p := range pods.Items {
		ready := false
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if p.Status.Phase != corev1.PodRunning || !ready || p.Status.PodIP == "" || p.Spec.NodeName == "" {
			t.Errorf("pod %s: phase %s ready %v ip %q node %q; want Running, Ready, an IP and a node",
				p.Name, p.Status.Phase, ready, p.Status.PodIP, p.Spec.NodeName)
		}
	}

	// Scaling down removes pods for real: KWOK completes their deletion as a kubelet would.
	d, err := k.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	one := int32(1)
	d.Spec.Replicas = &one
	if _, err := k.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	untilDeploymentAvailable(ctx, t, k, ns, "web")
	for {
		pods, err := k.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("still %d pods after scaling to 1", len(pods.Items))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func newRoute(name string, to int32, alternates ...int32) *routev1.Route {
	r := &routev1.Route{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: routev1.RouteSpec{
			Host: name + ".apps.example.com",
			To:   routev1.RouteTargetReference{Kind: "Service", Name: "stable", Weight: &to},
			Port: &routev1.RoutePort{TargetPort: intstrFromInt(8080)},
		},
	}
	for i, w := range alternates {
		r.Spec.AlternateBackends = append(r.Spec.AlternateBackends,
			routev1.RouteTargetReference{Kind: "Service", Name: "alt-" + string(rune('a'+i)), Weight: &w})
	}
	return r
}

func TestRouteWeightsStoredAndValidated(t *testing.T) {
	t.Parallel()
	devclustertest.Require(t, cluster)
	ns := devclustertest.Namespace(t, cluster)
	ctx := context.Background()
	routes := routeclient.NewForConfigOrDie(cluster.Config()).RouteV1().Routes(ns)

	if _, err := routes.Create(ctx, newRoute("app", 80, 20), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create a Route with one alternate backend: %v", err)
	}
	got, err := routes.Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Spec.To.Weight != 80 || len(got.Spec.AlternateBackends) != 1 || *got.Spec.AlternateBackends[0].Weight != 20 {
		t.Errorf("stored weights: to %d, alternates %+v; want 80 and [20]", *got.Spec.To.Weight, got.Spec.AlternateBackends)
	}
	if got.Spec.WildcardPolicy != routev1.WildcardPolicyNone {
		t.Errorf("wildcardPolicy %q: want the CRD default None", got.Spec.WildcardPolicy)
	}

	for name, r := range map[string]*routev1.Route{
		"weight-above-256": newRoute("w300", 300),
		"negative-weight":  newRoute("wneg", 100, -1),
		"four-alternates":  newRoute("four", 100, 1, 1, 1, 1),
	} {
		if _, err := routes.Create(ctx, r, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
			t.Errorf("%s: create returned %v; want an Invalid error", name, err)
		}
	}
	// Three alternates is the maximum, and 0 and 256 are the bounds.
	if _, err := routes.Create(ctx, newRoute("three", 256, 0, 1, 256), metav1.CreateOptions{}); err != nil {
		t.Errorf("three alternates with weights 0..256: %v", err)
	}
}

func TestRouterCRDsServed(t *testing.T) {
	t.Parallel()
	devclustertest.Require(t, cluster)
	ns := devclustertest.Namespace(t, cluster)
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(cluster.Config())

	httpRoute := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": "app"},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"name": "gw"}},
			"rules": []any{map[string]any{"backendRefs": []any{
				map[string]any{"name": "stable", "port": int64(80), "weight": int64(90)},
				map[string]any{"name": "canary", "port": int64(80), "weight": int64(10)},
			}}},
		},
	}}
	vs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": "app"},
		"spec": map[string]any{
			"hosts": []any{"app"},
			"http": []any{map[string]any{"route": []any{
				map[string]any{"destination": map[string]any{"host": "app", "subset": "stable"}, "weight": int64(90)},
				map[string]any{"destination": map[string]any{"host": "app", "subset": "canary"}, "weight": int64(10)},
			}}},
		},
	}}
	for gvr, obj := range map[schema.GroupVersionResource]*unstructured.Unstructured{
		{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}: httpRoute,
		{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}:  vs,
	} {
		if _, err := dyn.Resource(gvr).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Errorf("create %s: %v", gvr.Resource, err)
		}
	}
	// HTTPRoute weights are validated by its CRD schema.
	bad := httpRoute.DeepCopy()
	bad.SetName("bad")
	_ = unstructured.SetNestedSlice(bad.Object, []any{map[string]any{"backendRefs": []any{
		map[string]any{"name": "stable", "port": int64(80), "weight": int64(-5)}}}}, "spec", "rules")
	if _, err := dyn.Resource(schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}).
		Namespace(ns).Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("HTTPRoute with weight -5: %v; want Invalid", err)
	}

	prefix := networkingv1.PathTypePrefix
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "app-canary", Annotations: map[string]string{
			"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "10"}},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: "app.example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: "canary", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}},
	}
	if _, err := kube(t).NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{}); err != nil {
		t.Errorf("create Ingress: %v", err)
	}
}
