package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
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

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/devclustertest"
	"github.com/canaryline/canaryline/internal/dev/faultproxy"
	"github.com/canaryline/canaryline/internal/runtime/kubeclient/kubeclienttest"
	"github.com/canaryline/canaryline/internal/runtime/release"
	"github.com/canaryline/canaryline/internal/tools/bundle"
	"github.com/canaryline/canaryline/internal/tools/runner"
	"github.com/canaryline/canaryline/internal/tools/tektonrun"
)

// runPipeline runs a Pipeline of pipelines/ with canaryline run's runner, its steps acting as the pipeline's
// ServiceAccount (bound to the shipped Role) on the local control plane.
func runPipeline(t *testing.T, a *app, file string, params map[string]string) (*runner.Summary, string, error) {
	t.Helper()
	var out bytes.Buffer
	params["app"], params["namespace"] = "shop", a.ns
	sum, err := runner.Run(context.Background(), runner.Options{Pipeline: filepath.Join("../../pipelines", file), TasksDir: "../../tasks",
		Params: params, Steps: stepsBinary(t), Env: []string{"KUBECONFIG=" + a.kubeconfig, "PATH=/usr/bin:/bin", "HOME=" + t.TempDir()},
		Namespace: a.ns, Out: &out})
	if sum != nil {
		t.Logf("run log:\n%s\n%s", out.String(), sum.Table())
	}
	return sum, out.String(), err
}

func status(sum *runner.Summary, task string) string {
	for _, tr := range sum.Tasks {
		if tr.Name == task {
			return tr.Status
		}
	}
	return "absent"
}

// appWithBuildConfig is a stable application with a Route and a BuildConfig of the same name.
func appWithBuildConfig(t *testing.T, replicas int32) *app {
	t.Helper()
	a := newApp(t, "route", replicas)
	if _, err := buildclient.NewForConfigOrDie(cluster.Config()).BuildV1().BuildConfigs(a.ns).Create(context.Background(),
		newBuildConfig("shop", map[string]string{devcluster.SimLineInterval: "5ms"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRunCanaryReleasePromotes(t *testing.T) {
	t.Parallel()
	a := appWithBuildConfig(t, 2)
	sum, _, err := runPipeline(t, a, "canary-release-1.yaml", map[string]string{"git-revision": commitA, "interval": "1s", "count": "2"})
	if err != nil || sum.Status != runner.Succeeded {
		t.Fatalf("run: %v (%v)", sum.Status, err)
	}
	for task, want := range map[string]string{"start-build": "Succeeded", "wait-build": "Succeeded", "shift-1": "Succeeded",
		"verify-1": "Succeeded", "promote": "Succeeded", "end-release": "Succeeded"} {
		if got := status(sum, task); got != want {
			t.Errorf("task %s: %s; want %s", task, got, want)
		}
	}
	img := sum.Results["image-url"]
	st, _ := a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), "shop", metav1.GetOptions{})
	if !strings.Contains(img, "@sha256:") || st.Spec.Template.Spec.Containers[0].Image != img || sum.Results["verdict"] != "healthy" || sum.Results["decision"] != "promote" {
		t.Errorf("results %v; stable image %s", sum.Results, st.Spec.Template.Spec.Containers[0].Image)
	}
	if a.exists("deployment", "shop-canary") {
		t.Error("the canary is still there")
	}
}

// TestRunFailureIsRolledBackByFinally: an analysis that fails mid-run stops the pipeline; the finally task, with
// $(tasks.status) Failed, rolls the release back.
func TestRunFailureIsRolledBackByFinally(t *testing.T) {
	t.Parallel()
	a := appWithBuildConfig(t, 2)
	sum, _, err := runPipeline(t, a, "canary-release.yaml", map[string]string{"git-revision": commitA, "interval": "1s", "count": "3",
		"http-urls": "http://127.0.0.1:1/", "failure-limit": "0"})
	if err == nil || sum.Status != runner.Failed {
		t.Fatalf("run: %v, %v; want a failed run", sum.Status, err)
	}
	for task, want := range map[string]string{"shift-1": "Succeeded", "verify-1": "Failed", "shift-2": "None", "promote": "None", "end-release": "Succeeded"} {
		if got := status(sum, task); got != want {
			t.Errorf("task %s: %s; want %s", task, got, want)
		}
	}
	st, _ := a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), "shop", metav1.GetOptions{})
	if st.Spec.Template.Spec.Containers[0].Image != stableImage || a.exists("deployment", "shop-canary") {
		t.Errorf("after the rollback: stable image %s, canary exists %v", st.Spec.Template.Spec.Containers[0].Image, a.exists("deployment", "shop-canary"))
	}
	if last := a.lease().Annotations["canaryline.dev/last-release"]; !strings.Contains(last, `"decision":"rollback"`) || !strings.Contains(last, "ended with Failed") {
		t.Errorf("last release %s", last)
	}
}

