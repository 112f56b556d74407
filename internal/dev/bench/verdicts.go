package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/canaryline/canaryline/internal/runtime/stats"
)

// The verdict figures are seeded simulations of verify-health's comparisons over whole releases, at its defaults:
// a 3-step canary release (weights 10, 30 and 60%), 10 intervals a step, the canary compared with the stable
// (which gets the rest of the traffic). The sequential test (STATISTICS=sequential, ALPHA 0.01, one error budget
// per release) and today's fixed Mann-Whitney test (STATISTICS=fixed, CONFIDENCE 0.98, MIN_SAMPLES 10, a verdict
// per step: a certain failure mid-step, or the final one) see the same simulated data in the same run.

// VerdictOptions size the simulation.
type VerdictOptions struct {
	Releases int    // simulated releases per figure (1000 by default)
	Seed     uint64 // the simulations' seed
}

// simRelease is one simulated release: at each of the 30 intervals, the canary's and the stable's errors among
// requests, and their latencies.
type simRelease struct {
	intervals []simInterval
}

type simInterval struct {
	weight                 int32
	canaryErr, canaryReq   int64
	stableErr, stableReq   int64
	canaryLat, stableLat   []float64
	canaryRatio, baseRatio float64
}

// scenario makes releases: perInterval canary requests an interval at the first weight (the canary's share grows
// with its weight), error rates by step and interval, and optionally latencies.
type scenario struct {
	name        string
	perInterval float64
	baseRate    float64
	canaryRate  func(step, i int) float64
	latency     func(step int) float64 // the canary's latency scale (1: as the stable's); nil: no latencies
	latencyReqs int                    // probe requests a side an interval
}

var releaseWeights = []float64{0.1, 0.3, 0.6}

const intervalsPerStep = 10

func (s scenario) release(r *rand.Rand) simRelease {
	var rel simRelease
	for st, w := range releaseWeights {
		for i := 0; i < intervalsPerStep; i++ {
			n := s.perInterval * w / releaseWeights[0]
			nb := n * (1 - w) / w
			iv := simInterval{weight: int32(100 * w), canaryReq: int64(n), stableReq: int64(nb),
				canaryErr: binomial(r, int64(n), s.canaryRate(st, i)), stableErr: binomial(r, int64(nb), s.baseRate)}
			iv.canaryRatio, iv.baseRatio = ratio(iv.canaryErr, iv.canaryReq), ratio(iv.stableErr, iv.stableReq)
			if s.latency != nil {
				iv.canaryLat, iv.stableLat = lognormals(r, s.latencyReqs, s.latency(st)), lognormals(r, s.latencyReqs, 1)
			}
			rel.intervals = append(rel.intervals, iv)
		}
	}
	return rel
}

func ratio(e, n int64) float64 {
	if n == 0 {
		return math.NaN()
	}
	return float64(e) / float64(n)
}

// binomial draws Binomial(n, p): by its normal approximation when n·p·(1-p) is large, else by Poisson.
func binomial(r *rand.Rand, n int64, p float64) int64 {
	mean := float64(n) * p
	if v := mean * (1 - p); v > 50 {
		return int64(math.Max(0, math.Min(float64(n), math.Round(mean+math.Sqrt(v)*r.NormFloat64()))))
	}
	l, k, q := math.Exp(-mean), int64(0), 1.0
	for {
		q *= r.Float64()
		if q <= l || k >= n {
			return k
		}
		k++
	}
}

// lognormals are n latencies around 100 ms times scale, with a log-sd of 0.5.
func lognormals(r *rand.Rand, n int, scale float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = 0.1 * scale * math.Exp(0.5*r.NormFloat64())
	}
	return out
}

// detection is when a test flagged a release: the interval (from 1), or 0 when it did not.
type detection int

// sequentialCounts runs the sequential count test over the release, looked at after every interval.
func sequentialCounts(rel simRelease) detection {
	s := stats.Sequence{Kind: stats.KindCounts}
	for _, iv := range rel.intervals {
		s.Batches = append(s.Batches, stats.Batch{CanaryEvents: iv.canaryErr, CanaryTotal: iv.canaryReq,
			BaselineEvents: iv.stableErr, BaselineTotal: iv.stableReq, Weight: iv.weight})
	}
	return firstFail(&s, stats.SeqOptions{Alpha: stats.DefaultAlpha, Tolerance: 0.1})
}

