package step

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"Authorization": true, "proxy-authorization": true, "Cookie": true, "X-Api-Key": true, "X-Webhook-Secret": true,
		"X-Auth-Token": true, "X-Hub-Signature-256": true, "access_token": true, "password": true, "sig": true, "X-Amz-Sig": true,
		"apikey": true, "Accept": false, "Host": false, "X-Canary": false, "User-Agent": false, "page": false, "signal": false,
	} {
		if got := SecretName(name); got != want {
			t.Errorf("SecretName(%q) = %v; want %v", name, got, want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://shop.example.com/healthz":                           "https://shop.example.com/healthz",
		"https://ci:s3cr3t-pass@shop.example.com/x":                  "https://ci:REDACTED@shop.example.com/x",
		"https://ghp_tokentokentoken@git.example.com/repo":           "https://REDACTED@git.example.com/repo",
		"http://h/p?page=2&access_token=abc123&X-Amz-Signature=ff&q": "http://h/p?page=2&access_token=REDACTED&X-Amz-Signature=REDACTED&q",
		"http://h/p?api%5Fkey=zzz9":                                  "http://h/p?api%5Fkey=REDACTED",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := RedactURL(u); got != want {
			t.Errorf("RedactURL(%s) = %s; want %s", in, got, want)
		}
	}
}

func TestRedactHeader(t *testing.T) {
	t.Parallel()
	if got := RedactHeader("Authorization", "Bearer abc"); got != Redacted {
		t.Errorf("Authorization: %q", got)
	}
	if got := RedactHeader("X-Canary", "1"); got != "1" {
		t.Errorf("X-Canary: %q", got)
	}
}

// TestRedactRegisteredSecrets: a credential registered once is replaced wherever it appears: in URLs inside error
// messages, in a bare token, in "Bearer token".
func TestRedactRegisteredSecrets(t *testing.T) {
	t.Parallel()
	AddHeaderSecret("Authorization", "Bearer tok-7d1e0f9a")
	AddHeaderSecret("X-Webhook-Secret", "whsec-55aa")
	AddHeaderSecret("X-Canary", "canary-value-1") // not a credential: not registered
	u, _ := url.Parse("https://probe:pw-0c0ffee@shop.example.com/?token=qt-123456")
	AddURLSecrets(u)
	AddSecret("abc") // too short to register

	in := `Get "https://probe:pw-0c0ffee@shop.example.com/?token=qt-123456": x509: unknown authority; ` +
		`sent Authorization: Bearer tok-7d1e0f9a and whsec-55aa; token alone tok-7d1e0f9a; qt-123456; X-Canary canary-value-1; abc`
	got := Redact(in)
	for _, secret := range []string{"tok-7d1e0f9a", "whsec-55aa", "pw-0c0ffee", "qt-123456"} {
		if strings.Contains(got, secret) {
			t.Errorf("Redact left %q in:\n%s", secret, got)
		}
	}
	for _, kept := range []string{"canary-value-1", "x509: unknown authority", "shop.example.com", "; abc"} {
		if !strings.Contains(got, kept) {
			t.Errorf("Redact removed %q:\n%s", kept, got)
		}
	}
	if !strings.Contains(got, "Authorization: REDACTED") {
		t.Errorf("the whole header value is not one REDACTED:\n%s", got)
	}
}

// TestLogAndResultsAreRedacted: the log handler and Results.Write redact what they are given.
func TestLogAndResultsAreRedacted(t *testing.T) {
	t.Parallel()
	AddSecret("log-secret-31337")
	var buf bytes.Buffer
	NewLogger(&buf, true).Warn("probe failed: log-secret-31337", "url", "http://h/?secret=log-secret-31337", "k", "v")
	if strings.Contains(buf.String(), "log-secret-31337") || !strings.Contains(buf.String(), "k=v") {
		t.Errorf("log line: %s", buf.String())
	}
	dir := t.TempDir()
	if err := (Results{Dir: dir}).Write(map[string]string{"REASON": "got log-secret-31337"}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "REASON"))
	if string(data) != "got REDACTED" {
		t.Errorf("result %q", data)
	}
}