func TestRunBlueGreenPromotes(t *testing.T) {
	t.Parallel()
	a := appWithBuildConfig(t, 2)
	sum, _, err := runPipeline(t, a, "blue-green.yaml", map[string]string{"git-revision": commitA, "interval": "1s", "count": "2"})
	if err != nil || sum.Status != runner.Succeeded || status(sum, "switch-to-green") != "Succeeded" {
		t.Fatalf("run: %v (%v)", sum.Status, err)
	}
	st, _ := a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), "shop", metav1.GetOptions{})
	if st.Spec.Template.Spec.Containers[0].Image != sum.Results["image-url"] {
		t.Errorf("stable image %s; want %s", st.Spec.Template.Spec.Containers[0].Image, sum.Results["image-url"])
	}
}

// TestRunWhenAndUnsupported: a task whose when expression is false is skipped (None) and a task using its results
// is skipped too, as in Tekton; a feature the runner does not have is a clear error, not a skip.
func TestRunWhenAndUnsupported(t *testing.T) {
	t.Parallel()
	devclustertest.Require(t, cluster)
	dir := t.TempDir()
	pipeline := `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: when-test}
spec:
  params:
    - {name: go, type: string, default: "no"}
  tasks:
    - name: guarded
      when: [{input: "$(params.go)", operator: in, values: ["yes"]}]
      taskRef: {name: promote-or-rollback}
      params: [{name: APP, value: shop}, {name: PIPELINE_STATUS, value: Succeeded}]
    - name: uses-result
      runAfter: [guarded]
      taskRef: {name: promote-or-rollback}
      params: [{name: APP, value: shop}, {name: PIPELINE_STATUS, value: "$(tasks.guarded.results.DECISION)"}]
`
	_ = os.WriteFile(filepath.Join(dir, "when.yaml"), []byte(pipeline), 0o644)
	sum, err := runner.Run(context.Background(), runner.Options{Pipeline: filepath.Join(dir, "when.yaml"), TasksDir: "../../tasks",
		Steps: stepsBinary(t), Out: &bytes.Buffer{}})
	if err != nil || status(sum, "guarded") != "None" || status(sum, "uses-result") != "None" || sum.Status != "Completed" {
		t.Errorf("run: %v, guarded %s, uses-result %s, status %s", err, status(sum, "guarded"), status(sum, "uses-result"), sum.Status)
	}
	matrix := `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: matrix-test}
spec:
  tasks:
    - name: fan-out
      taskRef: {name: promote-or-rollback}
      matrix: {params: [{name: APP, value: [shop, cart]}]}
      params: [{name: PIPELINE_STATUS, value: Succeeded}]
`
	_ = os.WriteFile(filepath.Join(dir, "matrix.yaml"), []byte(matrix), 0o644)
	_, err = runner.Run(context.Background(), runner.Options{Pipeline: filepath.Join(dir, "matrix.yaml"), TasksDir: "../../tasks", Steps: stepsBinary(t), Out: &bytes.Buffer{}})
	var unsupported *runner.UnsupportedError
	if !errors.As(err, &unsupported) || !strings.Contains(err.Error(), "matrix") {
		t.Errorf("matrix: %v; want an UnsupportedError naming it", err)
	}
}

