package evidence

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Markdown renders a report for people: a title naming the app, namespace and release; the verdict in bold
// and its reason; the settings; a table of the checks with each query or URL in code formatting and its
// threshold; the chart, linked as chartFile, when chartFile is not empty; and every measurement, in order,
// with its time (RFC 3339 and seconds since the start), check, status, value, threshold and detail.
func (e *Evidence) Markdown(chartFile string) string {
	if e == nil {
		return ""
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	e.mdHeader(p)
	e.mdSettings(p)
	e.mdChecks(p)
	e.mdSequential(p)
	if chartFile != "" {
		p("## Chart\n\n![canary vs baseline](%s)\n\n", mdURL(chartFile))
	}
	e.mdMeasurements(p)
	return b.String()
}

// printer writes to the report, as fmt.Printf does.
type printer func(format string, args ...any)

// mdHeader writes the title, the verdict and its reason, when the analysis ran and how much it measured, and
// the released container.
func (e *Evidence) mdHeader(p printer) {
	title := "Canary analysis: " + mdText(oneLine(e.App))
	if e.Namespace != "" {
		title += " in " + mdText(oneLine(e.Namespace))
	}
	if e.Release != "" {
		title += " (release " + mdText(oneLine(e.Release)) + ")"
	}
	p("# %s\n\n", title)

	verdict := oneLine(e.Verdict)
	if verdict == "" {
		verdict = "none"
	}
	p("**Verdict: %s**", mdText(verdict))
	if r := oneLine(e.Reason); r != "" {
		p(" — %s", mdText(r))
	}
	p("\n\n")

	var when []string
	if !e.StartedAt.IsZero() {
		when = append(when, "Started "+rfc3339(e.StartedAt))
	}
	if !e.FinishedAt.IsZero() {
		when = append(when, "finished "+rfc3339(e.FinishedAt))
		if !e.StartedAt.IsZero() {
			when = append(when, "took "+e.FinishedAt.Sub(e.StartedAt).Round(time.Second).String())
		}
	}
	when = append(when, plural(len(e.Checks), "check")+", "+plural(len(e.Measurements), "measurement"))
	p("%s.\n\n", strings.Join(when, ", "))
	if e.Container != "" {
		p("Container %s: stable image %s, canary image %s.\n\n", mdText(oneLine(e.Container)), mdText(orNone(e.StableImage)), mdText(orNone(e.CanaryImage)))
	}
}

// mdSettings writes the settings, sorted, when there are any.
func (e *Evidence) mdSettings(p printer) {
	if len(e.Settings) == 0 {
		return
	}
	p("## Settings\n\n| Setting | Value |\n| --- | --- |\n")
	keys := make([]string, 0, len(e.Settings))
	for k := range e.Settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p("| %s | %s |\n", mdCell(k), mdCode(e.Settings[k]))
	}
	p("\n")
}

// mdChecks writes the table of the checks.
func (e *Evidence) mdChecks(p printer) {
	p("## Checks\n\n")
	if len(e.Checks) == 0 {
		p("No checks.\n\n")
		return
	}
	p("| Check | Kind | Query | Threshold | Status | Last value | Failures | Errors | No data |\n")
	p("| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: |\n")
	for _, c := range e.Checks {
		p("| %s | %s | %s | %s | %s | %s | %d | %d | %d |\n",
			mdCell(c.Name), mdCell(c.Kind), mdCode(c.Query), mdCell(c.Threshold), mdStatus(c.Status),
			mdCell(c.Last), c.Failures, c.Errors, c.NoData)
	}
	p("\n")
}

