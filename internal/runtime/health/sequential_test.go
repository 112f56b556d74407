package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient/kubeclienttest"
	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/release"
	"github.com/canaryline/canaryline/internal/runtime/stats"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// counterQuerier answers counter queries as Prometheus would: each track's requests and errors counters grow by
// perRead requests at its error rate at every reading of that query.
type counterQuerier struct {
	mu      sync.Mutex
	perRead float64
	rates   map[string]float64 // by track
	reads   map[string]float64
}

func (q *counterQuerier) Query(_ context.Context, text string, ts time.Time, _ ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.reads == nil {
		q.reads = map[string]float64{}
	}
	q.reads[text]++
	track := "stable"
	for t := range q.rates {
		if strings.Contains(text, `track="`+t+`"`) {
			track = t
		}
	}
	v := q.reads[text] * q.perRead
	if strings.Contains(text, `code=~"5.."`) {
		v *= q.rates[track]
	}
	return model.Vector{&model.Sample{Value: model.SampleValue(v), Timestamp: model.TimeFromUnixNano(ts.UnixNano())}}, nil, nil, nil
}

const countsCompare = "- name: errors-vs-stable\n" +
	"  errors: 'sum(http_requests_total{track=\"{{.Track}}\",code=~\"5..\"})'\n" +
	"  requests: 'sum(http_requests_total{track=\"{{.Track}}\"})'\n"

// TestSequentialVerdictConfig: STATISTICS, ALPHA and the counts form of COMPARE are validated, naming the param.
func TestSequentialVerdictConfig(t *testing.T) {
	t.Parallel()
	base := map[string]string{"APP": "exp", "PROMETHEUS_URL": "http://p:9090", "COMPARE": countsCompare}
	for _, tc := range []struct{ name, key, value, param string }{
		{"statistics", "STATISTICS", "bayesian", "STATISTICS"},
		{"alpha zero", "ALPHA", "0", "ALPHA"},
		{"alpha too big", "ALPHA", "0.7", "ALPHA"},
		{"alpha NaN", "ALPHA", "NaN", "ALPHA"},
		{"only errors", "COMPARE", "- name: e\n  errors: 'x{track=\"{{.Track}}\"}'\n", "COMPARE"},
		{"both kinds", "COMPARE", countsCompare + "  query: 'y{track=\"{{.Track}}\"}'\n", "COMPARE"},
		{"counter without track", "COMPARE", "- name: e\n  errors: 'x'\n  requests: 'y{track=\"{{.Track}}\"}'\n", "COMPARE"},
	} {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		env[tc.key] = tc.value
		_, err := load(env)
		var inv *step.InvalidError
		if !errors.As(err, &inv) || inv.Param != tc.param {
			t.Errorf("%s: %v; want an error naming %s", tc.name, err, tc.param)
		}
	}
	cfg, err := load(base)
	if err != nil || cfg.Statistics != naming.StatsSequential || cfg.Alpha != 0.01 || !cfg.compares[0].counts() {
		t.Errorf("defaults: %+v, %v; want sequential at alpha 0.01 with a counts comparison", cfg, err)
	}
}

// releaseLease is the Lease of release r1 of exp in progress at weight 10, with the verify state given.
func releaseLease(verifyState string) *coordinationv1.Lease {
	st, _ := json.Marshal(release.State{ID: "r1", App: "exp", Weight: 10, Phase: release.PhaseShifting})
	holder, secs, now := "r1", int32(60), metav1.NewMicroTime(time.Now())
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "canaryline-exp", Namespace: "team",
		Labels:      map[string]string{"app.kubernetes.io/managed-by": "canaryline"},
		Annotations: map[string]string{release.StateAnnotation: string(st)}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &now}}
	if verifyState != "" {
		l.Annotations[naming.VerifyStateAnnotation] = verifyState
	}
	return l
}

