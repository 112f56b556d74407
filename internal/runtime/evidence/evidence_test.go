package evidence

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const (
	httpURL   = "https://shop.shop-prod.svc.cluster.local:8443/healthz"
	errQuery  = `sum(rate(http_requests_total{app="shop",track="canary",code=~"5.."}[1m])) / sum(rate(http_requests_total{app="shop",track="canary"}[1m]))`
	podsQuery = "deployment/shop-canary"
	interval  = 30 * time.Second
	intervals = 10
)

var start = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

// sample is a realistic unhealthy analysis: an HTTP success ratio with a canary series, a Prometheus error
// ratio with canary and baseline series that fails at the end (and once could not be evaluated), and a
// pods check without series.
func sample() *Evidence {
	e := &Evidence{
		Release:    "shop-7f9c2d1",
		App:        "shop",
		Namespace:  "shop-prod",
		StartedAt:  start,
		FinishedAt: start.Add(intervals * interval),
		Verdict:    Unhealthy,
		Reason:     "error-ratio: canary error ratio 0.034 against threshold < 0.01 (baseline 0.002)",
		Settings: map[string]string{
			"interval":     "30s",
			"count":        "10",
			"failureLimit": "0",
			"noData":       "inconclusive",
		},
	}
	for i := 1; i <= intervals; i++ {
		t := start.Add(time.Duration(i) * interval)
		ok := 0.995 + float64(i%3)/1000
		e.Measurements = append(e.Measurements, Measurement{
			Time: t, Check: "http-success", Status: Pass, Value: ok, Text: fmt.Sprintf("%.1f%%", ok*100),
			Threshold: ">= 0.99", Query: httpURL, Series: map[string]float64{"canary": ok},
			Detail: "200 of 201 requests succeeded",
		})
		canary, baseline := 0.001*float64(i%4), 0.002
		m := Measurement{
			Time: t.Add(time.Second), Check: "error-ratio", Status: Pass, Value: canary, Text: fmt.Sprintf("%.3f", canary),
			Threshold: "< 0.01", Query: errQuery, Series: map[string]float64{"canary": canary, "baseline": baseline},
		}
		switch i {
		case 5:
			m = Measurement{Time: m.Time, Check: m.Check, Status: Error, Text: "error", Threshold: m.Threshold,
				Query: errQuery, Detail: "Post \"http://prometheus:9090/api/v1/query\": connection refused"}
		case intervals:
			m.Status, m.Value, m.Text = Fail, 0.034, "0.034"
			m.Series = map[string]float64{"canary": 0.034, "baseline": baseline}
		}
		e.Measurements = append(e.Measurements, m)
		e.Measurements = append(e.Measurements, Measurement{
			Time: t.Add(2 * time.Second), Check: "pods", Status: Pass, Value: 3, Text: "3/3 ready",
			Threshold: "all ready, no restarts", Query: podsQuery, Detail: "shop-canary-6d9f-abcde Running",
		})
	}
	e.Checks = []Check{
		{Name: "http-success", Kind: "http", Query: httpURL, Threshold: ">= 0.99", Status: Pass, Last: "99.6%"},
		{Name: "error-ratio", Kind: "prometheus", Query: errQuery, Threshold: "< 0.01", Status: Fail, Failures: 1, Errors: 1, Last: "0.034"},
		{Name: "pods", Kind: "pods", Query: podsQuery, Threshold: "all ready, no restarts", Status: Pass, Last: "3/3 ready"},
	}
	return e
}

// failuresWithSeries counts the failed measurements that have series, which the chart marks.
func failuresWithSeries(e *Evidence) int {
	n := 0
	for _, m := range e.Measurements {
		if m.Status == Fail && len(m.Series) > 0 {
			n++
		}
	}
	return n
}

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	nonUTC := sample()
	zone := time.FixedZone("CEST", 2*3600)
	nonUTC.StartedAt = nonUTC.StartedAt.In(zone)
	for i := range nonUTC.Measurements {
		nonUTC.Measurements[i].Time = nonUTC.Measurements[i].Time.In(zone)
	}
	tests := []struct {
		name string
		in   *Evidence
		want *Evidence
	}{
		{"sample", sample(), sample()},
		{"empty", &Evidence{App: "shop", Namespace: "ns", Verdict: Inconclusive}, &Evidence{App: "shop", Namespace: "ns", Verdict: Inconclusive}},
		{"times become UTC", nonUTC, sample()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := tt.in.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			got, err := Read(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("round trip differs:\n got %+v\nwant %+v", got, tt.want)
			}
			// Again, byte for byte.
			var again bytes.Buffer
			if err := got.WriteJSON(&again); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Bytes(), buf.Bytes()) {
				t.Errorf("second write differs:\n%s\n---\n%s", again.Bytes(), buf.Bytes())
			}
		})
	}
}

