package stats

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

// poisson draws a Poisson(lambda) count (Knuth's method; lambda stays small here).
func poisson(r *rand.Rand, lambda float64) int64 {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 { // normal approximation for the large ones
		return int64(math.Max(0, math.Round(lambda+math.Sqrt(lambda)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), int64(0), 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// TestSequentialLogLRMatchesTheBinomial: a group's log likelihood ratio is the log of the ratio of two binomial
// probabilities, computed here independently with gonum.
func TestSequentialLogLRMatchesTheBinomial(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ k, m, p0, psi float64 }{{3, 4, 0.5, 2}, {0, 7, 0.2, 3}, {12, 40, 0.11, 1.25}, {5, 5, 0.9, 10}, {2, 30, 0.4, 1 / 3.0}} {
		g := group{k: c.k, m: c.m, p0: c.p0}
		pa := c.psi * c.p0 / (1 - c.p0 + c.psi*c.p0)
		want := distuv.Binomial{N: c.m, P: pa}.LogProb(c.k) - distuv.Binomial{N: c.m, P: c.p0}.LogProb(c.k)
		if got := g.logLR(c.psi); math.Abs(got-want) > 1e-9 {
			t.Errorf("logLR(%+v) = %v; gonum's binomial ratio is %v", c, got, want)
		}
	}
	// By hand: 3 of 4 at 1/2 against odds 2 (p = 2/3): (2/3)^3 (1/3) / (1/2)^4 = 128/81.
	if got := (group{k: 3, m: 4, p0: 0.5}).logLR(2); math.Abs(got-math.Log(128.0/81)) > 1e-12 {
		t.Errorf("logLR = %v; want log(128/81)", got)
	}
}

// TestSequentialMixtureIsTheMeanLikelihoodRatio: the e-value is the equally weighted mean of the alternatives'
// likelihood ratios over all the groups.
func TestSequentialMixtureIsTheMeanLikelihoodRatio(t *testing.T) {
	t.Parallel()
	gs := []group{{k: 3, m: 5, p0: 0.3}, {k: 1, m: 2, p0: 0.6}, {k: 4, m: 4, p0: 0.5}}
	sum := 0.0
	for _, psi := range alternatives {
		lr := 1.0
		for _, g := range gs {
			pa := psi * g.p0 / (1 - g.p0 + psi*g.p0)
			lr *= math.Pow(pa/g.p0, g.k) * math.Pow((1-pa)/(1-g.p0), g.m-g.k)
		}
		sum += lr
	}
	if got, want := mixture(gs, alternatives), math.Log(sum/float64(len(alternatives))); math.Abs(got-want) > 1e-12 {
		t.Errorf("mixture = %v; want %v", got, want)
	}
	// A one-step release's evidence: half the mixture plus the half kept for later steps (at its initial 1).
	s := &Sequence{Kind: KindPairs, Batches: []Batch{{Higher: 3, Pairs: 5}, {Higher: 4, Pairs: 4}}}
	e := mixture([]group{{k: 3, m: 5, p0: 0.5}, {k: 4, m: 4, p0: 0.5}}, alternatives)
	if got, want := s.Path(SeqOptions{})[1], math.Log(0.5*math.Exp(e)+0.5); math.Abs(got-want) > 1e-12 {
		t.Errorf("Path = %v; want log(E/2 + 1/2) = %v", got, want)
	}
}

// release simulates a 3-step canary release at weights 10, 30 and 60% with intervals of 10 each: the canary
// gets perInterval requests an interval at 10% (3x and 6x that later), the baseline (or stable) the rest or
// the same. rate(step, interval) is the canary's error rate; the baseline's is base.
type release struct {
	perInterval float64
	base        float64
	vsStable    bool
	rate        func(step, i int) float64
}

func (rl release) sequence(r *rand.Rand) *Sequence {
	s := &Sequence{Kind: KindCounts}
	for st, w := range []float64{0.1, 0.3, 0.6} {
		for i := 0; i < 10; i++ {
			n := rl.perInterval * w / 0.1
			nb := n
			if rl.vsStable {
				nb = n * (1 - w) / w
			}
			s.Batches = append(s.Batches, Batch{Weight: int32(100 * w),
				CanaryTotal: int64(n), CanaryEvents: poisson(r, n*rl.rate(st, i)),
				BaselineTotal: int64(nb), BaselineEvents: poisson(r, nb*rl.base)})
		}
	}
	return s
}

// firstCross is the batch (from 0) at which the test's path first reaches its boundary, or -1.
func firstCross(s *Sequence, o SeqOptions) int {
	bound := math.Log(1 / o.Alpha)
	if o.Alpha == 0 {
		bound = math.Log(1 / DefaultAlpha)
	}
	for i, l := range s.Path(o) {
		if l >= bound {
			return i
		}
	}
	return -1
}

// TestSequentialFalseAlarmsStayBelowAlpha: identical canaries, looked at after every interval of a 3-step
// release (the traffic split changing between steps), are flagged in at most alpha of 2000 releases (plus the
// binomial noise of 2000 draws: 3 standard deviations).
func TestSequentialFalseAlarmsStayBelowAlpha(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		rl   release
		dir  Direction
	}{
		{"vs stable", release{perInterval: 200, base: 0.01, vsStable: true}, Increase},
		{"vs baseline", release{perInterval: 200, base: 0.01}, Increase},
		{"low traffic", release{perInterval: 5, base: 0.01, vsStable: true}, Increase},
		{"either way", release{perInterval: 100, base: 0.02}, Either},
		{"decrease", release{perInterval: 100, base: 0.05, vsStable: true}, Decrease},
	} {
		c.rl.rate = func(int, int) float64 { return c.rl.base }
		r := rand.New(rand.NewPCG(1, 2))
		const runs, alpha = 2000, 0.01
		alarms := 0
		for range runs {
			if firstCross(c.rl.sequence(r), SeqOptions{Direction: c.dir, Alpha: alpha}) >= 0 {
				alarms++
			}
		}
		if limit := runs*alpha + 3*math.Sqrt(runs*alpha*(1-alpha)); float64(alarms) > limit {
			t.Errorf("%s: %d false alarms in %d releases; want at most alpha (%v: %.0f with its noise)", c.name, alarms, runs, alpha, limit)
		}
	}
}

// TestSequentialCatchesA2xErrorRate: 1% to 2% is caught before the end of the release in at least 95% of 500
// releases at 200 canary requests an interval (against the stable).
func TestSequentialCatchesA2xErrorRate(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	rl := release{perInterval: 200, base: 0.01, vsStable: true, rate: func(int, int) float64 { return 0.02 }}
	caught := 0
	for range 500 {
		if firstCross(rl.sequence(r), SeqOptions{Tolerance: 0.1}) >= 0 {
			caught++
		}
	}
	if caught < 475 {
		t.Errorf("caught %d of 500 2x regressions; want at least 95%%", caught)
	}
}

// TestSequentialConfidenceSequenceCovers: the rate ratio's confidence sequence holds the true ratio (2) in at
// least 1-alpha of the releases, at the end.
func TestSequentialConfidenceSequenceCovers(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	rl := release{perInterval: 100, base: 0.01, vsStable: true, rate: func(int, int) float64 { return 0.02 }}
	missed := 0
	for range 300 {
		res := rl.sequence(r).Evaluate(SeqOptions{Alpha: 0.05})
		if !(res.Low <= 2 && 2 <= res.High) {
			missed++
		}
		if !(res.Low <= res.Estimate && res.Estimate <= res.High) {
			t.Fatalf("the estimate %v is outside its confidence sequence [%v, %v]", res.Estimate, res.Low, res.High)
		}
	}
	if missed > 15+3*4 { // alpha 5% of 300, and 3 standard deviations
		t.Errorf("the confidence sequence missed the true ratio in %d of 300 releases", missed)
	}
}

// TestSequentialShowsEquivalence: a good canary with plenty of traffic is shown to be within the tolerance.
func TestSequentialShowsEquivalence(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 8))
	rl := release{perInterval: 2000, base: 0.01, vsStable: true, rate: func(int, int) float64 { return 0.01 }}
	res := rl.sequence(r).Evaluate(SeqOptions{Tolerance: 0.5})
	if res.Outcome != Pass || res.EquivLogE < res.Boundary {
		t.Errorf("outcome %v (equivalence log e %v vs %v); want Pass: %s", res.Outcome, res.EquivLogE, res.Boundary, res.Reason)
	}
	none := (&Sequence{Kind: KindCounts}).Evaluate(SeqOptions{})
	if none.Outcome != NotEnoughData || none.Informative != 0 || !math.IsNaN(none.Estimate) {
		t.Errorf("no batches: %+v; want not enough data", none)
	}
}

