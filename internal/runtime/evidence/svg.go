package evidence

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/canaryline/canaryline/internal/runtime/naming"
)

// Chart layout, in pixels.
const (
	svgWidth      = 720
	svgTop        = 12  // above the first panel
	svgBottom     = 24  // below the last panel: the x axis caption
	svgNote       = 18  // the line saying which checks were left out
	panelTitle    = 26  // a panel's title and legend
	panelPlot     = 200 // a panel's plotting area
	panelAxis     = 30  // a panel's x tick labels
	panelHeight   = panelTitle + panelPlot + panelAxis
	plotLeft      = 64
	plotRight     = svgWidth - 16
	maxPanels     = 6
	charWidth     = 6.6 // a rough width of one character at the 11px font, for laying out text
	failureColour = "#d62728"
)

// seriesColours are the line colours of the known tracks; any other series is grey.
var seriesColours = map[string]string{
	naming.TrackCanary:   "#d62728",
	naming.TrackBaseline: "#1f77b4",
	naming.TrackStable:   "#2ca02c",
}

const otherColour = "#7f7f7f"

// otherDashes tell apart several grey series.
var otherDashes = []string{"", "6 3", "2 2", "8 3 2 3"}

// panel is the chart of one check.
type panel struct {
	check     string
	threshold string
	keys      []string
	points    map[string][][2]float64 // per series: (seconds since start, value)
	failures  [][2]float64            // where failed measurements are marked
	limit     float64                 // a numeric threshold, drawn as a dashed line, when hasLimit
	hasLimit  bool
	// fixedLimit: limit is set (a sequential test's boundary), not read from the threshold.
	fixedLimit bool
}

// evidenceSeries is the series of a sequential comparison's evidence panel.
const evidenceSeries = "log e-value"

// SVG renders the measurements' Series over time as a self-contained SVG line chart: one panel per check
// that has series values (at most six, stacked), x = seconds since the start, y from 0 (or the minimum if
// negative) to the maximum, a line per series (canary red, baseline blue, stable green, others grey), a
// legend, the check and its threshold as the panel title, a dashed line at a plain numeric threshold such
// as "< 0.01", and a red circle on the canary line for each failed measurement (at the top or bottom edge,
// labelled, for a value of ±Inf, which no line can reach). The output depends only on e, so the same evidence
// gives the same bytes.
func (e *Evidence) SVG() []byte {
	var b bytes.Buffer
	b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
	if e == nil {
		emptySVG(&b)
		return b.Bytes()
	}
	panels, more := e.panels()
	if len(panels) == 0 {
		emptySVG(&b)
		return b.Bytes()
	}

	height := svgTop + len(panels)*panelHeight + svgBottom
	if len(more) > 0 {
		height += svgNote
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		svgWidth, height, svgWidth, height)
	title := "Canary analysis"
	if e.App != "" {
		title += ": " + e.App
	}
	fmt.Fprintf(&b, "<title>%s</title>\n", esc(oneLine(title)))
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, height)

	// One x scale for all panels, so that they line up.
	xticks, xlo, xhi := e.xRange(panels)
	for i, p := range panels {
		top := float64(svgTop + i*panelHeight)
		p.draw(&b, top, xticks, xlo, xhi)
	}
	e.footer(&b, svgTop+len(panels)*panelHeight, more)
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// xRange is the x scale of every panel: from the start (or the earliest point) to the end of the analysis (or
// the latest point), and its ticks.
func (e *Evidence) xRange(panels []*panel) (xticks []float64, xlo, xhi float64) {
	xmin, xmax := 0.0, 0.0
	if start := e.origin(); !e.FinishedAt.IsZero() {
		xmax = seconds(start, e.FinishedAt)
	}
	for _, p := range panels {
		for _, pts := range p.points {
			for _, pt := range pts {
				xmin, xmax = math.Min(xmin, pt[0]), math.Max(xmax, pt[0])
			}
		}
	}
	return ticks(xmin, xmax, 6, true)
}

