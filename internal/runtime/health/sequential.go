package health

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/canaryline/canaryline/internal/runtime/evidence"
	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/stats"
)

// carry is the sequential tests' data of a release: every check's batches, those of earlier verify steps
// first. It is read from the release Lease when the step starts and written back with the lock's renewals and
// at the end, so that a release spends one error budget, and a rerun after a crash resumes the same tests.
type carry struct {
	mu    sync.Mutex
	state carried
	// loaded counts the batches each check had when the step began.
	loaded map[string]int
}

// carried is the carry as the Lease holds it (JSON).
type carried struct {
	Release string                     `json:"release"`
	Checks  map[string]*stats.Sequence `json:"checks"`
}

// maxCarried bounds a check's batches on the Lease (all of an object's annotations hold at most 256 KiB): about
// 60 bytes a batch, 400 intervals are over 3 hours at 30 s. Past it the test goes on in memory, and the Lease keeps
// the first ones. maxCarryBytes bounds the whole state: past it (many comparisons) nothing more is written.
const (
	maxCarried    = 400
	maxCarryBytes = 128 << 10
)

// newCarry reads the carried state of release id; state from another release (or none, or unreadable) starts
// afresh, and the reason is returned for the log.
func newCarry(id, data string) (*carry, string) {
	c := &carry{state: carried{Release: id, Checks: map[string]*stats.Sequence{}}, loaded: map[string]int{}}
	if data == "" {
		return c, ""
	}
	var got carried
	if err := json.Unmarshal([]byte(data), &got); err != nil {
		return c, fmt.Sprintf("the verify state on the release Lease is unreadable (%v): the tests start afresh", err)
	}
	if got.Release != id {
		return c, fmt.Sprintf("the verify state on the release Lease is release %q's: the tests start afresh", got.Release)
	}
	for k, s := range got.Checks {
		if s != nil {
			c.state.Checks[k] = s
			c.loaded[k] = len(s.Batches)
		}
	}
	return c, ""
}

// sequence makes sure check key has a sequence of kind (a fresh one when it had none, or of another kind), and
// says how many of its batches were carried.
func (c *carry) sequence(key, kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.state.Checks[key]
	if !ok || s.Kind != kind {
		c.state.Checks[key] = &stats.Sequence{Kind: kind}
		c.loaded[key] = 0
		return 0
	}
	return c.loaded[key]
}

func (c *carry) add(key string, b stats.Batch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.state.Checks[key]
	s.Batches = append(s.Batches, b)
}

// evaluate runs check key's test on a copy of its batches.
func (c *carry) evaluate(key string, o stats.SeqOptions) stats.SeqResult {
	c.mu.Lock()
	s := stats.Sequence{Kind: c.state.Checks[key].Kind, Batches: append([]stats.Batch(nil), c.state.Checks[key].Batches...)}
	c.mu.Unlock()
	return s.Evaluate(o)
}

// JSON is the carry as the Lease holds it: "" when it is too large to write (the Lease keeps what it has).
func (c *carry) JSON() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := carried{Release: c.state.Release, Checks: map[string]*stats.Sequence{}}
	for k, s := range c.state.Checks {
		bs := s.Batches
		if len(bs) > maxCarried {
			bs = bs[:maxCarried]
		}
		out.Checks[k] = &stats.Sequence{Kind: s.Kind, Batches: bs}
	}
	data, _ := json.Marshal(out)
	if len(data) > maxCarryBytes {
		return ""
	}
	return string(data)
}

// batcher measures one interval of a sequential comparison: ok is false when there is nothing to add (no
// traffic, or the counters' first reading); series are the values per side, for the chart.
type batcher interface {
	batch(ctx context.Context, now time.Time) (b stats.Batch, ok bool, series map[string]float64, query string, err error)
	kind() string
}