func TestJSONLayout(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := sample().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	if !strings.HasPrefix(s, "{\n  \"release\": \"shop-7f9c2d1\",\n  \"app\": \"shop\",") {
		t.Errorf("not indented in struct order:\n%.200s", s)
	}
	order := []string{`"release"`, `"app"`, `"namespace"`, `"startedAt"`, `"finishedAt"`, `"verdict"`, `"reason"`, `"settings"`, `"checks"`, `"measurements"`}
	last := -1
	for _, k := range order {
		i := strings.Index(s, k)
		if i <= last {
			t.Errorf("%s out of order", k)
		}
		last = i
	}
	for _, want := range []string{`"startedAt": "2026-05-04T10:00:00Z"`, `"threshold": "< 0.01"`, `code=~\"5..\"`} {
		if !strings.Contains(s, want) {
			t.Errorf("JSON lacks %s", want)
		}
	}
}

// TestJSONNonFinite: a query answering ±Inf (a ratio over zero) or NaN keeps its value in the record: JSON has
// no such numbers, so they are written as Prometheus writes them, "+Inf", "-Inf", "NaN", and read back.
func TestJSONNonFinite(t *testing.T) {
	t.Parallel()
	e := sample()
	e.Measurements[0].Value = math.NaN()
	e.Measurements[0].Series = map[string]float64{"canary": math.Inf(1), "baseline": 0.5}
	e.Measurements[1].Value = math.Inf(1)
	e.Measurements[1].Series = map[string]float64{"canary": math.Inf(1), "baseline": math.Inf(-1)}
	e.Measurements[2].Value = math.Inf(-1)
	var buf bytes.Buffer
	if err := e.WriteJSON(&buf); err != nil {
		t.Fatalf("NaN and ±Inf must not make the record unwritable: %v", err)
	}
	for _, want := range []string{`"value": "NaN"`, `"value": "+Inf"`, `"value": "-Inf"`, `"canary": "+Inf"`, `"baseline": "-Inf"`, `"baseline": 0.5`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the record lacks %s", want)
		}
	}
	got, err := Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	m0, m1, m2 := got.Measurements[0], got.Measurements[1], got.Measurements[2]
	if !math.IsNaN(m0.Value) || !math.IsInf(m0.Series["canary"], 1) || m0.Series["baseline"] != 0.5 {
		t.Errorf("measurement 0 read back as %+v", m0)
	}
	if !math.IsInf(m1.Value, 1) || !math.IsInf(m1.Series["canary"], 1) || !math.IsInf(m1.Series["baseline"], -1) {
		t.Errorf("measurement 1 read back as %+v", m1)
	}
	if !math.IsInf(m2.Value, -1) {
		t.Errorf("measurement 2 read back as %+v", m2)
	}
	// Everything else is as it was.
	want := sample()
	for i := range 3 {
		got.Measurements[i].Value, got.Measurements[i].Series = want.Measurements[i].Value, want.Measurements[i].Series
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the rest of the record differs:\n got %+v\nwant %+v", got, want)
	}
	if !math.IsNaN(e.Measurements[0].Value) || !math.IsInf(e.Measurements[1].Series["baseline"], -1) {
		t.Error("WriteJSON changed its receiver")
	}
	if _, err := Read(strings.NewReader(`{"measurements": [{"value": "lots"}]}`)); err == nil {
		t.Error(`"lots" read as a number`)
	}
}