// footer writes, below the last panel (at y), the x axis caption, and the checks left out when there are more.
func (e *Evidence) footer(b *bytes.Buffer, y int, more []string) {
	caption := "seconds since start"
	if start := e.origin(); !start.IsZero() {
		caption += " (" + rfc3339(start) + ")"
	}
	fmt.Fprintf(b, `<text x="%s" y="%d" text-anchor="middle" fill="#333333">%s</text>`+"\n",
		num((plotLeft+plotRight)/2.0), y+6, esc(caption))
	if len(more) > 0 {
		note := truncate(fmt.Sprintf("%d more checks with series not charted: %s", len(more), strings.Join(more, ", ")),
			int(math.Floor(float64(plotRight-plotLeft)/charWidth)))
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="#666666">%s</text>`+"\n", plotLeft, y+svgBottom+8, esc(note))
	}
}

func emptySVG(b *bytes.Buffer) {
	const w, h = svgWidth, 300
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="14">`+"\n", w, h, w, h)
	fmt.Fprintf(b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", w, h)
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle" dominant-baseline="middle" fill="#666666">no series to chart</text>`+"\n", w/2, h/2)
	b.WriteString("</svg>\n")
}

// panels gathers the checks that have series values, in the order of e.Checks (then of first measurement),
// the first maxPanels of them, and the names of the rest.
func (e *Evidence) panels() (panels []*panel, more []string) {
	byName := map[string]*panel{}
	var order []string
	add := func(name, threshold string) *panel {
		if p, ok := byName[name]; ok {
			return p
		}
		p := &panel{check: name, threshold: threshold, points: map[string][][2]float64{}}
		byName[name] = p
		order = append(order, name)
		return p
	}
	for _, c := range e.Checks {
		add(c.Name, c.Threshold)
	}
	start := e.origin()
	for _, m := range e.Measurements {
		if p := add(m.Check, m.Threshold); len(m.Series) > 0 {
			p.add(seconds(start, m.Time), m)
		}
	}
	// A sequential comparison has a second panel: its evidence over time against the boundary.
	for _, m := range e.Measurements {
		if s := m.Sequential; s != nil {
			p := add(m.Check+" evidence", fmt.Sprintf("regression when log e >= %.2f", s.Boundary))
			// Far below zero is "no regression in sight": clipped so the boundary stays readable.
			p.points[evidenceSeries] = append(p.points[evidenceSeries], [2]float64{seconds(start, m.Time), math.Max(s.LogE, -2*s.Boundary)})
			p.limit, p.hasLimit, p.fixedLimit = s.Boundary, true, true
			if m.Status == Fail {
				p.failures = append(p.failures, [2]float64{seconds(start, m.Time), math.Max(s.LogE, -2*s.Boundary)})
			}
		}
	}
	for _, name := range order {
		p := byName[name]
		if len(p.points) == 0 && len(p.failures) == 0 {
			continue
		}
		if len(panels) == maxPanels {
			more = append(more, name)
			continue
		}
		p.keys = sortedKeys(p.points)
		if !p.fixedLimit {
			p.limit, p.hasLimit = numericThreshold(p.threshold)
		}
		panels = append(panels, p)
	}
	return panels, more
}

// add puts measurement m, taken x seconds after the start, on the panel: its series' finite values, and a mark
// when it failed.
func (p *panel) add(x float64, m Measurement) {
	keys := sortedKeys(m.Series)
	for _, k := range keys {
		if v := m.Series[k]; finite(v) {
			p.points[k] = append(p.points[k], [2]float64{x, v})
		}
	}
	if m.Status == Fail {
		p.failures = append(p.failures, [2]float64{x, failureY(m, keys)})
	}
	if p.threshold == "" {
		p.threshold = m.Threshold
	}
}

// failureY is where a failed measurement is marked: on the canary line, or on the first line there is; ±Inf at
// the top or bottom edge; NaN (the bottom of the plot) when no series has a value.
func failureY(m Measurement, keys []string) float64 {
	if v, ok := m.Series[naming.TrackCanary]; ok && !math.IsNaN(v) {
		return v
	}
	for _, k := range keys {
		if v := m.Series[k]; !math.IsNaN(v) {
			return v
		}
	}
	return math.NaN() // drawn at the bottom of the plot
}

// scale places a panel's points: its plotting area, and the x and y ranges with their ticks.
type scale struct {
	plotTop, plotBottom float64
	xticks, yticks      []float64
	xlo, xhi, ylo, yhi  float64
}

func (s *scale) px(x float64) float64 { return plotLeft + (x-s.xlo)/(s.xhi-s.xlo)*(plotRight-plotLeft) }

func (s *scale) py(y float64) float64 {
	if math.IsInf(y, 1) {
		return s.plotTop
	}
	if !finite(y) {
		return s.plotBottom
	}
	return s.plotBottom - (y-s.ylo)/(s.yhi-s.ylo)*panelPlot
}

// draw writes the panel whose top edge is at top.
func (p *panel) draw(b *bytes.Buffer, top float64, xticks []float64, xlo, xhi float64) {
	s := &scale{plotTop: top + panelTitle, xticks: xticks, xlo: xlo, xhi: xhi}
	s.plotBottom = s.plotTop + panelPlot
	s.yticks, s.ylo, s.yhi = p.yRange()
	fmt.Fprintf(b, "<g>\n")
	p.drawHeading(b, top)
	p.drawFrame(b, s)
	p.drawSeries(b, s)
	p.drawFailures(b, s)
	b.WriteString("</g>\n")
}

// yRange is the panel's y range: from 0, or the minimum if negative, to the maximum, threshold included; and its
// ticks.
func (p *panel) yRange() (yticks []float64, ylo, yhi float64) {
	first := true
	see := func(v float64) {
		if !finite(v) {
			return
		}
		if first {
			ylo, yhi, first = math.Min(0, v), math.Max(0, v), false
			return
		}
		ylo, yhi = math.Min(ylo, v), math.Max(yhi, v)
	}
	for _, k := range p.keys {
		for _, pt := range p.points[k] {
			see(pt[1])
		}
	}
	if p.hasLimit {
		see(p.limit)
	}
	return ticks(ylo, yhi, 4, false)
}

// drawHeading writes the legend, right-aligned on the title line, and the title in the room left of it.
func (p *panel) drawHeading(b *bytes.Buffer, top float64) {
	type item struct{ label, colour, dash string }
	var items []item
	for i, k := range p.keys {
		c, dash := seriesStyle(k, i)
		items = append(items, item{truncate(oneLine(k), 16), c, dash})
	}
	legendWidth := 0.0
	for _, it := range items {
		legendWidth += 28 + float64(runes(it.label))*charWidth
	}
	if len(p.failures) > 0 {
		legendWidth += 16 + 6*charWidth
	}
	lx := plotRight - legendWidth
	ty := top + panelTitle - 9
	for _, it := range items {
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"%s/>`+"\n",
			num(lx), num(ty-4), num(lx+18), num(ty-4), it.colour, dashAttr(it.dash))
		fmt.Fprintf(b, `<text x="%s" y="%s" fill="#333333">%s</text>`+"\n", num(lx+22), num(ty), esc(it.label))
		lx += 28 + float64(runes(it.label))*charWidth
	}
	if len(p.failures) > 0 {
		fmt.Fprintf(b, `<circle class="legend-failed" cx="%s" cy="%s" r="3.5" fill="%s"/>`+"\n", num(lx+4), num(ty-4), failureColour)
		fmt.Fprintf(b, `<text x="%s" y="%s" fill="#333333">failed</text>`+"\n", num(lx+12), num(ty))
	}
	title := oneLine(p.check)
	if t := oneLine(p.threshold); t != "" {
		title += " — " + t
	}
	room := int((plotRight - legendWidth - 12 - plotLeft) / (charWidth * 1.1)) // bold is wider
	fmt.Fprintf(b, `<text x="%d" y="%s" font-size="12" font-weight="bold" fill="#111111">%s</text>`+"\n",
		plotLeft, num(ty), esc(truncate(title, max(room, 8))))
}

