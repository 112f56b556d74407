package evidence

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ellipsis marks truncated text.
const ellipsis = "…"

// oneLine collapses every run of white space (newlines and tabs included) to one space, drops other control
// characters and trims the ends: multi-line PromQL stays readable in a table row.
func oneLine(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case unicode.IsControl(r):
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// runes is the display width of s, counted in runes.
func runes(s string) int { return utf8.RuneCountInString(s) }

// truncate shortens s to at most n runes, ending it with "…" when something was cut.
func truncate(s string, n int) string {
	if runes(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	i, count := 0, 0
	for j := range s {
		if count == n-1 {
			i = j
			break
		}
		count++
	}
	return s[:i] + ellipsis
}

// wrap breaks s into lines of at most width runes at spaces; lines after the first are prefixed with indent
// (counted in the width). A word too long for a line is cut.
func wrap(s string, width int, indent string) []string {
	var lines []string
	line, empty := "", true
	for _, word := range strings.Fields(s) {
		for word != "" {
			need := runes(word)
			if !empty {
				need++
			}
			switch {
			case runes(line)+need <= width:
				if !empty {
					line += " "
				}
				line, empty, word = line+word, false, ""
			case !empty:
				lines = append(lines, line)
				line, empty = indent, true
			default: // the word alone is too long for a line: cut it
				room := max(width-runes(line), 1)
				r := []rune(word)
				line, word = line+string(r[:room]), string(r[room:])
				lines = append(lines, line)
				line, empty = indent, true
			}
		}
	}
	if !empty || len(lines) == 0 {
		lines = append(lines, line)
	}
	return lines
}

// valueText is how a measurement's value is shown: its Text, or the bare number.
func valueText(m Measurement) string {
	if m.Text != "" {
		return m.Text
	}
	return strconv.FormatFloat(m.Value, 'g', 6, 64)
}

// origin is the time that offsets are counted from: StartedAt, or the first measurement when unset.
func (e *Evidence) origin() time.Time {
	if !e.StartedAt.IsZero() || len(e.Measurements) == 0 {
		return e.StartedAt
	}
	first := e.Measurements[0].Time
	for _, m := range e.Measurements[1:] {
		if m.Time.Before(first) {
			first = m.Time
		}
	}
	return first
}

// offset formats t relative to start in whole seconds: "+12s".
func offset(start, t time.Time) string {
	s := int64(t.Sub(start).Round(time.Second) / time.Second)
	if s < 0 {
		return strconv.FormatInt(s, 10) + "s"
	}
	return "+" + strconv.FormatInt(s, 10) + "s"
}

// orDash shows an empty cell as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
