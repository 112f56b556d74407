package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	buildv1 "github.com/openshift/api/build/v1"
	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/devclustertest"
	"github.com/canaryline/canaryline/internal/dev/faultproxy"
	"github.com/canaryline/canaryline/internal/tools/runner"
)

// killStep sends SIGKILL to the running processes of step name that use kubeconfig (this test binary's
// canaryline-steps, found in /proc by command line and environment) and returns how many it killed.
func killStep(bin, name, kubeconfig string) int {
	n := 0
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if len(args) < 2 || args[0] != bin || args[1] != name {
			continue
		}
		env, _ := os.ReadFile(filepath.Join(filepath.Dir(f), "environ"))
		if bytes.Contains(append([]byte("\x00"), env...), []byte("\x00KUBECONFIG="+kubeconfig+"\x00")) {
			var pid int
			fmt.Sscanf(filepath.Base(filepath.Dir(f)), "%d", &pid)
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				n++
			}
		}
	}
	return n
}

// crasher kills step right after its k-th mutating API request took effect, before the step reads the answer.
// It counts the step's requests by their User-Agent (canaryline/<step>).
type crasher struct {
	bin, step  string
	kubeconfig string
	k          int
	// every kills every attempt after its k-th mutating request (the count starts again after each kill),
	// not only the first.
	every  bool
	mu     sync.Mutex
	n      int
	kills  int
	killed string // the request it was killed after
}

func (c *crasher) afterMutation(_ int, r faultproxy.Request, _ int) {
	if r.UserAgent != "canaryline/"+c.step {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if c.n != c.k || !c.every && c.killed != "" {
		return
	}
	c.n = 0 // the next attempt counts from 1
	c.killed = r.String()
	if killStep(c.bin, c.step, c.kubeconfig) == 0 {
		c.killed = ""
		return
	}
	c.kills++
	time.Sleep(200 * time.Millisecond) // let it die before the answer goes back
}

// result is the request the step was killed after ("" when it was not) and how many it made.
func (c *crasher) result() (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.killed, c.n
}

// endState is what a release leaves in the application's namespace, normalised for comparing runs: the
// Deployments' images, replicas and canaryline annotations, the Services' selectors, the Route, the Lease's holder
// and release records (without times), and the builds.
func endState(t *testing.T, a *app) string {
	t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	deps, err := a.kube.AppsV1().Deployments(a.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deps.Items {
		out["deployment/"+d.Name] = []any{d.Spec.Template.Spec.Containers[0].Image, *d.Spec.Replicas, d.Spec.Template.Labels,
			canarylineAnnotations(d.Annotations)}
	}
	svcs, _ := a.kube.CoreV1().Services(a.ns).List(ctx, metav1.ListOptions{})
	for _, s := range svcs.Items {
		sel := map[string]string{}
		for k, v := range s.Spec.Selector {
			if k == "pod-template-hash" {
				v = "pinned" // the hash differs between runs' ReplicaSets
			}
			sel[k] = v
		}
		out["service/"+s.Name] = []any{sel, canarylineAnnotations(s.Annotations)}
	}
	out["router"] = a.routerState()
	if routes, err := a.routes.RouteV1().Routes(a.ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, r := range routes.Items {
			if r.Name != "shop" { // the test Route of MATCH or TEST_HOST
				out["route/"+r.Name] = []any{r.Spec.Host, r.Spec.To, r.Spec.AlternateBackends, canarylineAnnotations(r.Annotations)}
			}
		}
	}
	if l, err := a.kube.CoordinationV1().Leases(a.ns).Get(ctx, "canaryline-shop", metav1.GetOptions{}); err == nil {
		holder := ""
		if l.Spec.HolderIdentity != nil {
			holder = *l.Spec.HolderIdentity
		}
		out["lease"] = []any{holder, withoutTimes(l.Annotations)}
	}
	builds, err := buildclient.NewForConfigOrDie(cluster.Config()).BuildV1().Builds(a.ns).List(ctx, metav1.ListOptions{})
	if err == nil {
		var names []string
		for _, b := range builds.Items {
			phase := b.Status.Phase
			if !slices.Contains([]buildv1.BuildPhase{buildv1.BuildPhaseComplete, buildv1.BuildPhaseFailed, buildv1.BuildPhaseError,
				buildv1.BuildPhaseCancelled}, phase) {
				phase = "running" // New, Pending or Running: the simulator moves it on in its own time
			}
			names = append(names, b.Name+" "+string(phase))
		}
		sort.Strings(names)
		out["builds"] = names
	}
	data, _ := json.MarshalIndent(out, "", " ")
	return strings.ReplaceAll(string(data), a.ns, "NS")
}

func canarylineAnnotations(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if strings.Contains(k, "canaryline") || strings.Contains(k, "haproxy") {
			out[k] = v
		}
	}
	return out
}

// withoutTimes drops the timestamps from the Lease's JSON annotations.
func withoutTimes(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		var obj map[string]any
		if json.Unmarshal([]byte(v), &obj) != nil {
			out[k] = v
			continue
		}
		for f := range obj {
			if strings.HasSuffix(f, "At") {
				delete(obj, f)
			}
		}
		if uids, ok := obj["uids"].(map[string]any); ok {
			for name := range uids {
				uids[name] = "UID" // which objects the release made, not their UIDs (new ones after a rerun)
			}
		}
		out[k] = obj
	}
	return out
}