// drawFrame writes the frame, the grid and the tick labels, and the threshold's dashed line.
func (p *panel) drawFrame(b *bytes.Buffer, s *scale) {
	fmt.Fprintf(b, `<rect x="%d" y="%s" width="%d" height="%d" fill="none" stroke="#cccccc"/>`+"\n",
		plotLeft, num(s.plotTop), plotRight-plotLeft, panelPlot)
	ydec := decimals(s.yticks)
	for _, v := range s.yticks {
		y := s.py(v)
		fmt.Fprintf(b, `<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#eeeeee"/>`+"\n", plotLeft, num(y), plotRight, num(y))
		fmt.Fprintf(b, `<text x="%d" y="%s" text-anchor="end" fill="#555555">%s</text>`+"\n",
			plotLeft-6, num(y+4), esc(tickLabel(v, ydec)))
	}
	for _, v := range s.xticks {
		x := s.px(v)
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#eeeeee"/>`+"\n", num(x), num(s.plotTop), num(x), num(s.plotBottom))
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" fill="#555555">%s</text>`+"\n",
			num(x), num(s.plotBottom+15), esc(secondsLabel(v)))
	}
	if p.hasLimit {
		y := s.py(p.limit)
		fmt.Fprintf(b, `<line class="threshold" x1="%d" y1="%s" x2="%d" y2="%s" stroke="#555555" stroke-dasharray="4 3"/>`+"\n",
			plotLeft, num(y), plotRight, num(y))
	}
}

