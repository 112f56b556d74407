package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/canaryline/canaryline/internal/runtime/step"
	"github.com/canaryline/canaryline/internal/runtime/steps"
)

// Cold start budgets: a step reaches the API server, or rejects bad input, within StartupBudget of its exec, and
// reaches the API server within StartupRatio times the empty client program's time.
const (
	StartupBudget = 40 * time.Millisecond
	StartupRatio  = 1.3
	DefaultRuns   = 21
)

// runTimeout bounds one run: a step that has neither made a request nor exited by then is stuck.
const runTimeout = 10 * time.Second

// EmptyClientPackage is the empty client program, relative to the module root.
const EmptyClientPackage = "./internal/dev/bench/testdata/emptyclient"

// emptyClientUserAgent is the User-Agent the empty client program sends (its UserAgent constant).
const emptyClientUserAgent = "canaryline-bench/emptyclient"

// StartupOptions say what ColdStart runs.
type StartupOptions struct {
	Steps string // path to the canaryline-steps binary
	Empty string // path to the empty client program (BuildEmptyClient)
	Runs  int    // runs per figure, after one warm-up run; DefaultRuns when 0
}

// stepInput is, for one step, params that pass validation and lead to an API request, and one bad param that
// fails validation before any API request.
type stepInput struct {
	step  string
	valid []string // NAME=value
	bad   string   // NAME=value, in place of valid's NAME
}

var stepInputs = []stepInput{
	{steps.StartBuild, []string{"BUILD_CONFIG=app"}, "BUILD_CONFIG=App_1"},
	{steps.WaitBuild, []string{"BUILD_NAME=app-1"}, "TIMEOUT=soon"},
	{steps.ShiftCanary, []string{"APP=app", "IMAGE=registry.example.com/app@sha256:" + strings.Repeat("0123456789abcdef", 4),
		"WEIGHT=10", "RELEASE_ID=r1"}, "WEIGHT=abc"},
	{steps.VerifyHealth, []string{"APP=app", "RELEASE_ID=r1", "COUNT=1", "INTERVAL=1s"}, "COUNT=-1"},
	{steps.PromoteOrRollback, []string{"APP=app", "RELEASE_ID=r1", "DECISION=rollback"}, "DECISION=maybe"},
}

// probe is one program as ColdStart runs it: until its first API request, or, with badParam, until it exits.
type probe struct {
	figure    string
	path      string
	args      []string // argv, argv[0] included
	env       []string // the whole environment: nothing is inherited
	userAgent string   // of the program's API requests
	badParam  string   // NAME=value that must make the program exit 2 before any API request
}

// ColdStart measures how fast the steps of the multi-call binary start: the median wall time from exec to the
// first request at an API server (a local TLS server, through KUBECONFIG), for each step and for the empty client
// program, and from exec to exit 2 on a bad param, for each step. Runs are interleaved (every program's run 1,
// then every program's run 2, ...) so that noise on the machine falls on all alike, after one warm-up run each.
func ColdStart(ctx context.Context, o StartupOptions) ([]Measurement, error) {
	if o.Runs <= 0 {
		o.Runs = DefaultRuns
	}
	for what, path := range map[string]string{"canaryline-steps binary (Steps)": o.Steps, "empty client program (Empty)": o.Empty} {
		if path == "" {
			return nil, fmt.Errorf("cold start: no %s given", what)
		}
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("cold start: %s: %w", what, err)
		}
	}
	dir, err := os.MkdirTemp("", "canaryline-bench-startup-")
	if err != nil {
		return nil, fmt.Errorf("create a directory for the kubeconfig and results: %w", err)
	}
	defer os.RemoveAll(dir)
	srv := newAPIServer()
	defer srv.Close()
	probes, err := coldStartProbes(srv, dir, o)
	if err != nil {
		return nil, err
	}

	times := make([][]time.Duration, len(probes))
	for run := range o.Runs + 1 { // run 0 is the warm-up
		for i, p := range probes {
			d, err := srv.run(ctx, p)
			if err != nil {
				return nil, err
			}
			if run > 0 {
				times[i] = append(times[i], d)
			}
		}
	}
	return startupMeasurements(probes, times), nil
}

