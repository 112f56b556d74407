package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/canaryline/canaryline/internal/dev/app"
)

func newServer(t *testing.T, cfg app.Config) (*app.Server, *httptest.Server) {
	t.Helper()
	s, err := app.New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	return do(t, http.MethodGet, url, "")
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	def := app.DefaultConfig()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    app.Config
		wantErr []string // substrings of the error; nil means no error
	}{
		{name: "defaults", want: def},
		{
			name: "flags",
			args: []string{"-version", "v2", "-error-rate", "0.25", "-latency", "150ms", "-listen", "127.0.0.1:0"},
			want: app.Config{Version: "v2", ErrorRate: 0.25, Latency: 150 * time.Millisecond, Listen: "127.0.0.1:0"},
		},
		{
			name: "env",
			env: map[string]string{
				"SAMPLE_APP_VERSION": "v3", "SAMPLE_APP_ERROR_RATE": "1",
				"SAMPLE_APP_LATENCY": "2s", "SAMPLE_APP_LISTEN": ":9090",
			},
			want: app.Config{Version: "v3", ErrorRate: 1, Latency: 2 * time.Second, Listen: ":9090"},
		},
		{
			name: "flags win over env",
			args: []string{"-version", "flag", "-error-rate", "0"},
			env:  map[string]string{"SAMPLE_APP_VERSION": "env", "SAMPLE_APP_ERROR_RATE": "0.5", "SAMPLE_APP_LATENCY": "1ms"},
			want: app.Config{Version: "flag", ErrorRate: 0, Latency: time.Millisecond, Listen: def.Listen},
		},
		{
			name: "flag overrides bad env",
			args: []string{"-latency", "5ms"},
			env:  map[string]string{"SAMPLE_APP_LATENCY": "soon"},
			want: app.Config{Version: def.Version, Latency: 5 * time.Millisecond, Listen: def.Listen},
		},
		{name: "error rate above 1", args: []string{"-error-rate", "1.5"}, wantErr: []string{"-error-rate", "between 0 and 1", "-error-rate 0.2"}},
		{name: "negative error rate", args: []string{"-error-rate=-0.1"}, wantErr: []string{"-error-rate", "between 0 and 1"}},
		{name: "NaN error rate", args: []string{"-error-rate", "NaN"}, wantErr: []string{"-error-rate", "between 0 and 1"}},
		{name: "error rate not a number", args: []string{"-error-rate", "lots"}, wantErr: []string{"-error-rate", "not a number"}},
		{name: "negative latency", args: []string{"-latency", "-5ms"}, wantErr: []string{"-latency", "must not be negative", "-latency 150ms"}},
		{name: "latency without unit", args: []string{"-latency", "150"}, wantErr: []string{"-latency", "not a Go duration"}},
		{name: "empty version", args: []string{"-version", ""}, wantErr: []string{"-version", "must not be empty"}},
		{name: "bad env error rate", env: map[string]string{"SAMPLE_APP_ERROR_RATE": "2"}, wantErr: []string{"SAMPLE_APP_ERROR_RATE", "SAMPLE_APP_ERROR_RATE=0.2"}},
		{name: "bad env latency", env: map[string]string{"SAMPLE_APP_LATENCY": "soon"}, wantErr: []string{"SAMPLE_APP_LATENCY", "not a Go duration", "SAMPLE_APP_LATENCY=150ms"}},
		{name: "negative env latency", env: map[string]string{"SAMPLE_APP_LATENCY": "-1s"}, wantErr: []string{"SAMPLE_APP_LATENCY", "must not be negative"}},
		{name: "unknown flag", args: []string{"-bogus"}, wantErr: []string{"-bogus", "-h"}},
		{name: "missing flag value", args: []string{"-latency"}, wantErr: []string{"-latency"}},
		{name: "positional argument", args: []string{"extra"}, wantErr: []string{`"extra"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			getenv := func(k string) string { return tt.env[k] }
			got, err := app.ParseConfig(tt.args, getenv, nil)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ParseConfig: %v", err)
				}
				if got != tt.want {
					t.Fatalf("ParseConfig = %+v, want %+v", got, tt.want)
				}
				return
			}
			if !errors.Is(err, app.ErrInvalidConfig) {
				t.Fatalf("ParseConfig error = %v, want one wrapping ErrInvalidConfig", err)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestParseConfigHelp(t *testing.T) {
	t.Parallel()
	var help strings.Builder
	_, err := app.ParseConfig([]string{"-h"}, func(string) string { return "" }, &help)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("ParseConfig(-h) error = %v, want flag.ErrHelp", err)
	}
	for _, s := range []string{"-error-rate", "SAMPLE_APP_LATENCY"} {
		if !strings.Contains(help.String(), s) {
			t.Errorf("usage does not mention %q:\n%s", s, help.String())
		}
	}
}

func TestNewValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     app.Config
		wantErr string
	}{
		{name: "valid", cfg: app.Config{Version: "v1", ErrorRate: 0.5, Latency: time.Second}},
		{name: "error rate 0 and 1 are valid", cfg: app.Config{Version: "v1", ErrorRate: 1}},
		{name: "error rate too high", cfg: app.Config{Version: "v1", ErrorRate: 1.01}, wantErr: "between 0 and 1"},
		{name: "error rate negative", cfg: app.Config{Version: "v1", ErrorRate: -0.5}, wantErr: "between 0 and 1"},
		{name: "negative latency", cfg: app.Config{Version: "v1", Latency: -time.Millisecond}, wantErr: "must not be negative"},
		{name: "empty version", cfg: app.Config{}, wantErr: "version must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := app.New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, app.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want ErrInvalidConfig mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	_, ts := newServer(t, app.Config{Version: "v2"})
	tests := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/", http.StatusOK, "sample-app version v2\n"},
		{"/healthz", http.StatusOK, "ok\n"},
		{"/nope", http.StatusNotFound, "404 page not found\n"},
	}
	for _, tt := range tests {
		code, body := get(t, ts.URL+tt.path)
		if code != tt.wantCode || body != tt.wantBody {
			t.Errorf("GET %s = %d %q, want %d %q", tt.path, code, body, tt.wantCode, tt.wantBody)
		}
	}
}

func TestErrorRate(t *testing.T) {
	t.Parallel()
	const n = 2000
	tests := []struct {
		rate     float64
		min, max int // accepted number of 500s out of n
	}{
		{rate: 0, min: 0, max: 0},
		{rate: 0.2, min: 300, max: 500},
		{rate: 0.5, min: 900, max: 1100},
		{rate: 1, min: n, max: n},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.rate), func(t *testing.T) {
			t.Parallel()
			s, err := app.New(app.Config{Version: "v1", ErrorRate: tt.rate, Seed: 42})
			if err != nil {
				t.Fatal(err)
			}
			h := s.Handler()
			errs := 0
			for range n {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
				switch rec.Code {
				case http.StatusInternalServerError:
					errs++
				case http.StatusOK:
				default:
					t.Fatalf("unexpected status %d", rec.Code)
				}
			}
			if errs < tt.min || errs > tt.max {
				t.Errorf("error rate %v: %d of %d requests failed, want %d..%d", tt.rate, errs, n, tt.min, tt.max)
			}
		})
	}
}

func TestSeedIsReproducible(t *testing.T) {
	t.Parallel()
	codes := func() string {
		s, err := app.New(app.Config{Version: "v1", ErrorRate: 0.5, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for range 64 {
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			fmt.Fprint(&b, rec.Code/100)
		}
		return b.String()
	}
	if a, b := codes(), codes(); a != b {
		t.Errorf("same seed gave different results:\n%s\n%s", a, b)
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	const latency = 50 * time.Millisecond
	s, ts := newServer(t, app.Config{Version: "v1", Latency: latency})
	start := time.Now()
	if code, _ := get(t, ts.URL+"/"); code != http.StatusOK {
		t.Fatalf("GET / = %d", code)
	}
	if d := time.Since(start); d < latency {
		t.Errorf("request took %v, want at least %v", d, latency)
	}

	// Changing the latency takes effect for the next request.
	if err := s.SetLatency(2 * latency); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	get(t, ts.URL+"/")
	if d := time.Since(start); d < 2*latency {
		t.Errorf("after SetLatency request took %v, want at least %v", d, 2*latency)
	}
}

func TestAdminConfig(t *testing.T) {
	t.Parallel()
	s, ts := newServer(t, app.Config{Version: "v1", Seed: 1})
	url := ts.URL + "/admin/config"

	code, body := get(t, url)
	if want := `{"version":"v1","errorRate":0,"latency":"0s"}` + "\n"; code != http.StatusOK || body != want {
		t.Fatalf("GET /admin/config = %d %q, want 200 %q", code, body, want)
	}

	code, body = do(t, http.MethodPut, url, `{"version":"v2","errorRate":1,"latency":"150ms"}`)
	if want := `{"version":"v2","errorRate":1,"latency":"150ms"}` + "\n"; code != http.StatusOK || body != want {
		t.Fatalf("PUT /admin/config = %d %q, want 200 %q", code, body, want)
	}
	want := app.Config{Version: "v2", ErrorRate: 1, Latency: 150 * time.Millisecond, Seed: 1}
	if got := s.Config(); got != want {
		t.Fatalf("Config() = %+v, want %+v", got, want)
	}
	if code, body := get(t, ts.URL+"/"); code != http.StatusInternalServerError || !strings.Contains(body, "v2") {
		t.Fatalf("GET / after update = %d %q, want 500 from v2", code, body)
	}

	// A partial update leaves the other fields alone.
	if code, body := do(t, http.MethodPut, url, `{"errorRate":0,"latency":"0s"}`); code != http.StatusOK {
		t.Fatalf("partial PUT = %d %q", code, body)
	}
	if code, body := get(t, ts.URL+"/"); code != http.StatusOK || body != "sample-app version v2\n" {
		t.Fatalf("GET / after partial update = %d %q", code, body)
	}
}

func TestAdminConfigRejectsBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, body string
		wantCode           int
		wantBody           string
	}{
		{"error rate too high", http.MethodPut, `{"errorRate":1.5}`, http.StatusBadRequest, "between 0 and 1"},
		{"negative error rate", http.MethodPut, `{"errorRate":-0.1}`, http.StatusBadRequest, "between 0 and 1"},
		{"negative latency", http.MethodPut, `{"latency":"-5ms"}`, http.StatusBadRequest, "must not be negative"},
		{"latency not a duration", http.MethodPut, `{"latency":"soon"}`, http.StatusBadRequest, `"150ms"`},
		{"latency as number", http.MethodPut, `{"latency":150}`, http.StatusBadRequest, "invalid JSON"},
		{"empty version", http.MethodPut, `{"version":""}`, http.StatusBadRequest, "version must not be empty"},
		{"unknown field", http.MethodPut, `{"errorRat":0.5}`, http.StatusBadRequest, "errorRat"},
		{"not JSON", http.MethodPut, `errorRate=0.5`, http.StatusBadRequest, "invalid JSON"},
		{"valid field with invalid one", http.MethodPut, `{"version":"v9","errorRate":2}`, http.StatusBadRequest, "between 0 and 1"},
		{"wrong method", http.MethodPost, `{}`, http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := app.Config{Version: "v1", ErrorRate: 0.1, Latency: time.Millisecond}
			s, ts := newServer(t, before)
			code, body := do(t, tt.method, ts.URL+"/admin/config", tt.body)
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Errorf("%s /admin/config %s = %d %q, want %d containing %q", tt.method, tt.body, code, body, tt.wantCode, tt.wantBody)
			}
			if got := s.Config(); got != before {
				t.Errorf("config changed by rejected request: %+v, want %+v", got, before)
			}
		})
	}
}

func TestSetters(t *testing.T) {
	t.Parallel()
	s, err := app.New(app.Config{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetVersion("v2"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetErrorRate(0.3); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLatency(time.Second); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{s.SetVersion(""), s.SetErrorRate(1.1), s.SetErrorRate(-1), s.SetLatency(-1)} {
		if !errors.Is(err, app.ErrInvalidConfig) {
			t.Errorf("invalid setting gave error %v, want ErrInvalidConfig", err)
		}
	}
	want := app.Config{Version: "v2", ErrorRate: 0.3, Latency: time.Second}
	if got := s.Config(); got != want {
		t.Errorf("Config() = %+v, want %+v", got, want)
	}
}

// metricLines returns the sample lines of /metrics, without comments.
func metricLines(t *testing.T, baseURL string) []string {
	t.Helper()
	code, body := get(t, baseURL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", code)
	}
	var lines []string
	for line := range strings.Lines(body) {
		if !strings.HasPrefix(line, "#") {
			lines = append(lines, strings.TrimSuffix(line, "\n"))
		}
	}
	return lines
}

func checkMetrics(t *testing.T, baseURL string, want, notWant []string) {
	t.Helper()
	lines := metricLines(t, baseURL)
	has := make(map[string]bool, len(lines))
	for _, l := range lines {
		has[l] = true
	}
	for _, w := range want {
		if !has[w] {
			t.Errorf("/metrics lacks %q; got:\n%s", w, strings.Join(lines, "\n"))
		}
	}
	for _, l := range lines {
		for _, nw := range notWant {
			if strings.Contains(l, nw) {
				t.Errorf("/metrics has unexpected line %q", l)
			}
		}
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	s, ts := newServer(t, app.Config{Version: "v3", ErrorRate: 1})
	for range 3 {
		get(t, ts.URL+"/")
	}
	// None of these count as requests.
	get(t, ts.URL+"/healthz")
	get(t, ts.URL+"/metrics")
	get(t, ts.URL+"/admin/config")
	get(t, ts.URL+"/nope")

	checkMetrics(t, ts.URL, []string{
		`http_requests_total{code="500",version="v3"} 3`,
		`http_requests_total{code="200",version="v3"} 0`,
		`http_request_duration_seconds_count{version="v3"} 3`,
		`http_request_duration_seconds_bucket{version="v3",le="5"} 3`,
		`http_request_duration_seconds_bucket{version="v3",le="+Inf"} 3`,
		`sample_app_info{version="v3"} 1`,
	}, nil)

	// After a version change new requests get the new label and the info
	// gauge moves; the old counters stay.
	if err := s.SetVersion("v4"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetErrorRate(0); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		get(t, ts.URL+"/")
	}
	checkMetrics(t, ts.URL, []string{
		`http_requests_total{code="500",version="v3"} 3`,
		`http_requests_total{code="200",version="v4"} 2`,
		`http_requests_total{code="500",version="v4"} 0`,
		`http_request_duration_seconds_count{version="v4"} 2`,
		`sample_app_info{version="v4"} 1`,
	}, []string{`sample_app_info{version="v3"}`})
}

func TestTwoServersKeepSeparateMetrics(t *testing.T) {
	t.Parallel()
	_, stable := newServer(t, app.Config{Version: "stable"})
	_, canary := newServer(t, app.Config{Version: "canary", ErrorRate: 1})
	for range 4 {
		get(t, stable.URL+"/")
	}
	get(t, canary.URL+"/")

	checkMetrics(t, stable.URL, []string{
		`http_requests_total{code="200",version="stable"} 4`,
		`sample_app_info{version="stable"} 1`,
	}, []string{`"canary"`})
	checkMetrics(t, canary.URL, []string{
		`http_requests_total{code="500",version="canary"} 1`,
		`http_requests_total{code="200",version="canary"} 0`,
		`sample_app_info{version="canary"} 1`,
	}, []string{`"stable"`})
}

func TestListenAndServe(t *testing.T) {
	t.Parallel()
	s, err := app.New(app.Config{Version: "v5"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx, "127.0.0.1:0", func(a net.Addr) { addrc <- a }) }()

	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("ListenAndServe: %v", err)
	}
	if code, body := get(t, "http://"+addr.String()+"/"); code != http.StatusOK || body != "sample-app version v5\n" {
		t.Fatalf("GET / = %d %q", code, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ListenAndServe after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ListenAndServe did not return after cancel")
	}
}

func TestListenAndServeBadAddress(t *testing.T) {
	t.Parallel()
	s, err := app.New(app.Config{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ListenAndServe(t.Context(), "256.0.0.1:bad", nil); err == nil {
		t.Fatal("ListenAndServe on a bad address succeeded")
	}
}

// buildBinary builds sample-app once for all tests that need it.
var buildBinary = sync.OnceValues(func() (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("find go tool: %w", err)
	}
	dir, err := os.MkdirTemp("", "sample-app")
	if err != nil {
		return "", fmt.Errorf("create temp dir: %w", err)
	}
	bin := filepath.Join(dir, "sample-app")
	out, err := exec.Command(goTool, "build", "-o", bin, "./sample-app").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
})

func sampleApp(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping binary build in -short mode")
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := buildBinary(); err == nil {
		_ = os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// cleanEnv is the test's environment without SAMPLE_APP_* settings.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SAMPLE_APP_") {
			env = append(env, kv)
		}
	}
	return env
}

var listeningRE = regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)

func TestBinaryServesAndStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	bin := sampleApp(t)
	cmd := exec.CommandContext(t.Context(), bin, "-listen", "127.0.0.1:0", "-version", "v9")
	cmd.Env = cleanEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	// Read stderr until the listening line, then keep collecting it.
	addrc := make(chan string, 1)
	var logMu sync.Mutex
	var logs strings.Builder
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			logs.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-readDone:
		t.Fatalf("sample-app exited before listening: %v", cmd.Wait())
	case <-time.After(30 * time.Second):
		t.Fatal("sample-app did not log its address")
	}

	if code, body := get(t, "http://"+addr+"/"); code != http.StatusOK || body != "sample-app version v9\n" {
		t.Errorf("GET / = %d %q", code, body)
	}
	code, body := get(t, "http://"+addr+"/admin/config")
	var cfg map[string]any
	if err := json.Unmarshal([]byte(body), &cfg); code != http.StatusOK || err != nil || cfg["version"] != "v9" {
		t.Errorf("GET /admin/config = %d %q", code, body)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-readDone
	if err := cmd.Wait(); err != nil {
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("sample-app after SIGTERM: %v, want exit 0; stderr:\n%s", err, logs.String())
	}
}

func TestBinaryRejectsBadConfig(t *testing.T) {
	t.Parallel()
	bin := sampleApp(t)
	tests := []struct {
		name     string
		args     []string
		env      string
		wantCode int
		wantErr  string
	}{
		{name: "error rate out of range", args: []string{"-error-rate", "2"}, wantCode: 2, wantErr: "-error-rate"},
		{name: "negative latency", args: []string{"-latency=-1s"}, wantCode: 2, wantErr: "-latency"},
		{name: "unknown flag", args: []string{"-bogus"}, wantCode: 2, wantErr: "-bogus"},
		{name: "bad env", env: "SAMPLE_APP_LATENCY=soon", wantCode: 2, wantErr: "SAMPLE_APP_LATENCY"},
		{name: "help", args: []string{"-h"}, wantCode: 0, wantErr: "SAMPLE_APP_ERROR_RATE"},
		{name: "listen fails", args: []string{"-listen", "256.0.0.1:bad"}, wantCode: 1, wantErr: "listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), bin, tt.args...)
			cmd.Env = cleanEnv()
			if tt.env != "" {
				cmd.Env = append(cmd.Env, tt.env)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("sample-app %v: exit %d, stderr %q; want exit %d mentioning %q",
					tt.args, code, stderr.String(), tt.wantCode, tt.wantErr)
			}
		})
	}
}
