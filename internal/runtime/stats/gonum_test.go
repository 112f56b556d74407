package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// TestNormalMatchesGonum: the step uses Go's math for the normal distribution (gonum's distuv would link
// LAPACK into the step image); it must agree with gonum's.
func TestNormalMatchesGonum(t *testing.T) {
	t.Parallel()
	g := distuv.UnitNormal
	for x := -8.0; x <= 8; x += 0.125 {
		if d := math.Abs(stdNormal.CDF(x) - g.CDF(x)); d > 1e-15 {
			t.Errorf("CDF(%v): %v vs gonum %v", x, stdNormal.CDF(x), g.CDF(x))
		}
		if d := math.Abs(stdNormal.Survival(x) - g.Survival(x)); d > 1e-15 {
			t.Errorf("Survival(%v): %v vs gonum %v", x, stdNormal.Survival(x), g.Survival(x))
		}
	}
	for _, p := range []float64{1e-9, 0.001, 0.01, 0.025, 0.1, 0.5, 0.9, 0.975, 0.99, 0.999} {
		if d := math.Abs(stdNormal.Quantile(p)-g.Quantile(p)) / math.Abs(g.Quantile(p)+1e-300); d > 1e-8 && p != 0.5 {
			t.Errorf("Quantile(%v): %v vs gonum %v", p, stdNormal.Quantile(p), g.Quantile(p))
		}
	}
}

func TestEmpiricalQuantileMatchesGonum(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 7))
	for n := 1; n <= 40; n++ {
		s := make([]float64, n)
		for i := range s {
			s[i] = math.Round(r.Float64() * 10)
		}
		slices.Sort(s)
		for _, p := range []float64{0, 0.1, 0.25, 0.5, 0.75, 0.9, 1} {
			if got, want := empiricalQuantile(p, s), stat.Quantile(p, stat.Empirical, s, nil); got != want {
				t.Errorf("n=%d p=%v: %v vs gonum %v", n, p, got, want)
			}
		}
	}
}
