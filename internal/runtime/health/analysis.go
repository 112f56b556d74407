package health

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/canaryline/canaryline/internal/runtime/evidence"
	"github.com/canaryline/canaryline/internal/runtime/naming"
)

// analysis runs the checks every interval and decides.
type analysis struct {
	cfg    *Config
	checks []Check
	log    *slog.Logger
	now    func() time.Time

	ev    *evidence.Evidence
	state []checkState
}

// checkState counts a check's measurements. failures, noData and passes are as counted (NO_DATA decides what a
// measurement without data counts as); measured, passed and withoutData are as measured, for the reason.
type checkState struct {
	failures, consecutiveFailures, consecutiveErrors, errors, noData, passes int
	measured, passed, withoutData                                            int
	last                                                                     evidence.Measurement
}

// run measures count times, stopping early when the outcome is certain, and returns the evidence with its verdict.
func (a *analysis) run(ctx context.Context) *evidence.Evidence {
	start := a.now()
	a.ev = &evidence.Evidence{StartedAt: start.UTC(), Settings: a.settings()}
	a.state = make([]checkState, len(a.checks))
	for _, c := range a.checks {
		a.ev.Checks = append(a.ev.Checks, evidence.Check{Name: c.Name(), Kind: c.Kind(), Query: c.Query(), Threshold: c.Threshold()})
	}
	verdict, reason := "", ""
	next := start.Add(a.cfg.InitialDelay)
	for i := 0; i < a.cfg.count && verdict == ""; i++ {
		if i > 0 {
			next = next.Add(a.cfg.Interval)
		}
		if err := sleepUntil(ctx, next, a.now); err != nil {
			verdict, reason = evidence.Inconclusive, "the analysis was stopped after "+a.now().Sub(start).Round(time.Second).String()
			break
		}
		for j, c := range a.checks {
			if verdict, reason = a.measure(ctx, j, c); verdict != "" {
				break
			}
		}
		if verdict == "" && a.cfg.StopWhenEquivalent && a.equivalent() {
			verdict, reason = evidence.Healthy, fmt.Sprintf("every comparison showed no regression beyond its tolerance after %s, "+
				"and no other check failed (STOP_WHEN_EQUIVALENT): %s", plural(i+1, "measurement"), a.healthyReason(i+1))
		}
	}
	if verdict == "" {
		verdict, reason = a.conclude()
	}
	a.ev.Verdict, a.ev.Reason, a.ev.FinishedAt = verdict, reason, a.now().UTC()
	for j := range a.checks {
		ch := &a.ev.Checks[j]
		st := a.state[j]
		ch.Failures, ch.Errors, ch.NoData, ch.Status, ch.Last = st.failures, st.errors, st.noData, st.last.Status, st.last.Text
		if q := a.checks[j].Query(); q != "" {
			ch.Query = q
		}
	}
	return a.ev
}

// measure takes one measurement of check j and says whether it decides the analysis.
func (a *analysis) measure(ctx context.Context, j int, c Check) (string, string) {
	m, err := c.Measure(ctx, a.now())
	st := &a.state[j]
	if err != nil {
		m.Status, m.Detail = evidence.Error, err.Error()
	}
	counted := a.count(st, &m)
	a.ev.Measurements = append(a.ev.Measurements, m)
	a.log.Info(fmt.Sprintf("%s: %s", c.Name(), orDash(m.Text)), "status", m.Status, "threshold", m.Threshold, "detail", m.Detail)
	return a.decides(c, st, m, counted)
}

// count counts measurement m in st, as measured and as counted (NO_DATA decides what a measurement without data
// counts as, and says so in its detail), and returns the status it counts as.
func (a *analysis) count(st *checkState, m *evidence.Measurement) string {
	st.measured++
	switch m.Status {
	case evidence.Pass:
		st.passed++
	case evidence.NoData:
		st.withoutData++
	}
	counted := m.Status
	if m.Status == evidence.NoData {
		switch a.cfg.NoData {
		case naming.NoDataFail:
			counted, m.Detail = evidence.Fail, m.Detail+" (counted as a failure: NO_DATA=fail)"
		case naming.NoDataPass:
			counted, m.Detail = evidence.Pass, m.Detail+" (counted as a pass: NO_DATA=pass)"
		}
	}
	switch counted {
	case evidence.Fail:
		st.failures++
		st.consecutiveFailures++
		st.consecutiveErrors = 0
	case evidence.Error:
		st.errors++
		st.consecutiveErrors++
	case evidence.NoData:
		st.noData++
		st.consecutiveErrors = 0
	case evidence.Pass:
		st.passes++
		st.consecutiveFailures, st.consecutiveErrors = 0, 0
	default: // pending
		st.consecutiveErrors = 0
	}
	st.last = *m
	return counted
}

