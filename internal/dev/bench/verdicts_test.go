package bench

import (
	"strings"
	"testing"
)

// TestVerdictFigures: the simulation yields every figure with a target, and on a small seeded run the sequential
// test keeps false rollbacks rare and catches a 2x error rate at 200 requests an interval.
func TestVerdictFigures(t *testing.T) {
	t.Parallel()
	ms := VerdictFigures(VerdictOptions{Releases: 200, Seed: 7})
	if len(ms) != 8 {
		t.Fatalf("%d figures; want 8", len(ms))
	}
	for _, m := range ms {
		if m.Met == nil || m.Target == "" || !strings.Contains(m.Detail, "fixed Mann-Whitney") {
			t.Errorf("%s: target %q met %v detail %q; want a target and the fixed test beside", m.Figure, m.Target, m.Met, m.Detail)
		}
		switch {
		case strings.HasPrefix(m.Figure, "false rollbacks") && m.Value > 3:
			t.Errorf("%s: %.1f%% of 200 releases; want about 1%% at most", m.Figure, m.Value)
		case strings.Contains(m.Figure, "200 canary requests") && m.Value < 90:
			t.Errorf("%s: %.1f%%; want most caught", m.Figure, m.Value)
		}
	}
}
