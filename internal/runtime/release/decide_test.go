package release

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	routefake "github.com/openshift/client-go/route/clientset/versioned/fake"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient/kubeclienttest"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

const canaryImage = "quay.io/team/shop@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

// decideFixture is release run-1 of shop at 10% (releaseInProgress), its stable Deployment running
// quay.io/team/shop:v1 on one replica, rolled out: a promotion's rollout is over as soon as it is asked for.
func decideFixture(t *testing.T) (*kubefake.Clientset, *routefake.Clientset, Clients) {
	t.Helper()
	kube, rc := releaseInProgress(t)
	one := int32(1)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "team"},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shop"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "shop", Image: "quay.io/team/shop:v1"}}}}},
		Status: appsv1.DeploymentStatus{Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, ReadyReplicas: 1}}
	if _, err := kube.AppsV1().Deployments("team").Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	kube.ClearActions()
	return kube, rc, Clients{Kube: kubeclienttest.Wrap(kube), Route: kubeclienttest.WrapRoute(rc.RouteV1())}
}

// decideConfig is promote-or-rollback for release run-1 of shop, deciding decision from status and verdict.
func decideConfig(decision, status, verdict string) *DecideConfig {
	return &DecideConfig{Target: Target{App: "shop", Namespace: "team", ReleaseID: "run-1", LockTTL: time.Minute},
		Decision: decision, PipelineStatus: status, Verdict: verdict, RolloutTimeout: 10 * time.Second}
}

// lastRelease is how the Lease records the last release; it fails the test while a release is in progress.
func lastRelease(t *testing.T, kube *kubefake.Clientset) *Outcome {
	t.Helper()
	l, st, last, err := newLock(kubeclienttest.Wrap(kube).CoordinationV1(), "team", "shop", "", time.Minute, quiet).read(context.Background())
	if err != nil || st != nil || last == nil || *l.Spec.HolderIdentity != "" {
		t.Fatalf("Lease: state %+v, last %+v, %v; want the release ended and the lock released", st, last, err)
	}
	return last
}

