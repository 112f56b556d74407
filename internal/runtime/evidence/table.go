package evidence

import (
	"strconv"
	"strings"
)

// MaxLineWidth is the longest line, in runes, that Table writes.
const MaxLineWidth = 160

// column is one column of the log table.
type column struct {
	head  string
	max   int  // widest cell, in runes; longer cells are cut with "…"
	right bool // right-aligned (numbers)
	cell  func(c Check) string
}

var tableColumns = []column{
	{head: "CHECK", max: 32, cell: func(c Check) string { return c.Name }},
	{head: "KIND", max: 12, cell: func(c Check) string { return c.Kind }},
	{head: "STATUS", max: 12, cell: func(c Check) string { return c.Status }},
	{head: "LAST VALUE", max: 24, cell: func(c Check) string { return c.Last }},
	{head: "THRESHOLD", max: 32, cell: func(c Check) string { return c.Threshold }},
	{head: "FAILURES", max: 8, right: true, cell: func(c Check) string { return strconv.Itoa(c.Failures) }},
	{head: "ERRORS", max: 8, right: true, cell: func(c Check) string { return strconv.Itoa(c.Errors) }},
	{head: "NODATA", max: 8, right: true, cell: func(c Check) string { return strconv.Itoa(c.NoData) }},
}

// queryColumn is the last column: it takes what is left of the line.
var queryColumn = column{head: "QUERY", cell: func(c Check) string { return c.Query }}

const columnGap = "  "

// Table renders the checks as a plain-text table for a step's log: one row per check (CHECK, KIND, STATUS,
// LAST VALUE, THRESHOLD, FAILURES, ERRORS, NODATA and, when any check has one, the QUERY or URL), then the
// verdict and its reason. Columns are as wide as their content; long cells are cut with "…" so that no
// line is longer than MaxLineWidth runes (the reason is wrapped instead). There are no colours.
func (e *Evidence) Table() string {
	if e == nil {
		return ""
	}
	t := e.layOut()
	var b strings.Builder
	t.row(&b, func(j int) string { return t.cols[j].head })
	for i := range e.Checks {
		t.row(&b, func(j int) string { return t.cells[i][j] })
	}
	verdict := "verdict: " + orDash(e.Verdict)
	if r := oneLine(e.Reason); r != "" {
		verdict += " — " + r
	}
	for _, line := range wrap(verdict, MaxLineWidth, "    ") {
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// table is the log table laid out: its columns, its cells (one row per check) and each column's width.
type table struct {
	cols   []column
	cells  [][]string
	widths []int
}

// layOut chooses the columns (QUERY when any check has one), cuts the cells to each column's limit and measures
// the widths they need; the last column gets what is left of the line, or is left out when nothing is.
func (e *Evidence) layOut() *table {
	cols := tableColumns
	for _, c := range e.Checks {
		if oneLine(c.Query) != "" {
			cols = append(cols[:len(cols):len(cols)], queryColumn)
			break
		}
	}
	t := &table{cols: cols, cells: make([][]string, len(e.Checks)), widths: make([]int, len(cols))}
	for j, col := range cols {
		t.widths[j] = runes(col.head)
	}
	used := 0
	for j, col := range cols {
		if col.max == 0 {
			break
		}
		for i, c := range e.Checks {
			if t.cells[i] == nil {
				t.cells[i] = make([]string, len(cols))
			}
			t.cells[i][j] = truncate(orDash(oneLine(col.cell(c))), col.max)
			t.widths[j] = max(t.widths[j], runes(t.cells[i][j]))
		}
		used += t.widths[j] + len(columnGap)
	}
	if last := len(cols) - 1; cols[last].max == 0 {
		room := MaxLineWidth - used
		if room < runes(cols[last].head) {
			t.cols = cols[:last] // no room left for the queries
		} else {
			for i, c := range e.Checks {
				t.cells[i][last] = truncate(orDash(oneLine(cols[last].cell(c))), room)
			}
		}
	}
	return t
}

// row writes one line of the table, cell j being get(j), padded to the column's width.
func (t *table) row(b *strings.Builder, get func(j int) string) {
	var line strings.Builder
	for j, col := range t.cols {
		s := get(j)
		if j > 0 {
			line.WriteString(columnGap)
		}
		pad := strings.Repeat(" ", max(t.widths[j]-runes(s), 0))
		if col.right {
			line.WriteString(pad + s)
		} else {
			line.WriteString(s + pad)
		}
	}
	b.WriteString(strings.TrimRight(line.String(), " "))
	b.WriteByte('\n')
}
