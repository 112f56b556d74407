package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	sampleapp "github.com/canaryline/canaryline/internal/dev/app"
)

const testNS = "shop"

// cluster holds Deployments, ReplicaSets and pods as the Deployment and ReplicaSet controllers would make them.
type cluster struct {
	t    *testing.T
	kube *fake.Clientset
}

func (c *cluster) deployment(name string, rev int) *appsv1.Deployment {
	c.t.Helper()
	api := c.kube.AppsV1().Deployments(testNS)
	d, err := api.Get(c.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		d = &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, UID: types.UID("uid-" + name)}}
		if d, err = api.Create(c.t.Context(), d, metav1.CreateOptions{}); err != nil {
			c.t.Fatal(err)
		}
	}
	d.Annotations = map[string]string{revisionAnnotation: fmt.Sprint(rev)}
	if d, err = api.Update(c.t.Context(), d, metav1.UpdateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	return d
}

func (c *cluster) replicaSet(d *appsv1.Deployment, hash string, rev int) *appsv1.ReplicaSet {
	c.t.Helper()
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: d.Name + "-" + hash, Namespace: testNS, UID: types.UID("uid-" + d.Name + "-" + hash),
		Labels:          map[string]string{podTemplateHash: hash},
		Annotations:     map[string]string{revisionAnnotation: fmt.Sprint(rev)},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: ptr.To(true)}}}}
	rs, err := c.kube.AppsV1().ReplicaSets(testNS).Create(c.t.Context(), rs, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return rs
}

func (c *cluster) pod(rs *appsv1.ReplicaSet, suffix string) {
	c.t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: rs.Name + "-" + suffix, Namespace: testNS, Labels: map[string]string{podTemplateHash: rs.Labels[podTemplateHash]},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}}}
	if _, err := c.kube.CoreV1().Pods(testNS).Create(c.t.Context(), p, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

// labels are the target labels of each track's process.
func targetLabels(s *Stack) map[string]map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[string]string{}
	for _, g := range s.groups() {
		out[g.Labels["track"]] = g.Labels
	}
	return out
}

// TestStackFollowsPods checks that the processes follow the Deployments as pods would: a fresh canary process
// for each new canary ReplicaSet, relabelled for another pod of the same ReplicaSet, ended with the Deployment;
// the stable process relabelled when the stable Deployment rolls out a new ReplicaSet. Prometheus is left out
// (promserver's tests cover file discovery); the cluster is client-go's fake, followed with list+watch.
func TestStackFollowsPods(t *testing.T) {
	c := &cluster{t: t, kube: fake.NewClientset()}
	stable := c.deployment("web", 1)
	c.pod(c.replicaSet(stable, "aaa", 1), "s2")
	c.pod(c.replicaSet(stable, "aaa0", 0), "old") // an earlier revision's ReplicaSet: not the current one

	ctx, cancel := context.WithCancel(t.Context())
	s := &Stack{o: StackOptions{Namespace: testNS, App: "web", Log: io.Discard}, runCtx: ctx,
		next: sampleapp.Config{Version: "v1", Seed: 2}, changed: make(chan struct{})}
	defer func() { cancel(); s.wg.Wait(); s.pods.stop() }()
	var err error
	if s.pods, err = followPods(ctx, c.kube, testNS); err != nil {
		t.Fatal(err)
	}
	p, err := s.serve(sampleapp.Config{Version: "v1", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.Stable, s.StableAddr = p.srv, p.addr
	if s.stable = s.pods.identity("web", identity{}); s.stable != (identity{"aaa", "web-aaa-s2"}) {
		t.Fatalf("stable identity %+v; want the current ReplicaSet aaa and its pod", s.stable)
	}
	// await syncs after each change seen until cond holds.
	await := func(what string, cond func() bool) {
		t.Helper()
		for {
			s.sync()
			if cond() {
				return
			}
			select {
			case <-s.pods.changed:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: labels %v", what, targetLabels(s))
			}
		}
	}
	get := func(addr string) (string, error) {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}

	// A canary Deployment and ReplicaSet without pods: no process yet.
	s.SetCanary(sampleapp.Config{Version: "v2", Seed: 2})
	canary := c.deployment("web-canary", 1)
	rs1 := c.replicaSet(canary, "ccc", 1)
	await("canary without pods", func() bool { return s.pods.identity("web-canary", identity{}).hash == "ccc" })
	if s.Canary() != nil || s.backend("web-canary") != "" {
		t.Fatalf("a canary process without canary pods: %v", targetLabels(s))
	}
	c.pod(rs1, "p1")
	await("canary pod p1", func() bool { return s.Canary() != nil })
	first := s.Canary()
	if l := targetLabels(s)["canary"]; l["pod_template_hash"] != "ccc" || l["pod"] != "web-canary-ccc-p1" || l["namespace"] != testNS || l["app"] != "web" {
		t.Errorf("canary labels %v; want hash ccc, pod web-canary-ccc-p1", l)
	}
	firstAddr := s.backend("web-canary")
	if body, err := get(firstAddr); err != nil || first.Config().Version != "v2" {
		t.Errorf("the canary process at %s: %q, %v, version %s; want v2 serving", firstAddr, body, err, first.Config().Version)
	}

	// Another pod of the same ReplicaSet: the same process, relabelled.
	if err := c.kube.CoreV1().Pods(testNS).Delete(t.Context(), "web-canary-ccc-p1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.pod(rs1, "p2")
	await("canary pod p2", func() bool { return targetLabels(s)["canary"]["pod"] == "web-canary-ccc-p2" })
	if s.Canary() != first {
		t.Error("a new canary process for another pod of the same ReplicaSet")
	}

	// A new canary ReplicaSet (a new pod template): a fresh process; the old one ends.
	s.SetCanary(sampleapp.Config{Version: "v3", Seed: 2})
	canary = c.deployment("web-canary", 2)
	c.pod(c.replicaSet(canary, "ddd", 2), "q1")
	await("new canary ReplicaSet", func() bool { return targetLabels(s)["canary"]["pod_template_hash"] == "ddd" })
	if second := s.Canary(); second == first || second.Config().Version != "v3" || targetLabels(s)["canary"]["pod"] != "web-canary-ddd-q1" {
		t.Errorf("after a new canary ReplicaSet: process %p (first %p), version %s, labels %v", second, first, second.Config().Version, targetLabels(s)["canary"])
	}
	if addr := s.backend("web-canary"); addr == firstAddr {
		t.Errorf("the canary Service still goes to the first process at %s", addr)
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		if _, err := get(firstAddr); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first canary process at %s still serves", firstAddr)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The stable Deployment rolls out a new ReplicaSet (a promotion): the stable process is relabelled.
	stableAddr := s.backend("web")
	stable = c.deployment("web", 2)
	c.pod(c.replicaSet(stable, "ddd0", 2), "s1")
	await("stable rollout", func() bool { return targetLabels(s)["stable"]["pod_template_hash"] == "ddd0" })
	if l := targetLabels(s)["stable"]; l["pod"] != "web-ddd0-s1" || s.backend("web") != stableAddr {
		t.Errorf("stable after its rollout: labels %v, at %s (was %s)", l, s.backend("web"), stableAddr)
	}

	// The canary Deployment is removed: no canary process, no canary target.
	if err := c.kube.AppsV1().Deployments(testNS).Delete(t.Context(), "web-canary", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	await("canary removed", func() bool { return s.Canary() == nil })
	if _, ok := targetLabels(s)["canary"]; ok || s.backend("web-canary") != "" {
		t.Errorf("after the canary Deployment went: labels %v, backend %q", targetLabels(s), s.backend("web-canary"))
	}
}
