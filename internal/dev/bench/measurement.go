package bench

// Measurement is one figure of the benchmark table.
type Measurement struct {
	Figure string  // what, e.g. "cold start to first API request: shift-canary"
	Value  float64 // in Unit
	Unit   string  // "MB", "ms", ...
	Target string  // e.g. "≤ 40 ms"; "" when none
	Met    *bool   // nil when there is no target
	Detail string  // e.g. "median of 21 runs; empty client program 31.2 ms (ratio 1.08)"
	// Skipped says the figure could not be taken on this machine; Detail says why, and Value means nothing.
	Skipped bool
}