// decides says whether check c's measurement m, counted as counted, decides the analysis: the verdict and why,
// or "" to go on.
func (a *analysis) decides(c Check, st *checkState, m evidence.Measurement, counted string) (string, string) {
	why := fmt.Sprintf("%s: %s (threshold %s)", c.Name(), orDash(m.Text), m.Threshold)
	if m.Detail != "" {
		why = fmt.Sprintf("%s: %s (threshold %s; %s)", c.Name(), orDash(m.Text), m.Threshold, m.Detail)
	}
	switch {
	case counted == evidence.Fail && isFatal(c, m):
		return evidence.Unhealthy, why
	case m.Status == evidence.Fail && isCertain(c):
		return evidence.Unhealthy, why + " [certain before the end of the window]"
	case st.failures > a.cfg.FailureLimit && !isFinal(c):
		return evidence.Unhealthy, fmt.Sprintf("%s [%d failures > FAILURE_LIMIT %d]", why, st.failures, a.cfg.FailureLimit)
	case a.cfg.ConsecutiveFailureLimit > 0 && st.consecutiveFailures > a.cfg.ConsecutiveFailureLimit && !isFinal(c):
		return evidence.Unhealthy, fmt.Sprintf("%s [%d failures in a row > CONSECUTIVE_FAILURE_LIMIT %d]", why, st.consecutiveFailures, a.cfg.ConsecutiveFailureLimit)
	case st.consecutiveErrors > a.cfg.ConsecutiveErrorLimit:
		return evidence.Inconclusive, fmt.Sprintf("%s could not be evaluated %d times in a row (> CONSECUTIVE_ERROR_LIMIT %d): %s",
			c.Name(), st.consecutiveErrors, a.cfg.ConsecutiveErrorLimit, m.Detail)
	}
	return "", ""
}

// equivalent says whether the analysis may end early as healthy: it has sequential comparisons, each has shown
// no regression beyond its tolerance, and every other check has passed and never failed.
func (a *analysis) equivalent() bool {
	seen := false
	for j, c := range a.checks {
		st := a.state[j]
		if e, ok := c.(interface{ Equivalent() bool }); ok {
			if !e.Equivalent() {
				return false
			}
			seen = true
			continue
		}
		if _, final := c.(Final); final || st.failures > 0 || st.passes == 0 {
			return false
		}
	}
	return seen
}

// conclude decides at the end of the window: statistical checks give their final verdict; a check that never
// had data makes the analysis inconclusive (or what NO_DATA says).
func (a *analysis) conclude() (string, string) {
	inconclusive := ""
	for j, c := range a.checks {
		st := &a.state[j]
		if f, ok := c.(Final); ok {
			m := f.Final(a.now())
			st.last = m
			a.ev.Measurements = append(a.ev.Measurements, m)
			a.log.Info(fmt.Sprintf("%s (final): %s", c.Name(), orDash(m.Text)), "status", m.Status, "detail", m.Detail)
			switch m.Status {
			case evidence.Fail:
				st.failures++
				return evidence.Unhealthy, fmt.Sprintf("%s: %s (threshold %s; %s)", c.Name(), m.Text, m.Threshold, m.Detail)
			case evidence.Error: // a Job that did not finish: never a failure
				st.errors++
				if inconclusive == "" {
					inconclusive = fmt.Sprintf("%s could not be evaluated: %s", c.Name(), m.Detail)
				}
			case evidence.NoData:
				if a.cfg.NoData == naming.NoDataFail {
					return evidence.Unhealthy, fmt.Sprintf("%s: %s; not enough samples counts as a failure (NO_DATA=fail)", c.Name(), m.Text)
				}
				if a.cfg.NoData == naming.NoDataInconclusive && inconclusive == "" {
					inconclusive = fmt.Sprintf("%s: not enough samples for a statistical verdict: %s", c.Name(), m.Text)
				}
			}
			continue
		}
		if st.passes == 0 && st.failures == 0 && inconclusive == "" {
			inconclusive = fmt.Sprintf("%s: no data in %d measurements (%d without data, %d in error)", c.Name(), st.noData+st.errors, st.noData, st.errors)
			if st.errors > 0 {
				inconclusive += ": " + st.last.Detail
			}
		}
	}
	if inconclusive != "" {
		return evidence.Inconclusive, inconclusive
	}
	return evidence.Healthy, a.healthyReason(a.cfg.count)
}