// TestRunInterruptedRollsBack: an interrupted run (Ctrl-C) stops its running step, and the finally task still
// runs and rolls the release back. canaryline status reads the outcome.
func TestRunInterruptedRollsBack(t *testing.T) {
	t.Parallel()
	a := appWithBuildConfig(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // interrupt while verify-1 measures
		for ctx.Err() == nil {
			if a.exists("deployment", "shop-canary") {
				time.Sleep(1500 * time.Millisecond)
				cancel()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	var out bytes.Buffer
	sum, err := runner.Run(ctx, runner.Options{Pipeline: "../../pipelines/canary-release.yaml", TasksDir: "../../tasks",
		Params: map[string]string{"app": "shop", "namespace": a.ns, "git-revision": commitA, "interval": "1s", "count": "20"},
		Steps:  stepsBinary(t), Env: []string{"KUBECONFIG=" + a.kubeconfig, "PATH=/usr/bin:/bin", "HOME=" + t.TempDir()},
		Namespace: a.ns, Out: &out})
	t.Logf("%s", out.String())
	if err == nil || sum.Status != runner.Failed || status(sum, "end-release") != runner.Succeeded {
		t.Fatalf("interrupted run: %v, status %v, end-release %s", err, sum.Status, status(sum, "end-release"))
	}
	if a.exists("deployment", "shop-canary") {
		t.Error("the canary is still there after the interrupted run")
	}
	s, err := release.ReadStatus(context.Background(), kubeclienttest.Wrap(kubernetes.NewForConfigOrDie(cluster.Config())), a.ns, "shop")
	if err != nil || s.Last == nil || s.Last.Decision != "rollback" || s.Holder != "" || s.CanaryImage != "" || s.StableImage != stableImage {
		t.Errorf("status after the interrupted run: %+v, %v", s, err)
	}
	var w bytes.Buffer
	s.Write(&w)
	if !strings.Contains(w.String(), "lock          free") || !strings.Contains(w.String(), ": rollback at") {
		t.Errorf("status output:\n%s", w.String())
	}
}

// TestRunTasksFromABundle: the Tasks come from a Tekton bundle in a real registry.
func TestRunTasksFromABundle(t *testing.T) {
	t.Parallel()
	devclustertest.Require(t, cluster)
	reg := httptest.NewServer(registry.New())
	defer reg.Close()
	rs, err := bundle.Load("../..")
	if err != nil {
		t.Fatal(err)
	}
	img, err := bundle.Image(rs)
	if err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimPrefix(reg.URL, "http://") + "/canaryline/bundle:test"
	if _, err := bundle.Push(context.Background(), img, ref, true); err != nil {
		t.Fatal(err)
	}
	a := appWithBuildConfig(t, 2)
	var out bytes.Buffer
	sum, err := runner.Run(context.Background(), runner.Options{Pipeline: "../../pipelines/canary-release-1.yaml", Bundle: ref, Insecure: true,
		Params: map[string]string{"app": "shop", "namespace": a.ns, "git-revision": commitA, "interval": "1s", "count": "1"},
		Steps:  stepsBinary(t), Env: []string{"KUBECONFIG=" + a.kubeconfig, "PATH=/usr/bin:/bin", "HOME=" + t.TempDir()},
		Namespace: a.ns, Out: &out})
	if err != nil || sum.Status != runner.Succeeded || sum.Results["decision"] != "promote" {
		t.Fatalf("run with the bundle's Tasks: %v, %v\n%s", sum, err, out.String())
	}
	if _, err := runner.Run(context.Background(), runner.Options{Pipeline: "../../pipelines/canary-release-1.yaml", Bundle: ref + "-missing",
		Insecure: true, Steps: stepsBinary(t), Out: &out}); err == nil {
		t.Error("a missing bundle was not an error")
	}
}

var (
	cliOnce sync.Once
	cliBin  string
	cliErr  error
)

// canarylineBinary builds the canaryline command once for the test binary.
func canarylineBinary(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "canaryline-cli-")
		if err != nil {
			cliErr = err
			return
		}
		cliBin = filepath.Join(dir, "canaryline")
		if out, err := exec.Command("go", "build", "-o", cliBin, "github.com/canaryline/canaryline/cmd/canaryline").CombinedOutput(); err != nil {
			cliErr, cliBin = err, string(out)
		}
	})
	if cliErr != nil {
		t.Fatalf("build canaryline: %v\n%s", cliErr, cliBin)
	}
	return cliBin
}

