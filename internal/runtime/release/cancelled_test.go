package release

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	routev1 "github.com/openshift/api/route/v1"
	routefake "github.com/openshift/client-go/route/clientset/versioned/fake"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient/kubeclienttest"
	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/step"
	"github.com/canaryline/canaryline/internal/runtime/traffic"
)

func TestNoFinallyAfter(t *testing.T) {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	dur := func(d time.Duration) *time.Duration { return &d }
	for _, tc := range []struct {
		name    string
		pr      pipelineRun
		now     time.Time
		want    bool
		because string // in the reason
	}{
		{"Cancelled", pipelineRun{Status: "Cancelled", Timeout: dur(time.Hour), Start: start}, start.Add(time.Minute), true, "was cancelled"},
		{"v1beta1's PipelineRunCancelled", pipelineRun{Status: "PipelineRunCancelled", Start: start}, start.Add(time.Minute), true, "was cancelled"},
		{"CancelledRunFinally", pipelineRun{Status: "CancelledRunFinally", Timeout: dur(time.Hour), Start: start}, start.Add(time.Minute), false, "CancelledRunFinally"},
		{"StoppedRunFinally", pipelineRun{Status: "StoppedRunFinally", Timeout: dur(time.Hour), Start: start}, start.Add(time.Minute), false, "StoppedRunFinally"},
		// Stopped past the deadline, it is the timeout that stopped the step: finally does not run.
		{"StoppedRunFinally past timeouts.pipeline", pipelineRun{Status: "StoppedRunFinally", Timeout: dur(time.Hour), Start: start}, start.Add(2 * time.Hour), true, "timed out"},
		{"timeout elapsed", pipelineRun{Timeout: dur(30 * time.Minute), Start: start}, start.Add(30 * time.Minute), true, "timed out (timeouts.pipeline 30m0s)"},
		{"timeout elapsed by the controller's clock, ours 2s behind", pipelineRun{Timeout: dur(30 * time.Minute), Start: start}, start.Add(30*time.Minute - 2*time.Second), true, "timed out"},
		{"timeout not elapsed (timeouts.tasks, the task's own timeout, an eviction)", pipelineRun{Timeout: dur(time.Hour), Start: start}, start.Add(40 * time.Minute), false, "neither cancelled nor timed out"},
		{`timeout "0" is none`, pipelineRun{Timeout: dur(0), Start: start}, start.Add(48 * time.Hour), false, "no timeout"},
		{"absent timeout is Tekton's default 60m: elapsed", pipelineRun{Start: start}, start.Add(61 * time.Minute), true, "timeouts.pipeline 1h0m0s"},
		{"absent timeout is Tekton's default 60m: not elapsed", pipelineRun{Start: start}, start.Add(50 * time.Minute), false, "neither"},
		{"no start time", pipelineRun{Timeout: dur(time.Minute)}, start, false, "no start time"},
		{"being deleted", pipelineRun{Status: "CancelledRunFinally", Deleting: true, Start: start}, start.Add(time.Minute), true, "being deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.pr.Name = "shop-run-1"
			got, why := noFinallyAfter(&tc.pr, tc.now)
			if got != tc.want || !strings.Contains(why, tc.because) || !strings.Contains(why, "shop-run-1") {
				t.Errorf("noFinallyAfter = %v, %q; want %v, a reason naming the PipelineRun and saying %q", got, why, tc.want, tc.because)
			}
		})
	}
}

func TestParsePipelineRun(t *testing.T) {
	u := pipelineRunObject("run-1", "Cancelled", "1h30m0s", "2025-03-01T12:00:00Z")
	pr, err := parsePipelineRun(u)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Name != "run-1" || pr.Status != "Cancelled" || pr.Timeout == nil || *pr.Timeout != 90*time.Minute ||
		!pr.Start.Equal(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) || pr.Deleting {
		t.Errorf("parsed %+v", pr)
	}
	unstructured.RemoveNestedField(u.Object, "spec", "timeouts")
	if pr, err := parsePipelineRun(u); err != nil || pr.Timeout != nil {
		t.Errorf("without timeouts: %+v, %v; want no timeout", pr, err)
	}
	_ = unstructured.SetNestedField(u.Object, "soon", "spec", "timeouts", "pipeline")
	if _, err := parsePipelineRun(u); err == nil || !strings.Contains(err.Error(), "timeouts.pipeline") {
		t.Errorf("a bad timeout: %v; want an error naming timeouts.pipeline", err)
	}
}

