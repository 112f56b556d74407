package promserver

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"
)

// EnvBuild makes the tests build Prometheus from the module proxy (about 2 minutes) when no binary is at hand.
const EnvBuild = "CANARYLINE_PROMETHEUS_BUILD"

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// prometheusBinary returns a Prometheus binary, or skips the test when none can be had quickly.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		cache, err := DefaultCacheDir()
		if err != nil {
			binErr = err
			return
		}
		if os.Getenv(EnvBuild) == "1" {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			defer cancel()
			binPath, binErr = Binary(ctx, cache, t.Output())
			return
		}
		if p, ok := Lookup(context.Background(), cache); ok {
			binPath = p
			return
		}
		binErr = errSkip(fmt.Sprintf("no Prometheus binary: %s is absent (apt-get install prometheus) and none is built in %s; "+
			"set %s=1 to build Prometheus %s from the Go module proxy (about 2 min)", SystemBinary, cachedPath(cache), EnvBuild, Version))
	})
	var skip errSkip
	if errors.As(binErr, &skip) {
		t.Skip(string(skip))
	}
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

type errSkip string

func (e errSkip) Error() string { return string(e) }

func TestRenderConfig(t *testing.T) {
	o := Options{
		Scrape: 2 * time.Second,
		Targets: map[string][]string{
			"shop":  {"127.0.0.1:8081", "127.0.0.1:8082"},
			"admin": {"localhost:9000"},
		},
		Labels: map[string]map[string]string{
			"127.0.0.1:8081": {"track": "stable", "namespace": "shop", "app": "shop"},
			"127.0.0.1:8082": {"track": "canary", "namespace": "shop", "app": "shop"},
		},
	}
	out, err := renderConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	var got promConfig
	if err := yaml.UnmarshalStrict(out, &got); err != nil {
		t.Fatalf("rendered config does not parse: %v\n%s", err, out)
	}
	want := promConfig{
		Global: globalConfig{ScrapeInterval: "2s", ScrapeTimeout: "2s", EvaluationInterval: "2s"},
		ScrapeConfigs: []scrapeConfig{
			{JobName: "admin", MetricsPath: "/metrics", Scheme: "http", StaticConfigs: []staticConfig{
				{Targets: []string{"localhost:9000"}},
			}},
			{JobName: "shop", MetricsPath: "/metrics", Scheme: "http", StaticConfigs: []staticConfig{
				{Targets: []string{"127.0.0.1:8081"}, Labels: map[string]string{"track": "stable", "namespace": "shop", "app": "shop"}},
				{Targets: []string{"127.0.0.1:8082"}, Labels: map[string]string{"track": "canary", "namespace": "shop", "app": "shop"}},
			}},
		},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("config (-want +got):\n%s\n%s", d, out)
	}
	for _, s := range []string{"scrape_interval: 2s", "job_name: shop", "track: canary", "- 127.0.0.1:8082"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("config lacks %q:\n%s", s, out)
		}
	}

	// Defaults: a 1 s interval; no targets is a valid, empty configuration.
	out, err = renderConfig(Options{})
	if err != nil {
		t.Fatal(err)
	}
	got = promConfig{}
	if err := yaml.UnmarshalStrict(out, &got); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(promConfig{Global: globalConfig{ScrapeInterval: "1s", ScrapeTimeout: "1s", EvaluationInterval: "1s"}}, got); d != "" {
		t.Errorf("default config (-want +got):\n%s", d)
	}
	out, err = renderConfig(Options{Scrape: 500 * time.Millisecond})
	if err != nil || !strings.Contains(string(out), "scrape_interval: 500ms") {
		t.Errorf("500ms interval: %v\n%s", err, out)
	}
}