// coldStartProbes are the first-request probes of every step, then the empty client program's, then the
// bad-input probes of every step; their kubeconfig, HOME and RESULTS_DIR are in dir.
func coldStartProbes(srv *apiServer, dir string, o StartupOptions) ([]probe, error) {
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := srv.writeKubeconfig(kubeconfig); err != nil {
		return nil, err
	}
	home, results := filepath.Join(dir, "home"), filepath.Join(dir, "results")
	for _, d := range []string{home, results} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	common := []string{"KUBECONFIG=" + kubeconfig, "HOME=" + home, "RESULTS_DIR=" + results}

	var first, bad []probe
	for _, in := range stepInputs {
		p := probe{figure: "cold start to first API request: " + in.step, path: o.Steps,
			args: []string{steps.MultiCallName, in.step}, env: append(slices.Clone(common), in.valid...),
			userAgent: "canaryline/" + in.step}
		first = append(first, p)
		p.figure = "exit on bad input: " + in.step
		p.env, p.badParam = append(slices.Clone(common), withParam(in.valid, in.bad)...), in.bad
		bad = append(bad, p)
	}
	empty := probe{figure: "cold start to first API request: empty client program", path: o.Empty,
		args: []string{"emptyclient"}, env: common, userAgent: emptyClientUserAgent}
	return append(append(first, empty), bad...), nil
}

// withParam is env with kv (NAME=value) in place of NAME's value, or added.
func withParam(env []string, kv string) []string {
	name, _, _ := strings.Cut(kv, "=")
	out := slices.DeleteFunc(slices.Clone(env), func(e string) bool { return strings.HasPrefix(e, name+"=") })
	return append(out, kv)
}

// startupMeasurements turns each probe's run times into its figure: medians in ms, held to StartupBudget, and
// the first-request figures also to StartupRatio times the empty client program's.
func startupMeasurements(probes []probe, times [][]time.Duration) []Measurement {
	var empty time.Duration
	for i, p := range probes {
		if p.userAgent == emptyClientUserAgent {
			empty = median(times[i])
		}
	}
	target := fmt.Sprintf("≤ %d ms", StartupBudget.Milliseconds())
	out := make([]Measurement, len(probes))
	for i, p := range probes {
		m := median(times[i])
		met := m <= StartupBudget
		out[i] = Measurement{Figure: p.figure, Value: float64(m) / float64(time.Millisecond), Unit: "ms", Target: target, Met: &met,
			Detail: fmt.Sprintf("median of %d runs", len(times[i]))}
		switch {
		case p.badParam != "":
			out[i].Detail += fmt.Sprintf("; %s exits %d with no API request", p.badParam, step.ExitInvalid)
		case p.userAgent == emptyClientUserAgent:
			out[i].Target, out[i].Met = "", nil // the yardstick
			out[i].Detail += "; links the steps' client libraries, loads KUBECONFIG, makes one GET"
		default:
			ratio := float64(m) / float64(empty)
			met = met && ratio <= StartupRatio
			out[i].Target = fmt.Sprintf("%s and ≤ %.1fx the empty client program", target, StartupRatio)
			out[i].Detail += fmt.Sprintf("; empty client program %s (ratio %.2f)", ms(empty), ratio)
		}
	}
	return out
}

// ms formats d in milliseconds, one decimal.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// median of ds (the mean of the middle two for an even count); 0 for none. ds is not reordered.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// BuildEmptyClient builds the empty client program of the module at root into dir and returns its path.
func BuildEmptyClient(ctx context.Context, root, dir string) (string, error) {
	out, err := filepath.Abs(filepath.Join(dir, "emptyclient"))
	if err != nil {
		return "", fmt.Errorf("resolve the empty client's path: %w", err)
	}
	if err := goBuild(ctx, root, "build", "-trimpath", "-ldflags=-s -w", "-o", out, EmptyClientPackage); err != nil {
		return "", err
	}
	return out, nil
}

// apiServer is a stand-in Kubernetes API server that answers every request 404 and tells the run in progress
// when its program's first request arrives.
type apiServer struct {
	*httptest.Server
	mu  sync.Mutex
	cur *serverRun
}

// serverRun is what the API server saw of one run: the requests with the run's User-Agent. Requests with
// another (late ones of an earlier, killed run) are not counted.
type serverRun struct {
	userAgent string
	first     chan time.Time // the first request's arrival
	requests  int
	path      string // of the first request
}

func newAPIServer() *apiServer {
	s := &apiServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // killed clients leave broken connections behind
	s.StartTLS()
	return s
}

func (s *apiServer) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	s.mu.Lock()
	if run := s.cur; run != nil && r.UserAgent() == run.userAgent {
		run.requests++
		if run.requests == 1 {
			run.path = r.URL.Path
			run.first <- now
		}
	}
	s.mu.Unlock()
	body, _ := json.Marshal(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound,
		Message: r.URL.Path + " not found"})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write(body)
}

