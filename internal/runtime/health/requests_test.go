package health

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient/kubeclienttest"
	"github.com/canaryline/canaryline/internal/runtime/release"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// A release as shift-canary leaves it: the stable Deployment exp, the canary exp-canary (the stable's selector plus
// a track label), optionally the baseline exp-baseline, each with its current ReplicaSet and a pod.
func releaseObjects(baseline bool) []runtime.Object {
	var objs []runtime.Object
	one := int32(1)
	add := func(name, track, hash string) {
		sel := map[string]string{"app": "exp"}
		if track != "" {
			sel["canaryline.dev/track"] = track
		}
		uid := types.UID("uid-" + name)
		podLabels := map[string]string{"pod-template-hash": hash}
		for k, v := range sel {
			podLabels[k] = v
		}
		objs = append(objs,
			&appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team", UID: uid, Labels: sel,
					Annotations: map[string]string{"deployment.kubernetes.io/revision": "2"}},
				Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: sel}},
				Status: appsv1.DeploymentStatus{AvailableReplicas: 1, Conditions: []appsv1.DeploymentCondition{
					{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}},
			},
			// an old ReplicaSet (revision 1) and the current one (revision 2)
			&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name + "-old" + hash, Namespace: "team", Labels: map[string]string{"app": "exp", "pod-template-hash": "old" + hash},
				Annotations:     map[string]string{"deployment.kubernetes.io/revision": "1"},
				OwnerReferences: []metav1.OwnerReference{{Kind: "Deployment", Name: name, UID: uid}}}},
			&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name + "-" + hash, Namespace: "team", Labels: podLabels,
				Annotations:     map[string]string{"deployment.kubernetes.io/revision": "2"},
				OwnerReferences: []metav1.OwnerReference{{Kind: "Deployment", Name: name, UID: uid}}}},
			&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name + "-" + hash + "-x1", Namespace: "team", Labels: podLabels}},
		)
	}
	objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}})
	add("exp", "", "s1")
	add("exp-canary", "canary", "c1")
	if baseline {
		add("exp-baseline", "baseline", "b1")
	}
	return objs
}

// fixedQuerier answers every query with one sample of 0.01 and records the queries.
type fixedQuerier struct{ queries []string }

func (q *fixedQuerier) Query(_ context.Context, query string, ts time.Time, _ ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	q.queries = append(q.queries, query)
	return model.Vector{&model.Sample{Value: 0.01, Timestamp: model.TimeFromUnixNano(ts.UnixNano())}}, nil, nil, nil
}

