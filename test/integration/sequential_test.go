package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sampleapp "github.com/canaryline/canaryline/internal/dev/app"
	"github.com/canaryline/canaryline/internal/runtime/evidence"
	"github.com/canaryline/canaryline/internal/runtime/naming"
)

// seqCompare counts each track's 500s among its requests (counters; verify-health takes their increase).
const seqCompare = "- name: errors-vs-baseline\n" +
	"  errors: 'sum(http_requests_total{namespace=\"{{.Namespace}}\",track=\"{{.Track}}\",code=\"500\"})'\n" +
	"  requests: 'sum(http_requests_total{namespace=\"{{.Namespace}}\",track=\"{{.Track}}\"})'\n"

// seqEnv is a release of shop at 10% with a baseline (LOCK_TTL 10s, so that the lock's renewals, which carry
// the sequential state, come every few seconds), real sample apps at 100 requests a second each (the baseline
// and stable at 5% errors, the canary as given), a real Prometheus, and verify-health's env for one sequential
// count comparison.
func seqEnv(t *testing.T, canaryErrors float64) (*app, *sampleApps, map[string]string) {
	t.Helper()
	a := newApp(t, "route", 2)
	if r := a.shift(10, map[string]string{"BASELINE": "true", "LOCK_TTL": "10s"}); r.code != 0 {
		t.Fatalf("shift: exit %d\n%s", r.code, r.stderr)
	}
	apps := startSampleApps(t, map[string]sampleapp.Config{
		"stable":   {Version: "v1", ErrorRate: 0.05, Seed: 11},
		"baseline": {Version: "v1", ErrorRate: 0.05, Seed: 12},
		"canary":   {Version: "v2", ErrorRate: canaryErrors, Seed: 13},
	}, 100)
	prom := startPrometheus(t, a.ns, apps)
	return a, apps, map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1", "INTERVAL": "1s", "COUNT": "30",
		"PROMETHEUS_URL": prom, "COMPARE": seqCompare, "EVIDENCE_DIR": filepath.Join(t.TempDir(), "evidence")}
}

// TestSequentialVerdictCatchesA2xCanary: a canary at twice the baseline's error rate (10% against 5%) is caught
// by the sequential test before its 30 intervals are over, and the report shows the evidence against its
// boundary and the rate ratio's confidence sequence.
func TestSequentialVerdictCatchesA2xCanary(t *testing.T) {
	t.Parallel()
	a, _, env := seqEnv(t, 0.10)
	r := runStep(t, "verify-health", a.kubeconfig, env)
	reason := r.results["REASON"]
	if r.code != 4 || !strings.Contains(reason, "errors-vs-baseline") || !strings.Contains(reason, "increase shown") ||
		!strings.Contains(reason, "certain before the end") {
		t.Fatalf("exit %d REASON %q; want 4, the sequential comparison showing the increase before the window's end\n%s", r.code, reason, r.stdout)
	}
	ev := readEvidence(t, env["EVIDENCE_DIR"])
	last := lastSequential(ev, "errors-vs-baseline")
	if last == nil || last.LogE < last.Boundary || last.Intervals >= 30 || !strings.HasPrefix(last.Effect, "rate ratio") {
		t.Errorf("the evidence's last sequential state %+v; want the boundary reached before 30 intervals, with the rate ratio", last)
	}
	report, _ := os.ReadFile(filepath.Join(env["EVIDENCE_DIR"], "report.md"))
	chart, _ := os.ReadFile(filepath.Join(env["EVIDENCE_DIR"], "chart.svg"))
	if !strings.Contains(string(report), "## Sequential tests") || !strings.Contains(string(chart), "errors-vs-baseline evidence") {
		t.Errorf("the report or the chart lacks the sequential test's evidence path")
	}
}