// TestMeasurementJSONFields: what WriteJSON writes of a Measurement has every field of it, in order, with the
// same JSON names.
func TestMeasurementJSONFields(t *testing.T) {
	t.Parallel()
	m, j := reflect.TypeOf(Measurement{}), reflect.TypeOf(measurementJSON{})
	if m.NumField() != j.NumField() {
		t.Fatalf("Measurement has %d fields, measurementJSON %d", m.NumField(), j.NumField())
	}
	for i := range m.NumField() {
		if f, g := m.Field(i), j.Field(i); f.Name != g.Name || f.Tag.Get("json") != g.Tag.Get("json") {
			t.Errorf("field %d: %s %q, written as %s %q", i, f.Name, f.Tag.Get("json"), g.Name, g.Tag.Get("json"))
		}
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{"empty", "", true},
		{"not json", "verdict: healthy", true},
		{"wrong type", `{"checks": 3}`, true},
		{"offset times", `{"app":"a","startedAt":"2026-05-04T12:00:00+02:00"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := Read(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && !e.StartedAt.Equal(start) || err == nil && e.StartedAt.Location() != time.UTC {
				t.Errorf("startedAt = %v", e.StartedAt)
			}
		})
	}
}

func TestTable(t *testing.T) {
	t.Parallel()
	long := sample()
	long.Checks[1].Name = strings.Repeat("very-long-check-name-", 5)
	long.Checks[1].Threshold = "no increase at 98% confidence against the baseline over the last ten intervals"
	long.Checks[1].Query = strings.Repeat("sum(rate(http_requests_total[5m])) / ", 10) + "\n  sum(up)"
	long.Reason = strings.Repeat("the canary's error ratio rose above the threshold ", 8)

	tests := []struct {
		name string
		e    *Evidence
		want []string // substrings of the lines, in order
	}{
		{"sample", sample(), []string{
			"CHECK", "http-success", "error-ratio", "pods", "verdict: unhealthy — error-ratio: canary error ratio 0.034",
		}},
		{"long cells", long, []string{"CHECK", "http-success", "very-long-check-name-", "pods", "verdict: unhealthy"}},
		{"no checks", &Evidence{Verdict: Inconclusive, Reason: "no data"}, []string{"CHECK", "verdict: inconclusive — no data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.e.Table()
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			for _, l := range lines {
				if n := utf8.RuneCountInString(l); n > MaxLineWidth {
					t.Errorf("line of %d runes: %q", n, l)
				}
				if strings.Contains(l, "\x1b") {
					t.Errorf("escape sequence in %q", l)
				}
			}
			i := 0
			for _, l := range lines {
				if i < len(tt.want) && strings.Contains(l, tt.want[i]) {
					i++
				}
			}
			if i < len(tt.want) {
				t.Errorf("no line with %q in order:\n%s", tt.want[i], got)
			}
			if !headerRE.MatchString(lines[0]) {
				t.Errorf("header = %q", lines[0])
			}
			// Columns line up: every row has the STATUS column where the header has it.
			col := strings.Index(lines[0], "STATUS")
			for _, l := range lines[1 : 1+len(tt.e.Checks)] {
				if r := []rune(l); len(r) <= col || r[col-1] != ' ' || r[col-2] != ' ' {
					t.Errorf("row not aligned at %d: %q", col, l)
				}
			}
		})
	}
}

var headerRE = regexp.MustCompile(`^CHECK +KIND +STATUS +LAST VALUE +THRESHOLD +FAILURES +ERRORS +NODATA( +QUERY)?$`)

func TestTableRows(t *testing.T) {
	t.Parallel()
	e := sample()
	got := e.Table()
	for _, c := range e.Checks {
		row := ""
		for _, l := range strings.Split(got, "\n") {
			if strings.HasPrefix(l, c.Name+" ") {
				row = l
			}
		}
		if row == "" {
			t.Errorf("no row for %s:\n%s", c.Name, got)
			continue
		}
		for _, want := range []string{c.Kind, c.Status, c.Last, c.Threshold, fmt.Sprint(c.Failures), fmt.Sprint(c.Errors)} {
			if !strings.Contains(row, want) {
				t.Errorf("row %q lacks %q", row, want)
			}
		}
	}
	if !strings.Contains(got, "…") {
		t.Errorf("the long PromQL query is not cut:\n%s", got)
	}
	if !strings.Contains(got, httpURL) {
		t.Errorf("the short URL is cut:\n%s", got)
	}
}

func TestMarkdown(t *testing.T) {
	t.Parallel()
	e := sample()
	tests := []struct {
		name      string
		chart     string
		want      []string
		wantNot   []string
		wantTable int // measurement rows
	}{
		{
			name:  "with chart",
			chart: "chart.svg",
			want: []string{
				"# Canary analysis: shop in shop-prod (release shop-7f9c2d1)",
				"**Verdict: unhealthy**",
				e.Reason,
				"## Settings", "| interval | `30s` |",
				"`" + httpURL + "`", "`" + errQuery + "`", "`" + podsQuery + "`",
				"| < 0.01 |",
				"![canary vs baseline](chart.svg)",
				"## Measurements",
				"| 2026-05-04T10:00:30Z (+30s) | http-success | pass | 99.6% | >= 0.99 | 200 of 201 requests succeeded |",
				"| 2026-05-04T10:05:01Z (+301s) | error-ratio | **fail** | 0.034 | < 0.01 |",
				"connection refused",
			},
			wantTable: len(e.Measurements),
		},
		{name: "without chart", chart: "", want: []string{"**Verdict: unhealthy**"}, wantNot: []string{"![", "## Chart"}, wantTable: len(e.Measurements)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := e.Markdown(tt.chart)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("report lacks %q", w)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("report has %q", w)
				}
			}
			// The verdict comes before everything but the title.
			if v, s := strings.Index(got, "**Verdict"), strings.Index(got, "## "); v < 0 || v > s {
				t.Errorf("verdict not at the top")
			}
			_, measurements, _ := strings.Cut(got, "## Measurements")
			rows := 0
			for _, l := range strings.Split(measurements, "\n") {
				if strings.HasPrefix(l, "| 2026-") {
					rows++
				}
			}
			if rows != tt.wantTable {
				t.Errorf("%d measurement rows, want %d", rows, tt.wantTable)
			}
			if t.Failed() {
				t.Log(got)
			}
		})
	}
}

func TestMarkdownEscaping(t *testing.T) {
	t.Parallel()
	e := &Evidence{
		App: "shop", Namespace: "ns", Verdict: Healthy, Reason: "all *good* <script>",
		Checks:       []Check{{Name: "a|b", Kind: "prometheus", Query: "sum(x) or `y` | z", Threshold: "< 1"}},
		Measurements: []Measurement{{Time: start, Check: "a|b", Status: Pass, Text: "1", Threshold: "< 1", Detail: "line one\nline two"}},
	}
	got := e.Markdown("")
	for _, want := range []string{
		`all \*good\* &lt;script>`,
		"| a\\|b | prometheus | ``sum(x) or `y` \\| z`` | < 1 |",
		"| line one line two |",
		"(+0s)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}

// svgDoc is what the tests look at in a chart.
type svgDoc struct {
	Width     string `xml:"width,attr"`
	Height    string `xml:"height,attr"`
	Texts     []string
	Polylines []map[string]string
	Circles   []map[string]string
	Groups    int
}

func parseSVG(t *testing.T, data []byte) svgDoc {
	t.Helper()
	var doc svgDoc
	d := xml.NewDecoder(bytes.NewReader(data))
	depth := 0
	var text *strings.Builder
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("invalid XML: %v\n%s", err, data)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			attrs := map[string]string{}
			for _, a := range tok.Attr {
				attrs[a.Name.Local] = a.Value
			}
			switch tok.Name.Local {
			case "svg":
				if depth != 1 || tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root = %v at depth %d", tok.Name, depth)
				}
				doc.Width, doc.Height = attrs["width"], attrs["height"]
			case "polyline":
				doc.Polylines = append(doc.Polylines, attrs)
			case "circle":
				doc.Circles = append(doc.Circles, attrs)
			case "g":
				doc.Groups++
			case "text":
				text = &strings.Builder{}
			case "script", "image", "foreignObject", "style":
				t.Errorf("unexpected <%s>", tok.Name.Local)
			}
			for _, a := range tok.Attr {
				if strings.Contains(a.Value, "http") && a.Name.Local != "xmlns" {
					t.Errorf("external reference %s=%q", a.Name.Local, a.Value)
				}
			}
		case xml.CharData:
			if text != nil {
				text.Write(tok)
			}
		case xml.EndElement:
			depth--
			if tok.Name.Local == "text" && text != nil {
				doc.Texts = append(doc.Texts, text.String())
				text = nil
			}
		}
	}
	return doc
}

func TestSVG(t *testing.T) {
	t.Parallel()
	tricky := sample()
	tricky.Checks[1].Name = `errors <&>" 'quoted'`
	for i := range tricky.Measurements {
		if tricky.Measurements[i].Check == "error-ratio" {
			tricky.Measurements[i].Check = tricky.Checks[1].Name
		}
	}
	tricky.Checks[1].Threshold = "< 0.01 & rising"

	many := &Evidence{StartedAt: start}
	for c := range 8 {
		name := fmt.Sprintf("check-%d", c)
		many.Checks = append(many.Checks, Check{Name: name, Threshold: "> 1"})
		for i := range 3 {
			many.Measurements = append(many.Measurements, Measurement{
				Time: start.Add(time.Duration(i) * time.Minute), Check: name, Status: Fail,
				Series: map[string]float64{"canary": float64(i), "other": -1, "zeta": 2},
			})
		}
	}

	negative := &Evidence{StartedAt: start, Measurements: []Measurement{
		{Time: start, Check: "delta", Status: Pass, Series: map[string]float64{"canary": -5, "stable": 3}},
		{Time: start.Add(time.Hour), Check: "delta", Status: Fail, Series: map[string]float64{"canary": math.NaN(), "stable": 4}},
	}}

	infinite := &Evidence{StartedAt: start, Measurements: []Measurement{
		{Time: start, Check: "error-rate", Threshold: "< 0.05", Status: Pass, Series: map[string]float64{"canary": 0.01}},
		{Time: start.Add(time.Minute), Check: "error-rate", Threshold: "< 0.05", Status: Fail, Series: map[string]float64{"canary": math.Inf(1)}},
		{Time: start.Add(2 * time.Minute), Check: "error-rate", Threshold: "< 0.05", Status: Pass, Series: map[string]float64{"canary": 0.02}},
	}}

	tests := []struct {
		name          string
		e             *Evidence
		wantPolylines int
		wantFailures  int
		wantPanels    int
		wantTexts     []string
	}{
		{"sample", sample(), 3, failuresWithSeries(sample()), 2, []string{"http-success — >= 0.99", "error-ratio — < 0.01", "canary", "baseline", "failed"}},
		{"escaping", tricky, 3, 1, 2, []string{`errors <&>" 'quoted' — < 0.01 & rising`}},
		{"at most six panels", many, 6 * 3, 6 * 3, 6, []string{"2 more checks with series not charted: check-6, check-7"}},
		{"negative and NaN", negative, 2, 1, 1, []string{"delta", "-5"}},
		{"+Inf", infinite, 1, 1, 1, []string{"error-rate — < 0.05", "+Inf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := tt.e.SVG()
			doc := parseSVG(t, data)
			if len(doc.Polylines) != tt.wantPolylines {
				t.Errorf("%d polylines, want %d", len(doc.Polylines), tt.wantPolylines)
			}
			fails := 0
			for _, c := range doc.Circles {
				if c["class"] == "fail" {
					fails++
					if c["fill"] != "#d62728" {
						t.Errorf("failure marker fill = %s", c["fill"])
					}
				}
			}
			if fails != tt.wantFailures {
				t.Errorf("%d failure markers, want %d", fails, tt.wantFailures)
			}
			if doc.Groups != tt.wantPanels {
				t.Errorf("%d panels, want %d", doc.Groups, tt.wantPanels)
			}
			h := svgTop + tt.wantPanels*panelHeight + svgBottom
			if tt.wantPanels == maxPanels {
				h += svgNote
			}
			if want := fmt.Sprint(h); doc.Height != want || doc.Width != "720" {
				t.Errorf("size %sx%s, want 720x%s", doc.Width, doc.Height, want)
			}
			for _, w := range tt.wantTexts {
				found := false
				for _, txt := range doc.Texts {
					found = found || strings.Contains(txt, w)
				}
				if !found {
					t.Errorf("no text %q in %q", w, doc.Texts)
				}
			}
			for _, p := range doc.Polylines {
				want, ok := seriesColours[p["data-series"]]
				if !ok {
					want = otherColour
				}
				if p["stroke"] != want {
					t.Errorf("series %s stroke %s, want %s", p["data-series"], p["stroke"], want)
				}
				if strings.Contains(p["points"], "NaN") || p["points"] == "" {
					t.Errorf("bad points %q", p["points"])
				}
			}
			if t.Failed() {
				t.Logf("%s", data)
			}
		})
	}
}

// TestSVGInfiniteFailures: a failed measurement of +Inf is marked at the top edge of its panel, and -Inf at the
// bottom, each labelled, not at the bottom as if it were 0 or no value.
func TestSVGInfiniteFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v     float64
		wantY float64
		label string
	}{
		{math.Inf(1), svgTop + panelTitle, "+Inf"},
		{math.Inf(-1), svgTop + panelTitle + panelPlot, "-Inf"},
	} {
		e := &Evidence{StartedAt: start, Measurements: []Measurement{
			{Time: start, Check: "q", Threshold: "> 0", Status: Pass, Series: map[string]float64{"canary": 1}},
			{Time: start.Add(time.Minute), Check: "q", Threshold: "> 0", Status: Fail, Series: map[string]float64{"canary": tc.v}},
		}}
		doc := parseSVG(t, e.SVG())
		var ys []string
		for _, c := range doc.Circles {
			if c["class"] == "fail" {
				ys = append(ys, c["cy"])
			}
		}
		if len(ys) != 1 || ys[0] != num(tc.wantY) {
			t.Errorf("%v: failure markers at y %v, want one at %s", tc.v, ys, num(tc.wantY))
		}
		if !slices.Contains(doc.Texts, tc.label) {
			t.Errorf("%v: no label %q in %q", tc.v, tc.label, doc.Texts)
		}
	}
}

