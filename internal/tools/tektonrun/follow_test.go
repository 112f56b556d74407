package tektonrun

import (
	"context"
	"strings"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tektonfake "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"knative.dev/pkg/apis"
)

// TestFollowWatches follows a PipelineRun whose TaskRun and end come after Follow started: with a resync far
// longer than the test, only the watches can tell Follow about them.
func TestFollowWatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := Clients{Kube: kubefake.NewSimpleClientset(), Tekton: tektonfake.NewSimpleClientset()}
	runs, tasks := c.Tekton.TektonV1().PipelineRuns("ns"), c.Tekton.TektonV1().TaskRuns("ns")
	pr := &pipelinev1.PipelineRun{ObjectMeta: metav1.ObjectMeta{Name: "pr", Namespace: "ns"}}
	if _, err := runs.Create(ctx, pr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out := &LockedBuffer{}
	type result struct {
		pr  *pipelinev1.PipelineRun
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := Follow(ctx, c, "ns", "pr", Options{Out: out, Resync: time.Hour})
		done <- result{got, err}
	}()
	time.Sleep(200 * time.Millisecond) // Follow has read the PipelineRun and started its watches
	tr := &pipelinev1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: "pr-build", Namespace: "ns",
		Labels: map[string]string{"tekton.dev/pipelineRun": "pr", "tekton.dev/pipelineTask": "build"}}}
	tr.Status.SetCondition(&apis.Condition{Type: apis.ConditionSucceeded, Status: corev1.ConditionTrue, Reason: "Succeeded"})
	if _, err := tasks.Create(ctx, tr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, out, "[build] TaskRun pr-build: Succeeded")
	pr.Status.SetCondition(&apis.Condition{Type: apis.ConditionSucceeded, Status: corev1.ConditionTrue, Reason: "Succeeded", Message: "all done"})
	if _, err := runs.UpdateStatus(ctx, pr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if want := "PipelineRun pr: Succeeded (Succeeded) all done"; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
}

func waitFor(t *testing.T, out *LockedBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(out.String(), want) {
			return
		}
	}
	t.Fatalf("no %q within 10 s:\n%s", want, out.String())
}
