package bench

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/canaryline/canaryline/internal/dev/argorollouts"
)

// argoRows are the argo part's figures: each one for Argo Rollouts, then for canaryline with the ratio
// canaryline/Argo and the target.
func argoRows(r argoResult) []Measurement {
	n := len(r.argo)
	each := fmt.Sprintf("median of %d interleaved releases each way", n)
	wall := func(cs []sideCost) []float64 { return costs(cs, func(c sideCost) float64 { return c.wall.Seconds() }) }
	reqs := func(cs []sideCost) []float64 {
		return costs(cs, func(c sideCost) float64 { return float64(c.requests) })
	}
	cpu := func(cs []sideCost) []float64 {
		return costs(cs, func(c sideCost) float64 { return c.cpu.Total().Seconds() })
	}
	pods := func(cs []sideCost) []float64 { return costs(cs, func(c sideCost) float64 { return float64(c.pods) }) }
	aw, cw := medianOf(wall(r.argo)), medianOf(wall(r.canaryline))
	ar, cr := medianOf(reqs(r.argo)), medianOf(reqs(r.canaryline))
	ac, cc := medianOf(cpu(r.argo)), medianOf(cpu(r.canaryline))
	ap, cp := medianOf(pods(r.argo)), medianOf(pods(r.canaryline))
	ab, cb := median(r.argoRollback).Seconds(), median(r.clRollback).Seconds()
	var out []Measurement
	add := func(a, c Measurement) { out = append(out, a, c) }
	add(argoPair("release wall time, 4 replicas", "s", aw, cw, each+": "+secs(wall(r.argo)), each+": "+secs(wall(r.canaryline)),
		"≤ 1.0x Argo's", cw <= aw))
	add(argoPair("API requests per release", "requests", ar, cr, each+" (its controller's, through a counting proxy; "+
		"the image change itself not counted): "+nums(reqs(r.argo))+"; by verb, mean: "+verbMeans(r.argo),
		each+" (the steps'): "+nums(reqs(r.canaryline))+"; by verb, mean: "+verbMeans(r.canaryline), "≤ 60", cr <= 60))
	add(argoPair("control-plane CPU per release", "CPU-s", ac, cc, each+", its controller included: "+nums(cpu(r.argo))+"; "+cpuSplit(r.argo),
		each+", the steps included, Argo's idle controller not: "+nums(cpu(r.canaryline))+"; "+cpuSplit(r.canaryline), "", false))
	add(argoPair("pods created per release", "pods", ap, cp, each+": "+nums(pods(r.argo)), each+": "+nums(pods(r.canaryline)),
		fmt.Sprintf("≤ Argo's (%s)", formatValue(ap)), cp <= ap))
	out = append(out, Measurement{Figure: "pods created per release through a traffic router (route, 1 canary replica): canaryline", Value: float64(r.routed.pods),
		Unit: "pods", Target: fmt.Sprintf("≤ Argo's (%s)", formatValue(ap)), Met: met(float64(r.routed.pods) <= ap),
		Detail: fmt.Sprintf("one release of the same 4-replica application, the router giving the canary its share: %d API requests, %.2f s",
			r.routed.requests, r.routed.wall.Seconds())})
	add(argoPair("rollback wall time, after weight 30", "s", ab, cb,
		fmt.Sprintf("abort until Degraded and the canary's pods are gone; median of %d: %s", len(r.argoRollback), secs(seconds(r.argoRollback))),
		fmt.Sprintf("promote-or-rollback DECISION=rollback until the canary's pods are gone; median of %d: %s", len(r.clRollback), secs(seconds(r.clRollback))),
		"", false))
	prom := func(cs []sideCost) []float64 {
		return costs(cs, func(c sideCost) float64 { return c.promote.Seconds() })
	}
	add(argoPair("promote time, 4 replicas", "s", medianOf(prom(r.argo)), medianOf(prom(r.canaryline)),
		each+"; from the last setWeight step completing to Healthy: "+secs(prom(r.argo)),
		each+"; the promote-or-rollback step: "+secs(prom(r.canaryline)), "", false))
	rssMB := make([]float64, len(r.rss))
	for i, v := range r.rss {
		rssMB[i] = float64(v) / 1e6
	}
	out = append(out,
		Measurement{Figure: "running between releases: Argo Rollouts " + argorollouts.Version, Value: medianOf(rssMB), Unit: "MB",
			Detail: fmt.Sprintf("its controller's RSS before each release, median; %s MB", rangeOf(rssMB))},
		Measurement{Figure: "running between releases: canaryline", Value: 0, Unit: "MB", Detail: "nothing runs"})
	large := fmt.Sprintf("%d replicas, each Ready %s after it starts (KWOK), one release each way", argoLargeReplicas, argoReadyDelay)
	add(argoPair(fmt.Sprintf("release wall time, %d replicas", argoLargeReplicas), "s", r.argoLarge.wall.Seconds(),
		r.canarylineLarge.wall.Seconds(), large, large, "", false))
	add(argoPair(fmt.Sprintf("promote time, %d replicas", argoLargeReplicas), "s", r.argoLarge.promote.Seconds(),
		r.canarylineLarge.promote.Seconds(), large+"; from the last setWeight step completing to Healthy",
		large+"; the promote-or-rollback step; the target compares it with the figure before issue 19", "≤ 0.5x today's", true))
	out[len(out)-1].Met = nil // before and after are compared by hand
	return out
}

