package traffic

import (
	"fmt"
	"regexp"
	"strings"
)

// Routing is what a release sends to the canary beside the weights: test requests that match (Match), a copy of
// a share of the stable's requests (Mirror), and on the OpenShift Route a separate test Route (TestHost). The
// zero Routing is none of them, as before these existed. Every shift sets the routing anew: a shift without a
// match removes the one a shift before made; Restore removes all of it.
type Routing struct {
	// Match are the rules whose requests go to the canary whatever the weight: a request that matches any rule.
	Match []MatchRule
	// Mirror is the share of the stable's requests, in percent, copied to the canary (its answers discarded).
	Mirror int32
	// TestHost is the host of the separate test Route (route router); empty lets OpenShift generate one.
	TestHost string
}

// empty says whether rt sends nothing beside the weights.
func (rt Routing) empty() bool { return len(rt.Match) == 0 && rt.Mirror == 0 && rt.TestHost == "" }

// TestRoute says whether the route router makes a separate test Route: with a match or a test host.
func (rt Routing) TestRoute() bool { return len(rt.Match) > 0 || rt.TestHost != "" }

// Match kinds.
const (
	MatchHeader = "header"
	MatchCookie = "cookie"
)

// MatchRule is one rule of MATCH: a header whose value is Value (or matches the regular expression Value), or a
// cookie whose value is Value.
type MatchRule struct {
	Kind  string // MatchHeader or MatchCookie
	Name  string // the header's or cookie's name
	Value string // the exact value, or with Regex the regular expression (RE2, the whole value)
	Regex bool
}

// String is the rule as MATCH writes it.
func (m MatchRule) String() string {
	switch {
	case m.Kind == MatchCookie:
		return "cookie " + m.Name + "=" + m.Value
	case m.Regex:
		return "header " + m.Name + " ~ " + m.Value
	}
	return "header " + m.Name + ": " + m.Value
}

// cookieRegex is a regular expression that matches a Cookie header carrying the cookie m (RE2, whole value).
func (m MatchRule) cookieRegex() string {
	return `^(.*;\s*)?` + regexp.QuoteMeta(m.Name) + "=" + regexp.QuoteMeta(m.Value) + `(;.*)?$`
}

// MatchSyntax is MATCH's syntax, for messages and the docs.
const MatchSyntax = `one rule a line: "header NAME: VALUE" (exact), "header NAME ~ REGEX" (RE2 regular expression of the whole value), ` +
	`or "cookie NAME=VALUE"; a request that matches any rule goes to the canary`

// MaxMatchRules is how many rules MATCH may hold.
const MaxMatchRules = 8

var (
	matchHeaderExact = regexp.MustCompile(`^header\s+([^\s:~]+)\s*:\s*(.*)$`)
	matchHeaderRegex = regexp.MustCompile(`^header\s+([^\s:~]+)\s+~\s+(.*)$`)
	matchCookie      = regexp.MustCompile(`^cookie\s+([^\s=]+)\s*=\s*(.*)$`)
	httpToken        = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+\\-.^_`|~]{1,256}$")
	headerValue      = regexp.MustCompile(`^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$`)
	cookieValue      = regexp.MustCompile(`^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+$`)
)

// ParseMatch reads MATCH: one rule a line, blank lines and lines starting with # ignored. Its error is a
// *CheckError naming MATCH and the fix.
func ParseMatch(s string) ([]MatchRule, error) {
	var out []MatchRule
	for n, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m, err := parseMatchRule(line)
		if err != nil {
			return nil, &CheckError{Param: "MATCH", Msg: fmt.Sprintf("line %d %q: %v", n+1, line, err), Fix: "write " + MatchSyntax}
		}
		out = append(out, m)
	}
	if len(out) > MaxMatchRules {
		return nil, &CheckError{Param: "MATCH", Msg: fmt.Sprintf("has %d rules", len(out)), Fix: fmt.Sprintf("give at most %d rules", MaxMatchRules)}
	}
	return out, nil
}

// parseMatchRule reads one line of MATCH.
func parseMatchRule(line string) (MatchRule, error) {
	var m MatchRule
	if g := matchHeaderRegex.FindStringSubmatch(line); g != nil {
		m = MatchRule{Kind: MatchHeader, Name: g[1], Value: strings.TrimSpace(g[2]), Regex: true}
	} else if g := matchHeaderExact.FindStringSubmatch(line); g != nil {
		m = MatchRule{Kind: MatchHeader, Name: g[1], Value: strings.TrimSpace(g[2])}
	} else if g := matchCookie.FindStringSubmatch(line); g != nil {
		m = MatchRule{Kind: MatchCookie, Name: g[1], Value: strings.TrimSpace(g[2])}
	} else {
		return m, fmt.Errorf(`not a rule: a rule starts with "header" or "cookie"`)
	}
	return m, m.validate()
}

// validate checks the rule's name and value.
func (m MatchRule) validate() error {
	if !httpToken.MatchString(m.Name) {
		return fmt.Errorf("%q is not a valid %s name (an HTTP token: letters, digits and !#$%%&'*+-.^_`|~, at most 256)", m.Name, m.Kind)
	}
	switch {
	case m.Kind == MatchCookie && (!cookieValue.MatchString(m.Value) || len(m.Value) > 1024):
		return fmt.Errorf("%q is not a valid cookie value (1 to 1024 characters, no spaces, quotes, commas, semicolons or backslashes)", m.Value)
	case m.Kind == MatchHeader && m.Regex:
		if m.Value == "" || len(m.Value) > 1024 {
			return fmt.Errorf("the regular expression must have 1 to 1024 characters")
		}
		if _, err := regexp.Compile(m.Value); err != nil {
			return fmt.Errorf("%q is not a valid regular expression: %v", m.Value, err)
		}
	case m.Kind == MatchHeader && (!headerValue.MatchString(m.Value) || len(m.Value) > 4096):
		return fmt.Errorf("%q is not a valid header value (1 to 4096 printable ASCII characters)", m.Value)
	}
	return nil
}

// FormatMatch writes rules back as MATCH (one a line).
func FormatMatch(rules []MatchRule) string {
	lines := make([]string, len(rules))
	for i, m := range rules {
		lines[i] = m.String()
	}
	return strings.Join(lines, "\n")
}