// lockedBuffer is a bytes.Buffer read while a process writes it.
type lockedBuffer = tektonrun.LockedBuffer

// cliRun is `canaryline run` as a process leading a process group of its own, as a terminal starts a command:
// the terminal's Ctrl-C goes to the whole group.
type cliRun struct {
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	exited         chan struct{}
	code           int
}

// startCLIRun runs pipelines/canary-release.yaml for app shop in ns with `canaryline run`.
func startCLIRun(t *testing.T, kubeconfig, ns string, params ...string) *cliRun {
	t.Helper()
	args := []string{"run", "../../pipelines/canary-release.yaml", "--tasks", "../../tasks", "--steps", stepsBinary(t),
		"--kubeconfig", kubeconfig, "--namespace", ns, "--param", "app=shop", "--param", "git-revision=" + commitA}
	for _, p := range params {
		args = append(args, "--param", p)
	}
	return startCLI(t, args...)
}

// startCLI runs `canaryline args...` (HOME and TMPDIR are the test's).
func startCLI(t *testing.T, args ...string) *cliRun {
	t.Helper()
	r := &cliRun{cmd: exec.Command(canarylineBinary(t), args...), exited: make(chan struct{})}
	r.cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "TMPDIR=" + t.TempDir()}
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(r.exited)
		err := r.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		} else if err != nil {
			r.code = -1
		}
	}()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default: // the test failed mid-way: end the group it started
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.exited
		}
		t.Logf("canaryline run: exit %d\n--- stderr:\n%s--- stdout:\n%s", r.code, r.stderr.String(), r.stdout.String())
	})
	return r
}

// interrupt sends SIGINT to the process group, as Ctrl-C in a terminal does.
func (r *cliRun) interrupt(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Errorf("interrupt: %v (the run had ended)", err)
	}
}

