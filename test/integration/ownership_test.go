package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"

	routev1 "github.com/openshift/api/route/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/canaryline/canaryline/internal/dev/devclustertest"
)

// teamObjects creates a team's own Deployment and Service named name (no canaryline mark), as a team's B side.
func (a *app) teamObjects(name string, labels, annotations map[string]string) {
	a.t.Helper()
	ctx := context.Background()
	d := deployment(name, 1)
	d.Labels, d.Annotations = mergeLabels(d.Labels, labels), annotations
	if _, err := a.kube.AppsV1().Deployments(a.ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		a.t.Fatal(err)
	}
	untilDeploymentAvailable(ctx, a.t, a.kube, a.ns, name)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080)}}}}
	if _, err := a.kube.CoreV1().Services(a.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		a.t.Fatal(err)
	}
}

func mergeLabels(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// objectState is a Deployment's and a Service's spec and metadata as the team made them, for comparing.
func (a *app) objectState(name string) string {
	a.t.Helper()
	ctx := context.Background()
	var v []any
	if d, err := a.kube.AppsV1().Deployments(a.ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		v = append(v, d.UID, d.Generation, d.Labels, d.Annotations, d.Spec.Template.Spec.Containers)
	} else {
		v = append(v, err.Error())
	}
	if s, err := a.kube.CoreV1().Services(a.ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		v = append(v, s.UID, s.Labels, s.Annotations, s.Spec.Selector)
	} else {
		v = append(v, err.Error())
	}
	data, _ := json.Marshal(v)
	return string(data)
}

// setRouteAlternates gives the Route shop the alternate backends (name=weight) and stable weight to.
func (a *app) setRouteAlternates(to int32, alternates map[string]int32) {
	a.t.Helper()
	ctx := context.Background()
	r, err := a.routes.RouteV1().Routes(a.ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		a.t.Fatal(err)
	}
	r.Spec.To.Weight = &to
	r.Spec.AlternateBackends = nil
	for name, w := range alternates {
		w := w
		r.Spec.AlternateBackends = append(r.Spec.AlternateBackends, routev1.RouteTargetReference{Kind: "Service", Name: name, Weight: &w})
	}
	if _, err := a.routes.RouteV1().Routes(a.ns).Update(ctx, r, metav1.UpdateOptions{}); err != nil {
		a.t.Fatal(err)
	}
}

// TestTeamsOwnCanaryIsNeverTouched: a team runs its own Deployment and Service named shop-canary as the Route's
// B side at weight 20. A release refuses before its first change (no lock, no record, no pinned Service), the
// finally task's rollback of a release that never started changes nothing, and the team's objects and Route split
// stay as they are. With CANARY_NAME the release runs beside them and leaves them alone.
func TestTeamsOwnCanaryIsNeverTouched(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	a.teamObjects("shop-canary", nil, nil)
	a.setRouteAlternates(80, map[string]int32{"shop-canary": 20})
	team := a.objectState("shop-canary")
	before := namespaceState(t, a.ns)

	r := a.shift(10, nil)
	if r.code != 2 || !strings.Contains(r.stderr, "param CANARY_NAME") || !strings.Contains(r.stderr, "shop-canary exists and it was not made by canaryline") {
		t.Errorf("shift beside the team's shop-canary: exit %d; want 2 naming CANARY_NAME and the object", r.code)
	}
	for _, env := range []map[string]string{{"DECISION": "auto", "PIPELINE_STATUS": "Failed"}, {"DECISION": "rollback"}} {
		d := a.decide(env)
		if d.code != 0 && d.code != 2 {
			t.Errorf("promote-or-rollback %v after the refused shift: exit %d; want 0 (nothing to do) or 2", env, d.code)
		}
	}
	if got := namespaceState(t, a.ns); got != before {
		t.Errorf("the namespace changed although the release never started:\nbefore %s\nafter  %s", before, got)
	}
	if _, err := a.kube.CoordinationV1().Leases(a.ns).Get(context.Background(), "canaryline-shop", metav1.GetOptions{}); err == nil {
		t.Error("the refused release created its Lease")
	}

	// Another name for the canary: the Route's foreign backend still refuses the release (its shares could not
	// be controlled), by name and before any change.
	r = a.shift(10, map[string]string{"CANARY_NAME": "shop-next"})
	if r.code != 2 || !strings.Contains(r.stderr, `alternate backend "shop-canary"`) {
		t.Errorf("shift with the team's alternate backend on the Route: exit %d; want 2 naming it", r.code)
	}
	if got := namespaceState(t, a.ns); got != before {
		t.Errorf("the namespace changed:\nbefore %s\nafter  %s", before, got)
	}

	// Without the B side on the Route, a release named shop-next runs beside the team's shop-canary.
	a.setRouteAlternates(100, nil)
	if r := a.shift(10, map[string]string{"CANARY_NAME": "shop-next"}); r.code != 0 || r.results["CANARY_DEPLOYMENT"] != "shop-next" {
		t.Fatalf("shift with CANARY_NAME: exit %d, results %v", r.code, r.results)
	}
	if d := a.decide(map[string]string{"DECISION": "promote"}); d.code != 0 {
		t.Fatalf("promote: exit %d", d.code)
	}
	if got := a.objectState("shop-canary"); got != team {
		t.Errorf("the team's shop-canary changed:\nbefore %s\nafter  %s", team, got)
	}
	if a.exists("deployment", "shop-next") || a.exists("service", "shop-next") {
		t.Error("the release's shop-next objects are left after promote")
	}
}

// TestEveryNameClashIsRefusedBeforeAnyChange: every object named like one a release would create or take over,
// and not carrying the mark of a release in progress, is found before the first write: exit 2 naming the object
// and the param to change, and the namespace is as it was.
func TestEveryNameClashIsRefusedBeforeAnyChange(t *testing.T) {
	t.Parallel()
	canaryline := map[string]string{"canaryline.dev/track": "canary", "canaryline.dev/release": "old-release"}
	cases := []struct {
		name, kind string
		env        map[string]string
		setup      func(a *app)
		want       []string
	}{
		{"canary Deployment", "route", nil, func(a *app) {
			d := deployment("shop-canary", 1)
			if _, err := a.kube.AppsV1().Deployments(a.ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			untilDeploymentAvailable(context.Background(), t, a.kube, a.ns, "shop-canary")
		}, []string{"param CANARY_NAME", "Deployment " + "%NS%/shop-canary exists", "not made by canaryline"}},
		{"canary Service", "route", nil, func(a *app) {
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop-canary"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "x"},
				Ports: []corev1.ServicePort{{Port: 80}}}}
			if _, err := a.kube.CoreV1().Services(a.ns).Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, []string{"param CANARY_NAME", "Service %NS%/shop-canary exists"}},
		{"baseline Deployment and Service", "route", map[string]string{"BASELINE": "true"}, func(a *app) { a.teamObjects("shop-baseline", nil, nil) },
			[]string{"param BASELINE_NAME", "%NS%/shop-baseline exists"}},
		{"a leftover of a release no longer in progress", "route", nil, func(a *app) { a.teamObjects("shop-canary", canaryline, canaryline) },
			[]string{"param CANARY_NAME", "made by canaryline release old-release, which is not in progress"}},
		{"the Lease", "route", nil, func(a *app) {
			l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "canaryline-shop"}}
			if _, err := a.kube.CoordinationV1().Leases(a.ns).Create(context.Background(), l, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, []string{"param APP", "Lease %NS%/canaryline-shop exists and was not made by canaryline"}},
		{"a Route alternate named like the canary", "route", nil, func(a *app) { a.setRouteAlternates(90, map[string]int32{"shop-canary": 10}) },
			[]string{"param CANARY_NAME", `sends traffic to "shop-canary", and no canaryline release set it`}},
		{"an HTTPRoute backendRef named like the canary", "httproute", nil, func(a *app) {
			u, err := a.dyn.Resource(httpRouteGVR).Namespace(a.ns).Get(context.Background(), "shop", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
			rules[0].(map[string]any)["backendRefs"] = []any{map[string]any{"name": "shop", "port": int64(8080), "weight": int64(90)},
				map[string]any{"name": "shop-canary", "port": int64(8080), "weight": int64(10)}}
			_ = unstructured.SetNestedSlice(u.Object, rules, "spec", "rules")
			if _, err := a.dyn.Resource(httpRouteGVR).Namespace(a.ns).Update(context.Background(), u, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, []string{"param CANARY_NAME", "rule 0 of HTTPRoute", "already sends traffic to Service shop-canary"}},
		{"an Istio destination named like the canary", "istio", nil, func(a *app) {
			u, err := a.dyn.Resource(vsGVR).Namespace(a.ns).Get(context.Background(), "shop", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
			http[0].(map[string]any)["route"] = []any{
				map[string]any{"destination": map[string]any{"host": "shop"}, "weight": int64(90)},
				map[string]any{"destination": map[string]any{"host": "shop-canary"}, "weight": int64(10)}}
			_ = unstructured.SetNestedSlice(u.Object, http, "spec", "http")
			if _, err := a.dyn.Resource(vsGVR).Namespace(a.ns).Update(context.Background(), u, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, []string{"param CANARY_NAME", "http[0] of VirtualService", "already sends traffic to Service shop-canary"}},
		{"the NGINX canary Ingress", "nginx", nil, func(a *app) { a.foreignCanaryIngress(nil) },
			[]string{"param ROUTER_NAME", "Ingress %NS%/shop-canary exists and was not made by canaryline"}},
		{"an NGINX canary Ingress of another release", "nginx", nil, func(a *app) {
			a.foreignCanaryIngress(map[string]string{"canaryline.dev/release": "old-release", "canaryline.dev/image": canaryImage})
		}, []string{"param ROUTER_NAME", "Ingress %NS%/shop-canary exists and was not made by canaryline"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, c.kind, 2)
			c.setup(a)
			before := namespaceState(t, a.ns)
			r := a.shift(10, c.env)
			if r.code != 2 {
				t.Errorf("exit %d; want 2", r.code)
			}
			for _, w := range c.want {
				if w = strings.ReplaceAll(w, "%NS%", a.ns); !strings.Contains(r.stderr, w) {
					t.Errorf("the message does not say %q", w)
				}
			}
			if got := namespaceState(t, a.ns); got != before {
				t.Errorf("the namespace changed:\nbefore %s\nafter  %s", before, got)
			}
		})
	}
}

// foreignCanaryIngress creates shop-canary, an NGINX canary Ingress of the shop Ingress that this release did not
// make, with annotations.
func (a *app) foreignCanaryIngress(annotations map[string]string) {
	a.t.Helper()
	anns := map[string]string{"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-by-header": "x-team"}
	for k, v := range annotations {
		anns[k] = v
	}
	prefix := networkingv1.PathTypePrefix
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "shop-canary", Annotations: anns}, Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
		Host: "shop.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
			Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
				Name: "team-preview", Port: networkingv1.ServiceBackendPort{Number: 8080}}}}}}}}}}}
	if _, err := a.kube.NetworkingV1().Ingresses(a.ns).Create(context.Background(), ing, metav1.CreateOptions{}); err != nil {
		a.t.Fatal(err)
	}
}

