package tekton

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/devclustertest"
	"github.com/canaryline/canaryline/internal/tools/tektonrun"
)

// TestTektonWebhooksDefaultValidateConvert: Tekton's admission webhook runs and the API server calls it.
// Defaulting: a Pipeline's untyped param comes back typed string. Validation: a Task with an invalid step is
// refused at create, naming the webhook. Conversion: a PipelineRun written as v1beta1 with
// spec.serviceAccountName reads back as v1 with spec.taskRunTemplate.serviceAccountName (the webhook converts;
// with conversion None the field would be lost).
func TestTektonWebhooksDefaultValidateConvert(t *testing.T) {
	devclustertest.RequireTekton(t, cluster)
	ns := devclustertest.Namespace(t, cluster)
	ctx := context.Background()
	tk, err := tektonrun.NewClients(cluster.Config())
	if err != nil {
		t.Fatal(err)
	}
	p := &pipelinev1.Pipeline{ObjectMeta: metav1.ObjectMeta{Name: "defaulted"}, Spec: pipelinev1.PipelineSpec{
		Params: pipelinev1.ParamSpecs{{Name: "app"}},
		Tasks: []pipelinev1.PipelineTask{{Name: "one", TaskSpec: &pipelinev1.EmbeddedTask{TaskSpec: pipelinev1.TaskSpec{
			Steps: []pipelinev1.Step{{Name: "nop", Image: devcluster.TektonImage("nop"), Command: []string{"/ko-app/nop"}}}}}}}}}
	got, err := tk.Tekton.TektonV1().Pipelines(ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Params[0].Type != pipelinev1.ParamTypeString {
		t.Errorf("the param's type after create: %q; want string (set by the defaulting webhook)", got.Spec.Params[0].Type)
	}

	bad := &pipelinev1.Task{ObjectMeta: metav1.ObjectMeta{Name: "invalid"}, Spec: pipelinev1.TaskSpec{
		Steps: []pipelinev1.Step{{Name: "Not_A_DNS_Label", Image: devcluster.TektonImage("nop")}}}}
	_, err = tk.Tekton.TektonV1().Tasks(ns).Create(ctx, bad, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "webhook") {
		t.Errorf("creating a Task with an invalid step name: %v; want refused by the validating webhook", err)
	}

	dyn := dynamic.NewForConfigOrDie(cluster.Config())
	beta := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "tekton.dev/v1beta1", "kind": "PipelineRun",
		"metadata": map[string]any{"name": "converted"}, "spec": map[string]any{"pipelineRef": map[string]any{"name": "defaulted"},
			"serviceAccountName": "canaryline", "status": "PipelineRunPending"}}}
	prs := schema.GroupVersionResource{Group: "tekton.dev", Version: "v1beta1", Resource: "pipelineruns"}
	if _, err := dyn.Resource(prs).Namespace(ns).Create(ctx, beta, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create a v1beta1 PipelineRun: %v", err)
	}
	v1pr, err := tk.Tekton.TektonV1().PipelineRuns(ns).Get(ctx, "converted", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v1pr.Spec.TaskRunTemplate.ServiceAccountName != "canaryline" {
		t.Errorf("the v1beta1 PipelineRun read as v1: taskRunTemplate %+v; want serviceAccountName canaryline (converted)", v1pr.Spec.TaskRunTemplate)
	}
}

// nopRun is a one-task PipelineRun whose step runs Tekton's nop image.
func nopRun(ns string) *pipelinev1.PipelineRun {
	return &pipelinev1.PipelineRun{ObjectMeta: metav1.ObjectMeta{GenerateName: "nop-", Namespace: ns}, Spec: pipelinev1.PipelineRunSpec{
		PipelineSpec: &pipelinev1.PipelineSpec{Tasks: []pipelinev1.PipelineTask{{Name: "one", TaskSpec: &pipelinev1.EmbeddedTask{
			TaskSpec: pipelinev1.TaskSpec{Steps: []pipelinev1.Step{{Name: "nop", Image: devcluster.TektonImage("nop"),
				Command: []string{"/ko-app/nop"}}}}}}}}}}
}

// TestTektonTwoClustersSideBySide: a second cluster with Tekton starts while the tests' one runs (every listener
// on a free port), and a PipelineRun succeeds on each at the same time.
func TestTektonTwoClustersSideBySide(t *testing.T) {
	devclustertest.RequireTekton(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cache, _ := devcluster.DefaultCacheDir()
	second, err := devcluster.Start(ctx, devcluster.Options{CacheDir: cache, RunDir: t.TempDir(), Nodes: 1, Tekton: true,
		RepoRoot: repoRoot(t), Log: testWriter{t}})
	if err != nil {
		t.Fatalf("a second cluster with Tekton: %v", err)
	}
	defer second.Stop()
	var wg sync.WaitGroup
	for i, c := range []*devcluster.Cluster{cluster, second} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ns := "side-by-side"
			if i == 0 {
				ns = devclustertest.Namespace(t, cluster)
			} else if _, err := kubeOf(c).CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
				metav1.CreateOptions{}); err != nil {
				t.Error(err)
				return
			}
			tk, err := tektonrun.NewClients(c.Config())
			if err != nil {
				t.Error(err)
				return
			}
			waitDefaultSA(t, c, ns)
			pr, err := tektonrun.Run(ctx, tk, nopRun(ns), tektonrun.Options{})
			if err != nil {
				t.Errorf("cluster %d: %v", i+1, err)
				return
			}
			if status(pr) != "Succeeded/Succeeded" {
				t.Errorf("cluster %d: PipelineRun %s: %s", i+1, pr.Name, status(pr))
			}
		}()
	}
	wg.Wait()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if os.Getenv("CANARYLINE_TEST_VERBOSE") != "" {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
