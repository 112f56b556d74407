// Package evidence is the record of one verify-health run: every measurement, query, threshold, value and
// timestamp, the verdict and why. It is written as JSON, summarised in the log as a table, and rendered as a
// markdown report with an SVG chart of canary against baseline or stable over time.
package evidence

import (
	"time"

	"github.com/canaryline/canaryline/internal/runtime/naming"
)

// Verdicts: naming's, under the names the evidence has always used.
const (
	Healthy      = naming.Healthy
	Unhealthy    = naming.Unhealthy
	Inconclusive = naming.Inconclusive
)

// Statuses of one measurement.
const (
	Pass   = "pass"
	Fail   = "fail"
	Error  = "error"  // the check could not be evaluated (e.g. Prometheus down): never counted as a failure
	NoData = "nodata" // nothing to measure yet (no traffic, an empty query result)
	// Pending is a statistical comparison still collecting samples, or not yet certain: it decides at the end.
	Pending = "pending"
)

// Evidence is a whole analysis.
type Evidence struct {
	Release   string `json:"release,omitempty"`
	App       string `json:"app"`
	Namespace string `json:"namespace"`
	// Container is the released container of the application's pods, with its image in the stable and the canary
	// Deployment (when they were read).
	Container   string    `json:"container,omitempty"`
	StableImage string    `json:"stableImage,omitempty"`
	CanaryImage string    `json:"canaryImage,omitempty"`
	StartedAt   time.Time `json:"startedAt"`
	FinishedAt  time.Time `json:"finishedAt"`
	Verdict     string    `json:"verdict"`
	// Reason is one line naming the deciding check, its value and its threshold.
	Reason string `json:"reason"`
	// Settings are the analysis settings (interval, count, limits, no-data policy, ...), as given.
	Settings map[string]string `json:"settings"`
	Checks   []Check           `json:"checks"`
	// Measurements are every measurement of every check, in time order.
	Measurements []Measurement `json:"measurements"`
}

// Check is one configured check and how it ended.
type Check struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // pods, http, prometheus, compare
	// What is measured: a PromQL query, a URL, a Deployment.
	Query     string `json:"query,omitempty"`
	Threshold string `json:"threshold"` // e.g. "< 0.01", ">= 0.99", "p95 < 300ms", "no increase at 98% confidence"
	Status    string `json:"status"`    // the last measurement's status
	Failures  int    `json:"failures"`
	Errors    int    `json:"errors"`
	NoData    int    `json:"noData"`
	Last      string `json:"last,omitempty"` // the last value, formatted
}

// Measurement is one evaluation of one check.
type Measurement struct {
	Time   time.Time `json:"time"`
	Check  string    `json:"check"`
	Status string    `json:"status"`
	// Value is the measured value (canary's, for a comparison); Text formats it with its unit.
	Value float64 `json:"value"`
	Text  string  `json:"text"`
	// Threshold is what Value was held against.
	Threshold string `json:"threshold"`
	// Query is the query or URL as sent (templated), when there is one.
	Query string `json:"query,omitempty"`
	// Series are the values per track for charts: "canary", "baseline", "stable".
	Series map[string]float64 `json:"series,omitempty"`
	// Detail says more: the error, the sample sizes and p-value of a comparison, the pod states.
	Detail string `json:"detail,omitempty"`
	// Sequential is a sequential comparison's state after this measurement.
	Sequential *Sequential `json:"sequential,omitempty"`
}

// Sequential is where a sequential comparison stands: its evidence of a regression (the log of an e-value,
// which may be read at any moment) against the boundary that decides one, and the effect as estimated so far.
type Sequential struct {
	// LogE is the evidence of a regression; a regression is shown when it reaches Boundary (log(1/ALPHA)).
	LogE     float64 `json:"logE"`
	Boundary float64 `json:"boundary"`
	// EquivalenceLogE is the evidence of no regression beyond the tolerance, against the same boundary.
	EquivalenceLogE float64 `json:"equivalenceLogE"`
	// Effect is the estimate with its confidence sequence, e.g. "rate ratio 1.93 [1.21, 3.4]".
	Effect string `json:"effect"`
	// Counts are the totals per side, e.g. "canary 31 of 1500, stable 102 of 13500".
	Counts string `json:"counts"`
	// Intervals counts the intervals in the test; Carried those that came from earlier verify steps of the
	// release (or an earlier run of this one).
	Intervals int `json:"intervals"`
	Carried   int `json:"carried,omitempty"`
}
