package integration

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sampleapp "github.com/canaryline/canaryline/internal/dev/app"
	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/promserver"
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
		"QUERIES": "- name: error-rate\n  query: '" + errorRatioQuery + "'\n  threshold: '< 0.05'\n",
		"COMPARE": "- name: error-ratio-vs-baseline\n  query: '" + compareQuery + "'\n  direction: increase\n",
		// These tests judge errors through Prometheus, not the probe: a loaded 2-core machine gave a healthy p95 of
		// 425 ms, and as few as 6 probe requests in an interval (one seeded error among them is 0.83).
		"HTTP_URLS": "http://" + apps.addrs["canary"] + "/", "HTTP_RATE": "20", "HTTP_MIN_SUCCESS": "0.8", "HTTP_MAX_LATENCY": "2s",
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
	env["COUNT"] = "30" // a 30-interval window that an obvious failure must not wait out
	r := runStep(t, "verify-health", h.app.kubeconfig, env)
	if r.code != 4 || r.results["VERDICT"] != "unhealthy" {
		t.Fatalf("exit %d results %v; want 4 unhealthy", r.code, r.results)
	}
	// Counted in intervals, not seconds: the analysis stopped well before its 30 (a loaded machine slows the
	// clock's worth of each, not their number).
	if n := intervalsMeasured(t, env["EVIDENCE_DIR"]); n > 20 {
		t.Errorf("the verdict came after %d intervals of 30; an obvious failure must stop the analysis early", n)
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
	pods, err := a.kube.CoreV1().Pods(a.ns).List(ctx, metav1.ListOptions{LabelSelector: a.canaryPods()})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("canary pods: %v %v", pods, err)
	}
	p := pods.Items[0]
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", RestartCount: 3, Image: canaryImage,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container"}}}}
	if _, err := a.kube.CoreV1().Pods(a.ns).UpdateStatus(ctx, &p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "evidence")
	r := runStep(t, "verify-health", a.kubeconfig, map[string]string{"APP": "shop", "INTERVAL": "1s", "COUNT": "20", "FAILURE_LIMIT": "5",
		"EVIDENCE_DIR": dir})
	if r.code != 4 || !strings.Contains(r.results["REASON"], "CrashLoopBackOff") {
		t.Errorf("exit %d reason %q; want 4, naming CrashLoopBackOff", r.code, r.results["REASON"])
	}
	if n := intervalsMeasured(t, dir); n != 1 {
		t.Errorf("the crash loop ended the analysis after %d intervals; want at once, at the first (FAILURE_LIMIT 5 not waited for)", n)
	}
}

// TestVerifyHealthInfiniteValueIsAFailure: a query that Prometheus answers with +Inf (a ratio over zero) is a
// value above any threshold, not a missing one: with NO_DATA=pass it still fails '< 0.05', and the evidence
// keeps the +Inf.
func TestVerifyHealthInfiniteValueIsAFailure(t *testing.T) {
	t.Parallel()
	h, env := healthEnv(t, sampleapp.Config{Version: "v2", ErrorRate: 0.01, Seed: 8}, 0)
	env["COMPARE"], env["HTTP_URLS"], env["COUNT"], env["NO_DATA"] = "", "", "3", "pass"
	env["QUERIES"] = "- name: error-rate\n  query: '1 / 0'\n  threshold: '< 0.05'\n"
	r := runStep(t, "verify-health", h.app.kubeconfig, env)
	if r.code != 4 || r.results["VERDICT"] != "unhealthy" {
		t.Fatalf("exit %d results %v; want 4 unhealthy: +Inf is not < 0.05", r.code, r.results)
	}
	if reason := r.results["REASON"]; !strings.Contains(reason, "error-rate: +Inf") || !strings.Contains(reason, "< 0.05") {
		t.Errorf("REASON %q does not name the check, its +Inf and its threshold", reason)
	}
	data, err := os.ReadFile(filepath.Join(env["EVIDENCE_DIR"], "evidence.json"))
	if err != nil {
		t.Fatalf("the evidence is lost: %v", err)
	}
	if !strings.Contains(string(data), `"value": "+Inf"`) {
		t.Errorf("evidence.json does not keep the +Inf:\n%s", data)
	}
	if r.results["EVIDENCE_ERROR"] != "" || r.results["EVIDENCE"] == "" {
		t.Errorf("EVIDENCE %q, EVIDENCE_ERROR %q; want the report and no error", r.results["EVIDENCE"], r.results["EVIDENCE_ERROR"])
	}
}

