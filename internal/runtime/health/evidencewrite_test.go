package health

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/canaryline/canaryline/internal/runtime/evidence"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// spoiler answers every query with v and, at the first, puts a file where the evidence directory was: the
// directory was writable when the step started, and the evidence cannot be written when the verdict is in.
type spoiler struct {
	v    float64
	dir  string
	once sync.Once
	err  error
}

func (s *spoiler) Query(ctx context.Context, q string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	s.once.Do(func() {
		if s.err = os.RemoveAll(s.dir); s.err == nil {
			s.err = os.WriteFile(s.dir, []byte("not a directory"), 0o644)
		}
	})
	return valueQuerier{v: s.v}.Query(ctx, q, ts, opts...)
}

// TestVerdictStandsWhenTheEvidenceWriteFails: a verdict reached is kept, with its exit code, when the evidence
// cannot be written afterwards: a WARN line and the EVIDENCE_ERROR result say so. EVIDENCE_ERROR is written
// with every verdict, empty when the evidence was written.
func TestVerdictStandsWhenTheEvidenceWriteFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		value   float64
		spoil   bool
		verdict string
		code    int
	}{
		{"healthy, the write fails", 0.01, true, evidence.Healthy, step.ExitOK},
		{"unhealthy, the write fails", 0.5, true, evidence.Unhealthy, step.ExitFailed},
		{"healthy, written", 0.01, false, evidence.Healthy, step.ExitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "evidence")
			q := &spoiler{v: tc.value, dir: dir}
			if !tc.spoil {
				q.once.Do(func() {})
			}
			v, log, err := verify(t, map[string]string{"PODS": "false", "PROMETHEUS_URL": "http://p:9090", "QUERIES": errorRate,
				"EVIDENCE_DIR": dir}, Deps{Prom: q})
			if q.err != nil {
				t.Fatal(q.err)
			}
			if v.Verdict != tc.verdict || step.ExitCode(err) != tc.code {
				t.Fatalf("verdict %q exit %d (%v); want %s exit %d", v.Verdict, step.ExitCode(err), err, tc.verdict, tc.code)
			}
			r := v.Results()
			got, ok := r["EVIDENCE_ERROR"]
			if !ok {
				t.Fatalf("results %v lack EVIDENCE_ERROR", r)
			}
			if r["VERDICT"] != tc.verdict {
				t.Errorf("VERDICT %q; want %s", r["VERDICT"], tc.verdict)
			}
			if !tc.spoil {
				if got != "" || r["EVIDENCE"] == "" {
					t.Errorf("EVIDENCE_ERROR %q, EVIDENCE %q; want none and the report", got, r["EVIDENCE"])
				}
				return
			}
			if !strings.Contains(got, "write the evidence to "+dir) || !strings.Contains(got, "not a directory") || r["EVIDENCE"] != "" {
				t.Errorf("EVIDENCE_ERROR %q, EVIDENCE %q; want the write's error and no report", got, r["EVIDENCE"])
			}
			if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "the verdict stands") {
				t.Errorf("no WARN line about the evidence:\n%s", log)
			}
		})
	}
}