// seqCheck is a comparison decided by a sequential test: evaluated after every interval, a regression ends the
// analysis at once; the window's end without one is a pass. Its data carries over the verify steps of a release.
type seqCheck struct {
	name, against, key string
	dir                stats.Direction
	opts               stats.SeqOptions
	src                batcher
	store              *carry
	weight             int32

	carried   int
	last      stats.SeqResult
	lastQuery string
}

var (
	_ Check = (*seqCheck)(nil)
	_ Final = (*seqCheck)(nil)
)

// newSeqCheck is the sequential check name, keyed in the carry by what it measures, so that a changed query
// starts a new test rather than mix two.
func newSeqCheck(name, against string, dir stats.Direction, o stats.SeqOptions, src batcher, store *carry, weight int32, what ...string) *seqCheck {
	h := sha256.New()
	for _, w := range append(what, src.kind(), against, dir.String(), fmt.Sprint(o.Tolerance)) {
		h.Write([]byte(w + "\x00"))
	}
	key := name + "/" + hex.EncodeToString(h.Sum(nil))[:8]
	o.Direction = dir
	c := &seqCheck{name: name, against: against, key: key, dir: dir, opts: o, src: src, store: store, weight: weight}
	c.carried = store.sequence(key, src.kind())
	c.last = store.evaluate(key, o)
	return c
}

func (c *seqCheck) Name() string  { return c.name }
func (c *seqCheck) Kind() string  { return "sequential" }
func (c *seqCheck) Query() string { return c.lastQuery }
func (c *seqCheck) Threshold() string {
	return fmt.Sprintf("no %s against %s beyond %g%% tolerance (sequential, alpha %g per release)",
		c.dir, c.against, 100*c.opts.Tolerance, c.opts.Alpha)
}

func (c *seqCheck) Measure(ctx context.Context, now time.Time) (evidence.Measurement, error) {
	m := measurement(c, now)
	b, ok, series, q, err := c.src.batch(ctx, now)
	m.Query, c.lastQuery = q, q
	if err != nil {
		return m, err
	}
	if ok {
		b.Weight = c.weight
		c.store.add(c.key, b)
	}
	c.last = c.store.evaluate(c.key, c.opts)
	c.fill(&m)
	m.Series = series
	switch {
	case c.last.Outcome == stats.Fail:
		m.Status = evidence.Fail
	case !ok:
		m.Status, m.Detail = evidence.NoData, "nothing new this interval (no traffic, or the counters' first reading); "+m.Detail
	case c.last.Outcome == stats.Pass:
		m.Status = evidence.Pass
	default:
		m.Status = evidence.Pending
	}
	return m, nil
}

// fill puts the test's state in m: its text, detail, value and the evidence path's point.
func (c *seqCheck) fill(m *evidence.Measurement) {
	r := c.last
	m.Text = fmt.Sprintf("%s, log e %.2f of %.2f", c.effect(), r.LogE, r.Boundary)
	head, _, _ := strings.Cut(r.Reason, ":")
	m.Detail = head + "; " + c.counts()
	if finite(r.Estimate) {
		m.Value = r.Estimate
	}
	m.Sequential = &evidence.Sequential{LogE: finiteOr(r.LogE, -50), Boundary: r.Boundary,
		EquivalenceLogE: finiteOr(r.EquivLogE, -50), Effect: c.effect(), Counts: c.counts(), Intervals: len(r.Path), Carried: c.carried}
}

func finiteOr(x, or float64) float64 {
	if finite(x) {
		return x
	}
	return or
}

func (c *seqCheck) effect() string {
	r := c.last
	if c.src.kind() == stats.KindPairs {
		return fmt.Sprintf("P(canary higher) %s [%s, %s], median shift %s", stats.FormatNumber(r.Estimate), stats.FormatNumber(r.Low), stats.FormatNumber(r.High), stats.FormatShift(r.Shift))
	}
	return fmt.Sprintf("rate ratio %s [%s, %s]", stats.FormatNumber(r.Estimate), stats.FormatNumber(r.Low), stats.FormatNumber(r.High))
}

