// Package devclustertest runs tests against the local control plane (package devcluster): a TestMain body that
// starts or attaches to a cluster, the checks that skip a test without one, and a fresh namespace per test. It
// imports testing, so only test files import it; the shipped binaries do not link it.
package devclustertest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
)

// EnvDir names the run directory of a running cluster (`canaryline cluster up`) that tests attach to instead of
// starting their own. `make test` starts one cluster this way and shares it between test packages.
const EnvDir = "CANARYLINE_DEVCLUSTER_DIR"

// RunTests is a TestMain body: it starts (or attaches to) a cluster, runs the tests, and stops what it started,
// also on SIGINT/SIGTERM. With -short no cluster is started and Require skips the tests that need one.
func RunTests(m *testing.M, c **devcluster.Cluster) int {
	return RunTestsWith(m, c, devcluster.Options{})
}

// RunTestsWith is RunTests for a cluster started with o. With o.RealNode on a machine that cannot run one (see
// devcluster.CheckRealNode), the cluster starts without it and RequireRealNode skips the tests that need it, saying
// why.
func RunTestsWith(m *testing.M, c **devcluster.Cluster, o devcluster.Options) int {
	devcluster.MaybeNodeInit() // this binary is also the real node's supervisor
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	if dir := os.Getenv(EnvDir); dir != "" {
		cl, err := devcluster.Attach(dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "devcluster: %s=%s: %v\n", EnvDir, dir, err)
			return 1
		}
		*c = cl
		return m.Run()
	}
	return startAndRun(m, c, o)
}

// owned is the cluster this test binary started, stopped by an interrupt or at the end of the tests.
type owned struct {
	mu sync.Mutex
	cl *devcluster.Cluster
}

// startAndRun starts a cluster with o, runs the tests on it and stops it; an interrupt stops it too, whether it
// is starting or running tests.
func startAndRun(m *testing.M, c **devcluster.Cluster, o devcluster.Options) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var own owned
	stopSignals := own.stopOnInterrupt(cancel)
	defer stopSignals()
	if o.RealNode || o.Tekton {
		if realNodeMissing = devcluster.CheckRealNode(); realNodeMissing != nil {
			fmt.Fprintf(os.Stderr, "devcluster: no real node: %v\n", realNodeMissing)
			o.RealNode, o.Tekton = false, false
		}
	}
	started, err := devcluster.Start(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "devcluster: %v\n", err)
		return 1
	}
	own.mu.Lock()
	own.cl, *c = started, started
	own.mu.Unlock()
	code := m.Run()
	own.stop(code)
	return code
}

// stopOnInterrupt stops the cluster and exits 130 on SIGINT or SIGTERM, after cancelling its start; the returned
// function stops listening.
func (o *owned) stopOnInterrupt(cancel context.CancelFunc) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		if _, ok := <-sigs; !ok {
			return
		}
		cancel()
		o.mu.Lock()
		if o.cl != nil {
			o.cl.Stop()
		}
		os.Exit(130)
	}()
	return func() { signal.Stop(sigs) }
}

// stop stops the cluster after the tests, which exited with code: a failed run keeps the components' logs and the
// audit log for reading.
func (o *owned) stop(code int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if code != 0 {
		o.cl.StopKeepLogs()
		fmt.Fprintf(os.Stderr, "devcluster: tests failed; logs kept in %s\n", filepath.Join(o.cl.RunDir, "logs"))
	} else {
		o.cl.Stop()
	}
	o.cl = nil
}

// realNodeMissing is why RunTestsWith started no real node although asked to.
var realNodeMissing error

// RequireRealNode skips t when the cluster has no real node, saying why.
func RequireRealNode(t testing.TB, c *devcluster.Cluster) {
	t.Helper()
	Require(t, c)
	if c.Node() == nil {
		why := "the cluster was started without one"
		if realNodeMissing != nil {
			why = realNodeMissing.Error()
		}
		t.Skip("needs the real node: " + why)
	}
}

// RequireTekton skips t when the cluster runs no Tekton, saying why.
func RequireTekton(t testing.TB, c *devcluster.Cluster) {
	t.Helper()
	RequireRealNode(t, c)
	if c.Tekton() == nil {
		t.Skip("needs Tekton: the cluster was started without it")
	}
}

// Require skips t when no cluster runs (go test -short).
func Require(t testing.TB, c *devcluster.Cluster) {
	t.Helper()
	if c == nil {
		t.Skip("needs the local control plane (not started with -short)")
	}
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// Namespace creates a fresh namespace on c for t, named after the test, waits until its default ServiceAccount
// exists (pods cannot be created before), and deletes it when t ends.
func Namespace(t testing.TB, c *devcluster.Cluster) string {
	t.Helper()
	kube := kubernetes.NewForConfigOrDie(c.Config())
	base := strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 40 {
		base = base[:40]
	}
	ctx := context.Background()
	ns, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: strings.Trim(base, "-") + "-", Labels: map[string]string{"canaryline.dev/test": "true"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = kube.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	if err := waitForServiceAccount(ctx, kube, ns.Name, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// waitForServiceAccount polls until the default ServiceAccount exists in namespace ns.
func waitForServiceAccount(ctx context.Context, kube kubernetes.Interface, ns string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("default ServiceAccount in %s: not ready after %s", ns, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