// crashScenario is one step run on a prepared application.
type crashScenario struct {
	name, step string
	setup      func(t *testing.T) *app
	env        func(a *app) map[string]string
	wantCode   int
	// mutations is how many mutating requests an undisturbed run makes at least (a floor, so that the test
	// cannot pass by making none).
	mutations int
	// rerunCode is the exit code of the rerun after a kill, when not wantCode.
	rerunCode *int
	// readOnly is a step that must make no mutating request at all.
	readOnly bool
}

func crashScenarios() []crashScenario {
	withBuild := func(annotations map[string]string) func(t *testing.T) *app {
		return func(t *testing.T) *app {
			a := newApp(t, "route", 2)
			if _, err := buildclient.NewForConfigOrDie(cluster.Config()).BuildV1().BuildConfigs(a.ns).Create(context.Background(),
				newBuildConfig("shop", annotations), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			return a
		}
	}
	shifted := func(t *testing.T) *app {
		a := newApp(t, "route", 2)
		if r := a.shift(20, map[string]string{"BASELINE": "true"}); r.code != 0 {
			t.Fatalf("shift: exit %d", r.code)
		}
		return a
	}
	shiftEnv := map[string]string{"APP": "shop", "ROUTER": "route", "IMAGE": canaryImage, "WEIGHT": "20", "BASELINE": "true",
		"RELEASE_ID": "shop-release-1", "READY_TIMEOUT": "60s"}
	withMatch := func(env map[string]string) map[string]string {
		e := map[string]string{"MATCH": "header X-Canary: always"}
		for k, v := range env {
			e[k] = v
		}
		return e
	}
	shiftedWithMatch := func(t *testing.T) *app {
		a := newApp(t, "route", 2)
		if r := a.shift(20, map[string]string{"BASELINE": "true", "MATCH": "header X-Canary: always"}); r.code != 0 {
			t.Fatalf("shift: exit %d", r.code)
		}
		return a
	}
	return []crashScenario{
		// MATCH on the route router: the test Route is a write of its own, after the Route's.
		{name: "shift-canary first shift with a test Route", step: "shift-canary", mutations: 7,
			setup: func(t *testing.T) *app { return newApp(t, "route", 2) },
			env:   func(*app) map[string]string { return withMatch(shiftEnv) }},
		{name: "rollback with a test Route", step: "promote-or-rollback", setup: shiftedWithMatch, mutations: 7,
			env: func(*app) map[string]string {
				return map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1", "DECISION": "auto", "PIPELINE_STATUS": "Failed",
					"REASON": "error rate 9% > 1%"}
			}},
		{name: "start-build", step: "start-build", setup: withBuild(map[string]string{devcluster.SimOutcome: "Hang"}), mutations: 1,
			env: func(*app) map[string]string {
				return map[string]string{"BUILD_CONFIG": "shop", "COMMIT": commitA, "PIPELINE_RUN": "shop-release-1"}
			}},
		// The rerun finds the build cancelled (by the first run, on its TIMEOUT) and reports that: exit 4.
		{name: "wait-build cancelling on timeout", step: "wait-build", wantCode: 1, rerunCode: ptr(4), mutations: 1,
			setup: func(t *testing.T) *app {
				a := withBuild(map[string]string{devcluster.SimOutcome: "Hang"})(t)
				if r := runStep(t, "start-build", a.kubeconfig, map[string]string{"BUILD_CONFIG": "shop"}); r.code != 0 {
					t.Fatalf("start-build: exit %d", r.code)
				}
				return a
			},
			env: func(*app) map[string]string { return map[string]string{"BUILD_NAME": "shop-1", "TIMEOUT": "2s"} }},
		{name: "shift-canary first shift", step: "shift-canary", mutations: 6,
			setup: func(t *testing.T) *app { return newApp(t, "route", 2) },
			env:   func(*app) map[string]string { return shiftEnv }},
		{name: "shift-canary next shift", step: "shift-canary", setup: shifted, mutations: 2,
			env: func(*app) map[string]string {
				e := map[string]string{}
				for k, v := range shiftEnv {
					e[k] = v
				}
				e["WEIGHT"] = "40"
				return e
			}},
		{name: "verify-health", step: "verify-health", setup: shifted, readOnly: true,
			env: func(*app) map[string]string {
				return map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1", "PODS": "true", "INTERVAL": "1s", "COUNT": "2"}
			}},
		{name: "promote", step: "promote-or-rollback", setup: shifted, mutations: 6,
			env: func(*app) map[string]string {
				return map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1", "DECISION": "auto", "PIPELINE_STATUS": "Succeeded"}
			}},
		{name: "rollback", step: "promote-or-rollback", setup: shifted, mutations: 6,
			env: func(*app) map[string]string {
				return map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1", "DECISION": "auto", "PIPELINE_STATUS": "Failed",
					"REASON": "error rate 9% > 1%"}
			}},
	}
}

