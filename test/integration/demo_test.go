package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryline/canaryline/internal/demo"
	"github.com/canaryline/canaryline/internal/devcluster"
	"github.com/canaryline/canaryline/internal/evidence"
	"github.com/canaryline/canaryline/internal/runner"
)

// TestDemo runs the demo as CI does: a healthy v2 is promoted, a faulty v3 is caught at the first weight and
// rolled back. A release's canary pods are new pods: Prometheus discovers their process within about 10 s, and
// the query waits for 30 requests (6 s at 10%), so each analysis takes 25 measurements, 1 s apart.
func TestDemo(t *testing.T) {
	t.Parallel()
	devcluster.Require(t, cluster)
	ns := cluster.Namespace(t)
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
	if v3.Decision != "rollback" || v3.Verdict != "unhealthy" || !strings.Contains(v3.Reason, "threshold") {
		t.Errorf("v3: %+v; want rolled back, unhealthy with the reason", v3)
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