// TestRenderDiscovered checks that a discovered job reads its own file, next to static jobs, and what is written
// into that file.
func TestRenderDiscovered(t *testing.T) {
	o := Options{
		Targets:    map[string][]string{"admin": {"localhost:9000"}},
		Discovered: map[string][]Group{"shop": nil, "api/v2": {{Targets: []string{"127.0.0.1:8081"}, Labels: map[string]string{"pod": "shop-abc-1"}}}},
	}
	out, err := renderConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	var got promConfig
	if err := yaml.UnmarshalStrict(out, &got); err != nil {
		t.Fatalf("rendered config does not parse: %v\n%s", err, out)
	}
	want := []scrapeConfig{
		{JobName: "admin", MetricsPath: "/metrics", Scheme: "http", StaticConfigs: []staticConfig{{Targets: []string{"localhost:9000"}}}},
		{JobName: "api/v2", MetricsPath: "/metrics", Scheme: "http", FileSDConfigs: []fileSDConfig{{Files: []string{"file_sd/0.json"}, RefreshInterval: sdRefresh}}},
		{JobName: "shop", MetricsPath: "/metrics", Scheme: "http", FileSDConfigs: []fileSDConfig{{Files: []string{"file_sd/1.json"}, RefreshInterval: sdRefresh}}},
	}
	if d := cmp.Diff(want, got.ScrapeConfigs); d != "" {
		t.Errorf("scrape configs (-want +got):\n%s\n%s", d, out)
	}

	for _, tc := range []struct {
		groups []Group
		want   string
	}{
		{nil, "[]"},
		{[]Group{{Targets: []string{"127.0.0.1:8081"}, Labels: map[string]string{"pod": "shop-abc-1", "track": "canary"}}, {}},
			`[{"targets":["127.0.0.1:8081"],"labels":{"pod":"shop-abc-1","track":"canary"}},{"targets":[]}]`},
	} {
		data, err := renderGroups(tc.groups)
		if err != nil {
			t.Fatal(err)
		}
		var compact strings.Builder
		for _, line := range strings.Split(string(data), "\n") {
			compact.WriteString(strings.TrimSpace(line))
		}
		if got := strings.ReplaceAll(compact.String(), ": ", ":"); got != tc.want {
			t.Errorf("renderGroups(%v) = %s; want %s", tc.groups, got, tc.want)
		}
	}
}

// TestRenderKubernetes checks a job discovered from a Kubernetes API server: its kubernetes_sd_configs (API server,
// role, namespaces, token and CA files) and relabel rules, and that Prometheus's own checker accepts the result.
func TestRenderKubernetes(t *testing.T) {
	dir := t.TempDir()
	token, ca := dir+"/token", dir+"/ca.crt"
	if err := os.WriteFile(token, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, selfSignedCA(t), 0o644); err != nil {
		t.Fatal(err)
	}
	relabel := []Relabel{
		{SourceLabels: []string{"__meta_kubernetes_pod_container_port_number"}, Regex: "8080", Action: "keep"},
		{TargetLabel: "track", Replacement: "stable"},
		{SourceLabels: []string{"__meta_kubernetes_pod_label_canaryline_dev_track"}, Regex: "(.+)", TargetLabel: "track"},
	}
	o := Options{Kubernetes: map[string]Kubernetes{"shop": {APIServer: "https://127.0.0.1:6443", Namespaces: []string{"team"},
		TokenFile: token, CAFile: ca, Relabel: relabel}}}
	out, err := renderConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	var got promConfig
	if err := yaml.UnmarshalStrict(out, &got); err != nil {
		t.Fatalf("rendered config does not parse: %v\n%s", err, out)
	}
	want := []scrapeConfig{{JobName: "shop", MetricsPath: "/metrics", Scheme: "http", Relabel: relabel,
		KubeSDConfigs: []kubeSDConfig{{APIServer: "https://127.0.0.1:6443", Role: "pod", Namespaces: &kubeSDNames{Names: []string{"team"}},
			Authorization: &authorization{Type: "Bearer", CredentialsFile: token}, TLSConfig: &tlsConfig{CAFile: ca}}}}}
	if d := cmp.Diff(want, got.ScrapeConfigs); d != "" {
		t.Errorf("scrape configs (-want +got):\n%s\n%s", d, out)
	}
	// A Prometheus with Kubernetes discovery loads it (the API server is not there: discovery just retries).
	bin := kubernetesBinary(t)
	if bin == "" {
		return
	}
	o.Binary, o.Log = bin, t.Output()
	srv, err := Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	cfg, err := srv.API().Config(t.Context())
	if err != nil || !strings.Contains(cfg.YAML, "kubernetes_sd_configs") || !strings.Contains(cfg.YAML, "target_label: track") {
		t.Errorf("the loaded configuration: %v\n%s", err, cfg.YAML)
	}
}