func stableImage(t *testing.T, kube *kubefake.Clientset) string {
	t.Helper()
	d, err := kube.AppsV1().Deployments("team").Get(context.Background(), "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return containerImage(d, "shop")
}

// canaryGone fails the test unless the canary Deployment and Service are removed, the stable Service selects
// every stable pod again and the Route sends everything to stable.
func canaryGone(t *testing.T, kube *kubefake.Clientset, rc *routefake.Clientset) {
	t.Helper()
	ctx := context.Background()
	if _, err := kube.AppsV1().Deployments("team").Get(ctx, "shop-canary", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("canary Deployment: %v; want it removed", err)
	}
	if _, err := kube.CoreV1().Services("team").Get(ctx, "shop-canary", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("canary Service: %v; want it removed", err)
	}
	if svc, err := kube.CoreV1().Services("team").Get(ctx, "shop", metav1.GetOptions{}); err != nil || !maps.Equal(svc.Spec.Selector, map[string]string{"app": "shop"}) {
		t.Errorf("stable Service selector %v, %v; want {app: shop} again", svc.Spec.Selector, err)
	}
	rt, err := rc.RouteV1().Routes("team").Get(ctx, "shop", metav1.GetOptions{})
	if err != nil || len(rt.Spec.AlternateBackends) != 0 || *rt.Spec.To.Weight != 100 {
		t.Errorf("Route %+v, %v; want all traffic to shop", rt.Spec, err)
	}
}

// TestDecidePromotesAHealthyCanary: a succeeded pipeline with a healthy verdict promotes: the stable Deployment
// runs the canary's image, marked with the release, the canary is gone, and the Lease records the promotion.
func TestDecidePromotesAHealthyCanary(t *testing.T) {
	kube, rc, c := decideFixture(t)
	got, err := Decide(context.Background(), decideConfig(DecisionAuto, "Succeeded", "healthy"), "team", c, quiet)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if got.Decision != DecisionPromote || got.ReleaseID != "run-1" || got.StableImage != canaryImage || got.Weight != 0 {
		t.Errorf("decided %+v; want promote run-1 to %s at weight 0", got, canaryImage)
	}
	if img := stableImage(t, kube); img != canaryImage {
		t.Errorf("stable image %s; want the canary's", img)
	}
	d, _ := kube.AppsV1().Deployments("team").Get(context.Background(), "shop", metav1.GetOptions{})
	if d.Annotations[PromotedAnnotation] != "run-1" {
		t.Errorf("stable annotations %v; want %s=run-1", d.Annotations, PromotedAnnotation)
	}
	canaryGone(t, kube, rc)
	if last := lastRelease(t, kube); last.Decision != DecisionPromote || last.StableImage != canaryImage ||
		!strings.Contains(last.Reason, "verdict healthy; the pipeline succeeded") {
		t.Errorf("last release %+v; want promoted to the canary's image, with the verdict in the reason", last)
	}
}

// TestDecideRollsBack: an unhealthy or inconclusive verdict, a failed or cancelled pipeline, or an explicit
// rollback roll the release back and never touch the stable Deployment; an explicit promote overrides an
// inconclusive verdict.
func TestDecideRollsBack(t *testing.T) {
	for _, tc := range []struct {
		name, decision, status, verdict string
		want, reason                    string
	}{
		{"unhealthy", DecisionAuto, "Succeeded", "unhealthy", DecisionRollback, "verify-health found the canary unhealthy"},
		{"unhealthy and failed", DecisionAuto, "Failed", "unhealthy", DecisionRollback, "verify-health found the canary unhealthy"},
		{"inconclusive", DecisionAuto, "Succeeded", "inconclusive", DecisionRollback, "the verdict was inconclusive"},
		{"inconclusive, completed", DecisionAuto, "Completed", "inconclusive", DecisionRollback, "the verdict was inconclusive"},
		{"inconclusive and failed", DecisionAuto, "Failed", "inconclusive", DecisionRollback, "the pipeline failed (tasks.status Failed)"},
		{"healthy but cancelled", DecisionAuto, "None", "healthy", DecisionRollback, "cancelled or timed out"},
		{"asked to roll back a healthy canary", DecisionRollback, "Succeeded", "healthy", DecisionRollback, "asked for rollback"},
		{"asked to promote an inconclusive canary", DecisionPromote, "Succeeded", "inconclusive", DecisionPromote, "asked for promote"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube, rc, c := decideFixture(t)
			got, err := Decide(context.Background(), decideConfig(tc.decision, tc.status, tc.verdict), "team", c, quiet)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if got.Decision != tc.want || !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("decided %s (%s); want %s (%s)", got.Decision, got.Reason, tc.want, tc.reason)
			}
			canaryGone(t, kube, rc)
			last := lastRelease(t, kube)
			if last.Decision != tc.want {
				t.Errorf("the Lease records %s; want %s", last.Decision, tc.want)
			}
			if tc.want == DecisionPromote {
				return
			}
			if got.StableImage != "quay.io/team/shop:v1" || stableImage(t, kube) != "quay.io/team/shop:v1" {
				t.Errorf("stable image %s (result %s); want quay.io/team/shop:v1 kept", stableImage(t, kube), got.StableImage)
			}
			for _, a := range kube.Actions() {
				if u, ok := a.(k8stesting.UpdateAction); ok && a.GetResource().Resource == "deployments" {
					t.Errorf("a rollback updated Deployment %s", u.GetObject().(metav1.Object).GetName())
				}
			}
		})
	}
}

// TestDecideWithoutARelease: with nothing in progress, auto does nothing and writes nothing; an explicit decision
// is bad input naming APP, and a RELEASE_ID other than the one in progress is bad input naming it.
func TestDecideWithoutARelease(t *testing.T) {
	ctx := context.Background()
	t.Run("no Lease, auto", func(t *testing.T) {
		kube, rc := versioned(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}), routefake.NewSimpleClientset()
		c := Clients{Kube: kubeclienttest.Wrap(kube), Route: kubeclienttest.WrapRoute(rc.RouteV1())}
		got, err := Decide(ctx, decideConfig(DecisionAuto, "Failed", ""), "team", c, quiet)
		if err != nil || got.Decision != DecisionNone || got.ReleaseID != "run-1" {
			t.Errorf("got %+v, %v; want decision none", got, err)
		}
		if n := kubeWrites(kube, rc); n != 0 {
			t.Errorf("%d writes; want none", n)
		}
	})
	t.Run("no Lease, explicit rollback", func(t *testing.T) {
		kube, rc := versioned(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}), routefake.NewSimpleClientset()
		c := Clients{Kube: kubeclienttest.Wrap(kube), Route: kubeclienttest.WrapRoute(rc.RouteV1())}
		_, err := Decide(ctx, decideConfig(DecisionRollback, "", ""), "team", c, quiet)
		if step.ExitCode(err) != step.ExitInvalid || !strings.Contains(err.Error(), "APP") || !strings.Contains(err.Error(), "no release of team/shop is in progress") {
			t.Errorf("got %v; want bad input naming APP", err)
		}
		if n := kubeWrites(kube, rc); n != 0 {
			t.Errorf("%d writes; want none", n)
		}
	})
	t.Run("no namespace", func(t *testing.T) {
		kube, rc := versioned(), routefake.NewSimpleClientset()
		c := Clients{Kube: kubeclienttest.Wrap(kube), Route: kubeclienttest.WrapRoute(rc.RouteV1())}
		_, err := Decide(ctx, decideConfig(DecisionAuto, "Failed", ""), "team", c, quiet)
		if step.ExitCode(err) != step.ExitInvalid || !strings.Contains(err.Error(), "team") {
			t.Errorf("got %v; want bad input naming the namespace", err)
		}
	})
	t.Run("another release in progress", func(t *testing.T) {
		kube, rc, c := decideFixture(t)
		cfg := decideConfig(DecisionRollback, "", "")
		cfg.ReleaseID = "run-2"
		_, err := Decide(ctx, cfg, "team", c, quiet)
		if step.ExitCode(err) != step.ExitInvalid || !strings.Contains(err.Error(), "RELEASE_ID") || !strings.Contains(err.Error(), "is run-1, not run-2") {
			t.Errorf("got %v; want bad input naming RELEASE_ID and the release in progress", err)
		}
		if n := kubeWrites(kube, rc); n != 0 {
			t.Errorf("%d writes; want none", n)
		}
	})
}

