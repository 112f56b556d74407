package release

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/canaryline/canaryline/internal/runtime/naming"
)

// A router object may serve several applications: each release marks it with its application's own keys, which
// the API accepts.
func TestRouterAnnotationsArePerApplication(t *testing.T) {
	t.Parallel()
	st := &State{ID: "r-7", App: "shop", Image: "registry.example.com/shop@sha256:77", Weight: 20}
	want := map[string]string{"shop.canaryline.dev/release": "r-7", "shop.canaryline.dev/image": st.Image, "shop.canaryline.dev/weight": "20"}
	if diff := cmp.Diff(want, routerAnnotations("shop", st)); diff != "" {
		t.Errorf("routerAnnotations (-want +got):\n%s", diff)
	}
	for k := range routerAnnotations("cart", st) {
		if _, ok := want[k]; ok {
			t.Errorf("cart's release uses shop's key %s", k)
		}
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			t.Errorf("key %s: %v", k, errs)
		}
	}
}

// The canary's pod template is the stable's with the release's image and nothing else, under the stable's
// selector, so that the stable Deployment can take its ReplicaSet over; with REUSE_CANARY=false (TrackPods), and
// for the baseline, the track label is on the selector and the pods.
func TestCanaryTemplateIsTheStablesWithTheImage(t *testing.T) {
	t.Parallel()
	stable := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "ns", Labels: map[string]string{"app": "shop"}},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shop"}, Annotations: map[string]string{"team": "x"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "old"}, {Name: "proxy", Image: "envoy"}}}}},
	}
	st := &State{ID: "r-1", Container: "app", Image: "new"}
	canary := trackDeployment(stable, st, "shop-canary", naming.TrackCanary, "new", 1)
	want := stable.Spec.Template.DeepCopy()
	want.Spec.Containers[0].Image = "new"
	if diff := cmp.Diff(*want, canary.Spec.Template); diff != "" {
		t.Errorf("canary template (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(stable.Spec.Selector, canary.Spec.Selector); diff != "" || canary.Labels[naming.TrackLabel] != naming.TrackCanary {
		t.Errorf("canary selector (-stable +canary):\n%s\nlabels %v", diff, canary.Labels)
	}
	if stable.Spec.Template.Spec.Containers[0].Image != "old" {
		t.Error("the stable Deployment was changed")
	}
	st.TrackPods = true
	for _, d := range []*appsv1.Deployment{trackDeployment(stable, st, "shop-canary", naming.TrackCanary, "new", 1),
		trackDeployment(stable, st, "shop-baseline", naming.TrackBaseline, "", 1)} {
		track := d.Labels[naming.TrackLabel]
		if d.Spec.Selector.MatchLabels[naming.TrackLabel] != track || d.Spec.Template.Labels[naming.TrackLabel] != track {
			t.Errorf("%s: selector %v, pod labels %v; want the track label on both", d.Name, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
		}
	}
}