func TestCheckTaskRun(t *testing.T) {
	if err := CheckTaskRun(""); err != nil {
		t.Errorf("empty: %v", err)
	}
	if err := CheckTaskRun("shop-run-x7k2p-shift-1"); err != nil {
		t.Errorf("a TaskRun name: %v", err)
	}
	err := CheckTaskRun("$(context.taskRun.name)")
	if step.ExitCode(err) != step.ExitInvalid || !strings.Contains(err.Error(), "TASKRUN_NAME") {
		t.Errorf("an unsubstituted variable: %v; want bad input naming TASKRUN_NAME", err)
	}
}

// pipelineRunObject is a tekton.dev/v1 PipelineRun in namespace ci; an empty field is left out.
func pipelineRunObject(name, status, timeout, start string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
		"metadata": map[string]any{"name": name, "namespace": "ci"}, "spec": map[string]any{}}}
	if status != "" {
		_ = unstructured.SetNestedField(u.Object, status, "spec", "status")
	}
	if timeout != "" {
		_ = unstructured.SetNestedField(u.Object, timeout, "spec", "timeouts", "pipeline")
	}
	if start != "" {
		_ = unstructured.SetNestedField(u.Object, start, "status", "startTime")
	}
	return u
}

// taskRunObject is a tekton.dev/v1 TaskRun in namespace ci of PipelineRun pipelineRun ("": none).
func taskRunObject(name, pipelineRun string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "tekton.dev/v1", "kind": "TaskRun",
		"metadata": map[string]any{"name": name, "namespace": "ci"}}}
	if pipelineRun != "" {
		u.SetLabels(map[string]string{pipelineRunLabel: pipelineRun, "tekton.dev/pipelineTask": "shift-2"})
	}
	return u
}

// releaseInProgress is release run-1 of shop in namespace team at 10%, as shift-canary leaves it: recorded on the
// Lease, the stable Service pinned, the canary Deployment and Service up, the Route sending them traffic.
func releaseInProgress(t *testing.T) (*kubefake.Clientset, *routefake.Clientset) {
	t.Helper()
	ctx := context.Background()
	const id, ns = "run-1", "team"
	st := &State{ID: id, App: "shop", Image: "quay.io/team/shop@sha256:" + strings.Repeat("b", 64), Container: "shop",
		StableImage: "quay.io/team/shop:v1", Router: traffic.KindRoute, RouterName: "shop",
		RouterSnapshot: `{"to":{"kind":"Service","name":"shop","weight":100}}`, StableService: "shop",
		StableSelector: map[string]string{"app": "shop"}, Names: Names{CanaryDeployment: "shop-canary", CanaryService: "shop-canary"},
		Weight: 10, Phase: PhaseShifting, StartedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	mark := func(track string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: "shop-" + track, Namespace: ns, Labels: map[string]string{naming.TrackLabel: track, ReleaseLabel: id},
			Annotations: releaseAnnotations(st)}
	}
	kube := versioned(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns, Annotations: releaseAnnotations(st)},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "shop", naming.PodTemplateHashLabel: "5d8f7c"}}},
		&appsv1.Deployment{ObjectMeta: mark(naming.TrackCanary)},
		&corev1.Service{ObjectMeta: mark(naming.TrackCanary)},
	)
	lk := newLock(kubeclienttest.Wrap(kube).CoordinationV1(), ns, "shop", id, time.Minute, quiet)
	if _, err := lk.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lk.save(ctx, st); err != nil {
		t.Fatal(err)
	}
	stable, canary := int32(256), int32(28)
	routeAnn := routerAnnotations("shop", st)
	routeAnn[traffic.DisableCookiesAnnotation] = "true"
	rc := routefake.NewSimpleClientset(&routev1.Route{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns, Annotations: routeAnn},
		Spec: routev1.RouteSpec{To: routev1.RouteTargetReference{Kind: "Service", Name: "shop", Weight: &stable},
			AlternateBackends: []routev1.RouteTargetReference{{Kind: "Service", Name: "shop-canary", Weight: &canary}}}})
	kube.ClearActions()
	return kube, rc
}

