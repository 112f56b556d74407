package step

import (
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Redacted replaces a credential wherever a step would print it: its log, its results, its evidence files and its
// error messages.
const Redacted = "REDACTED"

// secretWords are parts of header and query parameter names that carry credentials (matched case-insensitively).
var secretWords = []string{"auth", "token", "secret", "key", "signature", "password", "passwd", "cookie", "credential", "sig"}

// SecretName reports whether a header or query parameter name carries a credential: Authorization,
// Proxy-Authorization, Cookie, X-Api-Key, X-Webhook-Secret, access_token, sig, ...
func SecretName(name string) bool {
	n := strings.ToLower(name)
	for _, w := range secretWords {
		if w == "sig" {
			if n == "sig" || strings.HasSuffix(n, "-sig") || strings.HasSuffix(n, "_sig") {
				return true
			}
			continue
		}
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// RedactHeader is a header's value as it may be printed: REDACTED for a credential.
func RedactHeader(name, value string) string {
	if SecretName(name) {
		return Redacted
	}
	return value
}

// RedactURL is u as it may be printed: the password of its userinfo (or a bare user, which is a token) and the
// values of credential query parameters are REDACTED.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := *u
	if r.User != nil {
		if _, ok := r.User.Password(); ok {
			r.User = url.UserPassword(r.User.Username(), Redacted)
		} else {
			r.User = url.User(Redacted)
		}
	}
	if r.RawQuery != "" {
		r.RawQuery = redactQuery(r.RawQuery)
	}
	return r.String()
}

// redactQuery keeps the query's order and form, with the values of credential parameters REDACTED.
func redactQuery(q string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		k, _, ok := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if ok && SecretName(name) {
			parts[i] = k + "=" + Redacted
		}
	}
	return strings.Join(parts, "&")
}

// urlRE finds URLs in free text, such as the URL Go's HTTP client puts in its errors.
var urlRE = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>\\` + "`" + `]+`)

// secrets are the credentials this process was given (header values, token file contents, URL passwords); Redact
// replaces them wherever they appear.
var secrets = struct {
	sync.RWMutex
	values []string
}{}

// AddSecret registers a credential: from now on Redact replaces it in everything the step prints or writes.
// Values shorter than 4 characters are not registered (they would redact ordinary words).
func AddSecret(v string) {
	v = strings.TrimSpace(v)
	if len(v) < 4 {
		return
	}
	secrets.Lock()
	defer secrets.Unlock()
	for _, s := range secrets.values {
		if s == v {
			return
		}
	}
	secrets.values = append(secrets.values, v)
	// Longest first, so that "Bearer abc" is replaced whole before "abc".
	sort.Slice(secrets.values, func(i, j int) bool { return len(secrets.values[i]) > len(secrets.values[j]) })
}

// AddHeaderSecret registers the value of a credential header (and, for "Scheme token", the token alone).
func AddHeaderSecret(name, value string) {
	if !SecretName(name) {
		return
	}
	AddSecret(value)
	if _, tok, ok := strings.Cut(strings.TrimSpace(value), " "); ok {
		AddSecret(tok)
	}
}

// AddURLSecrets registers the credentials in u: its userinfo and the values of its credential query parameters.
func AddURLSecrets(u *url.URL) {
	if u == nil {
		return
	}
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			AddSecret(p)
		} else {
			AddSecret(u.User.Username())
		}
	}
	for k, vs := range u.Query() {
		if SecretName(k) {
			for _, v := range vs {
				AddSecret(v)
				AddSecret(url.QueryEscape(v))
			}
		}
	}
}

// Redact is s as it may be printed: URLs in it redacted as RedactURL does, and every registered credential
// replaced by REDACTED.
func Redact(s string) string {
	if s == "" {
		return s
	}
	s = urlRE.ReplaceAllStringFunc(s, func(m string) string {
		u, err := url.Parse(m)
		if err != nil || (u.User == nil && u.RawQuery == "") {
			return m
		}
		return RedactURL(u)
	})
	secrets.RLock()
	defer secrets.RUnlock()
	for _, v := range secrets.values {
		s = strings.ReplaceAll(s, v, Redacted)
	}
	return s
}
