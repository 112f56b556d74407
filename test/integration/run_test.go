package integration

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryline/canaryline/internal/bundle"
	"github.com/canaryline/canaryline/internal/devcluster"
	"github.com/canaryline/canaryline/internal/kubeclient/kubeclienttest"
	"github.com/canaryline/canaryline/internal/release"
	"github.com/canaryline/canaryline/internal/runner"
)

// runPipeline runs a Pipeline of pipelines/ with canaryline run's runner, its steps acting as the pipeline's
// ServiceAccount (bound to the shipped Role) on the local control plane.
func runPipeline(t *testing.T, a *app, file string, params map[string]string) (*runner.Summary, string, error) {
	t.Helper()
	var out bytes.Buffer
	params["app"], params["namespace"] = "shop", a.ns
	sum, err := runner.Run(context.Background(), runner.Options{Pipeline: filepath.Join("../../pipelines", file), TasksDir: "../../tasks",
		Params: params, Steps: stepsBinary(t), Env: []string{"KUBECONFIG=" + a.kubeconfig, "PATH=/usr/bin:/bin", "HOME=" + t.TempDir()},
		Namespace: a.ns, Out: &out})
	if sum != nil {
		t.Logf("run log:\n%s\n%s", out.String(), sum.Table())
	}
	return sum, out.String(), err
}

func status(sum *runner.Summary, task string) string {
	for _, tr := range sum.Tasks {
		if tr.Name == task {
			return tr.Status
		}
	}
	return "absent"
}

// appWithBuildConfig is a stable application with a Route and a BuildConfig of the same name.
func appWithBuildConfig(t *testing.T, replicas int32) *app {
	t.Helper()
	a := newApp(t, "route", replicas)
	if _, err := buildclient.NewForConfigOrDie(cluster.Config()).BuildV1().BuildConfigs(a.ns).Create(context.Background(),
		newBuildConfig("shop", map[string]string{devcluster.SimLineInterval: "5ms"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRunCanaryReleasePromotes(t *testing.T) {
	t.Parallel()
	a := appWithBuildConfig(t, 2)
	sum, _, err := runPipeline(t, a, "canary-release-1.yaml", map[string]string{"git-revision": commitA, "interval": "1s", "count": "2"})
	if err != nil || sum.Status != runner.Succeeded {
		t.Fatalf("run: %v (%v)", sum.Status, err)
	}
	for task, want := range map[string]string{"start-build": "Succeeded", "wait-build": "Succeeded", "shift-1": "Succeeded",
		"verify-1": "Succeeded", "promote": "Succeeded", "end-release": "Succeeded"} {
		if got := status(sum, task); got != want {
			t.Errorf("task %s: %s; want %s", task, got, want)
		}
	}
	img := sum.Results["image-url"]
	st, _ := a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), "shop", metav1.GetOptions{})
	if !strings.Contains(img, "@sha256:") || st.Spec.Template.Spec.Containers[0].Image != img || sum.Results["verdict"] != "healthy" || sum.Results["decision"] != "promote" {
		t.Errorf("results %v; stable image %s", sum.Results, st.Spec.Template.Spec.Containers[0].Image)
	}
	if a.exists("deployment", "shop-canary") {
		t.Error("the canary is still there")
	}
}

// TestRunFailureIsRolledBackByFinally: an analysis that fails mid-run stops the pipeline; the finally task, with
// $(tasks.status) Failed, rolls the release back.
func TestRunFailureIsRolledBackByFinally(t *testing.T) {
	t.Parallel()
	a := appWithBuildConfig(t, 2)
	sum, _, err := runPipeline(t, a, "canary-release.yaml", map[string]string{"git-revision": commitA, "interval": "1s", "count": "3",
		"http-urls": "http://127.0.0.1:1/", "failure-limit": "0"})
	if err == nil || sum.Status != runner.Failed {
		t.Fatalf("run: %v, %v; want a failed run", sum.Status, err)
	}
	for task, want := range map[string]string{"shift-1": "Succeeded", "verify-1": "Failed", "shift-2": "None", "promote": "None", "end-release": "Succeeded"} {
		if got := status(sum, task); got != want {
			t.Errorf("task %s: %s; want %s", task, got, want)
		}
	}
	st, _ := a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), "shop", metav1.GetOptions{})
	if st.Spec.Template.Spec.Containers[0].Image != stableImage || a.exists("deployment", "shop-canary") {
		t.Errorf("after the rollback: stable image %s, canary exists %v", st.Spec.Template.Spec.Containers[0].Image, a.exists("deployment", "shop-canary"))
	}
	if last := a.lease().Annotations["canaryline.dev/last-release"]; !strings.Contains(last, `"decision":"rollback"`) || !strings.Contains(last, "ended with Failed") {
		t.Errorf("last release %s", last)
	}
}

