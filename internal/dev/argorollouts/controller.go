package argorollouts

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
)

// Help runs `controller --help` and returns its output, which names the flags Start uses.
func Help(ctx context.Context, controller string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, controller, "--help").CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s --help: %w: %s", controller, err, strings.TrimSpace(string(out)))
	}
	for _, f := range []string{"--leader-elect", "--metricsPort", "--healthzPort", "--kubeconfig"} {
		if !strings.Contains(string(out), f) {
			return string(out), fmt.Errorf("%s --help: no %s flag", controller, f)
		}
	}
	return string(out), nil
}

// InstallCRDs server-side applies the release's CRDs (Rollout, AnalysisRun, AnalysisTemplate,
// ClusterAnalysisTemplate, Experiment) on the cluster of cfg and waits for them to be served.
func InstallCRDs(ctx context.Context, cfg *rest.Config, b Build) error {
	files, _ := filepath.Glob(filepath.Join(b.CRDs, "*.yaml"))
	var objs []*unstructured.Unstructured
	for _, f := range files {
		o, err := devcluster.ReadObjects(f)
		if err != nil {
			return err
		}
		objs = append(objs, o...)
	}
	if err := devcluster.Apply(ctx, cfg, "canaryline-bench", "", objs); err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := dyn.Resource(RolloutsResource).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("argorollouts: Rollouts not served a minute after their CRD was applied: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// RolloutsResource is the Rollout custom resource.
var RolloutsResource = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}

// Controller is a running rollouts-controller.
type Controller struct {
	PID                      int
	MetricsPort, HealthzPort int
	Log                      string // its output
	cmd                      *exec.Cmd
	done                     chan struct{}
}

// Start runs the controller out of cluster against kubeconfig, watching all namespaces: no leader election (one
// instance), its metrics and healthz servers on free ports (it has flags for their ports only, and listens on
// all addresses), its output to logFile. It returns once /healthz answers; the process is killed if this
// process dies.
func Start(ctx context.Context, b Build, kubeconfig, logFile string) (*Controller, error) {
	ports, err := devcluster.FreePorts(2)
	if err != nil {
		return nil, err
	}
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(b.Controller, "--kubeconfig", kubeconfig, "--leader-elect=false",
		"--metricsPort", strconv.Itoa(ports[0]), "--healthzPort", strconv.Itoa(ports[1]), "--loglevel", "warn")
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", b.Controller, err)
	}
	c := &Controller{PID: cmd.Process.Pid, MetricsPort: ports[0], HealthzPort: ports[1], Log: logFile, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	if err := c.waitHealthy(ctx, time.Minute); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// waitHealthy waits for the controller's /healthz to answer 200.
func (c *Controller) waitHealthy(ctx context.Context, timeout time.Duration) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", c.HealthzPort)
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.done:
			data, _ := os.ReadFile(c.Log)
			return fmt.Errorf("rollouts-controller exited: %s", lastLines(string(data), 10))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rollouts-controller: %s did not answer in %s", url, timeout)
		}
	}
}

// RSS is the controller's resident set size now, in bytes (VmRSS in /proc/PID/status).
func (c *Controller) RSS() (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.PID))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for PID %d", c.PID)
}

// Stop ends the controller by its PID: SIGTERM, then SIGKILL after 5 s.
func (c *Controller) Stop() {
	_ = syscall.Kill(c.PID, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(c.PID, syscall.SIGKILL)
		<-c.done
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
