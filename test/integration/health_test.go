package integration

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/devcluster"
	"github.com/canaryline/canaryline/internal/promserver"
	sampleapp "github.com/canaryline/canaryline/test/app"
)

// sampleApps runs real sample-app servers for the stable, baseline and canary versions and sends each of them
// load, until the test ends.
type sampleApps struct {
	servers map[string]*sampleapp.Server
	addrs   map[string]string
}

func startSampleApps(t *testing.T, cfgs map[string]sampleapp.Config, rps int) *sampleApps {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	s := &sampleApps{servers: map[string]*sampleapp.Server{}, addrs: map[string]string{}}
	for track, cfg := range cfgs {
		srv, err := sampleapp.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ready := make(chan net.Addr, 1)
		wg.Add(1)
		go func() { defer wg.Done(); _ = srv.ListenAndServe(ctx, "127.0.0.1:0", func(a net.Addr) { ready <- a }) }()
		s.servers[track], s.addrs[track] = srv, (<-ready).String()
		if rps == 0 {
			continue
		}
		// Load: rps requests a second, bounded by the test's life.
		addr := s.addrs[track]
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 2 * time.Second}
			tick := time.NewTicker(time.Second / time.Duration(rps))
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					go func() {
						if resp, err := client.Get("http://" + addr + "/"); err == nil {
							resp.Body.Close()
						}
					}()
				}
			}
		}()
	}
	return s
}

// startPrometheus scrapes the sample apps every second, labelled with their track.
func startPrometheus(t *testing.T, ns string, s *sampleApps) string {
	t.Helper()
	cache, err := devcluster.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := promserver.Binary(context.Background(), cache, os.Stderr)
	if err != nil {
		t.Fatalf("a Prometheus server: %v", err)
	}
	targets := map[string][]string{}
	labels := map[string]map[string]string{}
	for track, addr := range s.addrs {
		targets["sample-app"] = append(targets["sample-app"], addr)
		labels[addr] = map[string]string{"track": track, "namespace": ns, "app": "shop"}
	}
	srv, err := promserver.Start(context.Background(), promserver.Options{Binary: bin, Scrape: time.Second, Targets: targets, Labels: labels})
	if err != nil {
		t.Fatalf("start Prometheus: %v", err)
	}
	t.Cleanup(srv.Stop)
	return srv.URL
}

const (
	errorRatioQuery = `sum(rate(http_requests_total{namespace="{{.Namespace}}",track="{{.CanaryTrack}}",code="500"}[5s])) / sum(rate(http_requests_total{namespace="{{.Namespace}}",track="{{.CanaryTrack}}"}[5s]))`
	compareQuery    = `sum(rate(http_requests_total{namespace="{{.Namespace}}",track="{{.Track}}",code="500"}[3s])) / sum(rate(http_requests_total{namespace="{{.Namespace}}",track="{{.Track}}"}[3s]))`
)

// healthEnv sets up the canary (and baseline) with shift-canary on the control plane, real sample apps and a real
// Prometheus, and returns verify-health's base environment.
func healthEnv(t *testing.T, canary sampleapp.Config, rps int) (*app_, map[string]string) {
	t.Helper()
	a := newApp(t, "route", 2)
	if r := a.shift(10, map[string]string{"BASELINE": "true"}); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	apps := startSampleApps(t, map[string]sampleapp.Config{
		"stable":   {Version: "v1", ErrorRate: 0.01, Seed: 1},
		"baseline": {Version: "v1", ErrorRate: 0.01, Seed: 2},
		"canary":   canary,
	}, rps)
	prom := startPrometheus(t, a.ns, apps)
	env := map[string]string{
		"APP": "shop", "RELEASE_ID": "shop-release-1", "INTERVAL": "1s", "COUNT": "12", "MIN_SAMPLES": "6",
		"PROMETHEUS_URL": prom, "EVIDENCE_DIR": filepath.Join(t.TempDir(), "evidence"),
		"QUERIES":   "- name: error-rate\n  query: '" + errorRatioQuery + "'\n  threshold: '< 0.05'\n",
		"COMPARE":   "- name: error-ratio-vs-baseline\n  query: '" + compareQuery + "'\n  direction: increase\n",
		"HTTP_URLS": "http://" + apps.addrs["canary"] + "/", "HTTP_RATE": "20", "HTTP_MIN_SUCCESS": "0.9", "HTTP_MAX_LATENCY": "300ms",
	}
	return &app_{app: a, apps: apps}, env
}

type app_ struct {
	app  *app
	apps *sampleApps
}

func TestVerifyHealthHealthyCanary(t *testing.T) {
	t.Parallel()
	h, env := healthEnv(t, sampleapp.Config{Version: "v2", ErrorRate: 0.01, Seed: 3}, 40)
	r := runStep(t, "verify-health", h.app.kubeconfig, env)
	if r.code != 0 || r.results["VERDICT"] != "healthy" {
		t.Fatalf("exit %d results %v; want 0 healthy\n%s", r.code, r.results, r.stdout)
	}
	for _, f := range []string{"evidence.json", "report.md", "chart.svg"} {
		if _, err := os.Stat(filepath.Join(env["EVIDENCE_DIR"], f)); err != nil {
			t.Errorf("evidence file %s: %v", f, err)
		}
	}
	report, _ := os.ReadFile(filepath.Join(env["EVIDENCE_DIR"], "report.md"))
	if !strings.Contains(string(report), `track="canary",code="500"`) || !strings.Contains(string(report), "healthy") {
		t.Errorf("the report lacks the rendered query or the verdict:\n%s", report)
	}
	if !strings.Contains(r.stdout, "error-ratio-vs-baseline") || !strings.Contains(r.stdout, "< 0.05") {
		t.Errorf("the log table lacks the checks:\n%s", r.stdout)
	}
}

