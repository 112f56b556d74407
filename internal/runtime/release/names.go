package release

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// Names are the objects a release creates next to the stable ones: the canary (and baseline) Deployment and
// Service. They are recorded with the release, so that every later step uses the names the release started with.
type Names struct {
	CanaryDeployment   string `json:"canaryDeployment,omitempty"`
	CanaryService      string `json:"canaryService,omitempty"`
	BaselineDeployment string `json:"baselineDeployment,omitempty"`
	BaselineService    string `json:"baselineService,omitempty"`
}

// trackNames are the names of a release of t: CANARY_NAME (BASELINE_NAME) for both the Deployment and the
// Service when given, else <APP>-canary and <stable Service>-canary (-baseline).
func trackNames(t *Target, canary, baseline string, withBaseline bool) Names {
	n := Names{CanaryDeployment: canary, CanaryService: canary}
	if canary == "" {
		n.CanaryDeployment, n.CanaryService = naming.Canary(t.App), naming.Canary(t.stableService())
	}
	if withBaseline {
		n.BaselineDeployment, n.BaselineService = baseline, baseline
		if baseline == "" {
			n.BaselineDeployment, n.BaselineService = naming.Baseline(t.App), naming.Baseline(t.stableService())
		}
	}
	return n
}

// names are the release's recorded names; a release recorded before names were recorded uses the default ones.
func (s *State) names() Names {
	if s.Names.CanaryDeployment != "" {
		return s.Names
	}
	return trackNames(&Target{App: s.App, StableService: s.StableService}, "", "", s.Baseline)
}

// marked says whether an object carries the mark of one of the releases: canaryline's track label (of track) and
// the release annotation. Only such objects are canaryline's to change or delete.
func marked(obj metav1.Object, track string, releases ...string) bool {
	id := obj.GetAnnotations()[ReleaseAnnotation]
	return obj.GetLabels()[naming.TrackLabel] == track && id != "" && slices.Contains(releases, id)
}

// clash is an object that stands where the release would create one of its own.
type clash struct {
	kind, name, track, param string
}

// checkClashes refuses, before the release writes anything, every object named like one the release would create
// that is not canaryline's own: not marked by this release, nor by the abandoned release (releases[1]) that this
// one is about to roll back. A name clash is bad input: exit 2, naming the object and the fix.
func checkClashes(ctx context.Context, kube kubeclient.Interface, ns string, n Names, releases ...string) error {
	wanted := []clash{{"Deployment", n.CanaryDeployment, naming.TrackCanary, "CANARY_NAME"}, {"Service", n.CanaryService, naming.TrackCanary, "CANARY_NAME"}}
	if n.BaselineDeployment != "" {
		wanted = append(wanted, clash{"Deployment", n.BaselineDeployment, naming.TrackBaseline, "BASELINE_NAME"},
			clash{"Service", n.BaselineService, naming.TrackBaseline, "BASELINE_NAME"})
	}
	for _, w := range wanted {
		var obj metav1.Object
		var err error
		switch w.kind {
		case "Deployment":
			obj, err = kube.AppsV1().Deployments(ns).Get(ctx, w.name, metav1.GetOptions{})
		default:
			obj, err = kube.CoreV1().Services(ns).Get(ctx, w.name, metav1.GetOptions{})
		}
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("get %s %s/%s: %w", w.kind, ns, w.name, err)
		}
		if !marked(obj, w.track, releases...) {
			return clashError(ns, w, obj)
		}
	}
	return nil
}

func clashError(ns string, w clash, obj metav1.Object) error {
	owner := "it was not made by canaryline (no " + naming.TrackLabel + " label)"
	if id := obj.GetAnnotations()[ReleaseAnnotation]; obj.GetLabels()[naming.TrackLabel] != "" && id != "" {
		owner = fmt.Sprintf("it was made by canaryline release %s, which is not in progress", id)
	} else if obj.GetLabels()[naming.TrackLabel] != "" {
		owner = "it carries canaryline's track label but no release"
	}
	return step.Invalid(w.param, fmt.Sprintf("choose another name for the release's %s with %s (the Pipeline's %s param), or delete "+
		"the %s if it is left over (oc delete %s %s -n %s); canaryline never changes an object it did not create",
		w.track, w.param, strings.ToLower(strings.ReplaceAll(w.param, "_", "-")), w.kind, strings.ToLower(w.kind), w.name, ns),
		"%s %s/%s exists and %s", w.kind, ns, w.name, owner)
}

// pickContainer chooses the container of the stable pod template that the release changes: CONTAINER when
// given; else the only container; else the one named like the application; else the one whose image is in the
// new image's repository (the BuildConfig's output). Otherwise it is bad input listing the containers. Init
// containers are never changed.
func pickContainer(d *appsv1.Deployment, want, app, image string) (name, current string, err error) {
	cs := d.Spec.Template.Spec.Containers
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	find := func(match func(name, image string) bool) []int {
		var out []int
		for i, c := range cs {
			if match(c.Name, c.Image) {
				out = append(out, i)
			}
		}
		return out
	}
	if want != "" {
		if i := find(func(n, _ string) bool { return n == want }); len(i) == 1 {
			return want, cs[i[0]].Image, nil
		}
		return "", "", step.Invalid("CONTAINER", "name one of the containers of the stable Deployment's pod template: "+strings.Join(names, ", "),
			"Deployment %s has no container %q", describe(d.Namespace, d.Name), want)
	}
	if len(cs) == 1 {
		return cs[0].Name, cs[0].Image, nil
	}
	if i := find(func(n, _ string) bool { return n == app }); len(i) == 1 {
		return cs[i[0]].Name, cs[i[0]].Image, nil
	}
	if repo := repository(image); repo != "" {
		if i := find(func(_, img string) bool { return repository(img) == repo }); len(i) == 1 {
			return cs[i[0]].Name, cs[i[0]].Image, nil
		}
	}
	return "", "", step.Invalid("CONTAINER", "set CONTAINER (the Pipeline's container param) to the container that runs the application: one of "+strings.Join(names, ", "),
		"Deployment %s has %d containers, none named %q or running an image of %s", describe(d.Namespace, d.Name), len(cs), app, repository(image))
}

// repository is an image reference without its tag or digest: quay.io/team/app for quay.io/team/app:v1@sha256:...
func repository(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// containerImage is the image of container name in d's pod template ("" when it has none).
func containerImage(d *appsv1.Deployment, name string) string {
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == name {
			return c.Image
		}
	}
	return ""
}