func TestSVGEscapesRaw(t *testing.T) {
	t.Parallel()
	e := sample()
	e.App = `<&>"`
	e.Checks[0].Name = `<&>"`
	for i := range e.Measurements {
		if e.Measurements[i].Check == "http-success" {
			e.Measurements[i].Check = `<&>"`
		}
	}
	data := string(e.SVG())
	if !strings.Contains(data, "&lt;&amp;&gt;&#34;") {
		t.Errorf("check name not escaped:\n%s", data)
	}
	if strings.Contains(data, `<&>"`) {
		t.Errorf("raw check name in the chart")
	}
}

func TestSVGEmpty(t *testing.T) {
	t.Parallel()
	noSeries := sample()
	for i := range noSeries.Measurements {
		noSeries.Measurements[i].Series = nil
	}
	var nilEvidence *Evidence
	tests := []struct {
		name string
		e    *Evidence
	}{
		{"no measurements", &Evidence{App: "shop"}},
		{"no series", noSeries},
		{"empty series", &Evidence{Measurements: []Measurement{{Time: start, Check: "x", Series: map[string]float64{}}}}},
		{"nil", nilEvidence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := parseSVG(t, tt.e.SVG())
			if len(doc.Texts) != 1 || doc.Texts[0] != "no series to chart" {
				t.Errorf("texts = %q", doc.Texts)
			}
			if len(doc.Polylines) != 0 || len(doc.Circles) != 0 {
				t.Errorf("empty chart draws something")
			}
		})
	}
}

