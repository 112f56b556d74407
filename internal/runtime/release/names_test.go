package release

import (
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

func withContainers(cs ...corev1.Container) *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "team"}}
	d.Spec.Template.Spec.Containers = cs
	d.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "shop-init", Image: "quay.io/team/shop:init"}}
	return d
}

func TestPickContainer(t *testing.T) {
	const image = "quay.io/team/shop@sha256:2222222222222222222222222222222222222222222222222222222222222222"
	proxy := corev1.Container{Name: "proxy", Image: "quay.io/mesh/proxy:1.2"}
	cases := []struct {
		name  string
		d     *appsv1.Deployment
		want  string // "" : refused
		param string
	}{
		{"the only container", withContainers(corev1.Container{Name: "main", Image: "x"}), "main", ""},
		{"named like the application, listed second", withContainers(proxy, corev1.Container{Name: "shop", Image: "x"}), "shop", ""},
		{"running the image's repository by tag", withContainers(proxy, corev1.Container{Name: "web", Image: "quay.io/team/shop:v1"}), "web", ""},
		{"running the image's repository by digest", withContainers(proxy, corev1.Container{Name: "web", Image: "quay.io/team/shop@sha256:11"}), "web", ""},
		{"a registry with a port", withContainers(proxy, corev1.Container{Name: "web", Image: "registry:5000/team/other:v1"}), "", "CONTAINER"},
		{"two of the repository", withContainers(corev1.Container{Name: "a", Image: "quay.io/team/shop:1"}, corev1.Container{Name: "b", Image: "quay.io/team/shop:2"}), "", "CONTAINER"},
		{"init containers are never chosen", withContainers(proxy, corev1.Container{Name: "web", Image: "quay.io/other/web:1"}), "", "CONTAINER"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _, err := pickContainer(c.d, "", "shop", image)
			if c.want != "" {
				if err != nil || got != c.want {
					t.Errorf("got %q, %v; want %q", got, err, c.want)
				}
				return
			}
			var inv *step.InvalidError
			if !errors.As(err, &inv) || inv.Param != c.param || !strings.Contains(inv.Fix, c.d.Spec.Template.Spec.Containers[0].Name) {
				t.Errorf("got %q, %v; want an InvalidError naming %s and listing the containers", got, err, c.param)
			}
		})
	}
	if got, img, err := pickContainer(withContainers(proxy, corev1.Container{Name: "shop", Image: "x"}), "proxy", "shop", image); err != nil || got != "proxy" || img != proxy.Image {
		t.Errorf("CONTAINER=proxy: got %q %q, %v", got, img, err)
	}
	if _, _, err := pickContainer(withContainers(proxy), "shop-init", "shop", image); err == nil {
		t.Error("CONTAINER naming an init container was accepted")
	}
}

func TestRepository(t *testing.T) {
	for in, want := range map[string]string{
		"quay.io/team/shop:v1":                   "quay.io/team/shop",
		"quay.io/team/shop@sha256:ab":            "quay.io/team/shop",
		"quay.io/team/shop:v1@sha256:ab":         "quay.io/team/shop",
		"registry:5000/team/shop":                "registry:5000/team/shop",
		"registry:5000/team/shop:v2":             "registry:5000/team/shop",
		"image-registry.svc:5000/ns/app@sha256:": "image-registry.svc:5000/ns/app",
	} {
		if got := repository(in); got != want {
			t.Errorf("repository(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestTrackNamesAndMarks(t *testing.T) {
	tg := &Target{App: "shop", StableService: "shop-web"}
	if n := trackNames(tg, "", "", true); n != (Names{"shop-canary", "shop-web-canary", "shop-baseline", "shop-web-baseline"}) {
		t.Errorf("default names %+v", n)
	}
	if n := trackNames(tg, "next", "", false); n != (Names{CanaryDeployment: "next", CanaryService: "next"}) {
		t.Errorf("CANARY_NAME names %+v", n)
	}
	old := &State{App: "shop", StableService: "shop", Baseline: true}
	if n := old.names(); n.CanaryDeployment != "shop-canary" || n.BaselineService != "shop-baseline" {
		t.Errorf("a state recorded without names: %+v", n)
	}
	obj := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{naming.TrackLabel: "canary"}, Annotations: map[string]string{ReleaseAnnotation: "r1"}}}
	if !marked(obj, naming.TrackCanary, "r1") || marked(obj, naming.TrackCanary, "r2") || marked(obj, naming.TrackBaseline, "r1") || !marked(obj, naming.TrackCanary, "r2", "r1") {
		t.Error("marked: wrong answer")
	}
	obj.Labels = nil
	if marked(obj, naming.TrackCanary, "r1") {
		t.Error("an object without the track label counts as marked")
	}
}
