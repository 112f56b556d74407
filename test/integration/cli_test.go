package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/devclustertest"
)

func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "canaryline")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/canaryline/canaryline/cmd/canaryline")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build canaryline: %v\n%s", err, out)
	}
	return bin
}

func cli(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run canaryline %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// componentPIDs reads the pids the supervisor recorded for etcd, kube-apiserver, and the rest.
func componentPIDs(t *testing.T, dir string) map[string]int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "pids"))
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string]int{}
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(dir, "pids", e.Name()))
		pid, _ := strconv.Atoi(string(data))
		pids[strings.TrimSuffix(e.Name(), ".pid")] = pid
	}
	if len(pids) != 5 {
		t.Fatalf("recorded pids %v; want the five components", pids)
	}
	return pids
}

// alive is true for a process that exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	return i < 0 || i+2 >= len(data) || data[i+2] != 'Z'
}

func waitGone(t *testing.T, pids map[string]int, why string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for name, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s (pid %d) still runs", why, name, pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestClusterCLILeavesNothingBehind: `canaryline cluster up --detach` starts a working cluster; killing its
// supervisor with SIGKILL takes every component with it; a second up in the same directory works; down stops
// everything and removes the directory.
func TestClusterCLILeavesNothingBehind(t *testing.T) {
	devclustertest.Require(t, cluster)
	bin := buildCLI(t)
	dir := filepath.Join(t.TempDir(), "cluster")

	if _, stderr, code := cli(t, bin, "cluster", "status", "--dir", dir); code != 1 || !strings.Contains(stderr, "no cluster runs") {
		t.Fatalf("status before up: exit %d, %q; want 1 and 'no cluster runs'", code, stderr)
	}
	if _, stderr, code := cli(t, bin, "cluster", "up", "--nodes", "0", "--dir", dir); code != 2 || !strings.Contains(stderr, "--nodes") {
		t.Fatalf("up --nodes 0: exit %d, %q; want 2 naming --nodes", code, stderr)
	}

	up := func() (map[string]int, int) {
		stdout, stderr, code := cli(t, bin, "cluster", "up", "--detach", "--dir", dir)
		if code != 0 {
			t.Fatalf("cluster up --detach: exit %d\n%s", code, stderr)
		}
		kc := strings.TrimPrefix(strings.TrimSpace(stdout), "export KUBECONFIG=")
		cfg, err := clientcmd.BuildConfigFromFlags("", kc)
		if err != nil {
			t.Fatalf("kubeconfig %q from %q: %v", kc, stdout, err)
		}
		nodes, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 2 {
			t.Fatalf("nodes through the printed kubeconfig: %v, %v", nodes, err)
		}
		var st devcluster.State
		data, _ := os.ReadFile(filepath.Join(dir, "cluster.json"))
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatal(err)
		}
		return componentPIDs(t, dir), st.PID
	}

	pids, supervisor := up()
	for name, pid := range pids {
		if !alive(pid) {
			t.Fatalf("%s (pid %d) is not running after up", name, pid)
		}
	}
	// A second up finds the running cluster instead of starting another.
	if stdout, _, code := cli(t, bin, "cluster", "up", "--detach", "--dir", dir); code != 0 || !strings.Contains(stdout, "KUBECONFIG=") {
		t.Errorf("second up: exit %d, %q", code, stdout)
	}
	if err := syscall.Kill(supervisor, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pids, "after SIGKILL of the supervisor")

	pids, _ = up() // the same directory, with the dead cluster's files in it
	if _, stderr, code := cli(t, bin, "cluster", "down", "--dir", dir); code != 0 {
		t.Fatalf("cluster down: exit %d\n%s", code, stderr)
	}
	waitGone(t, pids, "after cluster down")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("run directory %s still exists after down (%v)", dir, err)
	}
}