// TestSequentialPairs: the pairs test holds its false alarms on identical latencies and catches a 20% slower
// canary; ties and non-finite values are left out of the pairs.
func TestSequentialPairs(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(9, 10))
	run := func(scale float64) *Sequence {
		s := &Sequence{Kind: KindPairs}
		for range 30 {
			c, b := make([]float64, 20), make([]float64, 20)
			for i := range c {
				c[i] = scale * math.Exp(0.3*r.NormFloat64())
				b[i] = math.Exp(0.3 * r.NormFloat64())
			}
			s.Batches = append(s.Batches, PairBatch(c, b))
		}
		return s
	}
	o := SeqOptions{Tolerance: 0.1}
	alarms, caught := 0, 0
	for range 500 {
		if run(1).Evaluate(o).Outcome == Fail {
			alarms++
		}
		if run(1.2).Evaluate(o).Outcome == Fail {
			caught++
		}
	}
	if alarms > 5+3*2 {
		t.Errorf("%d false alarms in 500 identical runs; want at most 1%%", alarms)
	}
	if caught < 475 {
		t.Errorf("caught %d of 500 20%% latency regressions; want 95%%", caught)
	}
	b := PairBatch([]float64{1, 2, 3, math.NaN()}, []float64{1, 1, 4, 1, 9})
	if b.Higher != 1 || b.Pairs != 2 || b.CanaryMedian != 2 || b.BaselineMedian != 1 {
		t.Errorf("PairBatch = %+v; want the tie and the NaN pair left out, and the medians", b)
	}
}