// until waits until cond holds (true) or the run ended without it (false).
func (r *cliRun) until(t *testing.T, what string, cond func() bool) bool {
	t.Helper()
	guard := time.After(3 * time.Minute) // against a hang only
	for !cond() {
		select {
		case <-r.exited:
			return cond()
		case <-guard:
			t.Fatalf("no %s after 3 minutes", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

// waitFor waits until cond holds; it fails the test when the run ended first.
func (r *cliRun) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !r.until(t, what, cond) {
		t.Fatalf("canaryline run exited (code %d) before %s", r.code, what)
	}
}

// wait waits for the run to end and returns its exit code.
func (r *cliRun) wait() int {
	<-r.exited
	return r.code
}

var runNameRE = regexp.MustCompile(`run (\S+): Pipeline canary-release`)

func (r *cliRun) runName(t *testing.T) string {
	t.Helper()
	m := runNameRE.FindStringSubmatch(r.stderr.String())
	if m == nil {
		t.Fatal("the run's name is not in its output")
	}
	return m[1]
}

// finallyGate holds the finally task's (promote-or-rollback's) writes at the API until opened: the test then
// interrupts while the rollback is surely under way.
type finallyGate struct {
	writing, release chan struct{}
	once, openOnce   sync.Once
}

func newFinallyGate() *finallyGate {
	return &finallyGate{writing: make(chan struct{}), release: make(chan struct{})}
}

func (g *finallyGate) afterMutation(_ int, r faultproxy.Request, _ int) {
	if r.UserAgent != "canaryline/promote-or-rollback" {
		return
	}
	g.once.Do(func() { close(g.writing) })
	<-g.release
}

func (g *finallyGate) started() bool {
	select {
	case <-g.writing:
		return true
	default:
		return false
	}
}

func (g *finallyGate) open() { g.openOnce.Do(func() { close(g.release) }) }

// interruptedTwice starts `canaryline run` through a finallyGate, interrupts it during the analysis, then again
// once the finally task's rollback has made its first write, and waits for the second interrupt to be reported
// (or the run to end, as when the interrupt stopped the rollback).
func interruptedTwice(t *testing.T, a *app) (*cliRun, *finallyGate) {
	t.Helper()
	g := newFinallyGate()
	_, kc := startFaultProxy(t, a.kubeconfig, faultproxy.Options{AfterMutation: g.afterMutation})
	t.Cleanup(g.open) // before the proxy closes (cleanups run last first)
	r := startCLIRun(t, kc, a.ns, "interval=1s", "count=60")
	r.waitFor(t, "the analysis", func() bool { return strings.Contains(r.stderr.String(), "[verify-1] analysing the canary") })
	r.interrupt(t)
	r.waitFor(t, "the finally task's first write", g.started)
	r.interrupt(t)
	if !r.until(t, "report of the second interrupt", func() bool { return strings.Contains(r.stderr.String(), "press Ctrl-C again") }) {
		t.Error("the run ended at the second interrupt, without reporting it")
	}
	return r, g
}

// TestRunSecondInterruptDoesNotStopTheRollback: Ctrl-C during the analysis cancels the run; a second Ctrl-C while
// the finally task rolls back is reported and does not stop it (the steps run in process groups of their own,
// so the terminal's SIGINT reaches canaryline only). The rollback completes and the lock is released.
func TestRunSecondInterruptDoesNotStopTheRollback(t *testing.T) {
	t.Parallel()
	a := appWithBuildConfig(t, 2)
	before := a.routerState()
	r, g := interruptedTwice(t, a)
	id := r.runName(t)
	g.open()
	code := r.wait()
	if code == 0 || code == 130 {
		t.Errorf("exit code %d; want a failed run's (1)", code)
	}
	if want := "the finally task end-release is rolling back release " + id + " of shop"; !strings.Contains(r.stderr.String(), want) {
		t.Errorf("the second interrupt was not reported as %q", want)
	}
	if !regexp.MustCompile(`end-release \(finally\)\s+promote-or-rollback\s+Succeeded`).MatchString(r.stdout.String()) {
		t.Error("end-release did not succeed")
	}
	if a.exists("deployment", "shop-canary") || a.exists("service", "shop-canary") || a.routerState() != before {
		t.Errorf("after the run: canary Deployment exists %v, Service exists %v, Route restored %v",
			a.exists("deployment", "shop-canary"), a.exists("service", "shop-canary"), a.routerState() == before)
	}
	l := a.lease()
	last := l.Annotations["canaryline.dev/last-release"]
	if *l.Spec.HolderIdentity != "" || !strings.Contains(last, `"decision":"rollback"`) || !strings.Contains(last, id) {
		t.Errorf("Lease after the run: holder %q, last release %s", *l.Spec.HolderIdentity, last)
	}
}

// TestRunThirdInterruptForcesExit: a third Ctrl-C kills the running steps and exits 130, saying that the release
// stays recorded on its Lease and how to end it; the Lease still holds the release, and the command the message
// gives rolls it back.
func TestRunThirdInterruptForcesExit(t *testing.T) {
	t.Parallel()
	a := appWithBuildConfig(t, 2)
	before := a.routerState()
	r, g := interruptedTwice(t, a)
	id := r.runName(t)
	r.interrupt(t)
	if code := r.wait(); code != 130 {
		t.Errorf("exit code %d; want 130", code)
	}
	for _, want := range []string{"stays recorded on its Lease canaryline-shop in namespace " + a.ns, "once LOCK_TTL (10m) has passed",
		"DECISION=rollback RELEASE_ID=" + id + " RESULTS_DIR=$(mktemp -d) " + stepsBinary(t) + " promote-or-rollback\n"} {
		if !strings.Contains(r.stderr.String(), want) {
			t.Errorf("the forced exit does not say %q", want)
		}
	}
	if n := stepProcesses(stepsBinary(t), r.cmd.Args); n != 0 {
		t.Errorf("%d step processes of the run still run", n)
	}
	s, err := release.ReadStatus(context.Background(), kubeclienttest.Wrap(kubernetes.NewForConfigOrDie(cluster.Config())), a.ns, "shop")
	if err != nil || s.InProgress == nil || s.InProgress.ID != id || s.Holder != id {
		t.Errorf("status after the forced exit: %+v, %v; want release %s in progress, holding the lock", s, err, id)
	}
	// The command the message gives ends the release now.
	g.open()
	line := regexp.MustCompile(`(?m)^\s+(KUBECONFIG=.* promote-or-rollback)$`).FindStringSubmatch(r.stderr.String())
	if line == nil {
		t.Fatal("no rollback command in the message")
	}
	cmd := exec.Command("/bin/sh", "-c", line[1])
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "TMPDIR=" + t.TempDir()} // mktemp's
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line[1], err, out)
	}
	l := a.lease()
	if a.exists("deployment", "shop-canary") || a.routerState() != before || *l.Spec.HolderIdentity != "" ||
		!strings.Contains(l.Annotations["canaryline.dev/last-release"], `"decision":"rollback"`) {
		t.Errorf("after the printed rollback: canary exists %v, Route restored %v, Lease holder %q, %v",
			a.exists("deployment", "shop-canary"), a.routerState() == before, *l.Spec.HolderIdentity, l.Annotations)
	}
}

