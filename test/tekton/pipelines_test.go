package tekton

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	routeclient "github.com/openshift/client-go/route/clientset/versioned"

	"github.com/canaryline/canaryline/internal/dev/devclustertest"
	"github.com/canaryline/canaryline/internal/tools/bundle"
	"github.com/canaryline/canaryline/internal/tools/tektonrun"
)

// snapshot is what a rollback must leave as it was: the Route's backends, the stable Deployment's template and the
// stable Service's selector.
type snapshot struct {
	route    any
	template any
	selector map[string]string
}

func (a *app) snapshot(t *testing.T) snapshot {
	t.Helper()
	ctx := context.Background()
	rt, err := routeclient.NewForConfigOrDie(cluster.Config()).RouteV1().Routes(a.ns).Get(ctx, a.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := a.kube.AppsV1().Deployments(a.ns).Get(ctx, a.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.kube.CoreV1().Services(a.ns).Get(ctx, a.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{route: []any{rt.Spec.To, rt.Spec.AlternateBackends}, template: d.Spec.Template, selector: s.Spec.Selector}
}

// failingURL is an HTTP check the canary fails: its Service's pods are KWOK's, with no process behind them, so the
// node's Service proxy refuses the connection.
func (a *app) failingURL() string {
	return "http://" + a.name + "-canary." + a.ns + ".svc:8080/healthz"
}

// TestTektonBlueGreen: blue-green on the Tekton controller. A healthy release brings up green, switches all
// traffic to it and promotes; a release whose green fails its check is rolled back by finally, leaving the Route,
// the stable Deployment and its Service as they were.
func TestTektonBlueGreen(t *testing.T) {
	devclustertest.RequireTekton(t, cluster)
	a := newApp(t)
	pr := a.run(t, "blue-green", a.quickParams(nil), nil, tektonrun.Options{})
	if status(pr) != "Succeeded/Succeeded" {
		t.Fatalf("blue-green: %s; tasks %v", status(pr), taskStates(t, a, pr))
	}
	trs, _ := tektonrun.TaskRuns(context.Background(), a.tk, pr)
	if got := tektonrun.Results(trs["end-release"])["DECISION"]; got != "promote" {
		t.Errorf("end-release DECISION %q; want promote", got)
	}
	image := tektonrun.Results(trs["wait-build"])["IMAGE_URL"]
	d, err := a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), a.name, metav1.GetOptions{})
	if err != nil || image == "" || d.Spec.Template.Spec.Containers[0].Image != image {
		t.Errorf("stable Deployment after the promotion: %v; image %q, want the build's %q", err, d.Spec.Template.Spec.Containers[0].Image, image)
	}
	// What the OpenShift console and the Tekton Dashboard show for each task: the PipelineTask's displayName, as
	// the controller reports it with the params substituted.
	shown := map[string]string{}
	for _, c := range pr.Status.ChildReferences {
		shown[c.PipelineTaskName] = c.DisplayName
	}
	for task, want := range map[string]string{"start-build": "Start the build of " + a.name, "switch-to-green": "Switch all traffic to green",
		"verify-green": "Analyse green before the switch", "end-release": "End the release: promote, or roll back after any failure"} {
		if shown[task] != want {
			t.Errorf("the PipelineRun shows task %s as %q; want %q (all: %v)", task, shown[task], want, shown)
		}
	}

	before := a.snapshot(t)
	pr = a.run(t, "blue-green", a.quickParams(map[string]string{"git-revision": strings.Repeat("cd", 20), "http-urls": a.failingURL()}), nil, tektonrun.Options{})
	states := taskStates(t, a, pr)
	if !strings.HasPrefix(status(pr), "Failed") || !strings.HasPrefix(states["verify-green"], "Failed") ||
		states["switch-to-green"] != "" || states["end-release"] != "Succeeded" {
		t.Fatalf("bad green: %s, tasks %v; want Failed, verify-green failed, switch-to-green skipped, end-release run", status(pr), states)
	}
	trs, _ = tektonrun.TaskRuns(context.Background(), a.tk, pr)
	if got := tektonrun.Results(trs["end-release"])["DECISION"]; got != "rollback" {
		t.Errorf("end-release DECISION %q; want rollback", got)
	}
	if after := a.snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("after the rollback:\n%+v\nwant as before:\n%+v", after, before)
	}
}

