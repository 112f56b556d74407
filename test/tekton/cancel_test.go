package tekton

import (
	"context"
	"strings"
	"testing"
	"time"

	buildv1 "github.com/openshift/api/build/v1"
	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	routeclient "github.com/openshift/client-go/route/clientset/versioned"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/devclustertest"
	"github.com/canaryline/canaryline/internal/tools/tektonrun"
)

// untilStepRuns returns a channel closed once task's TaskRun of a PipelineRun named prefix* has a running step.
func (a *app) untilStepRuns(t *testing.T, task string) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		deadline := time.Now().Add(4 * time.Minute)
		for time.Now().Before(deadline) {
			trs, err := a.tk.Tekton.TektonV1().TaskRuns(a.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "tekton.dev/pipelineTask=" + task})
			if err == nil {
				for _, tr := range trs.Items {
					for _, st := range tr.Status.Steps {
						if st.Running != nil {
							time.Sleep(2 * time.Second) // well into the step
							return
						}
					}
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Errorf("%s's step never ran", task)
	}()
	return ch
}

// rolledBack waits until the release is put back by someone: the Route all to the stable Service, no canary
// Deployment.
func (a *app) rolledBack(t *testing.T, what string) {
	t.Helper()
	routes := routeclient.NewForConfigOrDie(cluster.Config()).RouteV1().Routes(a.ns)
	waitUntil(t, 90*time.Second, what+": the Route all to stable and the canary removed", func() bool {
		rt, err := routes.Get(context.Background(), a.name, metav1.GetOptions{})
		if err != nil || rt.Spec.To.Name != a.name || len(rt.Spec.AlternateBackends) != 0 {
			return false
		}
		_, err = a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), a.name+"-canary", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}

// TestTektonCancellationAndTimeout: Tekton runs no finally task after `spec.status: Cancelled` or when
// timeouts.pipeline elapses; the step it stops rolls the release back itself, and a stopped wait-build cancels
// the build it follows.
func TestTektonCancellationAndTimeout(t *testing.T) {
	devclustertest.RequireTekton(t, cluster)
	a := newApp(t)
	long := map[string]string{"interval": "1s", "count": "120"} // verify-1 takes two minutes

	t.Run("Cancelled while verifying", func(t *testing.T) {
		before := a.snapshot(t)
		abort := make(chan struct{})
		started := a.untilStepRuns(t, "verify-1")
		go func() { <-started; close(abort) }()
		pr := a.run(t, "canary-release", a.quickParams(long), nil, tektonrun.Options{Abort: abort})
		if _, reason, _ := tektonrun.PipelineRunStatus(pr); reason != "Cancelled" {
			t.Fatalf("PipelineRun: %s; want Cancelled", status(pr))
		}
		if st := taskStates(t, a, pr); st["end-release"] != "" {
			t.Errorf("finally ran after Cancelled: %v", st)
		}
		a.rolledBack(t, "after Cancelled")
		if after := a.snapshot(t); after.selector["app"] != before.selector["app"] || len(after.selector) != len(before.selector) {
			t.Errorf("stable Service selector %v; want %v", after.selector, before.selector)
		}
	})

	t.Run("pipeline timeout while verifying", func(t *testing.T) {
		abort := make(chan struct{}) // never closed: the timeout ends it
		pr := a.run(t, "canary-release", a.quickParams(long), func(pr *pipelinev1.PipelineRun) {
			// Long enough for the build and the first shift on a loaded machine (45 s once elapsed while verify-1's
			// pod was still starting: then no step runs to roll back), short of verify-1's two minutes.
			pr.Spec.Timeouts = &pipelinev1.TimeoutFields{Pipeline: &metav1.Duration{Duration: 90 * time.Second}}
		}, tektonrun.Options{Abort: abort})
		if s, reason, _ := tektonrun.PipelineRunStatus(pr); s != "Failed" || !strings.Contains(reason, "Timeout") {
			t.Fatalf("PipelineRun: %s; want Failed, timed out", status(pr))
		}
		a.rolledBack(t, "after the pipeline timeout")
	})

	t.Run("Cancelled while building cancels the build", func(t *testing.T) {
		builds := buildclient.NewForConfigOrDie(cluster.Config()).BuildV1()
		setOutcome := func(v string) {
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				bc, err := builds.BuildConfigs(a.ns).Get(context.Background(), a.name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if v == "" {
					delete(bc.Annotations, devcluster.SimOutcome)
				} else {
					bc.Annotations[devcluster.SimOutcome] = v
				}
				_, err = builds.BuildConfigs(a.ns).Update(context.Background(), bc, metav1.UpdateOptions{})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		setOutcome("Hang")
		defer setOutcome("")
		abort := make(chan struct{})
		started := a.untilStepRuns(t, "wait-build")
		go func() { <-started; close(abort) }()
		pr := a.run(t, "canary-release", a.quickParams(map[string]string{"git-revision": strings.Repeat("ef", 20)}), nil,
			tektonrun.Options{Abort: abort})
		if _, reason, _ := tektonrun.PipelineRunStatus(pr); reason != "Cancelled" {
			t.Fatalf("PipelineRun: %s; want Cancelled", status(pr))
		}
		trs, _ := tektonrun.TaskRuns(context.Background(), a.tk, pr)
		name := tektonrun.Results(trs["start-build"])["BUILD_NAME"]
		waitUntil(t, time.Minute, "build "+name+" cancelled", func() bool {
			b, err := builds.Builds(a.ns).Get(context.Background(), name, metav1.GetOptions{})
			return err == nil && b.Status.Phase == buildv1.BuildPhaseCancelled
		})
	})
}