// stepUser is the step image's user (Dockerfile: USER 65532), which a Tekton pod runs the steps as.
const stepUser = 65532

// runStepAs runs step as uid and gid, as a pod would, with the step binary, the kubeconfig, a home and the
// results dir reachable by that user. The tests run as root, whom permission bits do not stop.
func runStepAs(t *testing.T, uid, gid int, name, kubeconfig string, env map[string]string) stepRun {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("running a step as another user needs root")
	}
	base := worldReadableDir(t)
	bin := filepath.Join(base, "canaryline-steps")
	kc := filepath.Join(base, "kubeconfig")
	results, home := filepath.Join(base, "results"), filepath.Join(base, "home")
	for _, f := range []struct{ from, to string }{{stepsBinary(t), bin}, {kubeconfig, kc}} {
		data, err := os.ReadFile(f.from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.to, data, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{results, home} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{bin, kc, results, home} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + home, "KUBECONFIG=" + kc, "RESULTS_DIR=" + results}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := stepRun{stdout: stdout.String(), stderr: stderr.String(), results: map[string]string{}}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(results)
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(results, e.Name()))
		r.results[e.Name()] = string(data)
	}
	t.Logf("%s as %d:%d exit %d\n--- stderr:\n%s--- results: %v", name, uid, gid, r.code, r.stderr, r.results)
	return r
}

// worldReadableDir is a new directory, root's, 0755, removed when the test ends (t.TempDir's parents are 0700,
// closed to any other user).
func worldReadableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "canaryline-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestVerifyHealthRefusesAnEvidenceWorkspaceItCannotWrite: under Tekton, without fsGroup, the evidence volume's
// root is root:root 0755 and the step (uid 65532) cannot write it. The step refuses at once, before the analysis,
// naming the workspace and the fix, rather than judging the canary and then failing, which would roll a healthy
// release back. With the volume group-writable, as fsGroup makes it, the same run is healthy and writes the
// evidence.
func TestVerifyHealthRefusesAnEvidenceWorkspaceItCannotWrite(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	if r := a.shift(10, nil); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	workspace := filepath.Join(worldReadableDir(t), "evidence")
	if err := os.Mkdir(workspace, 0o755); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1", "INTERVAL": "1s", "COUNT": "2", "EVIDENCE_DIR": workspace}
	r := runStepAs(t, stepUser, stepUser, "verify-health", a.kubeconfig, env)
	if r.code != 2 {
		t.Errorf("exit %d; want 2 before the analysis", r.code)
	}
	for _, want := range []string{"param EVIDENCE_DIR:", "evidence workspace " + workspace, "permission denied",
		"taskRunTemplate.podTemplate.securityContext.fsGroup: 65532"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "analysing the canary") || len(r.results) != 0 {
		t.Errorf("the analysis ran (results %v):\n%s", r.results, r.stderr)
	}
	if entries, _ := os.ReadDir(workspace); len(entries) != 0 {
		t.Errorf("the workspace has %d entries; want none", len(entries))
	}

	// What fsGroup does: the volume's group is the pod's, and group-writable.
	if err := os.Chown(workspace, 0, stepUser); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(workspace, 0o2775); err != nil {
		t.Fatal(err)
	}
	r = runStepAs(t, stepUser, stepUser, "verify-health", a.kubeconfig, env)
	if r.code != 0 || r.results["VERDICT"] != "healthy" || r.results["EVIDENCE_ERROR"] != "" {
		t.Fatalf("with fsGroup: exit %d results %v; want 0 healthy, no EVIDENCE_ERROR", r.code, r.results)
	}
	if _, err := os.Stat(filepath.Join(workspace, "evidence.json")); err != nil {
		t.Errorf("with fsGroup: %v", err)
	}
}

// intervalsMeasured is how many intervals the analysis whose evidence is in dir measured: the measurements of its
// first check, which is measured first in every interval (a final comparison's verdict is not an interval).
func intervalsMeasured(t *testing.T, dir string) int {
	t.Helper()
	ev := readEvidence(t, dir)
	if len(ev.Checks) == 0 {
		t.Fatal("the evidence has no checks")
	}
	n := 0
	for _, m := range ev.Measurements {
		if m.Check == ev.Checks[0].Name && !strings.HasPrefix(m.Detail, "final: ") {
			n++
		}
	}
	return n
}
