package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/devclustertest"
	"github.com/canaryline/canaryline/internal/dev/faultproxy"
)

// startFaultProxy puts a fault-injecting proxy between the steps and the control plane; it returns the proxy and a
// copy of kubeconfig that goes through it.
func startFaultProxy(t *testing.T, kubeconfig string, o faultproxy.Options) (*faultproxy.Proxy, string) {
	t.Helper()
	o.Upstream, o.UpstreamCA = cluster.ShimURL, cluster.CAData
	p, err := faultproxy.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	kc, err := p.Kubeconfig(kubeconfig, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p, kc
}

// faultReleases is how many releases TestReleasesUnderAPIFaults runs: CANARYLINE_FAULT_RELEASES, 50 by default.
func faultReleases(t *testing.T) int {
	if s := os.Getenv("CANARYLINE_FAULT_RELEASES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CANARYLINE_FAULT_RELEASES=%q: want a positive number", s)
		}
		return n
	}
	return 50
}

// TestReleasesUnderAPIFaults runs whole releases (start-build, wait-build, two traffic shifts, then promote or
// roll back) with a tenth of the steps' API requests answered by a fault: 500, 503, 429, 409, a reset connection,
// a slow answer, a watch or log stream cut mid-way. Every step must still succeed, and every release must end in
// exactly the state an undisturbed one ends in: one build, the right image on the stable Deployment, no canary,
// the Route as it was, the lock released.
func TestReleasesUnderAPIFaults(t *testing.T) {
	t.Parallel()
	devclustertest.Require(t, cluster)
	n := faultReleases(t)
	var mu sync.Mutex
	total := faultproxy.Stats{ByVerb: map[string]int{}, Faults: map[faultproxy.Fault]int{}}
	outcomes := map[string]int{}
	t.Cleanup(func() {
		t.Logf("%d releases (%d promoted, %d rolled back) under injected API faults: %s", n, outcomes["promote"], outcomes["rollback"], total)
		if t.Failed() {
			return
		}
		for _, f := range faultproxy.AllFaults {
			if total.Faults[f] == 0 {
				t.Errorf("no %s fault was injected in %d releases", f, n)
			}
		}
		if share := float64(total.FaultCount()) / float64(total.Requests); share < 0.05 {
			t.Errorf("faults on %.1f%% of requests; want about 10%%", 100*share)
		}
	})
	for i := range n {
		promote := i%2 == 0
		t.Run(fmt.Sprintf("release-%02d", i), func(t *testing.T) {
			t.Parallel()
			proxy, outcome := releaseUnderFaults(t, faultproxy.Options{Rate: 0.1, Seed: uint64(i) + 1}, i, promote)
			s := proxy.Stats()
			mu.Lock()
			defer mu.Unlock()
			total.Requests += s.Requests
			total.Mutating += s.Mutating
			for k, v := range s.Faults {
				total.Faults[k] += v
			}
			outcomes[outcome]++
			t.Logf("%s", s)
		})
	}
}

