package tekton

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryline/canaryline/internal/dev/demo"
	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/devclustertest"
	"github.com/canaryline/canaryline/internal/tools/tektonrun"
)

// repoRoot is the checkout the Tasks and Pipelines come from.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// app is an application in a namespace of its own, made as the demo makes it (BuildConfig, stable Deployment of
// 3 pods on the KWOK nodes, Service, Route, canaryline's Role and ServiceAccount), with the checkout's Tasks and
// Pipelines installed.
type app struct {
	ns, name string
	kube     kubernetes.Interface
	tk       tektonrun.Clients
}

func newApp(t *testing.T) *app {
	t.Helper()
	a := &app{ns: devclustertest.Namespace(t, cluster), name: "shop", kube: kubernetes.NewForConfigOrDie(cluster.Config())}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := demo.Setup(ctx, demo.Options{Config: cluster.Config(), Namespace: a.ns, App: a.name, Root: repoRoot(t)}, a.kube); err != nil {
		t.Fatal(err)
	}
	var err error
	if a.tk, err = tektonrun.NewClients(cluster.Config()); err != nil {
		t.Fatal(err)
	}
	if err := tektonrun.Install(ctx, a.tk, a.ns, repoRoot(t)); err != nil {
		t.Fatal(err)
	}
	return a
}

// quickParams make a release fast: 1 s analysis windows, 2 measurements, pod checks only (no Prometheus).
func (a *app) quickParams(extra map[string]string) map[string]string {
	p := map[string]string{"app": a.name, "git-revision": strings.Repeat("ab", 20), "interval": "1s", "count": "2", "ready-timeout": "1m"}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

// run runs a PipelineRun of pipeline to its end, logging what it showed.
func (a *app) run(t *testing.T, pipeline string, params map[string]string, edit func(*pipelinev1.PipelineRun), o tektonrun.Options) *pipelinev1.PipelineRun {
	t.Helper()
	pr := demo.PipelineRun(a.ns, pipeline+"-"+randSuffix(), pipeline, params)
	if edit != nil {
		edit(pr)
	}
	var out bytes.Buffer
	if o.Out == nil {
		o.Out = &out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	done, err := tektonrun.Run(ctx, a.tk, pr, o)
	t.Logf("PipelineRun %s:\n%s", pr.Name, out.String())
	if err != nil {
		t.Fatalf("PipelineRun %s: %v", pr.Name, err)
	}
	return done
}

// randSuffix makes PipelineRun names unique, as generateName would.
func randSuffix() string { return rand.String(5) }

// status is a PipelineRun's status and reason.
func status(pr *pipelinev1.PipelineRun) string {
	s, r, _ := tektonrun.PipelineRunStatus(pr)
	return s + "/" + r
}

// taskStates are the PipelineRun's tasks and their states (Succeeded, Failed (...), or absent when skipped).
func taskStates(t *testing.T, a *app, pr *pipelinev1.PipelineRun) map[string]string {
	t.Helper()
	trs, err := tektonrun.TaskRuns(context.Background(), a.tk, pr)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for name, tr := range trs {
		out[name] = tektonrun.TaskRunState(tr)
	}
	return out
}

// applyFile server-side applies the objects of a YAML file in namespace ns, after edit (when not nil).
func applyFile(t *testing.T, ns, path string, edit func(*unstructured.Unstructured)) {
	t.Helper()
	objs, err := devcluster.ReadObjects(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if edit != nil {
			edit(o)
		}
	}
	if err := devcluster.Apply(context.Background(), cluster.Config(), "test", ns, objs); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// waitUntil polls cond every 200 ms until it holds, or fails t after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func kubeOf(c *devcluster.Cluster) kubernetes.Interface {
	return kubernetes.NewForConfigOrDie(c.Config())
}

// waitDefaultSA waits until namespace ns of c has its default ServiceAccount (pods cannot be created before).
func waitDefaultSA(t *testing.T, c *devcluster.Cluster, ns string) {
	t.Helper()
	waitUntil(t, time.Minute, "the default ServiceAccount of "+ns, func() bool {
		_, err := kubeOf(c).CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{})
		return err == nil
	})
}