// mdSequential writes where each sequential comparison ended: its evidence against the boundary, the effect
// with its confidence sequence, and the counts behind them.
func (e *Evidence) mdSequential(p printer) {
	var names []string
	last := map[string]*Sequential{}
	for _, m := range e.Measurements {
		if m.Sequential == nil {
			continue
		}
		if _, ok := last[m.Check]; !ok {
			names = append(names, m.Check)
		}
		last[m.Check] = m.Sequential
	}
	if len(names) == 0 {
		return
	}
	p("## Sequential tests\n\n")
	p("Each comparison is an anytime-valid test: its evidence of a regression (the log of an e-value) may be read after " +
		"every interval, and a regression is shown only when it reaches the boundary log(1/ALPHA), so that looking often " +
		"does not raise false alarms. The data carries over the verify steps of the release: the whole release spends one " +
		"error budget. The effect's confidence sequence holds at every moment, not only at the end.\n\n")
	p("| Check | Evidence (log e) | Boundary | No-regression evidence | Effect [confidence sequence] | Counts | Intervals (carried) |\n")
	p("| --- | ---: | ---: | ---: | --- | --- | ---: |\n")
	for _, n := range names {
		s := last[n]
		p("| %s | %.2f | %.2f | %.2f | %s | %s | %d (%d) |\n", mdCell(n), s.LogE, s.Boundary, s.EquivalenceLogE,
			mdCell(s.Effect), mdCell(s.Counts), s.Intervals, s.Carried)
	}
	p("\n")
}

// mdMeasurements writes every measurement, in order, with its time since the start.
func (e *Evidence) mdMeasurements(p printer) {
	p("## Measurements\n\n")
	if len(e.Measurements) == 0 {
		p("No measurements.\n")
		return
	}
	start := e.origin()
	p("| Time | Check | Status | Value | Threshold | Detail |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, m := range e.Measurements {
		p("| %s (%s) | %s | %s | %s | %s | %s |\n",
			rfc3339(m.Time), offset(start, m.Time), mdCell(m.Check), mdStatus(m.Status),
			mdCell(valueText(m)), mdCell(m.Threshold), mdCell(m.Detail))
	}
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// mdStatus shows a failing status in bold so it stands out in a long table.
func mdStatus(s string) string {
	s = mdCell(s)
	if s == Fail {
		return "**" + s + "**"
	}
	return s
}

// mdCell is text for a table cell: one line, markdown escaped, pipes escaped.
func mdCell(s string) string {
	return strings.ReplaceAll(mdText(oneLine(s)), "|", `\|`)
}

// mdCode is s as a code span for a table cell, or "" for empty s. Backticks in s are fenced by a longer run
// of backticks; pipes are escaped, which GitHub-flavoured tables require even inside code.
func mdCode(s string) string {
	s = oneLine(s)
	if s == "" {
		return ""
	}
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + strings.ReplaceAll(s, "|", `\|`) + fence
}

// mdText escapes what markdown would otherwise take as formatting, links or HTML in plain text, leaving
// the rest (comparisons such as "< 0.01", snake_case names) as written.
func mdText(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch r {
		case '\\', '`', '*', '[', ']':
			b.WriteByte('\\')
		case '_':
			// Intraword underscores are not emphasis; underscores at a word's edge may be.
			prev, _ := utf8.DecodeLastRuneInString(s[:i])
			next, _ := utf8.DecodeRuneInString(s[i+1:])
			if !isWord(prev) || !isWord(next) {
				b.WriteByte('\\')
			}
		case '<':
			// Only "<" followed by a letter, "/", "!" or "?" can start an HTML tag or an autolink.
			next, _ := utf8.DecodeRuneInString(s[i+1:])
			if unicode.IsLetter(next) || next == '/' || next == '!' || next == '?' {
				b.WriteString("&lt;")
				continue
			}
		case '&':
			// Keep "&amp;"-like text literal rather than an entity.
			if j := strings.IndexByte(s[i:], ';'); j > 1 && isEntityName(s[i+1:i+j]) {
				b.WriteString("&amp;")
				continue
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isWord(r rune) bool {
	return r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r))
}

func isEntityName(s string) bool {
	s = strings.TrimPrefix(s, "#")
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
			return false
		}
	}
	return true
}

// mdURL makes a relative file name safe as a link destination.
func mdURL(s string) string {
	r := strings.NewReplacer(" ", "%20", "(", "%28", ")", "%29", "<", "%3C", ">", "%3E")
	return r.Replace(oneLine(s))
}

func orNone(s string) string {
	if s = oneLine(s); s == "" {
		return "unknown"
	}
	return s
}