func TestRunBlueGreenPromotes(t *testing.T) {
	t.Parallel()
	a := appWithBuildConfig(t, 2)
	sum, _, err := runPipeline(t, a, "blue-green.yaml", map[string]string{"git-revision": commitA, "interval": "1s", "count": "2"})
	if err != nil || sum.Status != runner.Succeeded || status(sum, "switch-to-green") != "Succeeded" {
		t.Fatalf("run: %v (%v)", sum.Status, err)
	}
	st, _ := a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), "shop", metav1.GetOptions{})
	if st.Spec.Template.Spec.Containers[0].Image != sum.Results["image-url"] {
		t.Errorf("stable image %s; want %s", st.Spec.Template.Spec.Containers[0].Image, sum.Results["image-url"])
	}
}

// TestRunWhenAndUnsupported: a task whose when expression is false is skipped (None) and a task using its results
// is skipped too, as in Tekton; a feature the runner does not have is a clear error, not a skip.
func TestRunWhenAndUnsupported(t *testing.T) {
	t.Parallel()
	devcluster.Require(t, cluster)
	dir := t.TempDir()
	pipeline := `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: when-test}
spec:
  params:
    - {name: go, type: string, default: "no"}
  tasks:
    - name: guarded
      when: [{input: "$(params.go)", operator: in, values: ["yes"]}]
      taskRef: {name: promote-or-rollback}
      params: [{name: APP, value: shop}, {name: PIPELINE_STATUS, value: Succeeded}]
    - name: uses-result
      runAfter: [guarded]
      taskRef: {name: promote-or-rollback}
      params: [{name: APP, value: shop}, {name: PIPELINE_STATUS, value: "$(tasks.guarded.results.DECISION)"}]
`
	_ = os.WriteFile(filepath.Join(dir, "when.yaml"), []byte(pipeline), 0o644)
	sum, err := runner.Run(context.Background(), runner.Options{Pipeline: filepath.Join(dir, "when.yaml"), TasksDir: "../../tasks",
		Steps: stepsBinary(t), Out: &bytes.Buffer{}})
	if err != nil || status(sum, "guarded") != "None" || status(sum, "uses-result") != "None" || sum.Status != "Completed" {
		t.Errorf("run: %v, guarded %s, uses-result %s, status %s", err, status(sum, "guarded"), status(sum, "uses-result"), sum.Status)
	}
	matrix := `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: matrix-test}
spec:
  tasks:
    - name: fan-out
      taskRef: {name: promote-or-rollback}
      matrix: {params: [{name: APP, value: [shop, cart]}]}
      params: [{name: PIPELINE_STATUS, value: Succeeded}]
`
	_ = os.WriteFile(filepath.Join(dir, "matrix.yaml"), []byte(matrix), 0o644)
	_, err = runner.Run(context.Background(), runner.Options{Pipeline: filepath.Join(dir, "matrix.yaml"), TasksDir: "../../tasks", Steps: stepsBinary(t), Out: &bytes.Buffer{}})
	var unsupported *runner.UnsupportedError
	if !errors.As(err, &unsupported) || !strings.Contains(err.Error(), "matrix") {
		t.Errorf("matrix: %v; want an UnsupportedError naming it", err)
	}
}