// TestSequentialVerdictCatchesAndCarries: a canary at 20% errors against a stable at 1% is caught before the
// window ends, by a sequential count comparison; a good canary's test is written to the release Lease, and the
// next verify step resumes it (its evidence says how many intervals were carried).
func TestSequentialVerdictCatchesAndCarries(t *testing.T) {
	t.Parallel()
	bad := &counterQuerier{perRead: 200, rates: map[string]float64{"canary": 0.2, "stable": 0.01}}
	v, _, err := verify(t, map[string]string{"PODS": "false", "PROMETHEUS_URL": "http://p:9090", "COMPARE": countsCompare, "COUNT": "20"},
		Deps{Prom: bad})
	if step.ExitCode(err) != step.ExitFailed || !strings.Contains(v.Reason, "errors-vs-stable") || !strings.Contains(v.Reason, "certain before the end") {
		t.Fatalf("verdict %+v (%v); want unhealthy before the window's end, naming the check", v, err)
	}

	kube := kubefake.NewSimpleClientset(append(releaseObjects(false), releaseLease(""))...)
	good := &counterQuerier{perRead: 200, rates: map[string]float64{"canary": 0.01, "stable": 0.01}}
	env := map[string]string{"PODS": "false", "PROMETHEUS_URL": "http://p:9090", "COMPARE": countsCompare, "COUNT": "4", "RELEASE_ID": "r1"}
	if v, _, err := verify(t, env, Deps{Prom: good, Kube: kubeclienttest.Wrap(kube)}); err != nil {
		t.Fatalf("a good canary: %+v (%v); want healthy", v, err)
	}
	state := leaseVerifyState(t, kube)
	seq := onlySequence(t, state)
	if len(seq.Batches) != 3 || seq.Batches[0].Weight != 10 || seq.Batches[0].CanaryTotal != 200 {
		t.Fatalf("the Lease holds %+v; want the 3 intervals after the counters' first reading, at weight 10", seq)
	}
	// The next step (or a rerun) resumes the test: 3 carried, 3 more.
	if v, _, err := verify(t, env, Deps{Prom: good, Kube: kubeclienttest.Wrap(kube)}); err != nil {
		t.Fatalf("the next step: %+v (%v); want healthy", v, err)
	}
	if seq := onlySequence(t, leaseVerifyState(t, kube)); len(seq.Batches) != 6 {
		t.Errorf("after the next step the Lease holds %d batches; want 6 (3 carried, 3 new)", len(seq.Batches))
	}
}

// TestSequentialVerdictIgnoresAnotherReleasesState: state left by another release is not resumed.
func TestSequentialVerdictIgnoresAnotherReleasesState(t *testing.T) {
	t.Parallel()
	other := `{"release":"r0","checks":{"x":{"kind":"counts","batches":[{"ce":50,"cn":50,"be":0,"bn":50}]}}}`
	c, why := newCarry("r1", other)
	if why == "" || len(c.state.Checks) != 0 {
		t.Errorf("carry of another release: %q, %d checks; want it ignored, saying why", why, len(c.state.Checks))
	}
	c, why = newCarry("r1", strings.Replace(other, "r0", "r1", 1))
	if why != "" || c.loaded["x"] != 1 {
		t.Errorf("carry of this release: %q, %v; want its batch loaded", why, c.loaded)
	}
	if _, why = newCarry("r1", "{not json"); why == "" {
		t.Error("an unreadable carry was not reported")
	}
}

