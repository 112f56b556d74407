package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/canaryline/canaryline/internal/dev/faultproxy"
)

// ownedPods are the pods, not being deleted, of the ReplicaSets Deployment name owns now (none when it is gone).
func ownedPods(t *testing.T, k kubernetes.Interface, ns, name string) []corev1.Pod {
	t.Helper()
	ctx := context.Background()
	d, err := k.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	rss, err := k.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owned := map[types.UID]bool{}
	for _, rs := range rss.Items {
		if c := metav1.GetControllerOf(&rs); c != nil && c.UID == d.UID {
			owned[rs.UID] = true
		}
	}
	pods, err := k.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if c := metav1.GetControllerOf(&p); c != nil && owned[c.UID] && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// podUIDs are the UIDs of ownedPods of Deployment name, sorted.
func (a *app) podUIDs(name string) []string {
	a.t.Helper()
	var uids []string
	for _, p := range ownedPods(a.t, a.kube, a.ns, name) {
		uids = append(uids, string(p.UID))
	}
	slices.Sort(uids)
	return uids
}

// canaryPods is a label selector of the canary's pods: its Service's.
func (a *app) canaryPods() string {
	a.t.Helper()
	svc, err := a.kube.CoreV1().Services(a.ns).Get(context.Background(), "shop-canary", metav1.GetOptions{})
	if err != nil {
		a.t.Fatal(err)
	}
	return labels.SelectorFromSet(svc.Spec.Selector).String()
}

// subset says whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// podsCreated watches the namespace's pods while f runs and returns how many were created meanwhile.
func (a *app) podsCreated(f func()) int {
	a.t.Helper()
	ctx := context.Background()
	list, err := a.kube.CoreV1().Pods(a.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		a.t.Fatal(err)
	}
	w, err := a.kube.CoreV1().Pods(a.ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		a.t.Fatal(err)
	}
	var mu sync.Mutex
	created := map[string]bool{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.ResultChan() {
			if p, ok := e.Object.(*corev1.Pod); ok && e.Type == watch.Added {
				mu.Lock()
				created[string(p.UID)] = true
				mu.Unlock()
			}
		}
	}()
	f()
	time.Sleep(time.Second) // the last creations reach the watch
	w.Stop()
	<-done
	mu.Lock()
	defer mu.Unlock()
	return len(created)
}

// stableSettles waits until the stable Deployment runs image on want replicas, all available, its old ReplicaSets
// scaled to 0, and returns it.
func (a *app) stableSettles(image string, want int32) *appsv1.Deployment {
	a.t.Helper()
	var d *appsv1.Deployment
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		if d, err = a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{}); err != nil {
			return false, err
		}
		return d.Spec.Template.Spec.Containers[0].Image == image && d.Status.ObservedGeneration >= d.Generation &&
			count(d.Spec.Replicas) == want && d.Status.UpdatedReplicas == want && d.Status.AvailableReplicas == want && d.Status.Replicas == want, nil
	})
	if err != nil {
		a.t.Fatalf("the stable Deployment did not settle on %s with %d replicas: %v (status %+v)", image, want, err, d.Status)
	}
	return d
}

