package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/canaryline/canaryline/internal/dev/demo"
	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/devclustertest"
	"github.com/canaryline/canaryline/internal/runtime/evidence"
	"github.com/canaryline/canaryline/internal/tools/runner"
)

// TestDemo runs the demo as CI does: a healthy v2 is promoted, a faulty v3 is caught at the first weight and
// rolled back. A release's canary pods are new pods: Prometheus discovers their process within about 10 s, and
// the query waits for 30 requests (6 s at 10%), so each analysis takes 25 measurements, 1 s apart.
func TestDemo(t *testing.T) {
	t.Parallel()
	devclustertest.Require(t, cluster)
	ns := devclustertest.Namespace(t, cluster)
	cache, _ := devcluster.DefaultCacheDir()
	root, _ := filepath.Abs("../..")
	evDir := t.TempDir()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	releases, err := demo.Run(ctx, demo.Options{Config: cluster.Config(), Namespace: ns, App: "sample-app", Root: root,
		Steps: stepsBinary(t), CacheDir: cache, Evidence: evDir, Out: &out, Interval: time.Second, Count: 25})
	t.Logf("demo output:\n%s", out.String())
	if err != nil || len(releases) != 2 {
		t.Fatalf("demo: %v, %d releases", err, len(releases))
	}
	v2, v3 := releases[0], releases[1]
	if v2.Decision != "promote" || v2.Verdict != "healthy" || !strings.Contains(v2.Image, "@sha256:") {
		t.Errorf("v2: %+v; want promoted, healthy", v2)
	}
	if v3.Decision != "rollback" || v3.Verdict != "unhealthy" || !strings.Contains(v3.Reason, "threshold") ||
		!strings.Contains(v3.Reason, "errors-vs-stable") || !strings.Contains(v3.Reason, "increase shown") {
		t.Errorf("v3: %+v; want rolled back, unhealthy by the sequential comparison with the stable", v3)
	}
	// v3 fails 30% of its requests: the analysis of the first weight must catch it, before more traffic moves.
	if v3.DecidedBy != "verify-1" || v3.Weight != "10" {
		t.Errorf("v3's verdict %s came from %q at %s%% canary weight; want verify-1 at 10%%", v3.Verdict, v3.DecidedBy, v3.Weight)
	}
	if st := v3.Tasks["shift-2"]; st != runner.None {
		t.Errorf("v3: shift-2 %q; want it never run (tasks %v)", st, v3.Tasks)
	}
	if v2.DecidedBy != "verify-3" || v2.Tasks["shift-3"] != runner.Succeeded {
		t.Errorf("v2's verdict came from %q, tasks %v; want all three weights analysed", v2.DecidedBy, v2.Tasks)
	}
	// Each release is judged on its own pods' series: the query names the canary's pod-template-hash, a new
	// one for each release.
	hash := func(r demo.Release) string {
		data, err := os.ReadFile(filepath.Join(filepath.Dir(r.Report), "evidence.json"))
		if err != nil {
			t.Fatalf("%s: %v", r.Version, err)
		}
		var ev evidence.Evidence
		if err := json.Unmarshal(data, &ev); err != nil || len(ev.Checks) == 0 {
			t.Fatalf("%s: evidence.json: %v, %d checks", r.Version, err, len(ev.Checks))
		}
		for _, c := range ev.Checks {
			if _, rest, ok := strings.Cut(c.Query, `pod_template_hash="`); ok {
				h, _, _ := strings.Cut(rest, `"`)
				return h
			}
		}
		t.Fatalf("%s: no check's query selects a pod_template_hash: %+v", r.Version, ev.Checks)
		return ""
	}
	if h2, h3 := hash(v2), hash(v3); h2 == "" || h3 == "" || h2 == h3 {
		t.Errorf("canary pod-template-hash in the queries: v2 %q, v3 %q; want two different ones", h2, h3)
	}
	k := kubernetes.NewForConfigOrDie(cluster.Config())
	d, err := k.AppsV1().Deployments(ns).Get(ctx, "sample-app", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != v2.Image {
		t.Errorf("stable image %v; want v2's %s", d.Spec.Template.Spec.Containers[0].Image, v2.Image)
	}
	if _, err := k.AppsV1().Deployments(ns).Get(ctx, "sample-app-canary", metav1.GetOptions{}); err == nil {
		t.Error("a canary Deployment is left after the rollback")
	}
	for _, r := range releases {
		if r.Report == "" {
			t.Errorf("%s: no report", r.Version)
			continue
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(r.Report), "chart.svg")); err != nil {
			t.Errorf("%s: no chart next to the report %s: %v", r.Version, r.Report, err)
		}
	}
}