// TestSequentialVerdictCarriesStateAcrossSteps: a good canary's test goes on from one verify step to the next
// (at 10%, then 30%), and across a verify step killed mid-analysis and run again: each run starts from what the
// Lease holds. Promoting the release removes the state.
func TestSequentialVerdictCarriesStateAcrossSteps(t *testing.T) {
	t.Parallel()
	a, _, env := seqEnv(t, 0.05)
	env["COUNT"] = "5"
	if r := runStep(t, "verify-health", a.kubeconfig, env); r.code != 0 {
		t.Fatalf("verify at 10%%: exit %d %v\n%s", r.code, r.results, r.stdout)
	}
	first := leaseBatches(t, a)
	if len(first) < 3 || first[0].Weight != 10 {
		t.Fatalf("after the first step the Lease holds %+v; want its intervals, at weight 10", first)
	}

	if r := a.shift(30, map[string]string{"BASELINE": "true", "LOCK_TTL": "10s"}); r.code != 0 {
		t.Fatalf("shift to 30%%: exit %d", r.code)
	}
	// Killed after the lock's renewals wrote some intervals (every 10s/3): the rerun resumes from them.
	env["COUNT"] = "30"
	cmd, wait := startStep(t, "verify-health", a.kubeconfig, env)
	waitUntil(t, 20*time.Second, "a renewal carrying intervals at 30%", func() bool {
		bs := leaseBatches(t, a)
		return len(bs) > len(first) && bs[len(bs)-1].Weight == 30
	})
	_ = cmd.Process.Kill()
	wait()
	killed := leaseBatches(t, a)

	env["COUNT"] = "4"
	if r := runStep(t, "verify-health", a.kubeconfig, env); r.code != 0 {
		t.Fatalf("the rerun at 30%%: exit %d %v\n%s", r.code, r.results, r.stdout)
	}
	last := lastSequential(readEvidence(t, env["EVIDENCE_DIR"]), "errors-vs-baseline")
	if last == nil || last.Carried != len(killed) || last.Intervals <= len(killed) {
		t.Errorf("the rerun's test %+v; want it to carry the %d intervals on the Lease, and add its own", last, len(killed))
	}
	after := leaseBatches(t, a)
	if len(after) <= len(killed) || after[0] != first[0] {
		t.Errorf("the Lease holds %d intervals after the rerun (%d before); want the same test, grown", len(after), len(killed))
	}

	if r := a.decide(map[string]string{"DECISION": "promote", "VERDICT": "healthy"}); r.code != 0 {
		t.Fatalf("promote: exit %d\n%s", r.code, r.stderr)
	}
	if v, ok := a.lease().Annotations[naming.VerifyStateAnnotation]; ok {
		t.Errorf("the promoted release left its verify state on the Lease: %.80s", v)
	}
}

// leaseBatches are the batches of the one sequential test the release Lease holds (none when there is no state).
func leaseBatches(t *testing.T, a *app) []struct {
	Weight int32 `json:"w"`
	CN     int64 `json:"cn"`
} {
	t.Helper()
	data := a.lease().Annotations[naming.VerifyStateAnnotation]
	if data == "" {
		return nil
	}
	var st struct {
		Release string `json:"release"`
		Checks  map[string]struct {
			Batches []struct {
				Weight int32 `json:"w"`
				CN     int64 `json:"cn"`
			} `json:"batches"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(data), &st); err != nil || st.Release != "shop-release-1" || len(st.Checks) != 1 {
		t.Fatalf("the Lease's verify state %.200s (%v); want one test of shop-release-1", data, err)
	}
	for _, c := range st.Checks {
		return c.Batches
	}
	return nil
}

func readEvidence(t *testing.T, dir string) *evidence.Evidence {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "evidence.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ev, err := evidence.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// lastSequential is the last sequential state of check name in ev.
func lastSequential(ev *evidence.Evidence, name string) *evidence.Sequential {
	var last *evidence.Sequential
	for _, m := range ev.Measurements {
		if m.Check == name && m.Sequential != nil {
			last = m.Sequential
		}
	}
	return last
}
