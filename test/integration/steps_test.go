package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

var (
	stepsOnce sync.Once
	stepsBin  string
	stepsErr  error
)

// stepsBinary builds the step image's multi-call binary once for the test binary.
func stepsBinary(t *testing.T) string {
	t.Helper()
	stepsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "canaryline-steps-")
		if err != nil {
			stepsErr = err
			return
		}
		stepsBin = filepath.Join(dir, "canaryline-steps")
		out, err := exec.Command("go", "build", "-o", stepsBin, "github.com/canaryline/canaryline/cmd/canaryline-steps").CombinedOutput()
		if err != nil {
			stepsErr = err
			stepsBin = string(out)
		}
	})
	if stepsErr != nil {
		t.Fatalf("build canaryline-steps: %v\n%s", stepsErr, stepsBin)
	}
	return stepsBin
}

// stepRun is one run of a step as a process.
type stepRun struct {
	stdout, stderr string
	code           int
	results        map[string]string
}

// startStep starts step with env (plus KUBECONFIG and RESULTS_DIR) and returns the command and a function that
// waits for it.
func startStep(t *testing.T, name, kubeconfig string, env map[string]string) (*exec.Cmd, func() stepRun) {
	t.Helper()
	results := t.TempDir()
	cmd := exec.Command(stepsBinary(t), name)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "KUBECONFIG=" + kubeconfig, "RESULTS_DIR=" + results}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, func() stepRun {
		err := cmd.Wait()
		r := stepRun{stdout: stdout.String(), stderr: stderr.String(), results: map[string]string{}}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				r.code = -int(ws.Signal())
			}
		} else if err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(results)
		for _, e := range entries {
			data, _ := os.ReadFile(filepath.Join(results, e.Name()))
			r.results[e.Name()] = string(data)
		}
		t.Logf("%s exit %d\n--- stderr:\n%s--- results: %v", name, r.code, r.stderr, r.results)
		return r
	}
}

func runStep(t *testing.T, name, kubeconfig string, env map[string]string) stepRun {
	t.Helper()
	_, wait := startStep(t, name, kubeconfig, env)
	return wait()
}

// shippedRole reads the Role canaryline ships for its steps.
func shippedRole(t *testing.T) *rbacv1.Role {
	t.Helper()
	data, err := os.ReadFile("../../tasks/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{}
	if err := yaml.UnmarshalStrict(data, role); err != nil {
		t.Fatalf("tasks/role.yaml: %v", err)
	}
	return role
}

// routerInstall is the kustomization that installs canaryline for a router: the root one for the Route (and the
// replicas router, which needs no router object), install/<router> for the others.
func routerInstall(router string) string {
	if router == "httproute" || router == "istio" || router == "nginx" {
		return "install/" + router
	}
	return "."
}

// installedRole is the Role canaryline-steps as the install for router creates it (the shipped Role plus the
// router's component).
func installedRole(t *testing.T, router string) *rbacv1.Role {
	t.Helper()
	for _, o := range kustomizeBuild(t, routerInstall(router)) {
		if o.GetKind() == "Role" && o.GetName() == "canaryline-steps" {
			role := &rbacv1.Role{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, role); err != nil {
				t.Fatal(err)
			}
			return role
		}
	}
	t.Fatalf("%s installs no Role canaryline-steps", routerInstall(router))
	return nil
}

// stepsKubeconfig makes a ServiceAccount bound to role (the shipped one when nil) in ns and writes a kubeconfig
// with its token: the steps run with exactly those permissions.
func stepsKubeconfig(t *testing.T, ns string, role *rbacv1.Role) string {
	t.Helper()
	if role == nil {
		role = shippedRole(t)
	}
	return withServiceAccount(t, ns, "pipeline", role)
}

func withServiceAccount(t *testing.T, ns, sa string, role *rbacv1.Role) string {
	t.Helper()
	ctx := context.Background()
	k := kubernetes.NewForConfigOrDie(cluster.Config())
	role = role.DeepCopy()
	role.Namespace = ns
	if _, err := k.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: sa},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := k.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cluster.WriteKubeconfig(path, tr.Status.Token, ns); err != nil {
		t.Fatal(err)
	}
	return path
}

func lines(s string) []string {
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// untilPhase polls (this is test code) until build ns/name reaches phase.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