// writeKubeconfig writes a kubeconfig for the server to path: its CA, a dummy bearer token, namespace "bench".
func (s *apiServer) writeKubeconfig(path string) error {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["bench"] = &clientcmdapi.Cluster{Server: s.URL, CertificateAuthorityData: ca}
	cfg.AuthInfos["bench"] = &clientcmdapi.AuthInfo{Token: "bench-token"}
	cfg.Contexts["bench"] = &clientcmdapi.Context{Cluster: "bench", AuthInfo: "bench", Namespace: "bench"}
	cfg.CurrentContext = "bench"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write the benchmark's kubeconfig: %w", err)
	}
	return nil
}

// run runs p once and returns the wall time from just before its exec to its first API request (then it is
// killed), or, for a bad-input probe, to its exit.
func (s *apiServer) run(ctx context.Context, p probe) (time.Duration, error) {
	sr := &serverRun{userAgent: p.userAgent, first: make(chan time.Time, 1)}
	s.mu.Lock()
	s.cur = sr
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.cur = nil
		s.mu.Unlock()
	}()
	pr, err := startProbe(p)
	if err != nil {
		return 0, err
	}
	defer pr.timeout.Stop()
	if p.badParam != "" {
		return s.badInput(ctx, p, sr, pr)
	}
	return pr.firstRequest(ctx, p, sr)
}

// probeRun is one started run of a probe: its process, its stderr, when it started, and its exit.
type probeRun struct {
	cmd     *exec.Cmd
	stderr  bytes.Buffer
	start   time.Time
	exited  chan error
	timeout *time.Timer
}

// startProbe starts p's process (its stdout goes to /dev/null) and the run's timeout.
func startProbe(p probe) (*probeRun, error) {
	pr := &probeRun{cmd: exec.Command(p.path), exited: make(chan error, 1)}
	pr.cmd.Args, pr.cmd.Env = p.args, p.env
	pr.cmd.Stderr = &pr.stderr
	pr.start = time.Now()
	if err := pr.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", p.figure, p.path, err)
	}
	go func() { pr.exited <- pr.cmd.Wait() }()
	pr.timeout = time.NewTimer(runTimeout)
	return pr, nil
}

// kill kills the process (SIGKILL) and waits for it.
func (pr *probeRun) kill() {
	_ = pr.cmd.Process.Kill()
	<-pr.exited
}

// badInput waits for a bad-input probe to exit, and checks that it made no API request and exited with
// step.ExitInvalid naming the param.
func (s *apiServer) badInput(ctx context.Context, p probe, sr *serverRun, pr *probeRun) (time.Duration, error) {
	var err error
	select {
	case err = <-pr.exited:
	case <-pr.timeout.C:
		pr.kill()
		return 0, fmt.Errorf("%s: still running after %s with %s; stderr:\n%s", p.figure, runTimeout, p.badParam, pr.stderr.Bytes())
	case <-ctx.Done():
		pr.kill()
		return 0, ctx.Err()
	}
	took := time.Since(pr.start)
	s.mu.Lock()
	n, path := sr.requests, sr.path
	s.mu.Unlock()
	if n > 0 {
		return 0, fmt.Errorf("%s: with %s the step made %d API request(s) (first %s) before exiting", p.figure, p.badParam, n, path)
	}
	name, _, _ := strings.Cut(p.badParam, "=")
	var exitErr *exec.ExitError
	switch {
	case !errors.As(err, &exitErr) || exitErr.ExitCode() != step.ExitInvalid:
		return 0, fmt.Errorf("%s: with %s the step ended with %v, want exit %d; stderr:\n%s", p.figure, p.badParam, err, step.ExitInvalid, pr.stderr.Bytes())
	case !strings.Contains(pr.stderr.String(), "param "+name+":"):
		return 0, fmt.Errorf("%s: with %s the step exited %d without naming param %s; stderr:\n%s", p.figure, p.badParam, step.ExitInvalid, name, pr.stderr.Bytes())
	}
	return took, nil
}

// firstRequest waits for the probe's first API request, then kills it.
func (pr *probeRun) firstRequest(ctx context.Context, p probe, sr *serverRun) (time.Duration, error) {
	select {
	case at := <-sr.first:
		pr.kill()
		return at.Sub(pr.start), nil
	case err := <-pr.exited:
		select {
		case at := <-sr.first: // it made its request and exited on the answer, before the kill
			return at.Sub(pr.start), nil
		default:
		}
		return 0, fmt.Errorf("%s: exited (%v) before any API request; stderr:\n%s", p.figure, err, pr.stderr.Bytes())
	case <-pr.timeout.C:
		pr.kill()
		return 0, fmt.Errorf("%s: no API request within %s; stderr:\n%s", p.figure, runTimeout, pr.stderr.Bytes())
	case <-ctx.Done():
		pr.kill()
		return 0, ctx.Err()
	}
}