// TestCrashPoints kills each step right after each of its mutating API calls in turn (SIGKILL, before it reads
// the answer), runs it again, and checks that the rerun ends in the same state as an undisturbed run.
func TestCrashPoints(t *testing.T) {
	t.Parallel()
	devclustertest.Require(t, cluster)
	bin := stepsBinary(t)
	for _, sc := range crashScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			// The reference: an undisturbed run, its end state and its mutating requests.
			a := sc.setup(t)
			proxy, kc := startFaultProxy(t, a.kubeconfig, faultproxy.Options{})
			if r := runStep(t, sc.step, kc, sc.env(a)); r.code != sc.wantCode {
				t.Fatalf("undisturbed run: exit %d; want %d", r.code, sc.wantCode)
			}
			want := endState(t, a)
			var writes []string
			for _, l := range proxy.Log() {
				if f := strings.Fields(l); len(f) > 0 && strings.Contains("create update patch delete deletecollection", f[0]) {
					writes = append(writes, l)
				}
			}
			if sc.readOnly && len(writes) > 0 {
				t.Errorf("%s made mutating requests %q; it only reads", sc.step, writes)
			}
			if len(writes) < sc.mutations {
				t.Fatalf("an undisturbed run made %d mutating requests %q; want at least %d", len(writes), writes, sc.mutations)
			}
			t.Logf("undisturbed %s: %d mutating requests: %s", sc.step, len(writes), strings.Join(writes, ", "))
			for k := 1; k <= len(writes); k++ {
				t.Run(fmt.Sprintf("killed after %d of %d", k, len(writes)), func(t *testing.T) {
					t.Parallel()
					a := sc.setup(t)
					c := &crasher{bin: bin, step: sc.step, k: k}
					_, kc := startFaultProxy(t, a.kubeconfig, faultproxy.Options{AfterMutation: c.afterMutation})
					c.kubeconfig = kc
					first := runStep(t, sc.step, kc, sc.env(a))
					killed, made := c.result()
					if killed == "" || first.code != -int(syscall.SIGKILL) {
						t.Fatalf("the step was not killed after its mutating request %d (it made %d; exit %d)", k, made, first.code)
					}
					t.Logf("killed after %s", killed)
					wantCode := sc.wantCode
					if sc.rerunCode != nil {
						wantCode = *sc.rerunCode
					}
					if r := runStep(t, sc.step, a.kubeconfig, sc.env(a)); r.code != wantCode {
						t.Fatalf("rerun after the kill: exit %d; want %d", r.code, wantCode)
					}
					if got := endState(t, a); got != want {
						t.Errorf("end state after a kill and a rerun differs from an undisturbed run's:\n%s", lineDiff(got, want))
					}
				})
			}
		})
	}
}

// lineDiff lists the lines of got and want that the other lacks.
func lineDiff(got, want string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[strings.TrimSpace(l)]++
		}
		return m
	}
	g, w := count(got), count(want)
	var b strings.Builder
	for _, l := range strings.Split(got, "\n") {
		if k := strings.TrimSpace(l); g[k] > w[k] {
			b.WriteString("+ " + k + "\n")
			g[k]--
		}
	}
	for _, l := range strings.Split(want, "\n") {
		if k := strings.TrimSpace(l); w[k] > count(got)[k] {
			b.WriteString("- " + k + "\n")
			w[k]--
		}
	}
	return b.String()
}

