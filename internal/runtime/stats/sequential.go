package stats

import (
	"fmt"
	"math"
)

// Sequential tests: anytime-valid comparisons of the canary with the baseline (or stable), evaluated after every
// interval, whose false-alarm probability stays at most Alpha however often they are looked at and however long
// they run (Ville's inequality on a non-negative supermartingale under the null). They follow Lindon et al.,
// "Rapid Regression Detection in Software Deployments through Sequential Testing" (KDD 2022) and Lindon and
// Malek, "Anytime-Valid Inference for Multinomial Count Data" (NeurIPS 2022), reduced to what needs no more than
// counts:
//
//   - Counts (errors among requests on each side). Given the errors of an interval, each one is the canary's with
//     probability n·ρ/(n·ρ + m), where n and m are the requests of each side in that interval and ρ the ratio of
//     the canary's error rate to the baseline's. The test of ρ = 1 is a likelihood ratio of those Bernoulli draws,
//     mixed over a grid of alternative ratios. It needs only the counts, and stays valid when the traffic split
//     changes between intervals: each interval brings its own n and m.
//   - Pairs (any continuous metric: per-request latencies, per-interval values). Each canary value is paired with
//     a baseline value of the same interval; under no difference the canary's is the higher one with probability
//     1/2 (ties left out), so the same mixture tests the pairs (a sign test).
//
// A regression is shown when the evidence reaches 1/Alpha and the estimated effect is beyond the tolerance in the
// bad direction: the tolerance semantics of the fixed test (significant, and large enough to matter).
//
// The evidence restarts at every step of the release (a new traffic weight) without forgetting: it is the
// weighted sum, with weights 1/2, 1/4, 1/8, ..., of tests started at each step's first interval. The sum is itself
// a test martingale (its weights sum to 1), so the error budget stays Alpha for the whole release; and a canary
// that turns bad at a later step is judged on the data since then, not weighed down by its good first steps.
//
// A Sequence holds the batches (one an interval) and is all the state there is: it is carried from one verify
// step to the next of a release, and read again by a rerun.

// Kinds of Sequence.
const (
	KindCounts = "counts"
	KindPairs  = "pairs"
)

// Batch is what one interval adds. For counts: CanaryEvents of CanaryTotal requests, BaselineEvents of
// BaselineTotal. For pairs: Higher of Pairs (untied) pairs where the canary's value is the higher, and the
// medians of each side's values, for the effect's estimate.
type Batch struct {
	CanaryEvents   int64   `json:"ce,omitempty"`
	CanaryTotal    int64   `json:"cn,omitempty"`
	BaselineEvents int64   `json:"be,omitempty"`
	BaselineTotal  int64   `json:"bn,omitempty"`
	Higher         int64   `json:"hi,omitempty"`
	Pairs          int64   `json:"pn,omitempty"`
	CanaryMedian   float64 `json:"cm,omitempty"`
	BaselineMedian float64 `json:"bm,omitempty"`
	// Weight is the canary's traffic weight when the batch was measured: the step of the release it belongs to.
	Weight int32 `json:"w,omitempty"`
}

// Sequence is one sequential test's data: its kind and its batches, in time order.
type Sequence struct {
	Kind    string  `json:"kind"`
	Batches []Batch `json:"batches"`
}

// PairBatch pairs canary[i] with baseline[i], for i below the shorter length (the rest is not used), skipping
// non-finite values and ties. The medians are of all the finite values of each side.
func PairBatch(canary, baseline []float64) Batch {
	var bt Batch
	for i := 0; i < len(canary) && i < len(baseline); i++ {
		c, b := canary[i], baseline[i]
		if !isFinite(c) || !isFinite(b) || c == b {
			continue
		}
		bt.Pairs++
		if c > b {
			bt.Higher++
		}
	}
	bt.CanaryMedian, bt.BaselineMedian = Median(canary), Median(baseline)
	return bt
}

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// SeqOptions tune a sequential test.
type SeqOptions struct {
	Direction Direction
	// Alpha is the false-alarm probability over the whole sequence (DefaultAlpha when 0).
	Alpha float64
	// Tolerance: an effect within it is no regression (a rate ratio up to 1+Tolerance; a median shift up to
	// Tolerance of the baseline's).
	Tolerance float64
}

