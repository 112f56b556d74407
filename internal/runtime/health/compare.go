package health

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/canaryline/canaryline/internal/runtime/evidence"
	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/stats"
)

// sampler adds one canary and one baseline sample per interval (or many, for per-request latencies).
type sampler interface {
	sample(ctx context.Context, now time.Time) (canary, baseline []float64, query string, err error)
}

// compareCheck compares the canary with the baseline (or stable) on one metric with a Mann-Whitney U test, as
// Kayenta does. It decides on all the data at the end of the window; before that it fails only when the outcome
// is certain, so that looking every interval does not inflate false alarms.
type compareCheck struct {
	name, against string
	dir           stats.Direction
	opts          stats.Options
	src           sampler
	unit          func(float64) string

	canary, baseline []float64
	last             stats.Result
	lastQuery        string
}

var (
	_ Check = (*compareCheck)(nil)
	_ Final = (*compareCheck)(nil)
)

func (c *compareCheck) Name() string  { return c.name }
func (c *compareCheck) Kind() string  { return "compare" }
func (c *compareCheck) Query() string { return c.lastQuery }
func (c *compareCheck) Threshold() string {
	return fmt.Sprintf("no %s against %s at %g%% confidence beyond %g%% tolerance (min %d samples)",
		c.dir, c.against, 100*c.opts.Confidence, 100*c.opts.Tolerance, c.opts.MinSamples)
}

func (c *compareCheck) Measure(ctx context.Context, now time.Time) (evidence.Measurement, error) {
	m := measurement(c, now)
	cs, bs, q, err := c.src.sample(ctx, now)
	m.Query, c.lastQuery = q, q
	if err != nil {
		return m, err
	}
	c.canary, c.baseline = append(c.canary, cs...), append(c.baseline, bs...)
	if len(cs) > 0 && len(bs) > 0 {
		m.Series = map[string]float64{naming.TrackCanary: mean(cs), c.against: mean(bs)}
		m.Value = mean(cs)
	}
	c.last = stats.Compare(c.canary, c.baseline, c.opts)
	m.Text = c.describe()
	m.Detail = c.last.Reason
	switch {
	case len(cs) == 0 && len(bs) == 0:
		m.Status, m.Detail = evidence.NoData, "no new sample on either side (no traffic?)"
	case c.last.Outcome == stats.Fail && c.last.Certain():
		m.Status = evidence.Fail
	default:
		m.Status = evidence.Pending
	}
	return m, nil
}

func (c *compareCheck) describe() string {
	r := c.last
	if r.Outcome == stats.NotEnoughData {
		return fmt.Sprintf("%d/%d samples (need %d each)", r.NCanary, r.NBaseline, c.opts.MinSamples)
	}
	return fmt.Sprintf("canary median %s vs %s %s, shift %s, p=%.3g (n=%d/%d)", c.unit(r.CanaryMedian), c.against,
		c.unit(r.BaselineMedian), c.unit(r.Shift), r.PValue, r.NCanary, r.NBaseline)
}

func (c *compareCheck) Certain() bool { return c.last.Outcome == stats.Fail && c.last.Certain() }

func (c *compareCheck) Final(now time.Time) evidence.Measurement {
	m := measurement(c, now)
	m.Query = c.lastQuery
	c.last = stats.Compare(c.canary, c.baseline, c.opts)
	m.Text, m.Detail, m.Value = c.describe(), "final: "+c.last.Reason, c.last.CanaryMedian
	switch c.last.Outcome {
	case stats.Fail:
		m.Status = evidence.Fail
	case stats.Pass:
		m.Status = evidence.Pass
	default:
		m.Status = evidence.NoData
	}
	return m
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// promSampler takes one value per interval for each side from a query templated with the side's track.
type promSampler struct {
	api          querier
	cmp          Comparison
	canary, base Tracks
}

func (p *promSampler) sample(ctx context.Context, now time.Time) ([]float64, []float64, string, error) {
	qc, err := render(p.cmp.tmpl, p.canary)
	if err != nil {
		return nil, nil, "", err
	}
	qb, err := render(p.cmp.tmpl, p.base)
	if err != nil {
		return nil, nil, qc, err
	}
	// A rank test has no use for ±Inf (stats.Compare drops it): only finite values are samples.
	var cs, bs []float64
	vc, ok, err := queryValue(ctx, p.api, qc, now)
	if err != nil {
		return nil, nil, qc, err
	}
	if ok && finite(vc) {
		cs = []float64{vc}
	}
	vb, ok, err := queryValue(ctx, p.api, qb, now)
	if err != nil {
		return nil, nil, qb, err
	}
	if ok && finite(vb) {
		bs = []float64{vb}
	}
	return cs, bs, qc + "  vs  " + qb, nil
}

// httpSampler takes the per-request latencies (in seconds) of successful probe requests on each side.
type httpSampler struct {
	canary, baseline *prober
	nextC, nextB     int
}

func (h *httpSampler) sample(context.Context, time.Time) ([]float64, []float64, string, error) {
	rc, nc := h.canary.since(h.nextC)
	rb, nb := h.baseline.since(h.nextB)
	h.nextC, h.nextB = nc, nb
	lat := func(rs []result) []float64 {
		var out []float64
		for _, r := range rs {
			if r.ok {
				out = append(out, r.latency.Seconds())
			}
		}
		return out
	}
	return lat(rc), lat(rb), "latency of " + h.canary.urls[0].String() + " vs " + h.baseline.urls[0].String(), nil
}