// TestDecideAgainAnswersAsItEnded: promote-or-rollback run again for a release that ended (a retried finally
// task) answers with how it ended, and writes nothing.
func TestDecideAgainAnswersAsItEnded(t *testing.T) {
	ctx := context.Background()
	kube, rc, c := decideFixture(t)
	if _, err := Decide(ctx, decideConfig(DecisionAuto, "Succeeded", "unhealthy"), "team", c, quiet); err != nil {
		t.Fatal(err)
	}
	kube.ClearActions()
	rc.ClearActions()
	got, err := Decide(ctx, decideConfig(DecisionAuto, "Succeeded", "healthy"), "team", c, quiet)
	if err != nil || got.Decision != DecisionRollback || got.StableImage != "quay.io/team/shop:v1" || !strings.Contains(got.Reason, "unhealthy") {
		t.Errorf("again: %+v, %v; want the rollback as it was decided", got, err)
	}
	if n := kubeWrites(kube, rc); n != 0 {
		t.Errorf("again: %d writes; want none", n)
	}
}

// TestDecideConvergesAfterACrashMidway: a step that stops midway (here: deleting the canary Service fails) leaves
// the release recorded in its phase, with the parts done; run again, it finishes what it started (a promotion
// stays a promotion even when a rollback is asked for now) and ends in the same state as an uninterrupted run.
func TestDecideConvergesAfterACrashMidway(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name              string
		first, then, want string
	}{
		{"rollback", "unhealthy", "healthy", DecisionRollback},
		{"promotion", "healthy", "unhealthy", DecisionPromote},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube, rc, c := decideFixture(t)
			failing := true
			kube.PrependReactor("delete", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
				if failing {
					return true, nil, errors.New("connection reset by peer")
				}
				return false, nil, nil
			})
			_, err := Decide(ctx, decideConfig(DecisionAuto, "Succeeded", tc.first), "team", c, quiet)
			if err == nil || !strings.Contains(err.Error(), "delete Service team/shop-canary") {
				t.Fatalf("first run: %v; want it to stop deleting the canary Service", err)
			}
			_, st, _, err := newLock(kubeclienttest.Wrap(kube).CoordinationV1(), "team", "shop", "", time.Minute, quiet).read(ctx)
			if err != nil || st == nil || (st.Phase != PhaseRollingBack && st.Phase != PhasePromoting) || len(st.Done) == 0 {
				t.Fatalf("after the crash: state %+v, %v; want the release recorded midway, with the parts done", st, err)
			}

			failing = false
			var logs bytes.Buffer
			got, err := Decide(ctx, decideConfig(DecisionAuto, "Succeeded", tc.then), "team", c, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil || got.Decision != tc.want {
				t.Fatalf("second run: %+v, %v; want %s finished", got, err, tc.want)
			}
			if !strings.Contains(logs.String(), "when the step stopped") {
				t.Errorf("the log does not say the release is finished as it was started:\n%s", &logs)
			}
			canaryGone(t, kube, rc)
			if last := lastRelease(t, kube); last.Decision != tc.want {
				t.Errorf("the Lease records %s; want %s", last.Decision, tc.want)
			}
			want := "quay.io/team/shop:v1"
			if tc.want == DecisionPromote {
				want = canaryImage
			}
			if img := stableImage(t, kube); img != want {
				t.Errorf("stable image %s; want %s", img, want)
			}
		})
	}
}