// TestRollbackDeletesOnlyWhatTheReleaseMade: while a release runs, a team replaces the canary Service with its own
// of the same name. The rollback removes the release's canary Deployment and leaves the team's Service.
func TestRollbackDeletesOnlyWhatTheReleaseMade(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	if r := a.shift(10, nil); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	ctx := context.Background()
	if err := a.kube.CoreV1().Services(a.ns).Delete(ctx, "shop-canary", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop-canary", Labels: map[string]string{"team": "shop"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "team"}, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := a.kube.CoreV1().Services(a.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := a.decide(map[string]string{"DECISION": "rollback"})
	if d.code != 0 {
		t.Fatalf("rollback: exit %d", d.code)
	}
	if a.exists("deployment", "shop-canary") {
		t.Error("the release's canary Deployment is left")
	}
	got, err := a.kube.CoreV1().Services(a.ns).Get(ctx, "shop-canary", metav1.GetOptions{})
	if err != nil || got.Labels["team"] != "shop" {
		t.Errorf("the team's shop-canary Service was deleted or changed: %v", err)
	}
	if !strings.Contains(d.stderr, "left as it is") {
		t.Error("the rollback does not say it left the team's Service")
	}
}

// setContainers replaces the stable Deployment's containers (and init containers) and waits for the rollout.
func (a *app) setContainers(init []corev1.Container, cs []corev1.Container) {
	a.t.Helper()
	ctx := context.Background()
	d, err := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		a.t.Fatal(err)
	}
	d.Spec.Template.Spec.InitContainers, d.Spec.Template.Spec.Containers = init, cs
	if _, err := a.kube.AppsV1().Deployments(a.ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		a.t.Fatal(err)
	}
	untilDeploymentAvailable(ctx, a.t, a.kube, a.ns, "shop")
}