// kubeWrites counts the create, update, patch and delete requests the fakes received.
func kubeWrites(kube *kubefake.Clientset, rc *routefake.Clientset) int {
	n := 0
	for _, a := range append(kube.Actions(), rc.Actions()...) {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete":
			n++
		}
	}
	return n
}

// TestAfterStop: a step stopped in a PipelineRun cancelled with Cancelled rolls its release back (the Route all
// stable again, the canary removed, the stable Service unpinned, the Lease recording the rollback), and doing it
// again changes nothing; with CancelledRunFinally, with a TaskRun outside Tekton, or with no release in progress,
// nothing changes.
func TestAfterStop(t *testing.T) {
	ctx := context.Background()
	started := time.Now().Add(-10 * time.Minute).UTC().Format(time.RFC3339)
	stopped := Stopped{TaskRun: "run-1-shift-2", Target: Target{App: "shop", Namespace: "team", ReleaseID: "run-1"}}
	clientsFor := func(kube *kubefake.Clientset, rc *routefake.Clientset, objs ...runtime.Object) Clients {
		return Clients{Kube: kubeclienttest.Wrap(kube), Route: kubeclienttest.WrapRoute(rc.RouteV1()),
			Dynamic: dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), objs...)}
	}
	logged := func() (*slog.Logger, *bytes.Buffer) {
		var b bytes.Buffer
		return slog.New(slog.NewTextHandler(&b, nil)), &b
	}

	t.Run("Cancelled rolls back", func(t *testing.T) {
		kube, rc := releaseInProgress(t)
		c := clientsFor(kube, rc, taskRunObject("run-1-shift-2", "run-1"), pipelineRunObject("run-1", "Cancelled", "1h0m0s", started))
		log, out := logged()
		if err := afterStop(ctx, stopped, "ci", c, log); err != nil {
			t.Fatalf("afterStop: %v\n%s", err, out)
		}
		if !strings.Contains(out.String(), "PipelineRun run-1 was cancelled") || !strings.Contains(out.String(), "rolling back release run-1") {
			t.Errorf("the log does not say why it rolls back:\n%s", out)
		}
		rt, err := rc.RouteV1().Routes("team").Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rt.Spec.AlternateBackends) != 0 || rt.Spec.To.Weight == nil || *rt.Spec.To.Weight != 100 {
			t.Errorf("Route to %v, alternates %v; want all traffic to shop at its weight from before the release (100)", rt.Spec.To, rt.Spec.AlternateBackends)
		}
		if _, ok := rt.Annotations[traffic.DisableCookiesAnnotation]; ok {
			t.Errorf("Route annotations %v: the release's cookie setting is still there", rt.Annotations)
		}
		if _, err := kube.AppsV1().Deployments("team").Get(ctx, "shop-canary", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("canary Deployment: %v; want it removed", err)
		}
		if _, err := kube.CoreV1().Services("team").Get(ctx, "shop-canary", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("canary Service: %v; want it removed", err)
		}
		if svc, err := kube.CoreV1().Services("team").Get(ctx, "shop", metav1.GetOptions{}); err != nil || !maps.Equal(svc.Spec.Selector, map[string]string{"app": "shop"}) {
			t.Errorf("stable Service selector %v, %v; want {app: shop} again", svc.Spec.Selector, err)
		}
		lease, st, last, err := newLock(kubeclienttest.Wrap(kube).CoordinationV1(), "team", "shop", "", time.Minute, quiet).read(ctx)
		if err != nil || st != nil || last == nil || last.ID != "run-1" || last.Decision != DecisionRollback ||
			!strings.Contains(last.Reason, "PipelineRun run-1 was cancelled") || *lease.Spec.HolderIdentity != "" {
			t.Fatalf("Lease: state %+v, last %+v, %v; want release run-1 ended by a rollback naming the cancellation, the lock released", st, last, err)
		}

		// finally ran anyway, or the step was stopped twice: nothing more to do.
		kube.ClearActions()
		rc.ClearActions()
		if err := afterStop(ctx, stopped, "ci", c, quiet); err != nil {
			t.Fatalf("afterStop again: %v", err)
		}
		if n := kubeWrites(kube, rc); n != 0 {
			t.Errorf("afterStop again made %d writes; want none", n)
		}
	})

	t.Run("timed out rolls back", func(t *testing.T) {
		kube, rc := releaseInProgress(t)
		c := clientsFor(kube, rc, taskRunObject("run-1-shift-2", "run-1"), pipelineRunObject("run-1", "", "5m0s", started))
		if err := afterStop(ctx, stopped, "ci", c, quiet); err != nil {
			t.Fatal(err)
		}
		if _, err := kube.AppsV1().Deployments("team").Get(ctx, "shop-canary", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("canary Deployment: %v; want it removed", err)
		}
	})

	for _, tc := range []struct {
		name string
		objs []runtime.Object
		log  string
	}{
		{"CancelledRunFinally leaves it to finally", []runtime.Object{taskRunObject("run-1-shift-2", "run-1"),
			pipelineRunObject("run-1", "CancelledRunFinally", "1h0m0s", started)}, "finally tasks end the release; nothing done"},
		{"timeouts.pipeline not elapsed leaves it to finally", []runtime.Object{taskRunObject("run-1-shift-2", "run-1"),
			pipelineRunObject("run-1", "", "1h0m0s", started)}, "neither cancelled nor timed out"},
		{"a TaskRun that is not found (not on Tekton)", nil, "not found or not part of a PipelineRun"},
		{"a TaskRun of no PipelineRun", []runtime.Object{taskRunObject("run-1-shift-2", "")}, "not part of a PipelineRun"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube, rc := releaseInProgress(t)
			log, out := logged()
			if err := afterStop(ctx, stopped, "ci", clientsFor(kube, rc, tc.objs...), log); err != nil {
				t.Fatal(err)
			}
			if n := kubeWrites(kube, rc); n != 0 {
				t.Errorf("%d writes; want none", n)
			}
			if _, err := kube.AppsV1().Deployments("team").Get(ctx, "shop-canary", metav1.GetOptions{}); err != nil {
				t.Errorf("canary Deployment: %v; want it kept", err)
			}
			if !strings.Contains(out.String(), tc.log) || strings.Count(strings.TrimSpace(out.String()), "\n") != 0 {
				t.Errorf("log:\n%s\nwant one line saying %q", out, tc.log)
			}
		})
	}

	t.Run("Cancelled before the release started changes nothing", func(t *testing.T) {
		kube, rc := versioned(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}), routefake.NewSimpleClientset()
		c := clientsFor(kube, rc, taskRunObject("run-1-shift-2", "run-1"), pipelineRunObject("run-1", "Cancelled", "1h0m0s", started))
		if err := afterStop(ctx, stopped, "ci", c, quiet); err != nil {
			t.Fatal(err)
		}
		if n := kubeWrites(kube, rc); n != 0 {
			t.Errorf("%d writes; want none", n)
		}
	})

	t.Run("no TaskRun: not on Tekton", func(t *testing.T) {
		kube, rc := releaseInProgress(t)
		c := clientsFor(kube, rc, pipelineRunObject("run-1", "Cancelled", "1h0m0s", started))
		if err := afterStop(ctx, Stopped{Target: stopped.Target}, "ci", c, quiet); err != nil || kubeWrites(kube, rc) != 0 {
			t.Errorf("afterStop without TASKRUN_NAME: %v, %d writes; want nothing done", err, kubeWrites(kube, rc))
		}
	})
}