func TestVerifyHealthCatchesAFaultyCanaryEarly(t *testing.T) {
	t.Parallel()
	h, env := healthEnv(t, sampleapp.Config{Version: "v3", ErrorRate: 0.2, Latency: 50 * time.Millisecond, Seed: 4}, 40)
	env["COUNT"] = "30" // a 30 s window that an obvious failure must not wait out
	t0 := time.Now()
	r := runStep(t, "verify-health", h.app.kubeconfig, env)
	if r.code != 4 || r.results["VERDICT"] != "unhealthy" {
		t.Fatalf("exit %d results %v; want 4 unhealthy", r.code, r.results)
	}
	if took := time.Since(t0); took > 20*time.Second {
		t.Errorf("the verdict took %s; an obvious failure must stop the analysis early", took)
	}
	reason := r.results["REASON"]
	if !(strings.Contains(reason, "threshold")) || !(strings.Contains(reason, "error-rate") || strings.Contains(reason, "http") || strings.Contains(reason, "error-ratio")) {
		t.Errorf("REASON %q does not name the check, its value and its threshold", reason)
	}
}

func TestVerifyHealthCanaryDegradesMidWindow(t *testing.T) {
	t.Parallel()
	h, env := healthEnv(t, sampleapp.Config{Version: "v2", ErrorRate: 0, Seed: 5}, 40)
	env["QUERIES"], env["COMPARE"] = "", ""
	env["PROMETHEUS_URL"] = ""
	env["COUNT"], env["HTTP_MIN_SUCCESS"] = "10", "0.95"
	go func() {
		time.Sleep(4 * time.Second)
		_ = h.apps.servers["canary"].SetErrorRate(0.5)
	}()
	r := runStep(t, "verify-health", h.app.kubeconfig, env)
	if r.code != 4 || !strings.HasPrefix(r.results["REASON"], "http: success") {
		t.Errorf("exit %d reason %q; want 4 naming the http check", r.code, r.results["REASON"])
	}
}

func TestVerifyHealthErrorsAreNotFailures(t *testing.T) {
	t.Parallel()
	h, env := healthEnv(t, sampleapp.Config{Version: "v2", ErrorRate: 0.01, Seed: 6}, 0)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	env["PROMETHEUS_URL"], env["COMPARE"], env["HTTP_URLS"] = dead, "", ""
	env["CONSECUTIVE_ERROR_LIMIT"] = "3"
	r := runStep(t, "verify-health", h.app.kubeconfig, env)
	if r.code != 6 || r.results["VERDICT"] != "inconclusive" || !strings.Contains(r.results["REASON"], "could not be evaluated 4 times in a row") {
		t.Errorf("Prometheus down: exit %d results %v; want 6 inconclusive", r.code, r.results)
	}
}

func TestVerifyHealthNoTrafficIsInconclusive(t *testing.T) {
	t.Parallel()
	h, env := healthEnv(t, sampleapp.Config{Version: "v2", ErrorRate: 0.01, Seed: 7}, 0) // no load at all
	env["HTTP_URLS"], env["COUNT"] = "", "5"
	r := runStep(t, "verify-health", h.app.kubeconfig, env)
	if r.code != 6 || r.results["VERDICT"] != "inconclusive" {
		t.Errorf("no traffic: exit %d results %v; want 6 inconclusive, not a rollback-worthy failure", r.code, r.results)
	}
	env["NO_DATA"] = "fail"
	if r := runStep(t, "verify-health", h.app.kubeconfig, env); r.code != 4 {
		t.Errorf("no traffic with NO_DATA=fail: exit %d; want 4", r.code)
	}
}

func TestVerifyHealthPodsCheckFailsFastOnCrashLoop(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	if r := a.shift(10, nil); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	ctx := context.Background()
	pods, err := a.kube.CoreV1().Pods(a.ns).List(ctx, metav1.ListOptions{LabelSelector: "canaryline.dev/track=canary"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("canary pods: %v %v", pods, err)
	}
	p := pods.Items[0]
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", RestartCount: 3, Image: canaryImage,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container"}}}}
	if _, err := a.kube.CoreV1().Pods(a.ns).UpdateStatus(ctx, &p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	r := runStep(t, "verify-health", a.kubeconfig, map[string]string{"APP": "shop", "INTERVAL": "1s", "COUNT": "20", "FAILURE_LIMIT": "5"})
	if r.code != 4 || !strings.Contains(r.results["REASON"], "CrashLoopBackOff") || time.Since(t0) > 10*time.Second {
		t.Errorf("exit %d reason %q after %s; want 4 at once, naming CrashLoopBackOff", r.code, r.results["REASON"], time.Since(t0))
	}
}