func images(cs []corev1.Container) map[string]string {
	out := map[string]string{}
	for _, c := range cs {
		out[c.Name] = c.Image
	}
	return out
}

const (
	sidecarImage = "registry.example.com/mesh/proxy@sha256:3333333333333333333333333333333333333333333333333333333333333333"
	initImage    = "registry.example.com/team/migrate@sha256:4444444444444444444444444444444444444444444444444444444444444444"
)

// TestTheApplicationsContainerIsReleased: with a sidecar listed first, the release changes the application's
// container (named like the application, or running an image of the new image's repository, or as CONTAINER
// says), in the canary, on promote and in canaryline status; the sidecar and init containers keep their images.
// With several containers and no way to tell, it refuses and lists them.
func TestTheApplicationsContainerIsReleased(t *testing.T) {
	t.Parallel()
	sidecar := corev1.Container{Name: "proxy", Image: sidecarImage}
	initC := []corev1.Container{{Name: "migrate", Image: initImage}}
	cases := []struct {
		name       string
		containers []corev1.Container
		env        map[string]string
		released   string // "" : refused
	}{
		{"named like the application", []corev1.Container{sidecar, {Name: "shop", Image: stableImage}}, nil, "shop"},
		{"running the image's repository", []corev1.Container{sidecar, {Name: "web", Image: stableImage}}, nil, "web"},
		{"as CONTAINER says", []corev1.Container{{Name: "web", Image: stableImage}, sidecar}, map[string]string{"CONTAINER": "web"}, "web"},
		{"no way to tell", []corev1.Container{sidecar, {Name: "web", Image: "quay.io/other/web@sha256:" + zeros}}, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, "route", 2)
			a.setContainers(initC, c.containers)
			before := namespaceState(t, a.ns)
			r := a.shift(10, c.env)
			if c.released == "" {
				if r.code != 2 || !strings.Contains(r.stderr, "param CONTAINER") || !strings.Contains(r.stderr, "proxy, web") {
					t.Errorf("exit %d; want 2 naming CONTAINER and listing proxy, web", r.code)
				}
				if got := namespaceState(t, a.ns); got != before {
					t.Errorf("the namespace changed:\nbefore %s\nafter  %s", before, got)
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("shift: exit %d", r.code)
			}
			ctx := context.Background()
			canary, err := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop-canary", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := images(c.containers)
			want[c.released] = canaryImage
			if got := images(canary.Spec.Template.Spec.Containers); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("canary containers %v; want %v", got, want)
			}
			if got := images(canary.Spec.Template.Spec.InitContainers); got["migrate"] != initImage {
				t.Errorf("canary init containers %v; want migrate unchanged", got)
			}
			out, _, code := cli(t, buildCLI(t), "status", "shop", "--kubeconfig", cluster.Kubeconfig, "--namespace", a.ns)
			if code != 0 || !strings.Contains(out, "container     "+c.released) || !strings.Contains(out, "canary image  "+canaryImage) ||
				!strings.Contains(out, "stable image  "+stableImage) {
				t.Errorf("canaryline status (exit %d):\n%s\nwant container %s, stable and canary images", code, out, c.released)
			}
			d := a.decide(map[string]string{"DECISION": "promote"})
			if d.code != 0 || d.results["STABLE_IMAGE"] != canaryImage {
				t.Fatalf("promote: exit %d, results %v", d.code, d.results)
			}
			stable, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
			if got := images(stable.Spec.Template.Spec.Containers); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("stable containers after promote %v; want %v", got, want)
			}
			if got := images(stable.Spec.Template.Spec.InitContainers); got["migrate"] != initImage {
				t.Errorf("stable init containers after promote %v; want migrate unchanged", got)
			}
			out, _, _ = cli(t, buildCLI(t), "status", "shop", "--kubeconfig", cluster.Kubeconfig, "--namespace", a.ns)
			if !strings.Contains(out, "container     "+c.released) || !strings.Contains(out, "stable image  "+canaryImage) {
				t.Errorf("canaryline status after promote:\n%s\nwant container %s with %s", out, c.released, canaryImage)
			}
		})
	}
}