// drawSeries writes a line per series (a dot for a lone point).
func (p *panel) drawSeries(b *bytes.Buffer, s *scale) {
	for i, k := range p.keys {
		c, dash := seriesStyle(k, i)
		var pts []string
		for _, pt := range p.points[k] {
			pts = append(pts, num(s.px(pt[0]))+","+num(s.py(pt[1])))
		}
		fmt.Fprintf(b, `<polyline data-series="%s" points="%s" fill="none" stroke="%s" stroke-width="1.8" stroke-linejoin="round"%s/>`+"\n",
			esc(k), strings.Join(pts, " "), c, dashAttr(dash))
		if len(pts) == 1 { // a lone point draws no line
			fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="2" fill="%s"/>`+"\n",
				num(s.px(p.points[k][0][0])), num(s.py(p.points[k][0][1])), c)
		}
	}
}

// drawFailures writes a red circle for each failed measurement, on top of the lines; one off the scale (±Inf)
// is labelled beside its marker.
func (p *panel) drawFailures(b *bytes.Buffer, s *scale) {
	for _, f := range p.failures {
		fmt.Fprintf(b, `<circle class="fail" cx="%s" cy="%s" r="4" fill="%s" stroke="#ffffff" stroke-width="1"/>`+"\n",
			num(s.px(f[0])), num(s.py(f[1])), failureColour)
		if math.IsInf(f[1], 0) { // off the scale: say so beside the marker
			dy := 14.0
			if f[1] < 0 {
				dy = -8
			}
			fmt.Fprintf(b, `<text class="off-scale" x="%s" y="%s" text-anchor="middle" fill="%s">%s</text>`+"\n",
				num(s.px(f[0])), num(s.py(f[1])+dy), failureColour, strconv.FormatFloat(f[1], 'g', -1, 64))
		}
	}
}

// seriesStyle is the colour and dash pattern of series k, the i-th of its panel.
func seriesStyle(k string, i int) (colour, dash string) {
	if c, ok := seriesColours[k]; ok {
		return c, ""
	}
	return otherColour, otherDashes[i%len(otherDashes)]
}

func dashAttr(dash string) string {
	if dash == "" {
		return ""
	}
	return ` stroke-dasharray="` + dash + `"`
}

// sortedKeys orders series keys canary, baseline, stable, then the others by name.
func sortedKeys[V any](m map[string]V) []string {
	rank := func(k string) int {
		switch k {
		case naming.TrackCanary:
			return 0
		case naming.TrackBaseline:
			return 1
		case naming.TrackStable:
			return 2
		}
		return 3
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	return keys
}

var thresholdRE = regexp.MustCompile(`^\s*(?:<=|>=|<|>|≤|≥)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$`)

// numericThreshold reads a plain threshold such as "< 0.01" or ">= 0.99".
func numericThreshold(s string) (float64, bool) {
	m := thresholdRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil && finite(v)
}

// ticks returns about n evenly spaced, round tick values and the range they are drawn over. A value range
// is widened to whole ticks; a time range (seconds) is kept as it is, with steps of round numbers of
// seconds, minutes and hours inside it.
func ticks(lo, hi float64, n int, isTime bool) (values []float64, from, to float64) {
	if !(hi > lo) {
		if lo == 0 {
			hi = 1
		} else {
			lo, hi = lo-math.Abs(lo)/2, hi+math.Abs(hi)/2
			if lo > 0 {
				lo = 0
			}
		}
	}
	step := niceStep((hi-lo)/float64(n), isTime)
	from, to = lo, hi
	if !isTime {
		from = math.Floor(lo/step) * step
		to = math.Ceil(hi/step) * step
		if to <= from {
			to = from + step
		}
	}
	for i := math.Ceil(from/step - 1e-9); len(values) <= 4*n; i++ {
		v := i * step
		if v > to+step*1e-9 {
			break
		}
		values = append(values, v)
	}
	return values, from, to
}

var timeSteps = []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400}

func niceStep(raw float64, isTime bool) float64 {
	if isTime {
		for _, s := range timeSteps {
			if s >= raw {
				return s
			}
		}
		return math.Ceil(raw/86400) * 86400
	}
	if !(raw > 0) || !finite(raw) {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / mag; {
	case f <= 1:
		return mag
	case f <= 2:
		return 2 * mag
	case f <= 5:
		return 5 * mag
	default:
		return 10 * mag
	}
}

// decimals is how many decimals tell the ticks apart.
func decimals(ticks []float64) int {
	if len(ticks) < 2 {
		return 0
	}
	step := math.Abs(ticks[1] - ticks[0])
	d := int(math.Ceil(-math.Log10(step) - 1e-9))
	return min(max(d, 0), 12)
}

func tickLabel(v float64, decimals int) string {
	if a := math.Abs(v); a >= 1e7 || (a != 0 && a < 1e-6) {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if s == "-0" || strings.Trim(s, "-0.") == "" {
		return "0"
	}
	return s
}

// secondsLabel is an x tick: "90s", "5m", "1h30m".
func secondsLabel(v float64) string {
	d := time.Duration(math.Round(v)) * time.Second
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	switch {
	case d < 2*time.Minute && d%time.Minute != 0 || d < time.Minute:
		return sign + strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d%time.Hour == 0:
		return sign + strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d < time.Hour && d%time.Minute == 0:
		return sign + strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	s := d.String() // "2m30s", "1h5m0s"
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	return sign + s
}

func seconds(start, t time.Time) float64 { return t.Sub(start).Seconds() }

// num formats a coordinate.
func num(v float64) string {
	if !finite(v) {
		v = 0
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	if s == "-0" {
		s = "0"
	}
	return s
}

// esc escapes text for XML content and attribute values (invalid XML characters become U+FFFD).
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}