// TestPipelineStepKilledAndRetried: in a whole canary-release run, shift-canary and then promote-or-rollback are
// each killed once mid-way (after their 4th and 5th mutating requests); Tekton's retries run them again, and the
// release is promoted as if nothing had happened.
func TestPipelineStepKilledAndRetried(t *testing.T) {
	t.Parallel()
	a := appWithBuildConfig(t, 2)
	before := a.routerState()
	bin := stepsBinary(t)
	shift := &crasher{bin: bin, step: "shift-canary", k: 4}
	promote := &crasher{bin: bin, step: "promote-or-rollback", k: 5}
	_, kc := startFaultProxy(t, a.kubeconfig, faultproxy.Options{AfterMutation: func(n int, r faultproxy.Request, code int) {
		shift.afterMutation(n, r, code)
		promote.afterMutation(n, r, code)
	}})
	shift.kubeconfig, promote.kubeconfig, a.kubeconfig = kc, kc, kc
	sum, out, err := runPipeline(t, a, "canary-release-1.yaml", map[string]string{"git-revision": commitA, "interval": "1s", "count": "2"})
	if err != nil || sum.Status != runner.Succeeded || sum.Results["decision"] != "promote" {
		t.Fatalf("run: %v (%v); want it promoted", sum.Status, err)
	}
	for _, c := range []*crasher{shift, promote} {
		if killed, _ := c.result(); killed == "" {
			t.Errorf("%s was not killed", c.step)
		} else {
			t.Logf("%s was killed after %s", c.step, killed)
		}
	}
	if n := strings.Count(out, "retrying"); n < 2 {
		t.Errorf("the run log shows %d retries; want the two killed tasks retried", n)
	}
	st, _ := a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), "shop", metav1.GetOptions{})
	if st.Spec.Template.Spec.Containers[0].Image != sum.Results["image-url"] || a.exists("deployment", "shop-canary") || a.routerState() != before {
		t.Errorf("after the run: stable image %s (want %s), canary exists %v, Route restored %v",
			st.Spec.Template.Spec.Containers[0].Image, sum.Results["image-url"], a.exists("deployment", "shop-canary"), a.routerState() == before)
	}
}

// TestPipelineFinallyRollsBackAfterACrash: shift-canary is killed on both attempts, each after its third write
// (the first after pinning the stable Service, the retry after moving traffic to the canary it created); the run
// fails, and the finally task rolls the half-made release back.
func TestPipelineFinallyRollsBackAfterACrash(t *testing.T) {
	t.Parallel()
	a := appWithBuildConfig(t, 2)
	before := a.routerState()
	c := &crasher{bin: stepsBinary(t), step: "shift-canary", k: 3, every: true}
	_, kc := startFaultProxy(t, a.kubeconfig, faultproxy.Options{AfterMutation: c.afterMutation})
	c.kubeconfig, a.kubeconfig = kc, kc
	sum, _, err := runPipeline(t, a, "canary-release-1.yaml", map[string]string{"git-revision": commitA, "interval": "1s", "count": "2"})
	if err == nil || sum.Status != runner.Failed {
		t.Fatalf("run: %v, %v; want it failed", sum.Status, err)
	}
	c.mu.Lock()
	kills := c.kills
	c.mu.Unlock()
	if kills != 2 || status(sum, "shift-1") != "Failed" || status(sum, "end-release") != "Succeeded" {
		t.Errorf("%d kills, shift-1 %s, end-release %s; want 2 kills (the attempt and its retry), Failed, Succeeded",
			kills, status(sum, "shift-1"), status(sum, "end-release"))
	}
	ctx := context.Background()
	st, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
	if st.Generation != 1 || a.exists("deployment", "shop-canary") || a.exists("service", "shop-canary") || a.routerState() != before {
		t.Errorf("after the run: stable generation %d, canary exists %v, Route restored %v", st.Generation,
			a.exists("deployment", "shop-canary"), a.routerState() == before)
	}
	l := a.lease()
	if *l.Spec.HolderIdentity != "" || !strings.Contains(l.Annotations["canaryline.dev/last-release"], `"decision":"rollback"`) {
		t.Errorf("Lease after the run: holder %q, %v", *l.Spec.HolderIdentity, l.Annotations)
	}
}