// selfSignedCA is a CA certificate, PEM-encoded.
func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, NotBefore: time.Now(),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// kubernetesBinary is a Prometheus with Kubernetes discovery at hand without building one ("" when none: Debian's
// has none).
func kubernetesBinary(t *testing.T) string {
	t.Helper()
	cache, err := DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{os.Getenv(EnvBinary), cachedPath(cache), SystemBinary} {
		if p != "" && usable(p) && hasKubernetesSD(t.Context(), p) {
			return p
		}
	}
	t.Logf("no Prometheus with Kubernetes discovery at hand (%s builds one into %s): the configuration is not loaded", "KubernetesBinary", cachedPath(cache))
	return ""
}

func TestBadTargetConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"not host:port", Options{Targets: map[string][]string{"shop": {"http://127.0.0.1:8080/metrics"}}}, `target "http://127.0.0.1:8080/metrics" is not host:port`},
		{"no port", Options{Targets: map[string][]string{"shop": {"127.0.0.1"}}}, `is not host:port`},
		{"bad port", Options{Targets: map[string][]string{"shop": {"127.0.0.1:99999"}}}, `invalid port`},
		{"empty job", Options{Targets: map[string][]string{"": {"127.0.0.1:80"}}}, `job name is empty`},
		{"no targets", Options{Targets: map[string][]string{"shop": nil}}, `job "shop" has no targets`},
		{"duplicate", Options{Targets: map[string][]string{"shop": {"127.0.0.1:80", "127.0.0.1:80"}}}, `twice`},
		{"labels for unknown target", Options{
			Targets: map[string][]string{"shop": {"127.0.0.1:80"}},
			Labels:  map[string]map[string]string{"127.0.0.1:81": {"track": "canary"}},
		}, `labels are given for "127.0.0.1:81", which is not a target of any job`},
		{"bad label name", Options{
			Targets: map[string][]string{"shop": {"127.0.0.1:80"}},
			Labels:  map[string]map[string]string{"127.0.0.1:80": {"app.kubernetes.io/name": "shop"}},
		}, `"app.kubernetes.io/name" is not a valid label name`},
		{"static and discovered", Options{
			Targets:    map[string][]string{"shop": {"127.0.0.1:80"}},
			Discovered: map[string][]Group{"shop": nil},
		}, `job "shop" is in both Targets and Discovered`},
		{"discovered not host:port", Options{Discovered: map[string][]Group{"shop": {{Targets: []string{"127.0.0.1"}}}}}, `is not host:port`},
		{"discovered twice", Options{Discovered: map[string][]Group{"shop": {{Targets: []string{"127.0.0.1:80"}}, {Targets: []string{"127.0.0.1:80"}}}}}, `twice`},
		{"discovered bad label name", Options{Discovered: map[string][]Group{"shop": {{Targets: []string{"127.0.0.1:80"}, Labels: map[string]string{"pod-template-hash": "x"}}}}},
			`"pod-template-hash" is not a valid label name`},
		{"kubernetes and discovered", Options{Discovered: map[string][]Group{"shop": nil},
			Kubernetes: map[string]Kubernetes{"shop": {APIServer: "https://127.0.0.1:6443"}}}, `job "shop" is in Kubernetes and in Targets or Discovered`},
		{"kubernetes without an API server", Options{Kubernetes: map[string]Kubernetes{"shop": {}}}, `APIServer "" is not a URL`},
		{"kubernetes bad relabel target", Options{Kubernetes: map[string]Kubernetes{"shop": {APIServer: "https://127.0.0.1:6443",
			Relabel: []Relabel{{TargetLabel: "pod-template-hash"}}}}}, `relabel target "pod-template-hash" is not a valid label name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			tc.o.Binary = "/nonexistent/prometheus" // never run: the configuration is checked first
			s, err := Start(t.Context(), tc.o)
			if err == nil {
				s.Stop()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
				t.Errorf("Start left %d entries in the temp dir", len(entries))
			}
		})
	}
}

// TestStartFailsClearly checks that a server that exits at once is reported with its log, and cleaned up.
func TestStartFailsClearly(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	_, err := Start(t.Context(), Options{Binary: "/bin/false"})
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "prometheus.log") {
		t.Fatalf("Start with /bin/false: %v", err)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("Start left %d entries in the temp dir", len(entries))
	}
	if _, err := Start(t.Context(), Options{}); err == nil || !strings.Contains(err.Error(), "Binary is empty") {
		t.Errorf("Start without a binary: %v", err)
	}
}

func TestBinaryOverride(t *testing.T) {
	t.Setenv(EnvBinary, "/bin/true") // runs, but is not Prometheus
	if _, err := Binary(t.Context(), t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "does not look like Prometheus") {
		t.Errorf("Binary with $%s=/bin/true: %v", EnvBinary, err)
	}
}

// app is a sample application exposing http_requests_total{code} from a private registry. It serves one request
// every tick; every errEvery-th one fails with a 500.
type app struct {
	addr string
	stop func()
}

func startApp(t *testing.T, errEvery int) app {
	t.Helper()
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "Requests served."}, []string{"code"})
	reg.MustRegister(requests)
	requests.WithLabelValues("200").Add(0)
	requests.WithLabelValues("500").Add(0)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()

	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			if i%errEvery == 0 {
				requests.WithLabelValues("500").Inc()
			} else {
				requests.WithLabelValues("200").Inc()
			}
		}
	}()
	a := app{addr: l.Addr().String(), stop: func() { close(quit); wg.Wait(); srv.Close() }}
	t.Cleanup(a.stop)
	return a
}

func TestCanaryErrorRatio(t *testing.T) {
	bin := prometheusBinary(t)
	stable := startApp(t, 100) // 1% errors
	canary := startApp(t, 10)  // 10% errors
	// A target nobody listens on: Start must still return (its first scrape reports up == 0).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := l.Addr().String()
	l.Close()

	t0 := time.Now()
	s, err := Start(t.Context(), Options{
		Binary: bin,
		Targets: map[string][]string{
			"shop": {stable.addr, canary.addr},
			"dead": {deadAddr},
		},
		Labels: map[string]map[string]string{
			stable.addr: {"track": "stable", "namespace": "shop", "app": "shop"},
			canary.addr: {"track": "canary", "namespace": "shop", "app": "shop"},
		},
		Log: t.Output(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	t.Logf("Prometheus %s (%s) started and scraped every target in %s", s.Version, bin, time.Since(t0).Round(time.Millisecond))
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Errorf("URL = %q", s.URL)
	}

	up, err := s.Query(t.Context(), `up`)
	if err != nil {
		t.Fatal(err)
	}
	ups := map[string]float64{}
	for _, smp := range up.(model.Vector) {
		ups[string(smp.Metric["instance"])] = float64(smp.Value)
		if smp.Metric["instance"] == model.LabelValue(canary.addr) && (smp.Metric["track"] != "canary" || smp.Metric["app"] != "shop" || smp.Metric["job"] != "shop") {
			t.Errorf("canary target labels: %v", smp.Metric)
		}
	}
	if ups[stable.addr] != 1 || ups[canary.addr] != 1 || ups[deadAddr] != 0 || len(ups) != 3 {
		t.Errorf("up = %v, want stable and canary 1, dead 0", ups)
	}

	// Give the 5 s rate window a few scrapes, then poll until both tracks have a ratio.
	time.Sleep(4 * DefaultScrape)
	const q = `sum by (track) (rate(http_requests_total{code="500"}[5s])) / sum by (track) (rate(http_requests_total[5s]))`
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var ratios map[string]float64
	for {
		v, err := s.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		ratios = map[string]float64{}
		for _, smp := range v.(model.Vector) {
			if f := float64(smp.Value); !math.IsNaN(f) && len(smp.Metric) == 1 {
				ratios[string(smp.Metric["track"])] = f
			}
		}
		if len(ratios) == 2 && ratios["stable"] > 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("query %s: got %v, want a ratio for each of stable and canary", q, v)
		case <-time.After(500 * time.Millisecond):
		}
	}
	t.Logf("error ratio: stable %.4f, canary %.4f", ratios["stable"], ratios["canary"])
	if ratios["canary"] < 3*ratios["stable"] || ratios["canary"] < 0.05 || ratios["canary"] > 0.2 || ratios["stable"] > 0.03 {
		t.Errorf("ratios %v: want canary ≈ 0.10 clearly above stable ≈ 0.01", ratios)
	}

	pid, dir := s.Pid(), s.Dir
	if _, err := os.Stat(s.LogPath); err != nil {
		t.Errorf("log: %v", err)
	}
	t1 := time.Now()
	s.Stop()
	t.Logf("stopped in %s", time.Since(t1).Round(time.Millisecond))
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("pid %d still exists after Stop (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temp dir %s not removed: %v", dir, err)
	}
	s.Stop() // idempotent
}

// TestFileDiscovery checks that targets discovered from a file follow SetTargets on the running server: a target
// relabelled, one added, one removed, with no restart.
func TestFileDiscovery(t *testing.T) {
	bin := prometheusBinary(t)
	a, b := startApp(t, 10), startApp(t, 10)
	s, err := Start(t.Context(), Options{Binary: bin, Log: t.Output(), Discovered: map[string][]Group{
		"shop": {{Targets: []string{a.addr}, Labels: map[string]string{"pod": "shop-aaa-1", "pod_template_hash": "aaa"}}},
		"idle": nil,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	pid := s.Pid()
	// ups is the up series of job shop: instance -> pod label.
	ups := func() map[string]string {
		t.Helper()
		v, err := s.Query(t.Context(), `up{job="shop"} == 1`)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, smp := range v.(model.Vector) {
			got[string(smp.Metric["instance"])] = string(smp.Metric["pod"])
		}
		return got
	}
	if got := ups(); got[a.addr] != "shop-aaa-1" || len(got) != 1 {
		t.Fatalf("after Start: up %v; want %s as pod shop-aaa-1", got, a.addr)
	}

	// a becomes another pod (relabelled), b appears.
	if err := s.SetTargets("shop", []Group{
		{Targets: []string{a.addr}, Labels: map[string]string{"pod": "shop-bbb-1", "pod_template_hash": "bbb"}},
		{Targets: []string{b.addr}, Labels: map[string]string{"pod": "shop-bbb-2", "pod_template_hash": "bbb"}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitScraped(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := ups(); got[a.addr] != "shop-bbb-1" || got[b.addr] != "shop-bbb-2" {
		t.Errorf("after SetTargets: up %v; want %s as shop-bbb-1 and %s as shop-bbb-2", got, a.addr, b.addr)
	}
	v, err := s.Query(t.Context(), `count(up{job="shop",pod_template_hash="bbb"})`)
	if err != nil || v.(model.Vector).Len() != 1 || v.(model.Vector)[0].Value != 2 {
		t.Errorf("count(up{pod_template_hash=\"bbb\"}) = %v, %v; want 2", v, err)
	}

	// a is gone: Prometheus stops scraping it, and its up series goes stale.
	if err := s.SetTargets("shop", []Group{{Targets: []string{b.addr}, Labels: map[string]string{"pod": "shop-bbb-2", "pod_template_hash": "bbb"}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), firstScrapeTimeout)
	defer cancel()
	for {
		got := ups()
		if _, ok := got[a.addr]; !ok && got[b.addr] == "shop-bbb-2" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("up %v; want only %s after it was removed from the file", got, b.addr)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if s.Pid() != pid {
		t.Errorf("Prometheus was restarted (pid %d, then %d)", pid, s.Pid())
	}

	if err := s.SetTargets("admin", nil); err == nil || !strings.Contains(err.Error(), "Options.Discovered") {
		t.Errorf("SetTargets of a job that is not discovered: %v", err)
	}
	if err := s.SetTargets("shop", []Group{{Targets: []string{"no-port"}}}); err == nil || !strings.Contains(err.Error(), "not host:port") {
		t.Errorf("SetTargets with a bad target: %v", err)
	}
	dir := s.Dir
	s.Stop()
	if err := s.SetTargets("shop", nil); err == nil {
		t.Error("SetTargets after Stop succeeded")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temp dir %s is back after Stop: %v", dir, err)
	}
}

// hostNetwork is a Network that is the host's own, forwarding through a goroutine: what Start does through a
// Network (a free port there, the process started by it, the host reaching it through a forwarded port) is seen.
type hostNetwork struct {
	mu      sync.Mutex
	started []string
	targets []string
}

func (n *hostNetwork) Listen(network, addr string) (net.Listener, error) {
	return net.Listen(network, addr)
}

func (n *hostNetwork) Start(cmd *exec.Cmd) error {
	n.mu.Lock()
	n.started = append(n.started, cmd.Path)
	n.mu.Unlock()
	return spawn(cmd)
}

func (n *hostNetwork) Forward(l net.Listener, addr string) func() {
	n.mu.Lock()
	n.targets = append(n.targets, addr)
	n.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return func() { l.Close() }
}

// TestNetwork checks that Prometheus given a Network is started by it and reached from the host through the port
// it forwards, not at its own listen address; Stop closes the forwarded port.
func TestNetwork(t *testing.T) {
	bin := prometheusBinary(t)
	a := startApp(t, 10)
	n := &hostNetwork{}
	s, err := Start(t.Context(), Options{Binary: bin, Network: n, Log: t.Output(), Targets: map[string][]string{"shop": {a.addr}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	n.mu.Lock()
	started, targets := append([]string(nil), n.started...), append([]string(nil), n.targets...)
	n.mu.Unlock()
	if len(started) != 1 || started[0] != bin || len(targets) != 1 {
		t.Fatalf("through the Network: started %v, forwarded to %v; want %s once and one forward", started, targets, bin)
	}
	if host := strings.TrimPrefix(s.URL, "http://"); host == targets[0] || !strings.HasPrefix(host, "127.0.0.1:") {
		t.Errorf("URL %s; want a host loopback port forwarded to %s", s.URL, targets[0])
	}
	v, err := s.Query(t.Context(), `up{job="shop"}`)
	if err != nil || v.(model.Vector).Len() != 1 || v.(model.Vector)[0].Value != 1 {
		t.Errorf("up through the forwarded port: %v, %v", v, err)
	}
	url := s.URL
	s.Stop()
	if resp, err := http.Get(url + "/-/ready"); err == nil {
		resp.Body.Close()
		t.Errorf("%s still answers after Stop", url)
	}
}

// TestOwnDir checks that a caller's directory is used for config, data and log, and kept by Stop.
func TestOwnDir(t *testing.T) {
	bin := prometheusBinary(t)
	dir := t.TempDir()
	s, err := Start(t.Context(), Options{Binary: bin, Dir: dir, Scrape: 2 * time.Second, Log: t.Output()})
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Query(t.Context(), `vector(42)`)
	s.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if vec, ok := v.(model.Vector); !ok || len(vec) != 1 || vec[0].Value != 42 {
		t.Errorf("vector(42) = %v", v)
	}
	for _, f := range []string{"prometheus.yml", "prometheus.log", "data"} {
		if _, err := os.Stat(dir + "/" + f); err != nil {
			t.Errorf("Stop removed the caller's %s: %v", f, err)
		}
	}
}

// TestDiesWithParent checks that Prometheus never outlives the process that started it, even one killed with
// SIGKILL (which runs no cleanup): a helper process starts a server and is killed.
func TestDiesWithParent(t *testing.T) {
	if os.Getenv("PROMSERVER_HELPER_DIR") != "" {
		return // the helper's work is done in TestMain
	}
	bin := prometheusBinary(t)
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PROMSERVER_HELPER_DIR="+dir, "PROMSERVER_HELPER_BIN="+bin)
	cmd.Stderr = t.Output()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	if !alive(pid) {
		t.Fatalf("Prometheus (pid %d) is not running", pid)
	}
	_ = cmd.Process.Kill() // SIGKILL: no deferred Stop runs
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("Prometheus (pid %d) outlived the process that started it", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie waiting for init to reap it counts as dead).
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(data), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

func TestMain(m *testing.M) {
	if dir := os.Getenv("PROMSERVER_HELPER_DIR"); dir != "" {
		s, err := Start(context.Background(), Options{Binary: os.Getenv("PROMSERVER_HELPER_BIN"), Dir: dir})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(s.Pid())
		select {} // until killed
	}
	os.Exit(m.Run())
}