// DefaultAlpha is the default false-alarm probability of a sequential test.
const DefaultAlpha = 0.01

// SeqResult is a sequential test's state after its last batch.
type SeqResult struct {
	// Outcome is Fail when a regression is shown, Pass when no regression beyond the tolerance is (EquivLogE
	// reached Boundary), NotEnoughData while neither is (the test goes on).
	Outcome Outcome
	// LogE is the log of the e-value against "no difference" (the evidence of a regression); EquivLogE against
	// "a regression beyond the tolerance". Boundary is log(1/Alpha).
	LogE, EquivLogE, Boundary float64
	// Path is LogE after each batch.
	Path []float64
	// Estimate is the canary/baseline rate ratio (counts) or the probability that a canary value is the higher of
	// its pair (pairs), over all the batches; Low and High bound its anytime-valid confidence sequence at
	// 1-Alpha (0 and +Inf where the data cannot bound it). Shift is the effect the tolerance is held against: the
	// rate ratio minus 1, or the canary's median shift relative to the baseline's, since the step whose evidence
	// weighs most.
	Estimate, Low, High, Shift float64
	// Totals: events and requests per side (counts); higher and untied pairs (pairs).
	CanaryEvents, CanaryTotal, BaselineEvents, BaselineTotal int64
	// Informative counts the batches that carried evidence.
	Informative int
	Reason      string
}

// alternatives are the ratios (odds ratios for pairs) the mixture averages over, for an increase; their inverses
// for a decrease. 1.5 and 2, the likeliest regressions worth a rollback, are listed twice: they weigh 1/4 each,
// the others 1/8. The small ones keep a regression just past a 10% tolerance detectable with enough data; the
// mixture's price is log(1/weight) of evidence, about 1.4 for a doubled error rate.
var alternatives = []float64{1.1, 1.25, 1.5, 1.5, 2, 2, 3, 5}

// csAlternatives are the confidence sequence's: finer near 1, so that the sequence narrows with the data (it is
// a display; the test's own mixture stays coarse, and so more powerful).
var csAlternatives = func() []float64 {
	up := []float64{1.01, 1.02, 1.05, 1.1, 1.25, 1.5, 2, 3, 5, 10}
	return append(up, inverses(up)...)
}()

// group is k of m Bernoulli draws whose probability under the null is p0.
type group struct {
	k, m float64
	p0   float64
}

// logLR is the log likelihood ratio of g under odds ratio psi against the null.
func (g group) logLR(psi float64) float64 {
	pa := psi * g.p0 / (1 - g.p0 + psi*g.p0)
	return g.k*math.Log(pa/g.p0) + (g.m-g.k)*math.Log((1-pa)/(1-g.p0))
}

// mixture is the log of the e-value of groups mixed with equal weights over the odds ratios psis.
func mixture(gs []group, psis []float64) float64 {
	ls := make([]float64, len(psis))
	for i, psi := range psis {
		for _, g := range gs {
			ls[i] += g.logLR(psi)
		}
	}
	return logMeanExp(ls)
}

func logMeanExp(ls []float64) float64 {
	mx := math.Inf(-1)
	for _, l := range ls {
		mx = math.Max(mx, l)
	}
	if math.IsInf(mx, -1) {
		return mx
	}
	s := 0.0
	for _, l := range ls {
		s += math.Exp(l - mx)
	}
	return mx + math.Log(s/float64(len(ls)))
}

func inverses(psis []float64) []float64 {
	out := make([]float64, len(psis))
	for i, p := range psis {
		out[i] = 1 / p
	}
	return out
}

// psis are the alternatives in direction d: above 1 for an increase, below for a decrease, both for either.
func psis(d Direction) []float64 {
	switch d {
	case Decrease:
		return inverses(alternatives)
	case Either:
		return append(append([]float64{}, alternatives...), inverses(alternatives)...)
	}
	return alternatives
}