func TestSVGDeterministic(t *testing.T) {
	t.Parallel()
	first := sample().SVG()
	for range 20 {
		// Fresh maps each time, so map iteration order varies.
		if again := sample().SVG(); !bytes.Equal(first, again) {
			t.Fatalf("SVG differs between runs:\n%s\n---\n%s", first, again)
		}
	}
	// A few fixed facts, so that a layout change is a conscious one.
	s := string(first)
	h := svgTop + 2*panelHeight + svgBottom
	for _, want := range []string{
		fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" width="720" height="%d" viewBox="0 0 720 %d"`, h, h),
		`<polyline data-series="canary"`,
		`stroke="#1f77b4"`,
		`<line class="threshold"`,
		`>5m</text>`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
}

func TestWriteFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		dir  func(t *testing.T) string
	}{
		{"new nested dir", func(t *testing.T) string { return filepath.Join(t.TempDir(), "a", "b") }},
		{"existing dir with old files", func(t *testing.T) string {
			dir := t.TempDir()
			for _, f := range []string{JSONFile, MarkdownFile, SVGFile} {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("old"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			return dir
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := tt.dir(t)
			e := sample()
			paths, err := e.WriteFiles(dir)
			if err != nil {
				t.Fatal(err)
			}
			want := Files{
				JSON: filepath.Join(dir, "evidence.json"), Markdown: filepath.Join(dir, "report.md"), SVG: filepath.Join(dir, "chart.svg"),
			}
			if paths != want {
				t.Errorf("paths = %+v, want %+v", paths, want)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 3 {
				var names []string
				for _, en := range entries {
					names = append(names, en.Name())
				}
				t.Errorf("dir holds %q, want the three files only", names)
			}

			f, err := os.Open(paths.JSON)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := Read(f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Errorf("evidence.json does not read back")
			}
			md, err := os.ReadFile(paths.Markdown)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(md), "![canary vs baseline](chart.svg)") {
				t.Errorf("report.md does not link chart.svg")
			}
			svg, err := os.ReadFile(paths.SVG)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(svg, e.SVG()) {
				t.Errorf("chart.svg differs from SVG()")
			}
			info, err := os.Stat(paths.Markdown)
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm() != 0o644 {
				t.Errorf("mode = %v", info.Mode())
			}
		})
	}
}

func TestWriteFilesError(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sample().WriteFiles(filepath.Join(file, "dir")); err == nil {
		t.Error("no error writing under a file")
	}
}

func TestHelpers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, got, want string
	}{
		{"truncate short", truncate("abc", 3), "abc"},
		{"truncate long", truncate("abcdef", 4), "abc…"},
		{"truncate runes", truncate("ééééé", 3), "éé…"},
		{"oneLine", oneLine("  sum(\n\trate(x[1m])\n)  "), "sum( rate(x[1m]) )"},
		{"wrap", strings.Join(wrap("aaa bbb ccc dddddddddd", 8, "  "), "|"), "aaa bbb|  ccc|  dddddd|  dddd"},
		{"offset", offset(start, start.Add(12*time.Second+400*time.Millisecond)), "+12s"},
		{"seconds label", secondsLabel(150) + " " + secondsLabel(90) + " " + secondsLabel(300) + " " + secondsLabel(5400), "2m30s 90s 5m 1h30m"},
		{"tick label", tickLabel(0.005, 3) + " " + tickLabel(0, 3) + " " + tickLabel(-2, 0), "0.005 0 -2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

// TestSequentialEvidence: a sequential comparison's state survives the JSON round trip, the report has its table
// (evidence, boundary, effect, counts, intervals carried) and the chart a panel of the evidence against its
// boundary, drawn as a dashed line.
func TestSequentialEvidence(t *testing.T) {
	t.Parallel()
	e := &Evidence{StartedAt: start, App: "shop", Verdict: Unhealthy, Checks: []Check{{Name: "errors-vs-stable", Kind: "sequential"}}}
	for i, l := range []float64{-0.7, 1.2, 3.9, 5.1} {
		status := Pending
		if l > 4.6 {
			status = Fail
		}
		e.Measurements = append(e.Measurements, Measurement{Time: start.Add(time.Duration(i) * time.Second), Check: "errors-vs-stable",
			Status: status, Series: map[string]float64{"canary": 0.02, "stable": 0.01},
			Sequential: &Sequential{LogE: l, Boundary: 4.61, EquivalenceLogE: -3, Effect: "rate ratio 2.1 [1.3, 3.4]",
				Counts: "canary 40 of 2000, stable 170 of 18000", Intervals: 14 + i, Carried: 10}})
	}
	var buf bytes.Buffer
	if err := e.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := Read(&buf)
	if err != nil || back.Measurements[3].Sequential == nil || *back.Measurements[3].Sequential != *e.Measurements[3].Sequential {
		t.Fatalf("round trip: %v, %+v; want the sequential state back", err, back.Measurements[3].Sequential)
	}
	md := e.Markdown("chart.svg")
	for _, want := range []string{"## Sequential tests", "| errors-vs-stable | 5.10 | 4.61 | -3.00 | rate ratio 2.1 \\[1.3, 3.4\\] | canary 40 of 2000, stable 170 of 18000 | 17 (10) |"} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
	svg := string(e.SVG())
	if !strings.Contains(svg, "errors-vs-stable evidence") || !strings.Contains(svg, "regression when log e &gt;= 4.61") || !strings.Contains(svg, "log e-value") {
		t.Errorf("the chart lacks the evidence panel:\n%s", svg)
	}
	if strings.Contains(sample().Markdown(""), "Sequential tests") {
		t.Error("a report without sequential comparisons has a Sequential tests section")
	}
}