func releaseUnderFaults(t *testing.T, o faultproxy.Options, seed int, promote bool) (*faultproxy.Proxy, string) {
	a := newApp(t, "route", 2)
	ctx := context.Background()
	bc := buildclient.NewForConfigOrDie(cluster.Config())
	if _, err := bc.BuildV1().BuildConfigs(a.ns).Create(ctx, newBuildConfig("shop", map[string]string{
		devcluster.SimLogLines: "20", devcluster.SimLineInterval: "50ms"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := a.routerState()
	proxy, kc := startFaultProxy(t, a.kubeconfig, o)
	run := "shop-release-" + strconv.Itoa(seed)

	step := func(name string, env map[string]string) stepRun {
		t.Helper()
		r := runStep(t, name, kc, env)
		if r.code != 0 {
			t.Fatalf("%s: exit %d under faults (%s)\n%s", name, r.code, proxy.Stats(), strings.Join(proxy.Log(), "\n"))
		}
		return r
	}
	start := step("start-build", map[string]string{"BUILD_CONFIG": "shop", "COMMIT": commitA, "PIPELINE_RUN": run})
	wait := step("wait-build", map[string]string{"BUILD_NAME": start.results["BUILD_NAME"]})
	if got := strings.Count(wait.stdout, "build output line "); got != 20 {
		t.Errorf("wait-build printed %d of the build's 20 numbered log lines:\n%s", got, wait.stdout)
	}
	image := wait.results["IMAGE_URL"]
	for _, w := range []string{"10", "50"} {
		r := step("shift-canary", map[string]string{"APP": "shop", "ROUTER": "route", "IMAGE": image, "WEIGHT": w,
			"RELEASE_ID": run, "READY_TIMEOUT": "60s"})
		if r.results["CANARY_WEIGHT"] != w {
			t.Errorf("shift %s: results %v", w, r.results)
		}
	}
	status := "Failed"
	if promote {
		status = "Succeeded"
	}
	d := step("promote-or-rollback", map[string]string{"APP": "shop", "RELEASE_ID": run, "DECISION": "auto", "PIPELINE_STATUS": status})

	// The end state, read without faults.
	builds, err := bc.BuildV1().Builds(a.ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(builds.Items) != 1 {
		t.Errorf("%d builds (%v); want exactly one", len(builds.Items), err)
	}
	st, err := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, outcome := stableImage, "rollback"
	if promote {
		want, outcome = image, "promote"
	}
	if d.results["DECISION"] != outcome || st.Spec.Template.Spec.Containers[0].Image != want {
		t.Errorf("decision %q, stable image %s; want %s and %s", d.results["DECISION"], st.Spec.Template.Spec.Containers[0].Image, outcome, want)
	}
	if !promote && st.Generation != 1 {
		t.Errorf("the rollback touched the stable Deployment (generation %d)", st.Generation)
	}
	if a.exists("deployment", "shop-canary") || a.exists("service", "shop-canary") {
		t.Error("the canary is still there")
	}
	if got := a.routerState(); got != before {
		t.Errorf("Route after the release:\n%s\nbefore:\n%s", got, before)
	}
	svc, _ := a.kube.CoreV1().Services(a.ns).Get(ctx, "shop", metav1.GetOptions{})
	if svc.Spec.Selector["pod-template-hash"] != "" {
		t.Errorf("the stable Service is still pinned: %v", svc.Spec.Selector)
	}
	l := a.lease()
	if *l.Spec.HolderIdentity != "" || !strings.Contains(l.Annotations["canaryline.dev/last-release"], `"decision":"`+outcome+`"`) {
		t.Errorf("Lease after the release: holder %q, %v", *l.Spec.HolderIdentity, l.Annotations)
	}
	return proxy, outcome
}

// TestEachWriteLosesItsAnswer: whole releases where one write (the k-th of the release, for every k in turn:
// starting the build, creating, updating, deleting, releasing the lock) takes effect at the apiserver and its
// answer is lost. The step cannot tell whether its write happened; writing again must still end the release in the
// right state. Odd k are promoted, even k rolled back (promoted too past the last write of a rollback, which
// writes less than a promotion).
func TestEachWriteLosesItsAnswer(t *testing.T) {
	t.Parallel()
	devclustertest.Require(t, cluster)
	// Undisturbed releases count the writes.
	proxy, _ := releaseUnderFaults(t, faultproxy.Options{}, 0, true)
	writes := proxy.Stats().Mutating
	if writes < 20 {
		t.Fatalf("an undisturbed release made %d writes; want at least 20", writes)
	}
	proxy, _ = releaseUnderFaults(t, faultproxy.Options{}, 0, false)
	rollbackWrites := proxy.Stats().Mutating
	for k := 1; k <= writes; k++ {
		t.Run(fmt.Sprintf("write-%02d", k), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			n := 0
			proxy, _ := releaseUnderFaults(t, faultproxy.Options{Schedule: func(_ int, r faultproxy.Request) faultproxy.Fault {
				mu.Lock()
				defer mu.Unlock()
				if !r.Mutating() {
					return faultproxy.None
				}
				if n++; n == k {
					return faultproxy.Lost
				}
				return faultproxy.None
			}}, k, k%2 == 1 || k > rollbackWrites)
			if got := proxy.Stats().Faults[faultproxy.Lost]; got != 1 {
				t.Errorf("%d answers lost; want 1", got)
			}
		})
	}
}

// TestReleaseRequestBudget counts the API requests of a whole 3-weight release (start-build, wait-build, three
// shifts each followed by verify-health, then promote) at the proxy: at most 80, and no step reads an object over
// and over (waits are watches, not polls).
func TestReleaseRequestBudget(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	ctx := context.Background()
	if _, err := buildclient.NewForConfigOrDie(cluster.Config()).BuildV1().BuildConfigs(a.ns).Create(ctx,
		newBuildConfig("shop", map[string]string{devcluster.SimLineInterval: "5ms"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	proxy, kc := startFaultProxy(t, a.kubeconfig, faultproxy.Options{})
	run := func(name string, env map[string]string) stepRun {
		t.Helper()
		from := len(proxy.Log())
		r := runStep(t, name, kc, env)
		if r.code != 0 {
			t.Fatalf("%s: exit %d", name, r.code)
		}
		// A poll reads the same object again and again within one run of a step.
		reads := map[string]int{}
		for _, l := range proxy.Log()[from:] {
			if strings.HasPrefix(l, "get ") || strings.HasPrefix(l, "list ") {
				reads[l]++
			}
		}
		for l, n := range reads {
			if n > 2 {
				t.Errorf("%s: %q %d times in one run: a wait should watch, not poll", name, l, n)
			}
		}
		return r
	}
	run("start-build", map[string]string{"BUILD_CONFIG": "shop", "COMMIT": commitA, "PIPELINE_RUN": "shop-release-1"})
	image := run("wait-build", map[string]string{"BUILD_NAME": "shop-1"}).results["IMAGE_URL"]
	for _, w := range []string{"10", "30", "60"} {
		run("shift-canary", map[string]string{"APP": "shop", "IMAGE": image, "WEIGHT": w, "RELEASE_ID": "shop-release-1", "READY_TIMEOUT": "60s"})
		run("verify-health", map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1", "INTERVAL": "1s", "COUNT": "1"})
	}
	run("promote-or-rollback", map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1", "DECISION": "promote"})
	s := proxy.Stats()
	t.Logf("%d requests: %v", s.Requests, s.ByVerb)
	if s.Requests > 80 {
		t.Errorf("a release made %d API requests; the budget is 80:\n%s", s.Requests, strings.Join(proxy.Log(), "\n"))
	}
}
