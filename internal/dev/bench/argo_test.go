package bench

import (
	"github.com/canaryline/canaryline/internal/dev/argorollouts"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/canaryline/canaryline/internal/dev/devclustertest"
	"github.com/canaryline/canaryline/internal/dev/gobuild"
)

func TestArgoRows(t *testing.T) {
	cost := func(wall time.Duration, reqs, pods int) sideCost {
		return sideCost{wall: wall, requests: reqs, pods: pods, cpu: cpuUse{ControlPlane: wall / 2}, promote: wall / 4,
			verbs: map[string]int{"get": reqs - 2, "watch": 2}}
	}
	r := argoResult{
		argo:         []sideCost{cost(300*time.Millisecond, 50, 4), cost(400*time.Millisecond, 48, 4), cost(350*time.Millisecond, 49, 4)},
		canaryline:   []sideCost{cost(600*time.Millisecond, 68, 10), cost(700*time.Millisecond, 68, 10), cost(500*time.Millisecond, 66, 10)},
		argoRollback: []time.Duration{70 * time.Millisecond, 80 * time.Millisecond}, clRollback: []time.Duration{90 * time.Millisecond, 100 * time.Millisecond},
		rss:       []int64{92e6, 106e6, 100e6},
		argoLarge: cost(10*time.Second, 200, 40), canarylineLarge: cost(20*time.Second, 80, 100),
		routed: cost(800*time.Millisecond, 59, 4),
	}
	ms := argoRows(r)
	if len(ms) != 19 {
		t.Fatalf("%d rows; want 9 figures each way and the routed release's pods:\n%s", len(ms), Table(ms))
	}
	want := map[string]struct {
		value float64
		met   string // "", "yes", "no"
		ratio string
	}{
		"release wall time, 4 replicas: canaryline":         {0.6, "no", "1.71x Argo's"},
		"API requests per release: canaryline":              {68, "no", "1.39x Argo's"},
		"API requests per release: Argo Rollouts":           {49, "", ""},
		"pods created per release: canaryline":              {10, "no", "2.50x Argo's"},
		"rollback wall time, after weight 30: canaryline":   {0.095, "", "1.27x Argo's"},
		"running between releases: Argo Rollouts":           {100, "", ""},
		"promote time, 40 replicas: canaryline":             {5, "", "2.00x Argo's"},
		"promote time, 4 replicas: canaryline":              {0.15, "", "1.71x Argo's"},
		"release wall time, 40 replicas: Argo Rollouts":     {10, "", ""},
		"pods created per release through a traffic router": {4, "yes", "59 API requests"},
	}
	found := 0
	for _, m := range ms {
		for prefix, w := range want {
			if !strings.HasPrefix(m.Figure, prefix) {
				continue
			}
			found++
			met := ""
			if m.Met != nil {
				met = map[bool]string{true: "yes", false: "no"}[*m.Met]
			}
			if d := m.Value - w.value; d > 1e-9 || d < -1e-9 || met != w.met || !strings.Contains(m.Detail, w.ratio) {
				t.Errorf("%s: %v %s, met %q, %q; want %v, met %q, %q", m.Figure, m.Value, m.Unit, met, m.Detail, w.value, w.met, w.ratio)
			}
		}
	}
	if found != len(want) {
		t.Errorf("%d of the %d expected rows found:\n%s", found, len(want), Table(ms))
	}
}

func TestMedianOf(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := medianOf(c.in); got != c.want {
			t.Errorf("medianOf(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestArgoFigures runs the argo part with 2 runs on the local control plane (building Argo Rollouts' controller
// first when it is not cached): every figure present and plausible (counts, never times).
func TestArgoFigures(t *testing.T) {
	if os.Getenv(argorollouts.EnvTests) != "1" {
		t.Skip("builds Argo Rollouts from the Go module proxy (13 min cold): set " + argorollouts.EnvTests + "=1; make bench runs this part anyway")
	}
	devclustertest.Require(t, testCluster)
	dir := t.TempDir()
	steps := filepath.Join(dir, "canaryline-steps")
	if out, err := exec.Command("go", "build", "-o", steps, "../../../cmd/canaryline-steps").CombinedOutput(); err != nil {
		t.Fatalf("build canaryline-steps: %v\n%s", err, out)
	}
	cache, err := gobuild.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{cfg: testCluster.Config(), kube: kubernetes.NewForConfigOrDie(testCluster.Config()), root: "../../..", steps: steps,
		work: dir, upstream: testCluster.ShimURL, caData: testCluster.CAData, log: t.Output()}
	ms, err := c.argoFigures(t.Context(), 2, cache)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 18 {
		t.Fatalf("%d figures; want 18:\n%s", len(ms), Table(ms))
	}
	for _, m := range ms {
		if strings.HasPrefix(m.Figure, "pods created per release") && (m.Value < argoReplicas || m.Value > 3*argoReplicas) {
			t.Errorf("%s: %v; want a release to create between %d and %d pods", m.Figure, m.Value, argoReplicas, 3*argoReplicas)
		}
		if strings.HasPrefix(m.Figure, "API requests per release") && m.Value < 5 {
			t.Errorf("%s: %v; want a release's requests", m.Figure, m.Value)
		}
	}
	t.Logf("\n%s", Table(ms))
}