// argoPair is one figure for Argo Rollouts, then for canaryline with the ratio canaryline/Argo and target (met
// when ok; no target when target is empty).
func argoPair(figure, unit string, argo, cl float64, argoDetail, clDetail, target string, ok bool) (Measurement, Measurement) {
	a := Measurement{Figure: figure + ": Argo Rollouts " + argorollouts.Version, Value: argo, Unit: unit, Detail: argoDetail}
	c := Measurement{Figure: figure + ": canaryline", Value: cl, Unit: unit, Target: target,
		Detail: timesOf(cl, argo) + " Argo's; " + clDetail}
	if target != "" {
		c.Met = met(ok)
	}
	return a, c
}

// timesOf is the ratio a/b as "1.65x" ("n/a" when b is 0).
func timesOf(a, b float64) string {
	if b == 0 {
		return "n/a x"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func costs(cs []sideCost, f func(sideCost) float64) []float64 {
	out := make([]float64, len(cs))
	for i, c := range cs {
		out[i] = f(c)
	}
	return out
}

// medianOf is the median of vs (the mean of the middle two for an even count), 0 for none.
func medianOf(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func seconds(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = d.Seconds()
	}
	return out
}

// cpuSplit is the median CPU of each part: the steps, the control plane's processes (Argo's controller among
// them), this process (the OpenShift API shim, the counting proxies, the watches).
func cpuSplit(cs []sideCost) string {
	part := func(f func(cpuUse) time.Duration) string {
		return fmt.Sprintf("%.2f", medianOf(costs(cs, func(c sideCost) float64 { return f(c.cpu).Seconds() })))
	}
	return "medians: steps " + part(func(u cpuUse) time.Duration { return u.Steps }) +
		", control plane " + part(func(u cpuUse) time.Duration { return u.ControlPlane }) +
		", shim, proxies and watches " + part(func(u cpuUse) time.Duration { return u.Harness })
}

// verbMeans is the mean requests per release by verb, as "get 3.5, watch 2".
func verbMeans(cs []sideCost) string {
	sum := map[string]int{}
	for _, c := range cs {
		for v, n := range c.verbs {
			sum[v] += n
		}
	}
	var parts []string
	for _, v := range slices.Sorted(maps.Keys(sum)) {
		parts = append(parts, v+" "+strings.TrimSuffix(strconv.FormatFloat(float64(sum[v])/float64(len(cs)), 'f', 1, 64), ".0"))
	}
	return strings.Join(parts, ", ")
}

func rangeOf(vs []float64) string {
	if len(vs) == 0 {
		return "none"
	}
	return fmt.Sprintf("%.0f-%.0f", slices.Min(vs), slices.Max(vs))
}

func nums(vs []float64) string {
	var parts []string
	for _, v := range vs {
		parts = append(parts, formatValue(v))
	}
	return strings.Join(parts, ", ")
}

func secs(vs []float64) string {
	var parts []string
	for _, v := range vs {
		parts = append(parts, fmt.Sprintf("%.2f", v))
	}
	return strings.Join(parts, ", ") + " s"
}