// stepProcesses counts the live processes of the steps binary whose KUBECONFIG is the one in args (the run's).
func stepProcesses(bin string, args []string) int {
	kc := ""
	for i, a := range args {
		if a == "--kubeconfig" && i+1 < len(args) {
			kc = args[i+1]
		}
	}
	n := 0
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil || !bytes.HasPrefix(data, []byte(bin+"\x00")) {
			continue
		}
		env, _ := os.ReadFile(filepath.Join(filepath.Dir(f), "environ"))
		stat, _ := os.ReadFile(filepath.Join(filepath.Dir(f), "stat"))
		if bytes.Contains(env, []byte("KUBECONFIG="+kc+"\x00")) && !bytes.Contains(stat, []byte(") Z ")) {
			n++
		}
	}
	return n
}

// TestRunPrintsResultsNotProduced: after a failed analysis, the Pipeline results of the tasks that did not run
// are printed as not produced, never as their $(tasks...) text.
func TestRunPrintsResultsNotProduced(t *testing.T) {
	t.Parallel()
	a := appWithBuildConfig(t, 2)
	r := startCLIRun(t, a.kubeconfig, a.ns, "interval=1s", "count=3", "http-urls=http://127.0.0.1:1/", "failure-limit=0")
	if code := r.wait(); code != 1 {
		t.Errorf("exit code %d; want 1 (a failed run)", code)
	}
	out := r.stdout.String()
	for _, want := range []string{"result verdict: not produced (task verify-3 did not run)\n",
		"result decision: not produced (task promote did not run)\n", "result image-url: "} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	if strings.Contains(out+r.stderr.String(), "$(tasks.") {
		t.Error("the output holds unresolved $(tasks...) text")
	}
}

// cliArgs are `canaryline run` of pipelines/FILE for app shop in ns, with flags.
func cliArgs(t *testing.T, file, kubeconfig, ns string, flags ...string) []string {
	return append([]string{"run", "../../pipelines/" + file, "--tasks", "../../tasks", "--steps", stepsBinary(t),
		"--kubeconfig", kubeconfig, "--namespace", ns, "--param", "app=shop"}, flags...)
}