// TestRealNodeDemo runs the demo on the real node: each version is an image pushed to the node's registry that the
// release's build reports, the stable and canary versions run as pods on the node, Prometheus discovers them from
// the API server, and the router simulator's requests reach them through their Services' ClusterIPs. v2 is
// promoted and its image runs in the stable Deployment's pods; v3 is caught at 10% and its canary pods go.
func TestRealNodeDemo(t *testing.T) {
	t.Parallel()
	devclustertest.RequireRealNode(t, cluster)
	ns := devclustertest.Namespace(t, cluster)
	cache, _ := devcluster.DefaultCacheDir()
	root, _ := filepath.Abs("../..")
	k := kubernetes.NewForConfigOrDie(cluster.Config())
	canaries := followCanaryPods(t, k, ns)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	releases, err := demo.Run(ctx, demo.Options{Config: cluster.Config(), Namespace: ns, App: "sample-app", Root: root,
		Steps: stepsBinary(t), CacheDir: cache, Evidence: t.TempDir(), Out: &out, Interval: time.Second, Count: 25,
		RealNode: cluster.Node()})
	t.Logf("demo output:\n%s", out.String())
	if err != nil || len(releases) != 2 {
		t.Fatalf("demo: %v, %d releases", err, len(releases))
	}
	v2, v3 := releases[0], releases[1]
	if v2.Decision != "promote" || v2.Verdict != "healthy" || v2.DecidedBy != "verify-3" {
		t.Errorf("v2: %+v; want promoted, healthy after all three weights", v2)
	}
	if v3.Decision != "rollback" || v3.Verdict != "unhealthy" || v3.DecidedBy != "verify-1" || v3.Weight != "10" || v3.Tasks["shift-2"] != runner.None {
		t.Errorf("v3: %+v; want rolled back, unhealthy from verify-1 at 10%%, shift-2 never run", v3)
	}
	// The builds report the images the demo pushed: OpenShift's internal registry's <namespace>/<app>, by digest.
	repo := devcluster.OpenShiftRegistry + "/" + ns + "/sample-app@sha256:"
	if !strings.HasPrefix(v2.Image, repo) || !strings.HasPrefix(v3.Image, repo) || v2.Image == v3.Image {
		t.Errorf("images v2 %q, v3 %q; want two images of %s...", v2.Image, v3.Image, repo)
	}

	// v2 runs in the stable Deployment's pods, pulled from the node's registry, and serves as v2.
	d, err := k.AppsV1().Deployments(ns).Get(ctx, "sample-app", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != v2.Image {
		t.Fatalf("stable Deployment: %v; want v2's image %s", err, v2.Image)
	}
	_, digest, _ := strings.Cut(v2.Image, "@")
	var stable []corev1.Pod
	waitUntil(t, 2*time.Minute, "the stable Deployment's 3 pods to run v2's image, Ready", func() bool {
		stable = stablePods(t, k, ns)
		for _, p := range stable {
			if p.Spec.NodeName != devcluster.RealNodeName || p.Status.Phase != corev1.PodRunning || !podReady(&p) ||
				p.Spec.Containers[0].Image != v2.Image || len(p.Status.ContainerStatuses) != 1 ||
				!strings.HasSuffix(p.Status.ContainerStatuses[0].ImageID, digest) {
				return false
			}
		}
		return len(stable) == 3
	})
	for _, p := range stable {
		if v := versionServed(t, p.Status.PodIP); v != "v2" {
			t.Errorf("stable pod %s (%s) serves version %q; want v2", p.Name, p.Status.PodIP, v)
		}
	}

	// The rollback removed v3's canary: its Deployment and its pods.
	if _, err := k.AppsV1().Deployments(ns).Get(ctx, "sample-app-canary", metav1.GetOptions{}); err == nil {
		t.Error("a canary Deployment is left after the rollback")
	}
	waitUntil(t, time.Minute, "v3's canary pods to go", func() bool {
		pods, err := k.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err == nil && !slices.ContainsFunc(pods.Items, func(p corev1.Pod) bool { return p.Spec.Containers[0].Image == v3.Image })
	})

	// Each release was judged on its own canary pods: the evidence's query names the pod-template-hash of the
	// real canary pods that ran its image.
	h2, h3 := queryHash(t, v2), queryHash(t, v3)
	seen := canaries()
	if h2 == h3 || !seen[h2][v2.Image] || !seen[h3][v3.Image] {
		t.Errorf("hashes in the queries: v2 %q, v3 %q; Ready canary pods seen (hash -> images): %v; want each release's own pods' hash", h2, h3, seen)
	}
}

// followCanaryPods records, while the test runs, the canary pods that became Ready on the real node (those of the
// canary Deployment's ReplicaSets, named after it): their pod-template-hash and image.
func followCanaryPods(t *testing.T, k kubernetes.Interface, ns string) func() map[string]map[string]bool {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]map[string]bool{}
	record := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok || !podReady(p) || p.Spec.NodeName != devcluster.RealNodeName || !strings.HasPrefix(p.Status.PodIP, "10.88.") ||
			!strings.HasPrefix(p.Name, "sample-app-canary-") {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		h := p.Labels["pod-template-hash"]
		if seen[h] == nil {
			seen[h] = map[string]bool{}
		}
		seen[h][p.Spec.Containers[0].Image] = true
	}
	f := informers.NewSharedInformerFactoryWithOptions(k, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = "app=sample-app" }))
	inf := f.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: record, UpdateFunc: func(_, obj any) { record(obj) }}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	f.Start(stop)
	t.Cleanup(func() { close(stop); f.Shutdown() })
	f.WaitForCacheSync(stop)
	return func() map[string]map[string]bool {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]map[string]bool{}
		for h, imgs := range seen {
			out[h] = maps.Clone(imgs)
		}
		return out
	}
}