// firstFail is the interval (from 1) after which the test, evaluated as verify-health does after every interval,
// first shows a regression beyond the tolerance; 0 when it never does.
func firstFail(s *stats.Sequence, o stats.SeqOptions) detection {
	path := s.Path(o)
	for i, l := range path {
		if l < math.Log(1/o.Alpha) {
			continue
		}
		prefix := stats.Sequence{Kind: s.Kind, Batches: s.Batches[:i+1]}
		if prefix.Evaluate(o).Outcome == stats.Fail {
			return detection(i + 1)
		}
	}
	return 0
}

// sequentialLatency runs the sequential pairs test on the probes' latencies.
func sequentialLatency(rel simRelease) detection {
	s := stats.Sequence{Kind: stats.KindPairs}
	for _, iv := range rel.intervals {
		b := stats.PairBatch(iv.canaryLat, iv.stableLat)
		b.Weight = iv.weight
		s.Batches = append(s.Batches, b)
	}
	return firstFail(&s, stats.SeqOptions{Alpha: stats.DefaultAlpha, Tolerance: 0.1})
}

// fixedTest runs today's verdict: per step, Mann-Whitney on the step's samples, a certain failure ending the step
// early, the final comparison at its end. samples gives an interval's canary and stable samples.
func fixedTest(rel simRelease, samples func(simInterval) (c, b []float64)) detection {
	o := stats.Options{Confidence: 0.98, Tolerance: 0.1, MinSamples: 10}
	for st := range releaseWeights {
		var cs, bs []float64
		for i := 0; i < intervalsPerStep; i++ {
			c, b := samples(rel.intervals[st*intervalsPerStep+i])
			cs, bs = append(cs, c...), append(bs, b...)
			r := stats.Compare(cs, bs, o)
			last := i == intervalsPerStep-1
			if r.Outcome == stats.Fail && (r.Certain() || last) {
				return detection(st*intervalsPerStep + i + 1)
			}
		}
	}
	return 0
}

func fixedCounts(rel simRelease) detection {
	return fixedTest(rel, func(iv simInterval) ([]float64, []float64) {
		return []float64{iv.canaryRatio}, []float64{iv.baseRatio}
	})
}

func fixedLatency(rel simRelease) detection {
	return fixedTest(rel, func(iv simInterval) ([]float64, []float64) { return iv.canaryLat, iv.stableLat })
}

// tally is how often a test flagged the releases of a scenario, and when.
type tally struct {
	flagged, runs int
	at            []int // the detection intervals
}

func (t *tally) add(d detection) {
	t.runs++
	if d > 0 {
		t.flagged++
		t.at = append(t.at, int(d))
	}
}

func (t tally) rate() float64 { return float64(t.flagged) / float64(t.runs) }

// wilson is the 95% Wilson score interval of the rate.
func (t tally) wilson() (lo, hi float64) {
	n, p, z := float64(t.runs), t.rate(), 1.959964
	c := (p + z*z/(2*n)) / (1 + z*z/n)
	h := z * math.Sqrt(p*(1-p)/n+z*z/(4*n*n)) / (1 + z*z/n)
	return math.Max(0, c-h), math.Min(1, c+h)
}

// medianAt is the median detection interval, minus from (the interval before the regression began).
func (t tally) medianAt(from int) float64 {
	if len(t.at) == 0 {
		return math.NaN()
	}
	s := slices.Clone(t.at)
	slices.Sort(s)
	m := float64(s[len(s)/2])
	if len(s)%2 == 0 {
		m = float64(s[len(s)/2-1]+s[len(s)/2]) / 2
	}
	return m - float64(from)
}

// simulate runs n releases of sc through the tests, each on the same data.
func simulate(sc scenario, n int, seed uint64, tests ...func(simRelease) detection) []tally {
	r := rand.New(rand.NewPCG(seed, uint64(len(sc.name))))
	out := make([]tally, len(tests))
	for range n {
		rel := sc.release(r)
		for i, t := range tests {
			out[i].add(t(rel))
		}
	}
	return out
}