// groupOf is batch b as a Bernoulli group for the null value v of the parameter (a rate ratio for counts, the
// odds of the canary being higher for pairs); false when it carries no evidence.
func (s *Sequence) groupOf(b Batch, v float64) (group, bool) {
	if s.Kind == KindPairs {
		return group{k: float64(b.Higher), m: float64(b.Pairs), p0: v / (1 + v)}, b.Pairs > 0
	}
	m := b.CanaryEvents + b.BaselineEvents
	if m == 0 || b.CanaryTotal <= 0 || b.BaselineTotal <= 0 {
		return group{}, false
	}
	n, nb := float64(b.CanaryTotal), float64(b.BaselineTotal)
	return group{k: float64(b.CanaryEvents), m: float64(m), p0: n * v / (n*v + nb)}, true
}

// stepStarts are the indexes of the batches that begin a step (the first, and each change of weight).
func (s *Sequence) stepStarts() []int {
	var starts []int
	for i, b := range s.Batches {
		if i == 0 || b.Weight != s.Batches[i-1].Weight {
			starts = append(starts, i)
		}
	}
	return starts
}

// Path is the log e-value against "no difference" after each batch: the weighted sum (1/2, 1/4, ...) of the
// mixtures started at each step, the weight of steps not begun yet counted at its initial value 1.
func (s *Sequence) Path(o SeqOptions) []float64 {
	alts := psis(o.Direction)
	starts := s.stepStarts()
	// sums[j][a] is the log likelihood ratio under alternative a of the test started at step j.
	sums := make([][]float64, len(starts))
	out := make([]float64, 0, len(s.Batches))
	begun := 0
	for i, b := range s.Batches {
		for begun < len(starts) && starts[begun] <= i {
			sums[begun] = make([]float64, len(alts))
			begun++
		}
		if g, ok := s.groupOf(b, 1); ok {
			for j := 0; j < begun; j++ {
				for a, psi := range alts {
					sums[j][a] += g.logLR(psi)
				}
			}
		}
		out = append(out, restartSum(sums[:begun]))
	}
	return out
}

// restartSum is log(Σ_j 2^-(j+1)·E_j + the weight of the steps not begun), E_j the mixture of sums[j].
func restartSum(sums [][]float64) float64 {
	terms := make([]float64, 0, len(sums)+1)
	rest := 1.0
	for j, ls := range sums {
		w := math.Pow(2, -float64(j+1))
		rest -= w
		terms = append(terms, math.Log(w)+logMeanExp(ls))
	}
	terms = append(terms, math.Log(rest))
	return logSumExp(terms)
}

func logSumExp(ls []float64) float64 {
	return logMeanExp(ls) + math.Log(float64(len(ls)))
}

// Evaluate runs the test over all the batches.
func (s *Sequence) Evaluate(o SeqOptions) SeqResult {
	if o.Alpha <= 0 || o.Alpha >= 1 {
		o.Alpha = DefaultAlpha
	}
	r := SeqResult{Boundary: math.Log(1 / o.Alpha), Path: s.Path(o)}
	if n := len(r.Path); n > 0 {
		r.LogE = r.Path[n-1]
	}
	r.EquivLogE = s.equivalence(o)
	r.totals(s)
	r.Estimate, r.Low, r.High = s.estimate(o.Alpha)
	r.Shift = s.shift(s.heaviestStep(o))
	switch {
	case r.LogE >= r.Boundary && beyond(o.Direction, r.Shift, o.Tolerance):
		r.Outcome = Fail
	case r.EquivLogE >= r.Boundary:
		r.Outcome = Pass
	default:
		r.Outcome = NotEnoughData
	}
	r.Reason = r.reason(s.Kind, o)
	return r
}

func (r *SeqResult) totals(s *Sequence) {
	for _, b := range s.Batches {
		if g, ok := s.groupOf(b, 1); ok && g.m > 0 {
			r.Informative++
		}
		if s.Kind == KindPairs {
			r.CanaryEvents += b.Higher
			r.CanaryTotal += b.Pairs
			continue
		}
		r.CanaryEvents += b.CanaryEvents
		r.CanaryTotal += b.CanaryTotal
		r.BaselineEvents += b.BaselineEvents
		r.BaselineTotal += b.BaselineTotal
	}
}

