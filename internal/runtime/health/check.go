package health

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/canaryline/canaryline/internal/runtime/evidence"
)

// Check is one kind of evidence about the canary. Measure is called once per interval.
type Check interface {
	Name() string
	Kind() string
	// Query is what is measured (a query, a URL, a Deployment), for the evidence.
	Query() string
	Threshold() string
	// Measure takes one measurement: Pass, Fail or NoData. An error means it could not be evaluated, which is
	// never a failure.
	Measure(ctx context.Context, now time.Time) (evidence.Measurement, error)
}

// Fatal is implemented by checks whose failures end the analysis at once (a crash-looping canary).
type Fatal interface {
	Fatal(m evidence.Measurement) bool
}

// Final is implemented by statistical checks, which decide once at the end of the window (or earlier when the
// outcome is certain), so that looking at the data every interval does not inflate false alarms.
type Final interface {
	// Certain reports whether the last measurement's failure can no longer turn.
	Certain() bool
	// Final is the verdict on all the data.
	Final(now time.Time) evidence.Measurement
}

// Tracks identifies the canary, baseline and stable versions for query templates.
type Tracks struct {
	Namespace, App                          string
	CanaryTrack, BaselineTrack, StableTrack string
	CanaryDeployment, BaselineDeployment    string
	CanaryHash, BaselineHash, StableHash    string
	// CanaryPods, BaselinePods and StablePods match the pod names of each version (pod-template-hash based).
	CanaryPods, BaselinePods, StablePods string
	// Track, Hash and Pods are the side being measured, in a comparison.
	Track, Hash, Pods string
}

// queryTemplate is a query with {{.Name}} placeholders for the Tracks fields. It is deliberately not
// text/template: that package's reflection keeps every method of every linked type in the binary (about 12 MB of
// Kubernetes API types in the step image), and queries need nothing but substitution.
type queryTemplate struct {
	name, text string
}

var placeholder = regexp.MustCompile(`\{\{\s*([^}]*?)\s*\}\}`)

// trackFields are the placeholders a query may use.
var trackFields = map[string]func(Tracks) string{
	".Namespace": func(t Tracks) string { return t.Namespace }, ".App": func(t Tracks) string { return t.App },
	".CanaryTrack": func(t Tracks) string { return t.CanaryTrack }, ".BaselineTrack": func(t Tracks) string { return t.BaselineTrack },
	".StableTrack": func(t Tracks) string { return t.StableTrack }, ".CanaryDeployment": func(t Tracks) string { return t.CanaryDeployment },
	".BaselineDeployment": func(t Tracks) string { return t.BaselineDeployment }, ".CanaryHash": func(t Tracks) string { return t.CanaryHash },
	".BaselineHash": func(t Tracks) string { return t.BaselineHash }, ".StableHash": func(t Tracks) string { return t.StableHash },
	".CanaryPods": func(t Tracks) string { return t.CanaryPods }, ".BaselinePods": func(t Tracks) string { return t.BaselinePods },
	".StablePods": func(t Tracks) string { return t.StablePods }, ".Track": func(t Tracks) string { return t.Track },
	".Hash": func(t Tracks) string { return t.Hash }, ".Pods": func(t Tracks) string { return t.Pods },
}

func parseTemplate(name, q string) (*queryTemplate, error) {
	for _, m := range placeholder.FindAllStringSubmatch(q, -1) {
		if _, ok := trackFields[m[1]]; !ok {
			names := make([]string, 0, len(trackFields))
			for k := range trackFields {
				names = append(names, "{{"+k+"}}")
			}
			sort.Strings(names)
			return nil, fmt.Errorf("unknown placeholder {{%s}}; use %s", m[1], strings.Join(names, ", "))
		}
	}
	return &queryTemplate{name: name, text: q}, nil
}

// uses reports whether the template has any of the placeholders (".CanaryHash", ...).
func (t *queryTemplate) uses(fields ...string) bool {
	for _, m := range placeholder.FindAllStringSubmatch(t.text, -1) {
		for _, f := range fields {
			if m[1] == f {
				return true
			}
		}
	}
	return false
}

func render(t *queryTemplate, data Tracks) (string, error) {
	return placeholder.ReplaceAllStringFunc(t.text, func(s string) string {
		return trackFields[placeholder.FindStringSubmatch(s)[1]](data)
	}), nil
}

// checkPromQL is a light syntax check before any query is sent: brackets, braces and parentheses balance outside
// string literals, and quotes close. The server's parser has the last word; its errors are errors, not failures.
func checkPromQL(q string) error {
	if strings.TrimSpace(q) == "" {
		return fmt.Errorf("empty query")
	}
	// Template actions are not PromQL: blank them out.
	for {
		i := strings.Index(q, "{{")
		if i < 0 {
			break
		}
		j := strings.Index(q[i:], "}}")
		if j < 0 {
			return fmt.Errorf("unclosed template action")
		}
		q = q[:i] + "x" + q[i+j+2:]
	}
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	var quote rune
	escaped := false
	for i, r := range q {
		if quote != 0 {
			switch {
			case escaped:
				escaped = false
			case r == '\\' && quote != '`':
				escaped = true
			case r == quote:
				quote = 0
			}
			continue
		}
		switch r {
		case '"', '\'', '`':
			quote = r
		case '(', '[', '{':
			stack = append(stack, r)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return fmt.Errorf("unbalanced %q at offset %d", r, i)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if quote != 0 {
		return fmt.Errorf("unclosed string literal")
	}
	if len(stack) > 0 {
		return fmt.Errorf("unclosed %q", stack[len(stack)-1])
	}
	return nil
}

func measurement(c Check, now time.Time) evidence.Measurement {
	return evidence.Measurement{Time: now.UTC(), Check: c.Name(), Threshold: c.Threshold()}
}