// VerdictFigures are the sequential verdict's figures beside the fixed test's, from seeded simulations.
func VerdictFigures(o VerdictOptions) []Measurement {
	if o.Releases == 0 {
		o.Releases = 1000
	}
	const alpha = stats.DefaultAlpha
	same := func(int, int) float64 { return 0.01 }
	double := func(int, int) float64 { return 0.02 }
	var ms []Measurement
	// False rollbacks of identical canaries.
	for _, per := range []float64{200, 5} {
		sc := scenario{name: fmt.Sprintf("identical %g", per), perInterval: per, baseRate: 0.01, canaryRate: same}
		t := simulate(sc, o.Releases, o.Seed, sequentialCounts, fixedCounts)
		what := "identical canaries"
		if per == 5 {
			what = "identical canaries, low traffic (5 canary requests an interval)"
		}
		ms = append(ms, rateFigure("false rollbacks: "+what+", sequential", t[0], "≤ 1%", t[0].rate() <= alpha,
			fmt.Sprintf("fixed Mann-Whitney per step: %s", rateText(t[1]))))
	}
	// A 2x error rate, from the start.
	for _, per := range []float64{50, 200} {
		sc := scenario{name: fmt.Sprintf("2x %g", per), perInterval: per, baseRate: 0.01, canaryRate: double}
		t := simulate(sc, o.Releases, o.Seed, sequentialCounts, fixedCounts)
		ms = append(ms, caughtFigure(fmt.Sprintf("2x error rate (1%% to 2%%), %g canary requests an interval at 10%%: caught before promotion, sequential", per), t, 0, "≥ 95%"))
	}
	// A regression from the second step on: twice the error rate, and five times.
	for _, bad := range []float64{2, 5} {
		sc := scenario{name: fmt.Sprintf("break %g", bad), perInterval: 200, baseRate: 0.01, canaryRate: func(st, _ int) float64 {
			if st == 0 {
				return 0.01
			}
			return 0.01 * bad
		}}
		t := simulate(sc, o.Releases, o.Seed, sequentialCounts, fixedCounts)
		m := caughtFigure(fmt.Sprintf("good at 10%%, %gx error rate from 30%% (200 requests an interval at 10%%): caught, sequential", bad),
			t, intervalsPerStep, "≥ 95%, median ≤ 2 intervals after the break")
		met := t[0].rate() >= 0.95 && t[0].medianAt(intervalsPerStep) <= 2
		m.Met = &met
		ms = append(ms, m)
	}
	// A 20% slower canary (p50), by the probes' latencies: 150 requests a side an interval (HTTP_RATE 5, 30 s).
	lat := scenario{name: "latency", perInterval: 200, baseRate: 0.01, canaryRate: same, latencyReqs: 150,
		latency: func(int) float64 { return 1.2 }}
	t := simulate(lat, o.Releases, o.Seed, sequentialLatency, fixedLatency)
	ms = append(ms, caughtFigure("latency p50 +20% (150 probe requests a side an interval): caught, sequential", t, 0, "≥ 95%"))
	lat.name, lat.latency = "latency same", func(int) float64 { return 1 }
	t = simulate(lat, o.Releases, o.Seed, sequentialLatency, fixedLatency)
	ms = append(ms, rateFigure("false rollbacks: identical latencies, sequential", t[0], "≤ 1%", t[0].rate() <= alpha,
		"fixed Mann-Whitney per step: "+rateText(t[1])))
	for i := range ms {
		ms[i].Detail += fmt.Sprintf("; %d seeded releases of 3 steps x 10 intervals", o.Releases)
	}
	return ms
}

func rateText(t tally) string {
	lo, hi := t.wilson()
	return fmt.Sprintf("%.1f%% [%.1f, %.1f]", 100*t.rate(), 100*lo, 100*hi)
}

func rateFigure(figure string, t tally, target string, met bool, detail string) Measurement {
	lo, hi := t.wilson()
	return Measurement{Figure: figure, Value: 100 * t.rate(), Unit: "%", Target: target, Met: &met,
		Detail: fmt.Sprintf("95%% interval [%.1f, %.1f]; %s", 100*lo, 100*hi, detail)}
}

// caughtFigure: the sequential test's catch rate and median intervals to detection (after from), the fixed
// test's beside it.
func caughtFigure(figure string, t []tally, from int, target string) Measurement {
	met := t[0].rate() >= 0.95
	return Measurement{Figure: figure, Value: 100 * t[0].rate(), Unit: "%", Target: target, Met: &met,
		Detail: fmt.Sprintf("median %.1f intervals to detection; fixed Mann-Whitney per step: %s, median %.1f intervals",
			t[0].medianAt(from), rateText(t[1]), t[1].medianAt(from))}
}