func (c *seqCheck) counts() string {
	r := c.last
	if c.src.kind() == stats.KindPairs {
		return fmt.Sprintf("canary higher in %d of %d pairs", r.CanaryEvents, r.CanaryTotal)
	}
	return fmt.Sprintf("canary %d of %d, %s %d of %d", r.CanaryEvents, r.CanaryTotal, c.against, r.BaselineEvents, r.BaselineTotal)
}

// hasData says whether the release so far had traffic to compare: requests on both sides, or pairs.
func (c *seqCheck) hasData() bool {
	r := c.last
	if c.src.kind() == stats.KindPairs {
		return r.CanaryTotal > 0
	}
	return r.CanaryTotal > 0 && r.BaselineTotal > 0
}

func (c *seqCheck) Certain() bool { return c.last.Outcome == stats.Fail }

// Equivalent says whether the test has shown no regression beyond the tolerance.
func (c *seqCheck) Equivalent() bool { return c.last.Outcome == stats.Pass }

// Final is the verdict at the window's end: a regression shown fails; otherwise a pass, unless the whole release
// so far saw no traffic to compare (no data).
func (c *seqCheck) Final(now time.Time) evidence.Measurement {
	m := measurement(c, now)
	m.Query = c.lastQuery
	c.last = c.store.evaluate(c.key, c.opts)
	c.fill(&m)
	m.Detail = "final: " + m.Detail
	switch {
	case c.last.Outcome == stats.Fail:
		m.Status = evidence.Fail
	case c.hasData():
		m.Status = evidence.Pass
	default:
		m.Status = evidence.NoData
	}
	return m
}

// promCounts counts errors among requests per side from Prometheus counters: the increase of each between
// one interval's reading and the next. A counter that went down (a pod restarted or went away) skips the
// interval, and its reading is the new base.
type promCounts struct {
	api          querier
	cmp          Comparison
	canary, base Tracks
	last         map[string]float64
}

func (p *promCounts) kind() string { return stats.KindCounts }

func (p *promCounts) batch(ctx context.Context, now time.Time) (stats.Batch, bool, map[string]float64, string, error) {
	var vals [4]float64
	var qs [4]string
	fresh := true
	for i, q := range []struct {
		t      *queryTemplate
		side   Tracks
		events bool
	}{{p.cmp.errs, p.canary, true}, {p.cmp.reqs, p.canary, false}, {p.cmp.errs, p.base, true}, {p.cmp.reqs, p.base, false}} {
		text, err := render(q.t, q.side)
		if err != nil {
			return stats.Batch{}, false, nil, "", err
		}
		qs[i] = text
		v, ok, err := queryValue(ctx, p.api, text, now)
		if err != nil {
			return stats.Batch{}, false, nil, text, err
		}
		if !ok && !q.events { // no requests counter yet: nothing to count
			fresh = false
		}
		d, ok := p.delta(text, v)
		fresh = fresh && ok
		vals[i] = d
	}
	query := qs[0] + " of " + qs[1] + "  vs  " + qs[2] + " of " + qs[3]
	if !fresh {
		return stats.Batch{}, false, nil, query, nil
	}
	b := stats.Batch{CanaryEvents: toCount(vals[0]), CanaryTotal: toCount(vals[1]), BaselineEvents: toCount(vals[2]), BaselineTotal: toCount(vals[3])}
	b.CanaryEvents, b.BaselineEvents = min(b.CanaryEvents, b.CanaryTotal), min(b.BaselineEvents, b.BaselineTotal)
	series := map[string]float64{}
	if b.CanaryTotal > 0 {
		series[naming.TrackCanary] = float64(b.CanaryEvents) / float64(b.CanaryTotal)
	}
	if b.BaselineTotal > 0 {
		series[p.base.Track] = float64(b.BaselineEvents) / float64(b.BaselineTotal)
	}
	return b, b.CanaryTotal > 0 || b.BaselineTotal > 0, series, query, nil
}

