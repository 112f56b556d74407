package integration

import (
	"encoding/pem"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	sampleapp "github.com/canaryline/canaryline/internal/dev/app"
)

// TestReleaseNeverPrintsCredentials runs a release step by step (shift-canary, verify-health probing an https
// service that wants a bearer token, a webhook secret and an access token in its URL, and querying a real
// Prometheus behind a bearer token file; then promote-or-rollback) and looks for the credentials in everything the
// steps printed or wrote: stdout, stderr, results and the evidence files.
func TestReleaseNeverPrintsCredentials(t *testing.T) {
	t.Parallel()
	const (
		bearer     = "tok-6f1c2a9e7b4d"
		webhook    = "whsec-3d8e5f0a1c7b"
		urlPass    = "pw-9a0b1c2d3e4f"
		queryToken = "qt-5e6f7a8b9c0d"
		promToken  = "prom-tok-1f2e3d4c5b6a"
	)
	secrets := []string{bearer, webhook, urlPass, queryToken, promToken}

	// The canary's https endpoint: only requests with every credential get a 200.
	var authorized, refused atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+bearer || r.Header.Get("X-Webhook-Secret") != webhook ||
			r.URL.Query().Get("access_token") != queryToken {
			refused.Add(1)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		authorized.Add(1)
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // a second URL whose requests fail: their errors quote the URL with its credentials

	a := newApp(t, "route", 2)
	apps := startSampleApps(t, map[string]sampleapp.Config{"canary": {Version: "v2", Seed: 11}}, 0)
	prom, err := url.Parse(startPrometheus(t, a.ns, apps))
	if err != nil {
		t.Fatal(err)
	}
	// Prometheus behind a bearer token, as OpenShift's Thanos querier is.
	var promAuthorized atomic.Int32
	proxy := httputil.NewSingleHostReverseProxy(prom)
	promFront := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+promToken {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		promAuthorized.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	defer promFront.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(promToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	var printed []string
	collect := func(what string, r stepRun) {
		printed = append(printed, what+" stdout:\n"+r.stdout, what+" stderr:\n"+r.stderr)
		for name, v := range r.results {
			printed = append(printed, what+" result "+name+": "+v)
		}
	}

	shift := a.shift(10, map[string]string{"DEBUG": "true"})
	collect("shift-canary", shift)
	if shift.code != 0 {
		t.Fatalf("shift-canary: exit %d", shift.code)
	}

	evidenceDir := filepath.Join(t.TempDir(), "evidence")
	host := strings.TrimPrefix(srv.URL, "https://")
	verify := runStep(t, "verify-health", a.kubeconfig, map[string]string{
		"APP": "shop", "RELEASE_ID": "shop-release-1", "INTERVAL": "1s", "COUNT": "3", "DEBUG": "true",
		"HTTP_URLS": "https://probe:" + urlPass + "@" + host + "/healthz?access_token=" + queryToken + "\n" +
			"https://" + closed + "/healthz?token=" + queryToken,
		"HTTP_HEADERS":     "Authorization: Bearer " + bearer + "\nX-Webhook-Secret: " + webhook + "\nX-Canary: 1",
		"HTTP_CA_FILE":     writeCA(t, srv),
		"HTTP_RATE":        "10",
		"HTTP_MIN_SUCCESS": "0.3", // the requests to the closed port fail: their errors are recorded, not fatal
		"PROMETHEUS_URL":   promFront.URL, "PROMETHEUS_TOKEN_FILE": tokenFile,
		"QUERIES":      "- name: up\n  query: 'sum(up{namespace=\"{{.Namespace}}\"}) or vector(1)'\n  threshold: '>= 1'\n",
		"EVIDENCE_DIR": evidenceDir,
	})
	collect("verify-health", verify)
	if verify.code != 0 || verify.results["VERDICT"] != "healthy" {
		t.Fatalf("verify-health: exit %d results %v; want 0 healthy", verify.code, verify.results)
	}

	decide := a.decide(map[string]string{"DECISION": "auto", "PIPELINE_STATUS": "Succeeded", "VERDICT": verify.results["VERDICT"],
		"REASON": verify.results["REASON"]})
	collect("promote-or-rollback", decide)
	if decide.code != 0 || decide.results["DECISION"] != "promote" {
		t.Fatalf("promote-or-rollback: exit %d results %v; want 0 promote", decide.code, decide.results)
	}

	files := 0
	err = filepath.WalkDir(evidenceDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		printed = append(printed, "evidence "+d.Name()+":\n"+string(data))
		return nil
	})
	if err != nil || files < 3 {
		t.Fatalf("evidence: %d files (%v); want evidence.json, report.md and chart.svg", files, err)
	}

	// The probes and the queries did use the credentials.
	if authorized.Load() == 0 || refused.Load() != 0 {
		t.Errorf("the https service had %d authorized and %d refused requests; want every request authorized", authorized.Load(), refused.Load())
	}
	if promAuthorized.Load() == 0 {
		t.Error("Prometheus was never queried with the token from PROMETHEUS_TOKEN_FILE")
	}
	all := strings.Join(printed, "\n")
	for _, s := range secrets {
		for _, p := range printed {
			if strings.Contains(p, s) {
				t.Errorf("credential %q is printed in %s", s, firstLine(p))
			}
		}
	}
	// What was printed still says what was probed, with the credentials replaced.
	for _, want := range []string{"access_token=REDACTED", "probe:REDACTED@" + host, "token=REDACTED", "connection refused"} {
		if !strings.Contains(all, want) {
			t.Errorf("nothing printed contains %q", want)
		}
	}
}

// writeCA writes the test server's certificate as a PEM CA file.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestVerifyHealthVerifiesTLSByDefault: an https service signed by a CA the step does not know fails the http
// check, and the log says how to fix it; with INSECURE_SKIP_TLS_VERIFY=true it passes, with a warning.
func TestVerifyHealthVerifiesTLSByDefault(t *testing.T) {
	t.Parallel()
	var served atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	a := newApp(t, "route", 1)
	// 3 s intervals: on a loaded machine a handshake can outlast a 1 s interval, which is no data, not the error.
	env := map[string]string{"APP": "shop", "PODS": "false", "INTERVAL": "3s", "COUNT": "2", "HTTP_URLS": srv.URL + "/healthz", "HTTP_RATE": "10"}

	r := runStep(t, "verify-health", a.kubeconfig, env)
	if r.code != 4 || r.results["VERDICT"] != "unhealthy" {
		t.Errorf("unknown CA: exit %d results %v; want 4 unhealthy", r.code, r.results)
	}
	for _, want := range []string{"certificate signed by unknown authority", "HTTP_CA_FILE", "INSECURE_SKIP_TLS_VERIFY=true"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("unknown CA: the log does not say %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "WARN INSECURE_SKIP_TLS_VERIFY") {
		t.Errorf("unknown CA: a warning about skipped verification, which was not asked for:\n%s", r.stderr)
	}
	if n := served.Load(); n != 0 {
		t.Errorf("the server answered %d requests whose certificate was not verified", n)
	}

	env["INSECURE_SKIP_TLS_VERIFY"] = "true"
	r = runStep(t, "verify-health", a.kubeconfig, env)
	if r.code != 0 || r.results["VERDICT"] != "healthy" {
		t.Errorf("INSECURE_SKIP_TLS_VERIFY=true: exit %d results %v; want 0 healthy", r.code, r.results)
	}
	if !strings.Contains(r.stderr, "WARN INSECURE_SKIP_TLS_VERIFY=true: TLS certificate verification is off for the HTTP probes") {
		t.Errorf("INSECURE_SKIP_TLS_VERIFY=true: no warning in the log:\n%s", r.stderr)
	}
	if served.Load() == 0 {
		t.Error("INSECURE_SKIP_TLS_VERIFY=true: the server saw no request")
	}
}