// heaviestStep is the index of the first batch of the step whose test holds the most evidence now.
func (s *Sequence) heaviestStep(o SeqOptions) int {
	best, bestE := 0, math.Inf(-1)
	for j, start := range s.stepStarts() {
		sub := Sequence{Kind: s.Kind, Batches: s.Batches[start:]}
		var gs []group
		for _, b := range sub.Batches {
			if g, ok := sub.groupOf(b, 1); ok {
				gs = append(gs, g)
			}
		}
		if e := -float64(j+1)*math.Ln2 + mixture(gs, psis(o.Direction)); e > bestE {
			best, bestE = start, e
		}
	}
	return best
}

// shift is the effect since batch from, as the tolerance measures it: the rate ratio minus 1 (counts), or the
// median over the intervals of the canary's median shift relative to the baseline's (pairs). NaN when unknown.
func (s *Sequence) shift(from int) float64 {
	var ce, cn, be, bn float64
	var rel []float64
	for _, b := range s.Batches[min(from, len(s.Batches)):] {
		if s.Kind == KindPairs {
			if b.Pairs > 0 && b.BaselineMedian != 0 {
				rel = append(rel, (b.CanaryMedian-b.BaselineMedian)/math.Abs(b.BaselineMedian))
			}
			continue
		}
		if b.CanaryTotal > 0 && b.BaselineTotal > 0 {
			ce, cn, be, bn = ce+float64(b.CanaryEvents), cn+float64(b.CanaryTotal), be+float64(b.BaselineEvents), bn+float64(b.BaselineTotal)
		}
	}
	if s.Kind == KindPairs {
		if len(rel) == 0 {
			return math.NaN()
		}
		return Median(rel)
	}
	switch {
	case cn == 0 || bn == 0:
		return math.NaN()
	case be == 0 && ce > 0:
		return math.Inf(1)
	case be == 0:
		return math.NaN()
	}
	return (ce/cn)/(be/bn) - 1
}

// equivalence is the log e-value against a regression beyond the tolerance: for counts, of ρ ≥ 1+Tolerance (or
// ≤ 1-Tolerance for a decrease); for pairs, of P(canary higher) ≥ 1/2 in the bad direction. For Either, the
// smaller of both sides' (both must be shown).
func (s *Sequence) equivalence(o SeqOptions) float64 {
	side := func(d Direction) float64 {
		null := 1 + o.Tolerance
		if d == Decrease {
			null = math.Max(1-o.Tolerance, 1e-9)
		}
		if s.Kind == KindPairs {
			null = 1
		}
		var gs []group
		for _, b := range s.Batches {
			if g, ok := s.groupOf(b, null); ok {
				gs = append(gs, g)
			}
		}
		if d == Decrease {
			return mixture(gs, alternatives)
		}
		return mixture(gs, inverses(alternatives))
	}
	switch o.Direction {
	case Decrease:
		return side(Decrease)
	case Either:
		return math.Min(side(Increase), side(Decrease))
	}
	return side(Increase)
}

// estimate is the parameter's point estimate and its confidence sequence at 1-alpha: the values v whose
// two-sided mixture e-value stays below 1/alpha, found from the estimate outwards and refined by bisection
// (0 and +Inf beyond 10^-3 and 10^3).
func (s *Sequence) estimate(alpha float64) (est, low, high float64) {
	var k, m float64
	var any bool
	for _, b := range s.Batches {
		if g, ok := s.groupOf(b, 1); ok {
			k, m, any = k+g.k, m+g.m, true
		}
	}
	if !any {
		return math.NaN(), math.NaN(), math.NaN()
	}
	both, bound := csAlternatives, math.Log(1/alpha)
	in := func(v float64) bool {
		var gs []group
		for _, b := range s.Batches {
			if g, ok := s.groupOf(b, v); ok {
				gs = append(gs, g)
			}
		}
		return mixture(gs, both) < bound
	}
	// The centre: the estimate as the parameter (a ratio, or the odds of higher), kept inside the grid.
	centre := (k + 0.5) / (m - k + 0.5)
	if s.Kind == KindCounts {
		if c := s.shift(0) + 1; isFinite(c) && c > 0 {
			centre = c
		}
	}
	centre = math.Min(math.Max(centre, 1e-3), 1e3)
	low, high = end(in, centre, 0.5, 1e-3, 0), end(in, centre, 2, 1e3, math.Inf(1))
	if s.Kind == KindPairs {
		return k / m, toProb(low), toProb(high)
	}
	return s.shift(0) + 1, low, high
}

