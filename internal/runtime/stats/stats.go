// Package stats decides whether a canary regressed against a baseline on one metric, in the manner of Spinnaker
// Kayenta's Mann-Whitney classifier: a one-sided (or two-sided) Mann-Whitney U test on the two samples, combined
// with the Hodges-Lehmann estimate of the shift so that a statistically significant but practically negligible
// difference does not fail a rollout.
//
// Samples are whatever the verify-health step collects: per-interval error ratios or latency quantiles from
// Prometheus, or per-request latencies from an HTTP probe. The test is distribution-free, handles ties (error
// ratios are often exactly zero) and never panics on bad input.
package stats

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Defaults applied by Compare when the corresponding Options field is zero.
const (
	DefaultConfidence = 0.98
	DefaultMinSamples = 10
)

// Direction says which way a difference is bad.
type Direction int

const (
	// Increase: the canary is bad when it is higher (error rate, latency). The default.
	Increase Direction = iota
	// Decrease: the canary is bad when it is lower (throughput, success ratio).
	Decrease
	// Either: the canary is bad when it differs either way.
	Either
)

// ErrUnknownDirection is wrapped by ParseDirection for an unrecognised name.
var ErrUnknownDirection = errors.New("unknown direction")

// ErrInvalidOptions is wrapped by Options.Validate.
var ErrInvalidOptions = errors.New("invalid comparison options")

// ParseDirection parses "increase", "decrease" or "either" (case-insensitive, surrounding space ignored).
func ParseDirection(s string) (Direction, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "increase":
		return Increase, nil
	case "decrease":
		return Decrease, nil
	case "either":
		return Either, nil
	}
	return Increase, fmt.Errorf("%w %q: want increase, decrease or either", ErrUnknownDirection, s)
}

