package bench

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canaryline/canaryline/internal/runtime/steps"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{7}, 7},
		{[]time.Duration{9, 1, 5}, 5},
		{[]time.Duration{4, 1, 3, 2}, 2}, // (2+3)/2, truncated
		{[]time.Duration{10, 30, 20, 40}, 25},
		{[]time.Duration{3, 3, 1, 3, 100}, 3},
	} {
		in := append([]time.Duration(nil), tc.in...)
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Fatalf("median reordered its input: %v, was %v", tc.in, in)
			}
		}
	}
}

func TestWithParam(t *testing.T) {
	got := withParam([]string{"APP=app", "WEIGHT=10", "RELEASE_ID=r1"}, "WEIGHT=abc")
	if want := "APP=app RELEASE_ID=r1 WEIGHT=abc"; strings.Join(got, " ") != want {
		t.Errorf("withParam = %v, want %s", got, want)
	}
	if got := withParam([]string{"APP=app"}, "TIMEOUT=soon"); strings.Join(got, " ") != "APP=app TIMEOUT=soon" {
		t.Errorf("withParam added = %v", got)
	}
}

// buildStartupBinaries builds canaryline-steps and the empty client program into a temporary directory.
func buildStartupBinaries(t *testing.T) StartupOptions {
	t.Helper()
	if testing.Short() {
		t.Skip("builds binaries")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	o := StartupOptions{Steps: filepath.Join(dir, steps.MultiCallName)}
	args := append([]string{"build"}, BuildFlags...)
	if err := goBuild(t.Context(), root, append(args, "-o", o.Steps, "./cmd/canaryline-steps")...); err != nil {
		t.Fatal(err)
	}
	if o.Empty, err = BuildEmptyClient(t.Context(), root, dir); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestColdStart runs every probe a few times. It holds the figures to nothing: they are benchmarks. ColdStart
// itself fails when a step exits before its first API request, or makes one on bad input.
func TestColdStart(t *testing.T) {
	o := buildStartupBinaries(t)
	o.Runs = 3
	ms, err := ColdStart(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Measurement{}
	for _, m := range ms {
		t.Logf("%s: %.1f %s (target %q) %s", m.Figure, m.Value, m.Unit, m.Target, m.Detail)
		got[m.Figure] = m
	}
	want := []string{"cold start to first API request: empty client program"}
	for _, s := range steps.Names() {
		want = append(want, "cold start to first API request: "+s, "exit on bad input: "+s)
	}
	if len(ms) != len(want) {
		t.Errorf("%d measurements, want %d", len(ms), len(want))
	}
	for _, f := range want {
		m, ok := got[f]
		switch {
		case !ok:
			t.Errorf("no measurement %q", f)
		case m.Value <= 0 || m.Unit != "ms":
			t.Errorf("%s: %v %s, want a positive number of ms", f, m.Value, m.Unit)
		case !strings.HasPrefix(m.Detail, "median of 3 runs"):
			t.Errorf("%s: detail %q does not say 3 runs", f, m.Detail)
		case strings.HasPrefix(f, "exit on bad input") && !strings.Contains(m.Detail, "with no API request"):
			t.Errorf("%s: detail %q", f, m.Detail)
		}
	}
}

// TestBadInputRequestIsCaught gives a bad-input probe valid params: the API request the step then makes must fail
// the measurement, so that ColdStart's "no API request on bad input" means something.
func TestBadInputRequestIsCaught(t *testing.T) {
	o := buildStartupBinaries(t)
	srv := newAPIServer()
	defer srv.Close()
	probes, err := coldStartProbes(srv, t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probes {
		if p.badParam == "" || !strings.HasSuffix(p.figure, steps.PromoteOrRollback) {
			continue
		}
		p.env = withParam(p.env, "DECISION=rollback") // valid after all
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		_, err := srv.run(ctx, p)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "API request") {
			t.Fatalf("a bad-input run that reached the API server: error %v, want one about its API request", err)
		}
		t.Log(err)
		return
	}
	t.Fatal("no bad-input probe of promote-or-rollback")
}