// runVerify runs verify-health in-process on a fake API server and returns the requests it made ("get
// deployments exp", "list pods", ...), the verdict and the error.
func runVerify(t *testing.T, env map[string]string, baseline bool, prom querier) ([]string, Verdict, error) {
	t.Helper()
	all := map[string]string{"APP": "exp", "RELEASE_ID": "exp-release", "INTERVAL": "1ms", "COUNT": "1"}
	for k, v := range env {
		all[k] = v
	}
	cfg := &Config{}
	if err := step.Load(context.Background(), func(k string) (string, bool) { v, ok := all[k]; return v, ok }, cfg); err != nil {
		t.Fatal(err)
	}
	kube := kubefake.NewSimpleClientset(releaseObjects(baseline)...)
	kube.ClearActions()
	v, err := Verify(context.Background(), cfg, "team", Deps{Kube: kubeclienttest.Wrap(kube), Prom: prom}, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var reqs []string
	for _, a := range kube.Actions() {
		r := a.GetVerb() + " " + a.GetResource().Resource
		if g, ok := a.(k8stesting.GetAction); ok {
			r += " " + g.GetName()
		}
		reqs = append(reqs, r)
	}
	return reqs, v, err
}

func count(reqs []string, prefix string) int {
	n := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

// TestRequestsPerRun holds verify-health to the API requests it needs: each Deployment read once before the
// analysis (the canary's status again for every later measurement, it is evidence), the pods listed once per
// measurement, ReplicaSets only for hashes that templates use, and the baseline only when something is compared.
func TestRequestsPerRun(t *testing.T) {
	t.Parallel()
	cmp := "- name: errors\n  query: 'x{track=\"{{.Track}}\"}'\n"
	for _, tc := range []struct {
		name     string
		env      map[string]string
		baseline bool
		want     []string
	}{
		{"pods only, one measurement", nil, true,
			[]string{"get deployments exp", "get deployments exp-canary", "get leases canaryline-exp", "list replicasets", "list pods"}},
		{"pods only, one measurement, no baseline", nil, false,
			[]string{"get deployments exp", "get deployments exp-canary", "get leases canaryline-exp", "list replicasets", "list pods"}},
		{"pods only, three measurements", map[string]string{"COUNT": "3"}, false,
			[]string{"get deployments exp", "get deployments exp-canary", "get leases canaryline-exp", "list replicasets", "list pods",
				"get deployments exp-canary", "list pods", "get deployments exp-canary", "list pods"}},
		{"pods only, after an initial delay", map[string]string{"INITIAL_DELAY": "1ms"}, false,
			[]string{"get deployments exp", "get deployments exp-canary", "get leases canaryline-exp", "list replicasets", "get deployments exp-canary", "list pods"}},
		{"a query on the canary track only", map[string]string{"PODS": "false", "PROMETHEUS_URL": "http://p:9090",
			"QUERIES": "- {name: e, query: 'x{track=\"{{.CanaryTrack}}\"}', threshold: '< 1'}\n"}, true,
			[]string{"get deployments exp", "get leases canaryline-exp"}},
		{"a query on the canary's hash", map[string]string{"PODS": "false", "PROMETHEUS_URL": "http://p:9090",
			"QUERIES": "- {name: e, query: 'x{pod=~\"{{.CanaryPods}}\"}', threshold: '< 1'}\n"}, true,
			[]string{"get deployments exp", "get deployments exp-canary", "list replicasets", "get leases canaryline-exp"}},
		{"a comparison against stable", map[string]string{"COMPARE_AGAINST": "stable", "PROMETHEUS_URL": "http://p:9090", "COMPARE": cmp}, true,
			[]string{"get deployments exp", "get deployments exp-canary", "get leases canaryline-exp", "list replicasets", "list pods"}},
		{"a comparison, auto", map[string]string{"PROMETHEUS_URL": "http://p:9090", "COMPARE": cmp}, true,
			[]string{"get deployments exp", "get deployments exp-canary", "get deployments exp-baseline", "get leases canaryline-exp", "list replicasets", "list pods"}},
		{"a comparison of hashes with the baseline: one ReplicaSet list", map[string]string{"PROMETHEUS_URL": "http://p:9090",
			"COMPARE": "- name: errors\n  query: 'x{track=\"{{.Track}}\",pod=~\"{{.Pods}}\"}'\n"}, true,
			[]string{"get deployments exp", "get deployments exp-canary", "get deployments exp-baseline", "list replicasets", "get leases canaryline-exp", "list pods"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reqs, v, err := runVerify(t, tc.env, tc.baseline, &fixedQuerier{})
			if err != nil && step.ExitCode(err) == step.ExitInvalid {
				t.Fatalf("verify: %v", err)
			}
			if v.Verdict == "" {
				t.Fatalf("no verdict: %v", err)
			}
			if strings.Join(reqs, ", ") != strings.Join(tc.want, ", ") {
				t.Errorf("requests:\n  %s\nwant:\n  %s", strings.Join(reqs, ", "), strings.Join(tc.want, ", "))
			}
		})
	}
}

// TestResolveTracksHashes: the hashes templates use are the current ReplicaSets' (one list for all three
// Deployments, whose selectors the stable's covers), and the pod patterns are built from them.
func TestResolveTracksHashes(t *testing.T) {
	t.Parallel()
	q := "- {name: e, query: 'x{a=\"{{.StableHash}}\",b=\"{{.CanaryHash}}\",c=\"{{.BaselinePods}}\"}', threshold: '< 1'}\n"
	env := map[string]string{"APP": "exp", "PROMETHEUS_URL": "http://p:9090", "QUERIES": q}
	cfg := &Config{}
	if err := step.Load(context.Background(), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, cfg); err != nil {
		t.Fatal(err)
	}
	kube := kubefake.NewSimpleClientset(releaseObjects(true)...)
	kube.ClearActions()
	res, err := resolveTracks(context.Background(), cfg, "team", kubeclienttest.Wrap(kube))
	if err != nil {
		t.Fatal(err)
	}
	tr := res.tracks
	if tr.StableHash != "s1" || tr.CanaryHash != "c1" || tr.BaselineHash != "b1" ||
		tr.StablePods != "exp-s1-.*" || tr.CanaryPods != "exp-canary-c1-.*" || tr.BaselinePods != "exp-baseline-b1-.*" {
		t.Errorf("tracks %+v", tr)
	}
	if n := len(kube.Actions()); n != 4 {
		t.Errorf("%d requests %v; want 3 gets and 1 list", n, kube.Actions())
	}
}

// TestValidationBeforeTheFirstMeasurement: a missing stable or canary Deployment, and COMPARE_AGAINST=baseline
// without a baseline, are still bad input (exit 2) naming the param.
func TestValidationBeforeTheFirstMeasurement(t *testing.T) {
	t.Parallel()
	cmp := "- name: errors\n  query: 'x{track=\"{{.Track}}\"}'\n"
	for _, tc := range []struct {
		name  string
		env   map[string]string
		param string
	}{
		{"no stable Deployment", map[string]string{"APP": "nope"}, "param APP"},
		{"no canary Deployment", map[string]string{"CANARY_DEPLOYMENT": "nope"}, "param CANARY_DEPLOYMENT"},
		{"no canary Deployment to compare", map[string]string{"PODS": "false", "CANARY_DEPLOYMENT": "nope", "PROMETHEUS_URL": "http://p:9090", "COMPARE": cmp}, "param CANARY_DEPLOYMENT"},
		{"no baseline to compare against", map[string]string{"COMPARE_AGAINST": "baseline", "PROMETHEUS_URL": "http://p:9090", "COMPARE": cmp}, "param COMPARE_AGAINST"},
		{"no baseline to compare latency against", map[string]string{"COMPARE_AGAINST": "baseline", "HTTP_URLS": "http://127.0.0.1:1/",
			"HTTP_BASELINE_URL": "http://127.0.0.1:1/"}, "param COMPARE_AGAINST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reqs, _, err := runVerify(t, tc.env, false, &fixedQuerier{})
			if step.ExitCode(err) != step.ExitInvalid || !strings.Contains(err.Error(), tc.param) {
				t.Errorf("error %v (exit %d); want exit 2 naming %s", err, step.ExitCode(err), tc.param)
			}
			if count(reqs, "list pods") > 0 {
				t.Errorf("measured before validating: %v", reqs)
			}
		})
	}
}

// TestReleasedContainerInTheEvidence: the evidence names the released container, CONTAINER or else the one whose
// image differs between stable and canary (a sidecar listed first is not it), with both images.
func TestReleasedContainerInTheEvidence(t *testing.T) {
	dep := func(images ...string) *appsv1.Deployment {
		d := &appsv1.Deployment{}
		for i, img := range images {
			d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: []string{"proxy", "shop"}[i], Image: img})
		}
		return d
	}
	r := resolved{stable: dep("envoy:1", "shop:v1"), canary: dep("envoy:1", "shop:v2")}
	if c, s, k := r.released(""); c != "shop" || s != "shop:v1" || k != "shop:v2" {
		t.Errorf("released: %q %q %q; want shop shop:v1 shop:v2", c, s, k)
	}
	if c, s, k := r.released("proxy"); c != "proxy" || s != "envoy:1" || k != "envoy:1" {
		t.Errorf("CONTAINER=proxy: %q %q %q", c, s, k)
	}
	if c, _, _ := (resolved{stable: dep("envoy:1", "shop:v1"), canary: dep("envoy:2", "shop:v2")}).released(""); c != "" {
		t.Errorf("two containers differ: %q; want none named", c)
	}
}