// String returns the name ParseDirection accepts.
func (d Direction) String() string {
	switch d {
	case Increase:
		return "increase"
	case Decrease:
		return "decrease"
	case Either:
		return "either"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Options tune Compare. The zero value is usable: Increase, 98% confidence, no tolerance, 10 samples per side.
type Options struct {
	// Direction in which a difference is a regression. Default Increase.
	Direction Direction
	// Confidence, e.g. 0.98 (the default when 0). The significance level alpha is 1 - Confidence; the
	// confidence interval of the shift is two-sided at Confidence.
	Confidence float64
	// Tolerance: a difference smaller than this is not a regression, even if significant. It is relative to the
	// baseline median (0.1 = 10%) and AbsoluteTolerance is added to it; see Result.Allowed.
	Tolerance         float64
	AbsoluteTolerance float64
	// MinSamples is the number of finite values needed on each side before any verdict (default 10 when 0).
	MinSamples int
	// RemoveOutliers drops values outside [Q1-1.5*IQR, Q3+1.5*IQR] on each side before testing, as Kayenta offers.
	RemoveOutliers bool
}

// Validate reports options Compare cannot honour. Compare treats invalid options as NotEnoughData, never as a
// verdict, so callers should validate user input up front.
func (o Options) Validate() error {
	var errs []error
	if o.Direction < Increase || o.Direction > Either {
		errs = append(errs, fmt.Errorf("direction %d is not increase, decrease or either", int(o.Direction)))
	}
	if !(o.Confidence == 0 || (o.Confidence > 0 && o.Confidence < 1)) {
		errs = append(errs, fmt.Errorf("confidence %v is not between 0 and 1 (exclusive)", o.Confidence))
	}
	if !(o.Tolerance >= 0) || math.IsInf(o.Tolerance, 0) {
		errs = append(errs, fmt.Errorf("tolerance %v is not a finite number >= 0", o.Tolerance))
	}
	if !(o.AbsoluteTolerance >= 0) || math.IsInf(o.AbsoluteTolerance, 0) {
		errs = append(errs, fmt.Errorf("absolute tolerance %v is not a finite number >= 0", o.AbsoluteTolerance))
	}
	if o.MinSamples < 0 {
		errs = append(errs, fmt.Errorf("min samples %d is negative", o.MinSamples))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
}

func (o Options) withDefaults() Options {
	if o.Confidence == 0 {
		o.Confidence = DefaultConfidence
	}
	if o.MinSamples == 0 {
		o.MinSamples = DefaultMinSamples
	}
	return o
}

// Outcome is the verdict of a comparison.
type Outcome int

const (
	// NotEnoughData: a side has fewer than MinSamples finite values (or the options are invalid).
	NotEnoughData Outcome = iota
	// Pass: no significant regression beyond the tolerance.
	Pass
	// Fail: a significant regression beyond the tolerance.
	Fail
)

// String returns "not-enough-data", "pass" or "fail".
func (o Outcome) String() string {
	switch o {
	case NotEnoughData:
		return "not-enough-data"
	case Pass:
		return "pass"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result is the verdict of Compare and the statistics behind it. Statistics that could not be computed (for
// NotEnoughData) are zero, with PValue 1; no field is NaN.
type Result struct {
	Outcome Outcome
	// Direction and Confidence are the effective options (after defaults) the verdict was reached with.
	Direction  Direction
	Confidence float64
	// NCanary and NBaseline count the values tested: finite, and after outlier removal.
	NCanary, NBaseline int
	// U is the Mann-Whitney U of the canary sample: the number of (canary, baseline) pairs where the canary is
	// higher, ties counting one half. Its mean under no difference is NCanary*NBaseline/2.
	U float64
	// Z is the normal-approximation z of U, with tie-corrected variance and continuity correction towards the
	// null. It is signed: positive when the canary is higher.
	Z float64
	// PValue is one-sided in the bad direction (two-sided for Either).
	PValue float64
	// Shift is the Hodges-Lehmann estimate of canary minus baseline: the median of all pairwise differences.
	Shift float64
	// ShiftLow and ShiftHigh bound the two-sided confidence interval of the shift at Confidence: order
	// statistics of the pairwise differences, their ranks from the normal approximation of U.
	ShiftLow, ShiftHigh float64
	// CanaryMedian and BaselineMedian are the sample medians of the tested values.
	CanaryMedian, BaselineMedian float64
	// Allowed is the tolerance in absolute units: Tolerance*|BaselineMedian| + AbsoluteTolerance.
	Allowed float64
	// Reason explains the verdict in one line.
	Reason string
}

// Certain reports whether the outcome can no longer change with more data in the bad direction, used to stop an
// analysis early: a Fail with p below alpha/10 and shift beyond 2x tolerance is certain.
func (r Result) Certain() bool {
	if r.Outcome != Fail {
		return false
	}
	alpha := 1 - r.Confidence
	return r.PValue < alpha/10 && beyond(r.Direction, r.Shift, 2*r.Allowed)
}

// beyond reports whether shift exceeds allowed in the bad direction d.
func beyond(d Direction, shift, allowed float64) bool {
	switch d {
	case Decrease:
		return shift < -allowed
	case Either:
		return math.Abs(shift) > allowed
	default:
		return shift > allowed
	}
}

// Compare tests whether the canary sample regressed against the baseline sample. NaN and ±Inf values are
// dropped; the inputs are not modified.
//
// The verdict is NotEnoughData if either side has fewer than MinSamples finite values, Fail if the Mann-Whitney
// test is significant in the bad direction (PValue < 1-Confidence) and the Hodges-Lehmann shift is beyond
// Allowed in that direction, and Pass otherwise. When all values are equal the variance of U is zero and the
// result is a Pass with PValue 1.
func Compare(canary, baseline []float64, o Options) Result {
	if err := o.Validate(); err != nil {
		return Result{Outcome: NotEnoughData, Direction: o.Direction, Confidence: o.Confidence, PValue: 1,
			Reason: err.Error()}
	}
	o = o.withDefaults()
	c, b := finiteSorted(canary), finiteSorted(baseline)
	r := Result{Direction: o.Direction, Confidence: o.Confidence, NCanary: len(c), NBaseline: len(b), PValue: 1}
	if len(c) < o.MinSamples || len(b) < o.MinSamples {
		if len(c) > 0 {
			r.CanaryMedian = medianSorted(c)
		}
		if len(b) > 0 {
			r.BaselineMedian = medianSorted(b)
		}
		r.Reason = fmt.Sprintf("not enough data: %d canary and %d baseline values, need at least %d each",
			len(c), len(b), o.MinSamples)
		return r
	}
	if o.RemoveOutliers {
		c, b = withoutOutliers(c), withoutOutliers(b)
		r.NCanary, r.NBaseline = len(c), len(b)
	}
	r.CanaryMedian, r.BaselineMedian = medianSorted(c), medianSorted(b)
	r.Allowed = o.Tolerance*math.Abs(r.BaselineMedian) + o.AbsoluteTolerance

	var sd float64
	r.U, sd = mannWhitney(c, b)
	r.Z, r.PValue = zAndP(r.U, sd, len(c), len(b), o.Direction)
	r.Shift, r.ShiftLow, r.ShiftHigh = hodgesLehmann(c, b, o.Confidence)

	alpha := 1 - o.Confidence
	significant := r.PValue < alpha
	if significant && beyond(o.Direction, r.Shift, r.Allowed) {
		r.Outcome = Fail
	} else {
		r.Outcome = Pass
	}
	r.Reason = reason(r, significant, sd == 0, alpha)
	return r
}

// Median returns the median of xs (the mean of the two middle values for an even count), ignoring NaN and ±Inf
// values. It is 0 when no finite value is left. xs is not modified.
func Median(xs []float64) float64 {
	s := finiteSorted(xs)
	if len(s) == 0 {
		return 0
	}
	return medianSorted(s)
}

// medianSorted is the median of a non-empty sorted slice.
func medianSorted(s []float64) float64 {
	lo := empiricalQuantile(0.5, s) // the lower middle value for an even count
	if len(s)%2 == 1 {
		return lo
	}
	return midpoint(lo, s[len(s)/2])
}

// midpoint is the mean of a and b without overflowing.
func midpoint(a, b float64) float64 {
	if a == b {
		return a
	}
	if m := (a + b) / 2; !math.IsInf(m, 0) {
		return m
	}
	return a/2 + b/2
}

// finiteSorted returns a sorted copy of the finite values of xs.
func finiteSorted(xs []float64) []float64 {
	s := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			s = append(s, x)
		}
	}
	slices.Sort(s)
	return s
}

// withoutOutliers returns the values of the sorted, non-empty s within [Q1-1.5*IQR, Q3+1.5*IQR]. The quartiles
// are empirical (values of s), so the result is never empty.
func withoutOutliers(s []float64) []float64 {
	q1 := empiricalQuantile(0.25, s)
	q3 := empiricalQuantile(0.75, s)
	iqr := q3 - q1
	lo, hi := q1-1.5*iqr, q3+1.5*iqr
	i, _ := slices.BinarySearch(s, lo) // first value >= lo
	j := len(s)
	for j > i && s[j-1] > hi {
		j--
	}
	return s[i:j]
}

// mannWhitney returns the U statistic of the sorted sample c against the sorted sample b, with average ranks
// for ties, and the tie-corrected standard deviation of U under the null hypothesis.
func mannWhitney(c, b []float64) (u, sd float64) {
	m, n := len(c), len(b)
	total := m + n
	var rankSumC, tieTerm float64
	// Walk both sorted samples as one merged sequence, one group of equal values at a time.
	i, j, pos := 0, 0, 0 // pos: values already ranked
	for i < m || j < n {
		var v float64
		switch {
		case j == n || (i < m && c[i] <= b[j]):
			v = c[i]
		default:
			v = b[j]
		}
		ci, bj := i, j
		for i < m && c[i] == v {
			i++
		}
		for j < n && b[j] == v {
			j++
		}
		inC, t := i-ci, (i-ci)+(j-bj)
		avgRank := float64(pos) + float64(t+1)/2 // ranks pos+1 .. pos+t
		rankSumC += float64(inC) * avgRank
		tieTerm += float64(t)*float64(t)*float64(t) - float64(t)
		pos += t
	}
	mf, nf, nt := float64(m), float64(n), float64(total)
	u = rankSumC - mf*(mf+1)/2
	variance := mf * nf / 12 * ((nt + 1) - tieTerm/(nt*(nt-1)))
	if variance <= 0 || math.IsNaN(variance) {
		return u, 0
	}
	return u, math.Sqrt(variance)
}

// stdNormal is the standard normal distribution. It uses Go's math.Erfc and math.Erfcinv rather than gonum's
// distuv, whose package links gonum's linear algebra (LAPACK, BLAS: megabytes in the step image, over its size
// budget); TestNormalMatchesGonum checks it against gonum's distuv.Normal.
var stdNormal normal

type normal struct{}

func (normal) CDF(x float64) float64      { return 0.5 * math.Erfc(-x/math.Sqrt2) }
func (normal) Survival(x float64) float64 { return 0.5 * math.Erfc(x/math.Sqrt2) }
func (normal) Quantile(p float64) float64 { return -math.Sqrt2 * math.Erfcinv(2*p) }

// empiricalQuantile is the lowest value of the sorted s at or above the fraction p of its values, as gonum's
// stat.Quantile with stat.Empirical (checked against it in the tests).
func empiricalQuantile(p float64, s []float64) float64 {
	i := int(math.Ceil(p*float64(len(s)))) - 1
	if i < 0 {
		i = 0
	}
	return s[i]
}

// zAndP returns the continuity-corrected z of U (signed, positive when the canary is higher) and the p-value in
// the bad direction d. A zero standard deviation (all values equal) gives z 0 and p 1.
func zAndP(u, sd float64, m, n int, d Direction) (z, p float64) {
	if sd == 0 {
		return 0, 1
	}
	diff := u - float64(m)*float64(n)/2
	// Continuity correction: move half a unit towards the null, never past it.
	corrected := math.Copysign(math.Max(math.Abs(diff)-0.5, 0), diff)
	z = corrected / sd
	switch d {
	case Decrease:
		p = stdNormal.CDF((diff + 0.5) / sd)
	case Either:
		p = math.Min(1, 2*stdNormal.Survival(math.Abs(z)))
	default:
		p = stdNormal.Survival((diff - 0.5) / sd)
	}
	return z, p
}

// hodgesLehmann returns the median of the pairwise differences c[i]-b[j] of the sorted samples and the
// two-sided distribution-free confidence interval at level conf (Hollander & Wolfe): the k-th smallest and
// k-th largest differences, k = mn/2 - z(1-alpha/2)*sqrt(mn(m+n+1)/12) rounded and clamped to [1, mn].
//
// The differences are not materialised: each order statistic is found by bisecting over float64 values while
// counting differences at or below the candidate, O(64*(m+n)) time and O(1) extra memory, so per-request probe
// samples of many thousands of values stay cheap.
func hodgesLehmann(c, b []float64, conf float64) (shift, low, high float64) {
	m, n := len(c), len(b)
	mn := m * n
	if mn%2 == 1 {
		shift = kthDiff(c, b, mn/2+1)
	} else {
		lo, hi := kthDiff(c, b, mn/2), kthDiff(c, b, mn/2+1)
		shift = midpoint(lo, hi)
	}
	zq := stdNormal.Quantile(1 - (1-conf)/2)
	fmn := float64(mn)
	k := int(math.Round(fmn/2 - zq*math.Sqrt(fmn*float64(m+n+1)/12)))
	k = max(1, min(k, mn))
	return shift, kthDiff(c, b, k), kthDiff(c, b, mn+1-k)
}

// kthDiff returns the k-th smallest (1-based) of the differences c[i]-b[j] of the sorted, non-empty samples.
func kthDiff(c, b []float64, k int) float64 {
	lo, hi := c[0]-b[len(b)-1], c[len(c)-1]-b[0] // the smallest and largest differences
	klo, khi := orderedKey(lo), orderedKey(hi)
	// Find the smallest key whose value has at least k differences at or below it; it is a difference.
	for klo < khi {
		mid := int64(uint64(klo) + (uint64(khi)-uint64(klo))/2) // keys may span more than MaxInt64
		if countAtMost(c, b, keyValue(mid)) >= k {
			khi = mid
		} else {
			klo = mid + 1
		}
	}
	return keyValue(klo) + 0 // + 0 turns -0 into 0
}

// countAtMost counts the pairs with c[i]-b[j] <= d, for sorted c and b. For each c[i] the qualifying b[j] are a
// suffix of b whose start only moves right as c[i] grows.
func countAtMost(c, b []float64, d float64) int {
	count, j := 0, 0
	for _, ci := range c {
		for j < len(b) && ci-b[j] > d {
			j++
		}
		count += len(b) - j
	}
	return count
}

// orderedKey maps a non-NaN float64 to an integer with the same order (-0 just below 0).
func orderedKey(x float64) int64 {
	bits := int64(math.Float64bits(x))
	if bits < 0 {
		return math.MinInt64 - bits - 1 // negative floats: reverse the magnitude order
	}
	return bits
}

// keyValue inverts orderedKey.
func keyValue(k int64) float64 {
	if k < 0 {
		return math.Float64frombits(uint64(math.MinInt64 - k - 1))
	}
	return math.Float64frombits(uint64(k))
}

// reason explains the verdict in one line.
func reason(r Result, significant, allEqual bool, alpha float64) string {
	stats := fmt.Sprintf("shift %s (%s%% CI %s..%s)", signed(r.Shift), num(r.Confidence*100),
		signed(r.ShiftLow), signed(r.ShiftHigh))
	ns := fmt.Sprintf("(n=%d/%d)", r.NCanary, r.NBaseline)
	side := "higher"
	if r.Direction == Decrease || (r.Direction == Either && (r.Z < 0 || (r.Z == 0 && r.Shift < 0))) {
		side = "lower"
	}
	switch {
	case r.Outcome == Fail:
		return fmt.Sprintf("canary %s than baseline: %s beyond tolerance %s, p=%s %s",
			side, stats, num(r.Allowed), pval(r.PValue), ns)
	case significant:
		return fmt.Sprintf("canary %s than baseline but within tolerance: %s within %s, p=%s %s",
			side, stats, num(r.Allowed), pval(r.PValue), ns)
	case allEqual:
		return fmt.Sprintf("no difference: all values equal %s, p=1 %s", num(r.CanaryMedian), ns)
	}
	what := map[Direction]string{Increase: "increase", Decrease: "decrease", Either: "difference"}[r.Direction]
	return fmt.Sprintf("no significant %s: %s, p=%s >= %s %s", what, stats, pval(r.PValue), pval(alpha), ns)
}

// num formats a statistic compactly: 3 significant digits, without an exponent for large magnitudes.
func num(x float64) string {
	if a := math.Abs(x); a >= 1000 && a < 1e15 {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.3g", x)
}

func signed(x float64) string {
	if x >= 0 {
		return "+" + num(x)
	}
	return num(x)
}

func pval(p float64) string { return fmt.Sprintf("%.2g", p) }