// TestRunInterruptedRollsBack: an interrupted run (Ctrl-C) stops its running step, and the finally task still
// runs and rolls the release back. canaryline status reads the outcome.
func TestRunInterruptedRollsBack(t *testing.T) {
	t.Parallel()
	a := appWithBuildConfig(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // interrupt while verify-1 measures
		for ctx.Err() == nil {
			if a.exists("deployment", "shop-canary") {
				time.Sleep(1500 * time.Millisecond)
				cancel()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	var out bytes.Buffer
	sum, err := runner.Run(ctx, runner.Options{Pipeline: "../../pipelines/canary-release.yaml", TasksDir: "../../tasks",
		Params: map[string]string{"app": "shop", "namespace": a.ns, "git-revision": commitA, "interval": "1s", "count": "20"},
		Steps:  stepsBinary(t), Env: []string{"KUBECONFIG=" + a.kubeconfig, "PATH=/usr/bin:/bin", "HOME=" + t.TempDir()},
		Namespace: a.ns, Out: &out})
	t.Logf("%s", out.String())
	if err == nil || sum.Status != runner.Failed || status(sum, "end-release") != runner.Succeeded {
		t.Fatalf("interrupted run: %v, status %v, end-release %s", err, sum.Status, status(sum, "end-release"))
	}
	if a.exists("deployment", "shop-canary") {
		t.Error("the canary is still there after the interrupted run")
	}
	s, err := release.ReadStatus(context.Background(), kubeclienttest.Wrap(kubernetes.NewForConfigOrDie(cluster.Config())), a.ns, "shop")
	if err != nil || s.Last == nil || s.Last.Decision != "rollback" || s.Holder != "" || s.CanaryImage != "" || s.StableImage != stableImage {
		t.Errorf("status after the interrupted run: %+v, %v", s, err)
	}
	var w bytes.Buffer
	s.Write(&w)
	if !strings.Contains(w.String(), "lock          free") || !strings.Contains(w.String(), ": rollback at") {
		t.Errorf("status output:\n%s", w.String())
	}
}

// TestRunTasksFromABundle: the Tasks come from a Tekton bundle in a real registry.
func TestRunTasksFromABundle(t *testing.T) {
	t.Parallel()
	devcluster.Require(t, cluster)
	reg := httptest.NewServer(registry.New())
	defer reg.Close()
	rs, err := bundle.Load("../..")
	if err != nil {
		t.Fatal(err)
	}
	img, err := bundle.Image(rs)
	if err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimPrefix(reg.URL, "http://") + "/canaryline/bundle:test"
	if _, err := bundle.Push(context.Background(), img, ref, true); err != nil {
		t.Fatal(err)
	}
	a := appWithBuildConfig(t, 2)
	var out bytes.Buffer
	sum, err := runner.Run(context.Background(), runner.Options{Pipeline: "../../pipelines/canary-release-1.yaml", Bundle: ref, Insecure: true,
		Params: map[string]string{"app": "shop", "namespace": a.ns, "git-revision": commitA, "interval": "1s", "count": "1"},
		Steps:  stepsBinary(t), Env: []string{"KUBECONFIG=" + a.kubeconfig, "PATH=/usr/bin:/bin", "HOME=" + t.TempDir()},
		Namespace: a.ns, Out: &out})
	if err != nil || sum.Status != runner.Succeeded || sum.Results["decision"] != "promote" {
		t.Fatalf("run with the bundle's Tasks: %v, %v\n%s", sum, err, out.String())
	}
	if _, err := runner.Run(context.Background(), runner.Options{Pipeline: "../../pipelines/canary-release-1.yaml", Bundle: ref + "-missing",
		Insecure: true, Steps: stepsBinary(t), Out: &out}); err == nil {
		t.Error("a missing bundle was not an error")
	}
}