func leaseVerifyState(t *testing.T, kube *kubefake.Clientset) carried {
	t.Helper()
	l, err := kube.CoordinationV1().Leases("team").Get(context.Background(), "canaryline-exp", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var c carried
	if err := json.Unmarshal([]byte(l.Annotations[naming.VerifyStateAnnotation]), &c); err != nil {
		t.Fatalf("the Lease's verify state %q: %v", l.Annotations[naming.VerifyStateAnnotation], err)
	}
	if c.Release != "r1" {
		t.Errorf("verify state of release %q; want r1", c.Release)
	}
	return c
}

func onlySequence(t *testing.T, c carried) *stats.Sequence {
	t.Helper()
	if len(c.Checks) != 1 {
		t.Fatalf("verify state holds %d checks; want 1", len(c.Checks))
	}
	for k, s := range c.Checks {
		if !strings.HasPrefix(k, "errors-vs-stable/") || s.Kind != stats.KindCounts {
			t.Errorf("check %q kind %q; want errors-vs-stable, counts", k, s.Kind)
		}
		return s
	}
	return nil
}

// TestSequentialVerdictStopsWhenEquivalent: with STOP_WHEN_EQUIVALENT, a canary shown within the tolerance ends
// the analysis early as healthy.
func TestSequentialVerdictStopsWhenEquivalent(t *testing.T) {
	t.Parallel()
	good := &counterQuerier{perRead: 20000, rates: map[string]float64{"canary": 0.01, "stable": 0.01}}
	v, _, err := verify(t, map[string]string{"PODS": "false", "PROMETHEUS_URL": "http://p:9090", "COMPARE": countsCompare,
		"COUNT": "50", "TOLERANCE": "0.5", "STOP_WHEN_EQUIVALENT": "true"}, Deps{Prom: good})
	if err != nil || !strings.Contains(v.Reason, "STOP_WHEN_EQUIVALENT") || strings.Contains(v.Reason, "50 measurements") {
		t.Errorf("verdict %+v (%v); want healthy early, saying why", v, err)
	}
}

// TestSequentialVerdictCarryIsBounded: the state written to the Lease keeps at most maxCarried batches a check,
// and nothing at all past maxCarryBytes, so that the Lease's annotations stay within their limit.
func TestSequentialVerdictCarryIsBounded(t *testing.T) {
	t.Parallel()
	c, _ := newCarry("r1", "")
	c.sequence("a", stats.KindCounts)
	for range maxCarried + 50 {
		c.add("a", stats.Batch{CanaryEvents: 1, CanaryTotal: 100, BaselineEvents: 1, BaselineTotal: 900, Weight: 10})
	}
	var got carried
	if err := json.Unmarshal([]byte(c.JSON()), &got); err != nil || len(got.Checks["a"].Batches) != maxCarried {
		t.Errorf("carried %v batches (%v); want %d", len(got.Checks["a"].Batches), err, maxCarried)
	}
	for i := range 20 {
		key := fmt.Sprintf("check-%d", i)
		c.sequence(key, stats.KindCounts)
		for range maxCarried {
			c.add(key, stats.Batch{CanaryEvents: 123456, CanaryTotal: 1234567, BaselineEvents: 123456, BaselineTotal: 1234567, Weight: 100})
		}
	}
	if s := c.JSON(); s != "" {
		t.Errorf("a state of %d checks was written (%d bytes); want nothing past %d bytes", len(c.state.Checks), len(s), maxCarryBytes)
	}
}

// TestVerifyWarnsOfTrackQueriesOnUnlabelledCanaryPods: a release whose canary pods carry the stable's labels
// (REUSE_CANARY=true) gives a query that selects pods by {{.Track}} no canary data: verify-health says so, and how
// to select them; with REUSE_CANARY=false (the pods labelled) or a query by hash, it says nothing.
func TestVerifyWarnsOfTrackQueriesOnUnlabelledCanaryPods(t *testing.T) {
	t.Parallel()
	byHash := strings.ReplaceAll(countsCompare, `track="{{.Track}}"`, `pod_template_hash="{{.Hash}}"`)
	labelled := releaseLease("")
	st, _ := json.Marshal(release.State{ID: "r1", App: "exp", Weight: 10, Phase: release.PhaseShifting, TrackPods: true})
	labelled.Annotations[release.StateAnnotation] = string(st)
	for _, tc := range []struct {
		name    string
		compare string
		lease   *coordinationv1.Lease
		warn    bool
	}{
		{"by track, unlabelled pods", countsCompare, releaseLease(""), true},
		{"by hash, unlabelled pods", byHash, releaseLease(""), false},
		{"by track, labelled pods", countsCompare, labelled, false},
	} {
		kube := kubefake.NewSimpleClientset(append(releaseObjects(false), tc.lease)...)
		good := &counterQuerier{perRead: 200, rates: map[string]float64{"canary": 0.01, "stable": 0.01}}
		env := map[string]string{"PODS": "false", "PROMETHEUS_URL": "http://p:9090", "COMPARE": tc.compare, "COUNT": "2", "RELEASE_ID": "r1"}
		_, log, _ := verify(t, env, Deps{Prom: good, Kube: kubeclienttest.Wrap(kube)})
		if got := strings.Contains(log, "carry no canaryline.dev/track label") && strings.Contains(log, "REUSE_CANARY=false"); got != tc.warn {
			t.Errorf("%s: warned %v; want %v\n%s", tc.name, got, tc.warn, log)
		}
	}
}
