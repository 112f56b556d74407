package tekton

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	routeclient "github.com/openshift/client-go/route/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/canaryline/canaryline/internal/dev/demo"
	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/devclustertest"
	"github.com/canaryline/canaryline/internal/tools/runner"
	"github.com/canaryline/canaryline/internal/tools/tektonrun"
)

// TestTektonDemo: the demo's two releases as canary-release PipelineRuns on the Tekton controller. v2 goes
// start-build -> wait-build -> shift/verify at each weight (verify-health querying the real Prometheus, which
// scrapes the real sample-app pods) -> promote; v3's first verify fails, the later tasks are skipped and finally
// rolls back: the Route, the stable Deployment and its Service are as before. Results are read back from the
// TaskRuns as Tekton reports them, the evidence workspace (a volumeClaimTemplate bound by the local provisioner)
// holds the reports, and every step ran as a pod on the real node from the step image.
func TestTektonDemo(t *testing.T) {
	devclustertest.RequireTekton(t, cluster)
	ns := devclustertest.Namespace(t, cluster)
	cache, _ := devcluster.DefaultCacheDir()
	root, _ := filepath.Abs("../..")
	k := kubernetes.NewForConfigOrDie(cluster.Config())
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	evidence := t.TempDir()
	releases, err := demo.Run(ctx, demo.Options{Config: cluster.Config(), Namespace: ns, App: "sample-app", Root: root,
		CacheDir: cache, Evidence: evidence, Out: &out, Interval: time.Second, Count: 25, RealNode: cluster.Node(), Tekton: true})
	t.Logf("demo output:\n%s", out.String())
	if err != nil || len(releases) != 2 {
		t.Fatalf("demo: %v, %d releases", err, len(releases))
	}
	v2, v3 := releases[0], releases[1]
	if v2.Decision != "promote" || v2.Verdict != "healthy" || v2.DecidedBy != "verify-3" || v2.Status != "Succeeded" {
		t.Errorf("v2: %+v; want promoted, healthy after all three weights, Succeeded", v2)
	}
	if v3.Decision != "rollback" || v3.Verdict != "unhealthy" || v3.DecidedBy != "verify-1" || v3.Weight != "10" ||
		v3.Tasks["shift-2"] != runner.None || v3.Status != "Failed" || !strings.Contains(v3.Reason, "errors-vs-stable") {
		t.Errorf("v3: %+v; want rolled back, unhealthy from verify-1 at 10%%, shift-2 skipped, Failed", v3)
	}
	// What tkn pipelinerun logs -f shows: task states and the steps' own lines.
	for _, want := range []string{"TaskRun " + "sample-app-release-v2", "[verify-1 : verify-health] ", "[promote : promote-or-rollback] ",
		"[wait-build : wait-build] "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	// The evidence workspace's volume held the reports: copied out, named by the EVIDENCE result.
	for _, r := range releases {
		if r.Report == "" || !strings.HasPrefix(r.Report, evidence) {
			t.Errorf("%s: report %q; want a file under %s", r.Version, r.Report, evidence)
			continue
		}
		if fi, err := os.Stat(r.Report); err != nil || fi.Size() == 0 {
			t.Errorf("%s: report %s: %v", r.Version, r.Report, err)
		}
	}

	// After v3's rollback: the Route all to the stable Service, the stable Deployment on v2's image, no canary.
	routes := routeclient.NewForConfigOrDie(cluster.Config())
	rt, err := routes.RouteV1().Routes(ns).Get(ctx, "sample-app", metav1.GetOptions{})
	if err != nil || rt.Spec.To.Name != "sample-app" || len(rt.Spec.AlternateBackends) != 0 {
		t.Errorf("Route after the rollback: %v %+v; want all traffic to sample-app", err, rt.Spec)
	}
	d, err := k.AppsV1().Deployments(ns).Get(ctx, "sample-app", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != v2.Image {
		t.Errorf("stable Deployment: %v; want v2's image %s", err, v2.Image)
	}
	svc, err := k.CoreV1().Services(ns).Get(ctx, "sample-app", metav1.GetOptions{})
	if err != nil || len(svc.Spec.Selector) != 1 || svc.Spec.Selector["app"] != "sample-app" {
		t.Errorf("stable Service: %v, selector %v; want app=sample-app only", err, svc.Spec.Selector)
	}
	if _, err := k.AppsV1().Deployments(ns).Get(ctx, "sample-app-canary", metav1.GetOptions{}); err == nil {
		t.Error("a canary Deployment is left after the rollback")
	}

	// Every TaskRun ran as a pod on the real node from the step image, and its results are Tekton's.
	c, err := tektonrun.NewClients(cluster.Config())
	if err != nil {
		t.Fatal(err)
	}
	prs, err := c.Tekton.TektonV1().PipelineRuns(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(prs.Items) != 2 {
		t.Fatalf("PipelineRuns: %v, %d; want 2", err, len(prs.Items))
	}
	step := cluster.Node().Images().Steps.Name
	for i := range prs.Items {
		trs, err := tektonrun.TaskRuns(ctx, c, &prs.Items[i])
		if err != nil {
			t.Fatal(err)
		}
		for task, tr := range trs {
			pod, err := k.CoreV1().Pods(ns).Get(ctx, tr.Status.PodName, metav1.GetOptions{})
			if err != nil {
				t.Errorf("%s: pod %q: %v", task, tr.Status.PodName, err)
				continue
			}
			if pod.Spec.NodeName != devcluster.RealNodeName || pod.Spec.Containers[0].Image != step {
				t.Errorf("%s: pod on %q with image %q; want the real node and %s", task, pod.Spec.NodeName, pod.Spec.Containers[0].Image, step)
			}
		}
		if prs.Items[i].Name == v2Run(prs.Items) {
			if got := tektonrun.Results(trs["start-build"])["BUILD_NAME"]; !strings.HasPrefix(got, "sample-app-") {
				t.Errorf("start-build's BUILD_NAME result %q; want a build of sample-app", got)
			}
		}
	}
}

func v2Run(prs []pipelinev1.PipelineRun) string {
	for _, pr := range prs {
		if strings.Contains(pr.Name, "-v2-") {
			return pr.Name
		}
	}
	return ""
}