// healthyReason counts what each check measured, the checks with failures, errors or no data first: "2 checks
// over 10 measurements: error-rate failed 1 of 10 (within FAILURE_LIMIT 2), pods passed 10 of 10". When that is
// longer than the REASON result holds, the checks that passed every measurement are only counted.
func (a *analysis) healthyReason(measurements int) string {
	head := fmt.Sprintf("%s over %s: ", plural(len(a.checks), "check"), plural(measurements, "measurement"))
	var flawed, clean []string
	for j, c := range a.checks {
		if s, ok := a.summary(j, c); ok {
			clean = append(clean, s)
		} else {
			flawed = append(flawed, s)
		}
	}
	r := head + strings.Join(append(flawed, clean...), ", ")
	if len(r) > maxReason && len(clean) > 0 {
		r = head + strings.Join(append(flawed, fmt.Sprintf("%d more passed every measurement", len(clean))), ", ")
	}
	return r
}

// summary says how check j did, in counts, and whether it passed every measurement.
func (a *analysis) summary(j int, c Check) (string, bool) {
	st := a.state[j]
	var parts []string
	if j, ok := c.(*jobCheck); ok {
		parts = append(parts, j.summary(st.last))
	} else if isFinal(c) {
		if st.last.Status == evidence.NoData {
			parts = append(parts, "had too few samples for a comparison (counted as a pass: NO_DATA=pass)")
		} else {
			parts = append(parts, "passed the comparison")
		}
	} else if st.failures > 0 {
		parts = append(parts, fmt.Sprintf("failed %d of %d (within FAILURE_LIMIT %d)", st.failures, st.measured, a.cfg.FailureLimit))
	} else {
		parts = append(parts, fmt.Sprintf("passed %d of %d", st.passed, st.measured))
	}
	if st.errors > 0 {
		parts = append(parts, fmt.Sprintf("%d in error", st.errors))
	}
	if st.withoutData > 0 {
		nd := fmt.Sprintf("%d without data", st.withoutData)
		switch a.cfg.NoData {
		case naming.NoDataPass:
			nd += " (counted as passes: NO_DATA=pass)"
		case naming.NoDataFail:
			nd += " (counted as failures: NO_DATA=fail)"
		}
		parts = append(parts, nd)
	}
	clean := st.failures == 0 && st.errors == 0 && st.withoutData == 0 && st.last.Status != evidence.NoData
	return c.Name() + " " + strings.Join(parts, ", "), clean
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func (a *analysis) settings() map[string]string {
	c := a.cfg
	return map[string]string{
		"interval": c.Interval.String(), "count": strconv.Itoa(c.count), "countFrom": c.countFrom, "initialDelay": c.InitialDelay.String(),
		"failureLimit": strconv.Itoa(c.FailureLimit), "consecutiveFailureLimit": strconv.Itoa(c.ConsecutiveFailureLimit),
		"consecutiveErrorLimit": strconv.Itoa(c.ConsecutiveErrorLimit), "noData": c.NoData,
		"confidence": strconv.FormatFloat(c.Confidence, 'g', -1, 64), "tolerance": strconv.FormatFloat(c.Tolerance, 'g', -1, 64),
		"minSamples": strconv.Itoa(c.MinSamples), "statistics": c.Statistics, "alpha": strconv.FormatFloat(c.Alpha, 'g', -1, 64),
		"stopWhenEquivalent": strconv.FormatBool(c.StopWhenEquivalent),
	}
}

func isFatal(c Check, m evidence.Measurement) bool {
	f, ok := c.(Fatal)
	return ok && f.Fatal(m)
}

func isCertain(c Check) bool {
	f, ok := c.(Final)
	return ok && f.Certain()
}

func isFinal(c Check) bool {
	_, ok := c.(Final)
	return ok
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sleepUntil waits until t (on the clock now), or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time, now func() time.Time) error {
	d := t.Sub(now())
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