// TestStepsNameAWrongNamespace: a NAMESPACE that does not exist, or one the ServiceAccount has no Role in, is bad
// input for every step: exit 2 naming NAMESPACE and the fix, with the shipped Role's token and with an admin's.
func TestStepsNameAWrongNamespace(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 1)
	other := devclustertest.Namespace(t, cluster) // exists; the ServiceAccount has no Role there
	steps := map[string]map[string]string{
		"start-build":         {"BUILD_CONFIG": "shop"},
		"wait-build":          {"BUILD_NAME": "shop-1"},
		"shift-canary":        {"APP": "shop", "IMAGE": canaryImage, "WEIGHT": "10"},
		"promote-or-rollback": {"APP": "shop", "DECISION": "auto", "PIPELINE_STATUS": "Failed"},
		"verify-health":       {"APP": "shop"},
	}
	for step, env := range steps {
		for _, who := range []struct{ name, kubeconfig, ns, want string }{
			{"ServiceAccount, missing namespace", a.kubeconfig, "no-such-namespace", "param NAMESPACE"},
			{"admin, missing namespace", cluster.Kubeconfig, "no-such-namespace", "namespace no-such-namespace does not exist"},
			{"ServiceAccount, namespace without its Role", a.kubeconfig, other, "param NAMESPACE"},
		} {
			e := map[string]string{"NAMESPACE": who.ns}
			for k, v := range env {
				e[k] = v
			}
			r := runStep(t, step, who.kubeconfig, e)
			if r.code != 2 || !strings.Contains(r.stderr, who.want) || !strings.Contains(r.stderr, "param NAMESPACE") {
				t.Errorf("%s as %s: exit %d; want 2 naming NAMESPACE (%q)", step, who.name, r.code, who.want)
			}
		}
	}
}