// TestSequentialToleranceGates: a difference shown but within the tolerance is no regression; beyond it, it is.
func TestSequentialToleranceGates(t *testing.T) {
	t.Parallel()
	s := &Sequence{Kind: KindCounts}
	for range 30 { // 1.2% against 1%, with plenty of traffic: a clear 20% difference
		s.Batches = append(s.Batches, Batch{CanaryEvents: 1200, CanaryTotal: 100000, BaselineEvents: 1000, BaselineTotal: 100000})
	}
	r := s.Evaluate(SeqOptions{Tolerance: 0.5})
	if r.Outcome != Pass || r.LogE < r.Boundary || !(r.Low > 1.15 && r.High < 1.25) {
		t.Errorf("a 20%% difference at 50%% tolerance: %v, %s; want a difference shown, within the tolerance", r.Outcome, r.Reason)
	}
	short := &Sequence{Kind: KindCounts, Batches: s.Batches[:1]}
	if r := short.Evaluate(SeqOptions{Tolerance: 0.25}); r.Outcome != NotEnoughData || !strings.Contains(r.Reason, "a difference shown, within the 25% tolerance:") {
		t.Errorf("one interval of it: %v, %s; want a difference shown within the tolerance, the test going on", r.Outcome, r.Reason)
	}
	if r := s.Evaluate(SeqOptions{Tolerance: 0.1}); r.Outcome != Fail || math.Abs(r.Shift-0.2) > 0.01 {
		t.Errorf("a 20%% difference at 10%% tolerance: %v shift %v; want a regression", r.Outcome, r.Shift)
	}
}

// TestSequentialRestartsAtEachStep: a canary good for a step and bad from the next is judged on the data since
// the break: caught within a few intervals, where a single test started at the first interval needs more.
func TestSequentialRestartsAtEachStep(t *testing.T) {
	t.Parallel()
	s := &Sequence{Kind: KindCounts}
	for i := range 20 {
		b := Batch{CanaryEvents: 10, CanaryTotal: 1000, BaselineEvents: 90, BaselineTotal: 9000, Weight: 10}
		if i >= 10 {
			b = Batch{CanaryEvents: 150, CanaryTotal: 3000, BaselineEvents: 70, BaselineTotal: 7000, Weight: 30}
		}
		s.Batches = append(s.Batches, b)
	}
	path := s.Path(SeqOptions{})
	after := -1
	for i, l := range path {
		if l >= math.Log(100) {
			after = i - 10
			break
		}
	}
	if after < 0 || after > 1 {
		t.Errorf("a 5x break at the second step crossed %d intervals after it (path %v); want within 2", after, path)
	}
	// One test from the start, without restarts, is held back by the good step.
	single := &Sequence{Kind: KindCounts, Batches: append([]Batch(nil), s.Batches...)}
	for i := range single.Batches {
		single.Batches[i].Weight = 0
	}
	if sp := single.Path(SeqOptions{}); sp[11] >= path[11] {
		t.Errorf("without restarts the evidence at the break's second interval is %v, with them %v; want less", sp[11], path[11])
	}
}
