package bench

import (
	"fmt"
	"strconv"
	"strings"
)

// Table formats the measurements as one Markdown table: figure, value, target, whether it is met, and how.
func Table(ms []Measurement) string {
	var b strings.Builder
	b.WriteString("| figure | value | target | met | detail |\n|---|---|---|---|---|\n")
	for _, m := range ms {
		status := ""
		if m.Met != nil {
			status = "yes"
			if !*m.Met {
				status = "**NO**"
			}
		}
		value := formatValue(m.Value) + " " + m.Unit
		switch {
		case m.Skipped:
			value = "skipped"
		case m.Unit == "MB":
			value = strconv.FormatFloat(m.Value, 'f', 2, 64) + " MB" // sizes close to a budget
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", m.Figure, value, m.Target, status,
			strings.ReplaceAll(m.Detail, "|", "/"))
	}
	return b.String()
}

// Missed lists the figures that miss their targets.
func Missed(ms []Measurement) []string {
	var out []string
	for _, m := range ms {
		if m.Met != nil && !*m.Met {
			out = append(out, m.Figure)
		}
	}
	return out
}

func formatValue(v float64) string {
	switch {
	case v == float64(int64(v)) && v >= 10:
		return strconv.FormatInt(int64(v), 10)
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}