// TestAnInterruptedStepSaysSo: a shift waiting for a canary that cannot become Ready, stopped with SIGINT after a
// moment, says it was interrupted, not that READY_TIMEOUT ran out.
func TestAnInterruptedStepSaysSo(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	ctx := context.Background()
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "pods"}, Spec: corev1.ResourceQuotaSpec{
		Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("2")}}}
	if _, err := a.kube.CoreV1().ResourceQuotas(a.ns).Create(ctx, quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cmd, wait := startStep(t, "shift-canary", a.kubeconfig, map[string]string{"APP": "shop", "ROUTER": "route", "IMAGE": canaryImage,
		"WEIGHT": "10", "RELEASE_ID": "shop-release-1", "READY_TIMEOUT": "2m"})
	// The step waits for the canary right after creating its Deployment; the quota refuses its pod meanwhile.
	waitUntil(t, 60e9, "the canary refused by the quota", func() bool {
		d, err := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop-canary", metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range d.Status.Conditions {
			if c.Type == "ReplicaFailure" && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	})
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	r := wait()
	if r.code != 1 || !strings.Contains(r.stderr, "interrupted after") || strings.Contains(r.stderr, "after 2m0s") {
		t.Errorf("exit %d; want 1 saying the wait was interrupted, not that 2m ran out", r.code)
	}
}