// TestBadClientInputBeforeTheLockIsRenewed: a Prometheus token or CA file that cannot be read, or an HTTP CA file
// that holds no certificate, is refused (exit 2) before verify-health renews the release's Lease, even when the
// Lease is due for renewal: bad input changes nothing in the cluster.
func TestBadClientInputBeforeTheLockIsRenewed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := dir + "/not-a-cert.pem"
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, param string
		env         map[string]string
	}{
		{"unreadable token file", "PROMETHEUS_TOKEN_FILE", map[string]string{"PROMETHEUS_URL": "https://p:9091",
			"QUERIES": "- {name: e, query: up, threshold: '< 1'}\n", "PROMETHEUS_TOKEN_FILE": dir + "/missing"}},
		{"Prometheus CA file without a certificate", "PROMETHEUS_CA_FILE", map[string]string{"PROMETHEUS_URL": "https://p:9091",
			"QUERIES": "- {name: e, query: up, threshold: '< 1'}\n", "PROMETHEUS_CA_FILE": notPEM}},
		{"HTTP CA file without a certificate", "HTTP_CA_FILE", map[string]string{"HTTP_URLS": "https://exp-canary:8443/",
			"HTTP_CA_FILE": notPEM}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			all := map[string]string{"APP": "exp", "RELEASE_ID": "exp-release", "INTERVAL": "1ms", "COUNT": "1"}
			for k, v := range tc.env {
				all[k] = v
			}
			cfg := &Config{}
			if err := step.Load(context.Background(), func(k string) (string, bool) { v, ok := all[k]; return v, ok }, cfg); err != nil {
				t.Fatalf("load: %v", err)
			}
			// The release's Lease, renewed an hour ago: taking it again would update it.
			state, _ := json.Marshal(map[string]string{"id": "exp-release", "app": "exp"})
			holder, secs, renewed := "exp-release", int32(60), metav1.NewMicroTime(time.Now().Add(-time.Hour))
			lease := &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: "canaryline-exp", Namespace: "team",
					Labels:      map[string]string{"app.kubernetes.io/managed-by": "canaryline"},
					Annotations: map[string]string{release.StateAnnotation: string(state)}},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &renewed, AcquireTime: &renewed},
			}
			kube := kubefake.NewSimpleClientset(append(releaseObjects(false), lease)...)
			kube.ClearActions()
			_, err := Verify(context.Background(), cfg, "team", Deps{Kube: kubeclienttest.Wrap(kube)}, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if step.ExitCode(err) != step.ExitInvalid || !strings.Contains(err.Error(), tc.param) {
				t.Fatalf("err %v (exit %d); want exit %d naming %s", err, step.ExitCode(err), step.ExitInvalid, tc.param)
			}
			for _, a := range kube.Actions() {
				if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
					t.Errorf("bad input made a %s of %s", v, a.GetResource().Resource)
				}
			}
		})
	}
}
