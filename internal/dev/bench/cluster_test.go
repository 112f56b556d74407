package bench

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/devclustertest"
)

var testCluster *devcluster.Cluster

func TestMain(m *testing.M) { devclustertest.RunTests(m, &testCluster) }

// TestRequestFigures runs the driver's API-request and peak-RSS part on the local control plane: a promoted and a
// rolled-back release, with every figure present and plausible (it checks counts and presence, never times).
func TestRequestFigures(t *testing.T) {
	devclustertest.Require(t, testCluster)
	dir := t.TempDir()
	steps := filepath.Join(dir, "canaryline-steps")
	if out, err := exec.Command("go", "build", "-o", steps, "../../../cmd/canaryline-steps").CombinedOutput(); err != nil {
		t.Fatalf("build canaryline-steps: %v\n%s", err, out)
	}
	c := &cluster{cfg: testCluster.Config(), kube: kubernetes.NewForConfigOrDie(testCluster.Config()), root: "../../..", steps: steps,
		work: dir, upstream: testCluster.ShimURL, caData: testCluster.CAData, log: &strings.Builder{}}
	ms, err := c.requestFigures(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 7 {
		t.Fatalf("%d figures; want 2 request counts and 5 peak RSS:\n%s", len(ms), Table(ms))
	}
	for _, m := range ms[:2] {
		// A release makes at least the writes it must: start the build, create the canary, move traffic three
		// times, end the release.
		if m.Value < 20 || !strings.Contains(m.Detail, "watch") || m.Met == nil {
			t.Errorf("%s: %v %s (%s)", m.Figure, m.Value, m.Unit, m.Detail)
		}
	}
	for _, m := range ms[2:] {
		if !strings.HasPrefix(m.Figure, "peak RSS: ") || m.Value < 5 || m.Value > 500 {
			t.Errorf("%s: %v %s; want a step's peak RSS in MB", m.Figure, m.Value, m.Unit)
		}
	}
	t.Logf("\n%s", Table(ms))
}