// testRegistry is a real OCI registry (go-containerregistry's) on loopback holding team/app:v2, behind basic auth
// (user ci, password s3cret) when auth is set. It returns the tag and the image pinned by digest.
func testRegistry(t *testing.T, auth bool) (tag, pinned string) {
	t.Helper()
	h := registry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); auth && (!ok || u != "ci" || p != "s3cret") {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(host+"/team/app:v2", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "ci", Password: "s3cret"})); err != nil {
		t.Fatalf("push: %v", err)
	}
	digest, _ := img.Digest()
	return ref.String(), host + "/team/app@" + digest.String()
}

// TestRunTwoRunsAtOnceAreTwoReleases: two `canaryline run`s of one application started in the same second are two
// releases with two names: exactly one proceeds and is promoted, the other fails on the release lock (exit 5 from
// shift-canary, naming the holder), and its finally task leaves the winner's release alone.
func TestRunTwoRunsAtOnceAreTwoReleases(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	tag, pinned := testRegistry(t, false)
	args := cliArgs(t, "canary-release-prebuilt.yaml", a.kubeconfig, a.ns, "--param", "image="+tag, "--param", "insecure-registry=true",
		"--param", "interval=1s", "--param", "count=3")
	canarylineBinary(t)
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second))) // both start at the start of one second
	runs := []*cliRun{startCLI(t, args...), startCLI(t, args...)}
	codes := []int{runs[0].wait(), runs[1].wait()}
	names := []string{runs[0].runName(t), runs[1].runName(t)}
	if names[0] == names[1] {
		t.Fatalf("both runs are named %s: one release to the lock", names[0])
	}
	winner := -1
	for i, code := range codes {
		switch code {
		case 0:
			if winner >= 0 {
				t.Fatal("both runs proceeded")
			}
			winner = i
		default:
			if !regexp.MustCompile(`shift-1\s+shift-canary\s+Failed\s.*exit status 5`).MatchString(runs[i].stdout.String()) {
				t.Errorf("run %s: exit %d; want shift-1 to fail with exit 5", names[i], code)
			}
			if !strings.Contains(runs[i].stderr.String(), `held by "`+names[1-i]+`"`) {
				t.Errorf("run %s does not name the holder %s", names[i], names[1-i])
			}
		}
	}
	if winner < 0 {
		t.Fatal("neither run proceeded")
	}
	if !strings.Contains(runs[winner].stdout.String(), "result decision: promote\n") {
		t.Errorf("the winner %s was not promoted", names[winner])
	}
	st, _ := a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), "shop", metav1.GetOptions{})
	last := a.lease().Annotations["canaryline.dev/last-release"]
	if st.Spec.Template.Spec.Containers[0].Image != pinned || !strings.Contains(last, names[winner]) || !strings.Contains(last, `"decision":"promote"`) {
		t.Errorf("stable image %s (want %s), last release %s; want the winner's promotion", st.Spec.Template.Spec.Containers[0].Image, pinned, last)
	}
}

var (
	evidenceRE   = regexp.MustCompile(`(?m)^\s+evidence: (\S+)$`)
	workspacesRE = regexp.MustCompile(`(?m)^  evidence\s+(\S+)$`)
)

// TestRunKeepsTheEvidence: after a run, the evidence it prints (verify-health's report, and the chart next to it)
// exists: in the workspace directory it prints when no --workspace was given, under --workspace DIR, and in the
// directory of --workspace evidence=DIR.
func TestRunKeepsTheEvidence(t *testing.T) {
	t.Parallel()
	root, evidence := t.TempDir(), t.TempDir()
	for _, tc := range []struct {
		name  string
		flags []string
		want  string // the evidence workspace's directory; "" is the one printed
	}{
		{"no --workspace", nil, ""},
		{"--workspace DIR", []string{"--workspace", root}, filepath.Join(root, "evidence")},
		{"--workspace evidence=DIR", []string{"--workspace", "evidence=" + evidence}, evidence},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := appWithBuildConfig(t, 2)
			r := startCLI(t, cliArgs(t, "canary-release-1.yaml", a.kubeconfig, a.ns, append([]string{"--param", "git-revision=" + commitA,
				"--param", "interval=1s", "--param", "count=2"}, tc.flags...)...)...)
			if code := r.wait(); code != 0 {
				t.Fatalf("exit %d", code)
			}
			out := r.stdout.String()
			m := evidenceRE.FindStringSubmatch(out)
			if m == nil {
				t.Fatal("the output does not say where the evidence is")
			}
			for _, f := range []string{m[1], filepath.Join(filepath.Dir(m[1]), "chart.svg")} {
				if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
					t.Errorf("%s after the run: %v", f, err)
				}
			}
			ws := workspacesRE.FindStringSubmatch(out)
			if ws == nil {
				t.Fatal("the output does not say where the workspaces are")
			}
			want := tc.want
			if want == "" {
				want = ws[1]
			}
			if ws[1] != want || m[1] != filepath.Join(want, "verify-1", "report.md") {
				t.Errorf("workspace evidence %s, evidence %s; want %s and report.md under its subPath verify-1", ws[1], m[1], want)
			}
		})
	}
}