// TestTektonPrebuiltFromABundle: the Tasks come from a Tekton bundle in an in-process registry, resolved by the
// real bundles resolver (the resolvers controller); canary-release-prebuilt releases an image pushed to the
// node's in-process registry (resolve-image reads its digest there) and promotes it.
func TestTektonPrebuiltFromABundle(t *testing.T) {
	devclustertest.RequireTekton(t, cluster)
	a := newApp(t)
	ctx := context.Background()
	// The bundle of the checkout's Tasks and Pipelines, in a registry on the host (where the resolver runs).
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	rs, err := bundle.Load(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	img, err := bundle.Image(rs)
	if err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimPrefix(reg.URL, "http://") + "/canaryline/tasks:dev"
	digest, err := bundle.Push(ctx, img, ref, true)
	if err != nil {
		t.Fatal(err)
	}
	pinned := bundle.Pinned(ref, digest)
	// The application's image, in the node's registry (a registry the pods reach).
	appImg, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	image, err := cluster.Node().Push(ctx, appImg, cluster.Node().RegistryAddr(), "team/shop", "v2")
	if err != nil {
		t.Fatal(err)
	}
	// No Task in the namespace: the Pipeline's tasks all name the bundle.
	for _, tk := range []string{"start-build", "wait-build", "shift-canary", "verify-health", "promote-or-rollback"} {
		_ = a.tk.Tekton.TektonV1().Tasks(a.ns).Delete(ctx, tk, metav1.DeleteOptions{})
	}
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "pipelines", "canary-release-prebuilt.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var p pipelinev1.Pipeline
	if err := yaml.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	toBundle := func(pts []pipelinev1.PipelineTask) {
		for i := range pts {
			name := pts[i].TaskRef.Name
			pts[i].TaskRef = &pipelinev1.TaskRef{ResolverRef: pipelinev1.ResolverRef{Resolver: "bundles", Params: pipelinev1.Params{
				{Name: "bundle", Value: *pipelinev1.NewStructuredValues(pinned)},
				{Name: "name", Value: *pipelinev1.NewStructuredValues(name)},
				{Name: "kind", Value: *pipelinev1.NewStructuredValues("task")}}}}
		}
	}
	toBundle(p.Spec.Tasks)
	toBundle(p.Spec.Finally)
	params := a.quickParams(map[string]string{"image": image, "insecure-registry": "true"})
	delete(params, "git-revision")
	pr := a.run(t, "canary-release-prebuilt", params, func(pr *pipelinev1.PipelineRun) {
		pr.Spec.PipelineRef, pr.Spec.PipelineSpec = nil, &p.Spec
	}, tektonrun.Options{})
	if status(pr) != "Succeeded/Succeeded" {
		t.Fatalf("canary-release-prebuilt from the bundle: %s; tasks %v", status(pr), taskStates(t, a, pr))
	}
	trs, _ := tektonrun.TaskRuns(ctx, a.tk, pr)
	for name, tr := range trs {
		if tr.Status.Provenance == nil || tr.Status.Provenance.RefSource == nil || !strings.Contains(tr.Status.Provenance.RefSource.URI, "/canaryline/tasks") {
			t.Errorf("TaskRun of %s: provenance %+v; want the bundle", name, tr.Status.Provenance)
		}
	}
	d, err := a.kube.AppsV1().Deployments(a.ns).Get(ctx, a.name, metav1.GetOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != image {
		t.Errorf("stable Deployment: %v; image %q, want the pushed %s", err, d.Spec.Template.Spec.Containers[0].Image, image)
	}
}