// stablePods are the stable Deployment's pods that are not going away.
func stablePods(t *testing.T, k kubernetes.Interface, ns string) []corev1.Pod {
	t.Helper()
	return ownedPods(t, k, ns, "sample-app")
}

// versionServed is the version a sample-app pod reports on /, asked from inside the real node's network namespace.
func versionServed(t *testing.T, podIP string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: cluster.Node().Dial}}
	resp, err := client.Get("http://" + net.JoinHostPort(podIP, "8080") + "/")
	if err != nil {
		t.Errorf("GET / of %s: %v", podIP, err)
		return ""
	}
	defer resp.Body.Close()
	return resp.Header.Get("X-App-Version")
}

// queryHash is the pod-template-hash that a release's evidence's query selected.
func queryHash(t *testing.T, r demo.Release) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(r.Report), "evidence.json"))
	if err != nil {
		t.Fatalf("%s: %v", r.Version, err)
	}
	var ev evidence.Evidence
	if err := json.Unmarshal(data, &ev); err != nil || len(ev.Checks) == 0 {
		t.Fatalf("%s: evidence.json: %v, %d checks", r.Version, err, len(ev.Checks))
	}
	for _, c := range ev.Checks {
		if _, rest, ok := strings.Cut(c.Query, `pod_template_hash="`); ok {
			h, _, _ := strings.Cut(rest, `"`)
			return h
		}
	}
	t.Fatalf("%s: no check's query selects a pod_template_hash: %+v", r.Version, ev.Checks)
	return ""
}