// delta is the increase of counter q since its last reading; false for the first reading, or after a reset.
func (p *promCounts) delta(q string, v float64) (float64, bool) {
	if p.last == nil {
		p.last = map[string]float64{}
	}
	prev, seen := p.last[q]
	p.last[q] = v
	if !seen || v < prev {
		return 0, false
	}
	return v - prev, true
}

// toCount rounds a counter's increase (an integer, unless the query scaled it) to a count.
func toCount(v float64) int64 { return int64(math.Round(math.Max(v, 0))) }

// promPairs pairs the sides' values of a Prometheus query, one pair an interval.
type promPairs struct {
	promSampler
}

func (p *promPairs) kind() string { return stats.KindPairs }

func (p *promPairs) batch(ctx context.Context, now time.Time) (stats.Batch, bool, map[string]float64, string, error) {
	cs, bs, q, err := p.sample(ctx, now)
	if err != nil || len(cs) == 0 || len(bs) == 0 {
		return stats.Batch{}, false, nil, q, err
	}
	series := map[string]float64{naming.TrackCanary: cs[0], p.base.Track: bs[0]}
	return stats.PairBatch(cs, bs), true, series, q, nil
}

// httpPairs pairs the probes' latencies of the canary and the baseline, request by request, in order.
type httpPairs struct {
	httpSampler
	against string
}

func (h *httpPairs) kind() string { return stats.KindPairs }

func (h *httpPairs) batch(ctx context.Context, now time.Time) (stats.Batch, bool, map[string]float64, string, error) {
	cs, bs, q, _ := h.sample(ctx, now)
	if len(cs) == 0 || len(bs) == 0 {
		return stats.Batch{}, false, nil, q, nil
	}
	series := map[string]float64{naming.TrackCanary: stats.Median(cs), h.against: stats.Median(bs)}
	return stats.PairBatch(cs, bs), true, series, q, nil
}

// httpCounts counts the probes' failed requests among all, per side.
type httpCounts struct {
	canary, baseline *prober
	nextC, nextB     int
	against          string
}

func (h *httpCounts) kind() string { return stats.KindCounts }

func (h *httpCounts) batch(context.Context, time.Time) (stats.Batch, bool, map[string]float64, string, error) {
	rc, nc := h.canary.since(h.nextC)
	rb, nb := h.baseline.since(h.nextB)
	h.nextC, h.nextB = nc, nb
	failed := func(rs []result) (n int64) {
		for _, r := range rs {
			if !r.ok {
				n++
			}
		}
		return n
	}
	b := stats.Batch{CanaryEvents: failed(rc), CanaryTotal: int64(len(rc)), BaselineEvents: failed(rb), BaselineTotal: int64(len(rb))}
	q := "failed requests of " + h.canary.urls[0].String() + " vs " + h.baseline.urls[0].String()
	if b.CanaryTotal == 0 || b.BaselineTotal == 0 {
		return b, false, nil, q, nil
	}
	series := map[string]float64{naming.TrackCanary: float64(b.CanaryEvents) / float64(b.CanaryTotal),
		h.against: float64(b.BaselineEvents) / float64(b.BaselineTotal)}
	return b, true, series, q, nil
}

// countRatios is a count comparison under STATISTICS=fixed: each interval's error ratio per side is a sample.
type countRatios struct{ counts *promCounts }

func (r *countRatios) sample(ctx context.Context, now time.Time) ([]float64, []float64, string, error) {
	b, ok, _, q, err := r.counts.batch(ctx, now)
	if err != nil || !ok {
		return nil, nil, q, err
	}
	var cs, bs []float64
	if b.CanaryTotal > 0 {
		cs = []float64{float64(b.CanaryEvents) / float64(b.CanaryTotal)}
	}
	if b.BaselineTotal > 0 {
		bs = []float64{float64(b.BaselineEvents) / float64(b.BaselineTotal)}
	}
	return cs, bs, q, nil
}