// TestRunDockerconfigWorkspace: `--workspace dockerconfig=DIR` (DIR holding config.json, as ~/.docker does) gives
// resolve-image the credentials of a registry that requires them; without it the registry's refusal is reported
// (exit 2, param IMAGE) and nothing is released. The directory given is left as it was.
func TestRunDockerconfigWorkspace(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	tag, pinned := testRegistry(t, true)
	dockerConfig := t.TempDir()
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, strings.SplitN(tag, "/", 2)[0], base64.StdEncoding.EncodeToString([]byte("ci:s3cret")))
	if err := os.WriteFile(filepath.Join(dockerConfig, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--param", "image=" + tag, "--param", "insecure-registry=true", "--param", "interval=1s", "--param", "count=1"}

	without := startCLI(t, cliArgs(t, "canary-release-prebuilt.yaml", a.kubeconfig, a.ns, flags...)...)
	if code := without.wait(); code != 1 || !regexp.MustCompile(`resolve-image\s+wait-build\s+Failed\s.*exit status 2`).MatchString(without.stdout.String()) ||
		!strings.Contains(without.stderr.String(), "refused access") {
		t.Errorf("without credentials: exit %d; want 1 with resolve-image failing (exit 2), the registry's refusal reported", code)
	}
	if a.exists("deployment", "shop-canary") {
		t.Error("a canary was made without the image")
	}

	with := startCLI(t, cliArgs(t, "canary-release-prebuilt.yaml", a.kubeconfig, a.ns, append(flags, "--workspace", "dockerconfig="+dockerConfig)...)...)
	if code := with.wait(); code != 0 || !strings.Contains(with.stdout.String(), "result image-url: "+pinned+"\n") ||
		!strings.Contains(with.stdout.String(), "result decision: promote\n") {
		t.Errorf("with --workspace dockerconfig: exit %d; want 0, image-url %s and promote", code, pinned)
	}
	if data, err := os.ReadFile(filepath.Join(dockerConfig, "config.json")); err != nil || string(data) != cfg {
		t.Errorf("the docker config directory after the run: %q, %v; want it as it was", data, err)
	}
}

// TestRunUnknownWorkspaceIsRefused: a --workspace for a workspace the Pipeline does not declare exits 2 naming it
// and the workspaces there are; nothing runs.
func TestRunUnknownWorkspaceIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := startCLI(t, cliArgs(t, "canary-release-prebuilt.yaml", filepath.Join(dir, "no-kubeconfig"), "default", "--workspace", "nope="+dir)...)
	if code := r.wait(); code != 2 || !strings.Contains(r.stderr.String(), "--workspace nope="+dir+": Pipeline canary-release-prebuilt has no workspace nope; give one of: evidence, dockerconfig") {
		t.Errorf("exit %d; want 2 naming workspace nope and the Pipeline's workspaces", code)
	}
	if strings.Contains(r.stderr.String(), ": Pipeline canary-release-prebuilt\n") {
		t.Error("the run started")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the refused run made %d entries in %s", len(entries), dir)
	}
}