// count is a replica count as the API defaults it (nil: 1).
func count(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// replicaSets describes the stable Deployment's ReplicaSets: name, revision and replicas, oldest first.
func (a *app) replicaSets() []string {
	a.t.Helper()
	ctx := context.Background()
	d, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
	rss, err := a.kube.AppsV1().ReplicaSets(a.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=shop"})
	if err != nil {
		a.t.Fatal(err)
	}
	slices.SortFunc(rss.Items, func(x, y appsv1.ReplicaSet) int { return x.CreationTimestamp.Compare(y.CreationTimestamp.Time) })
	var out []string
	for _, rs := range rss.Items {
		owner := "orphan"
		if c := metav1.GetControllerOf(&rs); c != nil && c.UID == d.UID {
			owner = "stable"
		} else if c != nil {
			owner = c.Name
		}
		out = append(out, fmt.Sprintf("%s rev %s replicas %d owner %s", rs.Name, rs.Annotations["deployment.kubernetes.io/revision"], count(rs.Spec.Replicas), owner))
	}
	return out
}

// promoteOK runs promote-or-rollback for a promotion and fails the test unless it promoted.
func (a *app) promoteOK() stepRun {
	a.t.Helper()
	r := a.decide(map[string]string{"DECISION": "promote"})
	if r.code != 0 || r.results["DECISION"] != "promote" {
		a.t.Fatalf("promote: exit %d results %v\n%s", r.code, r.results, r.stderr)
	}
	return r
}

// TestPromoteReusesTheCanarysPods: promotion hands the canary's ReplicaSet to the stable Deployment, whose
// controller scales it to the full count: only the missing replicas are created, the canary's pods keep running,
// the stable's history gains one revision (that ReplicaSet), and the old one is scaled to 0.
func TestPromoteReusesTheCanarysPods(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 4)
	if r := a.shift(10, map[string]string{"CANARY_REPLICAS": "1"}); r.code != 0 {
		t.Fatalf("shift: exit %d\n%s", r.code, r.stderr)
	}
	canaryPods := a.podUIDs("shop-canary")
	before := a.replicaSets()
	var r stepRun
	created := a.podsCreated(func() { r = a.promoteOK() })
	if created != 3 {
		t.Errorf("promotion created %d pods; want 3 (4 replicas, 1 of them the canary's)", created)
	}
	d := a.stableSettles(canaryImage, 4)
	if kept := a.podUIDs("shop"); len(canaryPods) != 1 || !subset(canaryPods, kept) {
		t.Errorf("the canary's pod %v is not among the stable's %v", canaryPods, kept)
	}
	after := a.replicaSets()
	if len(before) != 2 || len(after) != 2 || !strings.Contains(after[0], "replicas 0 owner stable") ||
		!strings.HasPrefix(after[1], "shop-canary-") || !strings.Contains(after[1], "rev 2 replicas 4 owner stable") {
		t.Errorf("ReplicaSets before promotion %q, after %q: want the stable's old one at 0 and the canary's at revision 2 with 4", before, after)
	}
	if d.Spec.Paused || d.Annotations["canaryline.dev/paused-by"] != "" || d.Annotations["deployment.kubernetes.io/revision"] != "2" {
		t.Errorf("stable Deployment: paused %v, annotations %v", d.Spec.Paused, d.Annotations)
	}
	if !strings.Contains(r.stderr, "takes over the canary") {
		t.Errorf("the log does not say the canary's pods are taken over:\n%s", r.stderr)
	}
}

// TestPromoteReusesTheCanaryUnderAnHPA: an HorizontalPodAutoscaler that scales the stable Deployment during the
// release is followed (the canary is scaled to the stable's replicas of the moment), and still scales it after.
func TestPromoteReusesTheCanaryUnderAnHPA(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 3)
	ctx := context.Background()
	setHPA := func(n int32) {
		t.Helper()
		hpas := a.kube.AutoscalingV2().HorizontalPodAutoscalers(a.ns)
		h, err := hpas.Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			h = &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "shop"}, Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "shop"},
				Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
					Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr(int32(80))}}}}}}
		}
		h.Spec.MinReplicas, h.Spec.MaxReplicas = &n, n
		if h.ResourceVersion == "" {
			_, err = hpas.Create(ctx, h, metav1.CreateOptions{})
		} else {
			_, err = hpas.Update(ctx, h, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	setHPA(3)
	if r := a.shift(20, map[string]string{"CANARY_REPLICAS": "1"}); r.code != 0 {
		t.Fatalf("shift: exit %d\n%s", r.code, r.stderr)
	}
	setHPA(5) // the HPA scales the stable Deployment mid-release (below its minimum: no metrics needed)
	a.stableSettles(stableImage, 5)
	created := a.podsCreated(func() { a.promoteOK() })
	a.stableSettles(canaryImage, 5)
	if created != 4 {
		t.Errorf("promotion created %d pods; want 4 (5 replicas, 1 of them the canary's)", created)
	}
	setHPA(6)
	a.stableSettles(canaryImage, 6)
}

// TestPromoteReusesTheCanaryWhateverTheCollisionCount: the stable Deployment's status.collisionCount changes the
// names and hashes its controller would give a new ReplicaSet; the hand-over does not depend on them: the
// controller creates no ReplicaSet of its own.
func TestPromoteReusesTheCanaryWhateverTheCollisionCount(t *testing.T) {
	t.Parallel()
	a := newApp(t, "httproute", 2)
	ctx := context.Background()
	d, err := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Status.CollisionCount = ptr(int32(3))
	if _, err := a.kube.AppsV1().Deployments(a.ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := a.shift(50, nil); r.code != 0 {
		t.Fatalf("shift: exit %d\n%s", r.code, r.stderr)
	}
	canaryPods := a.podUIDs("shop-canary")
	a.promoteOK()
	d = a.stableSettles(canaryImage, 2)
	if rss := a.replicaSets(); len(rss) != 2 || !strings.HasPrefix(rss[1], "shop-canary-") {
		t.Errorf("ReplicaSets %q: want the stable's old one and the canary's, no third", rss)
	}
	if !subset(canaryPods, a.podUIDs("shop")) || count(d.Status.CollisionCount) != 3 {
		t.Errorf("the canary's pods %v not kept (stable's: %v), or collisionCount %d changed", canaryPods, a.podUIDs("shop"), count(d.Status.CollisionCount))
	}
}

// TestPromoteReusesNothingOfAChangedTemplate: a team changed the stable Deployment's pod template during the
// release; taking the canary's ReplicaSet would undo their change, so promotion rolls the image out on the
// stable's template as it is now, on new pods, and keeps the change.
func TestPromoteReusesNothingOfAChangedTemplate(t *testing.T) {
	t.Parallel()
	a := newApp(t, "istio", 2)
	ctx := context.Background()
	if r := a.shift(10, nil); r.code != 0 {
		t.Fatalf("shift: exit %d\n%s", r.code, r.stderr)
	}
	d, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
	d.Spec.Template.Spec.Containers[0].Env = append(d.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "TEAM", Value: "edited"})
	if _, err := a.kube.AppsV1().Deployments(a.ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	a.stableSettles(stableImage, 2)
	canaryPods := a.podUIDs("shop-canary")
	r := a.promoteOK()
	d = a.stableSettles(canaryImage, 2)
	if env := d.Spec.Template.Spec.Containers[0].Env; len(env) == 0 || env[len(env)-1].Value != "edited" {
		t.Errorf("the team's change is gone: env %v", env)
	}
	if subset(canaryPods, a.podUIDs("shop")) || !strings.Contains(r.stderr, "template changed during the release") {
		t.Errorf("the canary's pods were taken over despite the changed template, or the log does not say why not:\n%s", r.stderr)
	}
	if a.exists("deployment", "shop-canary") || d.Spec.Paused {
		t.Errorf("after promotion: canary Deployment left %v, stable paused %v", a.exists("deployment", "shop-canary"), d.Spec.Paused)
	}
}

// TestPromoteReusesNothingOfAnImageThatRanBefore: the stable Deployment ran the release's image before and still
// has that revision's ReplicaSet; its controller takes that one, so promotion rolls out instead of handing over.
func TestPromoteReusesNothingOfAnImageThatRanBefore(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	ctx := context.Background()
	for _, image := range []string{canaryImage, stableImage} {
		d, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
		d.Spec.Template.Spec.Containers[0].Image = image
		if _, err := a.kube.AppsV1().Deployments(a.ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		a.stableSettles(image, 2)
	}
	if r := a.shift(10, nil); r.code != 0 {
		t.Fatalf("shift: exit %d\n%s", r.code, r.stderr)
	}
	r := a.promoteOK()
	d := a.stableSettles(canaryImage, 2)
	if !strings.Contains(r.stderr, "already has ReplicaSet") || d.Spec.Paused || a.exists("deployment", "shop-canary") {
		t.Errorf("promotion over an earlier revision of the image: paused %v, canary left %v, log:\n%s", d.Spec.Paused, a.exists("deployment", "shop-canary"), r.stderr)
	}
	for _, rs := range a.replicaSets() {
		if strings.HasPrefix(rs, "shop-canary-") {
			t.Errorf("the canary's ReplicaSet is left: %s", rs)
		}
	}
}

// TestPromoteReusesAfterATeamResumedTheHandOver: promote-or-rollback is killed right after it paused the stable
// Deployment with the canary's template; a team resumes the Deployment (its controller then rolls out on its
// own); the rerun finishes the promotion all the same, and leaves no pause and no mark of it.
func TestPromoteReusesAfterATeamResumedTheHandOver(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	ctx := context.Background()
	if r := a.shift(50, nil); r.code != 0 {
		t.Fatalf("shift: exit %d\n%s", r.code, r.stderr)
	}
	bin := stepsBinary(t)
	var once sync.Once
	var proxied string
	// The kill's result comes through a channel: the step may be seen dead before killStep returns.
	killedCh := make(chan bool, 1)
	_, kc := startFaultProxy(t, a.kubeconfig, faultproxy.Options{AfterMutation: func(_ int, r faultproxy.Request, _ int) {
		if r.Verb == "update" && r.Resource == "deployments" && r.Name == "shop" && r.UserAgent == "canaryline/promote-or-rollback" {
			once.Do(func() {
				killedCh <- killStep(bin, "promote-or-rollback", proxied) > 0
				time.Sleep(200 * time.Millisecond) // let it die before the answer goes back
			})
		}
	}})
	proxied = kc
	first := runStep(t, "promote-or-rollback", kc, map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1", "DECISION": "promote"})
	killed := false
	select {
	case killed = <-killedCh:
	case <-time.After(10 * time.Second):
	}
	if !killed || first.code == 0 {
		t.Fatalf("promote-or-rollback was not killed after pausing the stable Deployment (exit %d)", first.code)
	}
	d, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
	if !d.Spec.Paused || d.Annotations["canaryline.dev/paused-by"] != "shop-release-1" {
		t.Fatalf("after the kill: paused %v, annotations %v; want paused by the release", d.Spec.Paused, d.Annotations)
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error { // the team resumes it
		d, err := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Paused = false
		_, err = a.kube.AppsV1().Deployments(a.ns).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	a.promoteOK()
	d = a.stableSettles(canaryImage, 2)
	if d.Spec.Paused || d.Annotations["canaryline.dev/paused-by"] != "" || a.exists("deployment", "shop-canary") {
		t.Errorf("after the rerun: paused %v, annotations %v, canary left %v", d.Spec.Paused, d.Annotations, a.exists("deployment", "shop-canary"))
	}
}

// TestPromoteReusesTheCanaryAndKeepsATeamsPause: a stable Deployment the team paused stays paused: promotion takes
// the canary's pods over all the same (a paused Deployment still adopts and scales), and never resumes it.
func TestPromoteReusesTheCanaryAndKeepsATeamsPause(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	ctx := context.Background()
	if r := a.shift(50, nil); r.code != 0 {
		t.Fatalf("shift: exit %d\n%s", r.code, r.stderr)
	}
	d, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
	d.Spec.Paused = true
	if _, err := a.kube.AppsV1().Deployments(a.ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	canaryPods := a.podUIDs("shop-canary")
	a.promoteOK()
	d = a.stableSettles(canaryImage, 2)
	if !d.Spec.Paused || d.Annotations["canaryline.dev/paused-by"] != "" || !subset(canaryPods, a.podUIDs("shop")) {
		t.Errorf("after promotion: paused %v (want the team's pause kept), annotations %v, canary's pods kept %v",
			d.Spec.Paused, d.Annotations, subset(canaryPods, a.podUIDs("shop")))
	}
}