// end walks from centre by factor until it leaves the sequence, then bisects (in log space) to its edge; past
// limit it is unbounded (beyond). When centre itself is out, the sequence is taken to be that point.
func end(in func(float64) bool, centre, factor, limit, beyond float64) float64 {
	if !in(centre) {
		return centre
	}
	inside := centre
	for {
		next := inside * factor
		if (factor > 1 && next > limit) || (factor < 1 && next < limit) {
			return beyond
		}
		if !in(next) {
			a, b := math.Log(inside), math.Log(next)
			for range 30 {
				mid := (a + b) / 2
				if in(math.Exp(mid)) {
					a = mid
				} else {
					b = mid
				}
			}
			return math.Exp(a)
		}
		inside = next
	}
}

func toProb(odds float64) float64 {
	switch {
	case math.IsNaN(odds):
		return odds
	case math.IsInf(odds, 1):
		return 1
	}
	return odds / (1 + odds)
}

func (r SeqResult) reason(kind string, o SeqOptions) string {
	ev := fmt.Sprintf("evidence log e %.2f, boundary %.2f (alpha %g)", r.LogE, r.Boundary, o.Alpha)
	switch {
	case r.Outcome == Fail:
		return fmt.Sprintf("%s shown: %s; %s", o.Direction, ev, r.effect(kind, o))
	case r.Outcome == Pass:
		return fmt.Sprintf("no %s beyond the tolerance shown: log e %.2f of %.2f; %s", o.Direction, r.EquivLogE, r.Boundary, r.effect(kind, o))
	case r.Informative == 0:
		return "no evidence yet: " + r.totalsText(kind)
	case r.LogE >= r.Boundary:
		return fmt.Sprintf("a difference shown, within the %g%% tolerance: %s; %s", 100*o.Tolerance, ev, r.effect(kind, o))
	}
	return fmt.Sprintf("no %s shown so far: %s; %s", o.Direction, ev, r.effect(kind, o))
}

// effect is the estimate with its confidence sequence, the shift held against the tolerance, and the totals.
func (r SeqResult) effect(kind string, o SeqOptions) string {
	what := "rate ratio"
	if kind == KindPairs {
		what = "P(canary higher)"
	}
	return fmt.Sprintf("%s %s [%s, %s], shift %s (tolerance %g%%); %s", what, FormatNumber(r.Estimate), FormatNumber(r.Low), FormatNumber(r.High),
		FormatShift(r.Shift), 100*o.Tolerance, r.totalsText(kind))
}

func (r SeqResult) totalsText(kind string) string {
	if kind == KindPairs {
		return fmt.Sprintf("canary higher in %d of %d pairs", r.CanaryEvents, r.CanaryTotal)
	}
	return fmt.Sprintf("canary %d of %d, baseline %d of %d", r.CanaryEvents, r.CanaryTotal, r.BaselineEvents, r.BaselineTotal)
}

// FormatNumber is x to 3 significant digits, "?" for NaN and "inf" for +Inf (an unbounded end).
func FormatNumber(x float64) string {
	switch {
	case math.IsNaN(x):
		return "?"
	case math.IsInf(x, 1):
		return "inf"
	}
	return fmt.Sprintf("%.3g", x)
}

// FormatShift is a relative shift as a signed percentage (FormatNumber's words when it is not finite).
func FormatShift(x float64) string {
	if !isFinite(x) {
		return FormatNumber(x)
	}
	return fmt.Sprintf("%+.1f%%", 100*x)
}
