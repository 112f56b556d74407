package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/devclustertest"
	"github.com/canaryline/canaryline/internal/runtime/evidence"
)

// hookServer is a webhook on 127.0.0.1 that answers status and body, and keeps the JSON bodies it was sent.
type hookServer struct {
	url string
	mu  sync.Mutex
	got []map[string]any
}

func startHook(t *testing.T, status int, body string) *hookServer {
	t.Helper()
	h := &hookServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c map[string]any
		data, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(data, &c)
		h.mu.Lock()
		h.got = append(h.got, c)
		h.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("the webhook is at %s, not on loopback", srv.URL)
	}
	h.url = srv.URL
	return h
}

// checkDetails are the details of check's measurements in the evidence in dir, one a line.
func checkDetails(t *testing.T, dir, check string) string {
	t.Helper()
	var out []string
	for _, m := range readEvidence(t, dir).Measurements {
		if m.Check == check {
			out = append(out, m.Detail)
		}
	}
	return strings.Join(out, "\n")
}

// TestWebhookCheckVerdicts: verify-health, run as a step with the shipped Role against a release in progress,
// posts the release's context to webhooks on 127.0.0.1: one answering 200 with {"passed": true} gives a healthy
// verdict, one answering 500 an unhealthy one; the reason and the evidence name the webhook, its status and its
// latency.
func TestWebhookCheckVerdicts(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	if r := a.shift(10, nil); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	good := startHook(t, 200, `{"result": {"passed": true}}`)
	bad := startHook(t, 500, "checkout smoke test failed")
	env := func(hook *hookServer, field string) map[string]string {
		return map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1", "INTERVAL": "200ms", "COUNT": "3",
			"EVIDENCE_DIR": filepath.Join(t.TempDir(), "evidence"),
			"WEBHOOKS":     "- {name: smoke-gate, url: '" + hook.url + "/judge', timeout: 5s" + field + "}"}
	}

	e := env(good, ", successField: result.passed")
	r := runStep(t, "verify-health", a.kubeconfig, e)
	if r.code != 0 || r.results["VERDICT"] != "healthy" || !strings.Contains(r.results["REASON"], "smoke-gate passed 3 of 3") {
		t.Fatalf("passing webhook: exit %d results %v; want 0 healthy naming smoke-gate\n%s", r.code, r.results, r.stdout)
	}
	ev := readEvidence(t, e["EVIDENCE_DIR"])
	measured := 0
	for _, m := range ev.Measurements {
		if m.Check == "smoke-gate" {
			measured++
			if m.Status != evidence.Pass || m.Value != 200 || !strings.Contains(m.Text, "200 in ") || !strings.Contains(m.Text, "result.passed = true") {
				t.Errorf("measurement %+v; want a pass recording 200, the latency and the field", m)
			}
		}
	}
	if measured != 3 {
		t.Errorf("%d measurements of smoke-gate in the evidence; want 3", measured)
	}
	good.mu.Lock()
	calls := good.got
	good.mu.Unlock()
	if len(calls) != 3 {
		t.Fatalf("the webhook was called %d times; want 3", len(calls))
	}
	c := calls[2]
	canary, _ := c["canary"].(map[string]any)
	if c["namespace"] != a.ns || c["app"] != "shop" || c["release"] != "shop-release-1" || c["weight"] != float64(10) ||
		c["measurement"] != float64(3) || canary["deployment"] != "shop-canary" || canary["hash"] == "" || canary["hash"] == nil {
		t.Errorf("the third call sent %v; want the release's context", c)
	}

	r = runStep(t, "verify-health", a.kubeconfig, env(bad, ""))
	if r.code != 4 || r.results["VERDICT"] != "unhealthy" || !strings.Contains(r.results["REASON"], "smoke-gate") ||
		!strings.Contains(r.results["REASON"], "500") || !strings.Contains(r.results["REASON"], "checkout smoke test failed") {
		t.Errorf("failing webhook: exit %d results %v; want 4 unhealthy naming smoke-gate, 500 and its answer", r.code, r.results)
	}
}

// jobTemplateYAML is a Job template as a team keeps it in a ConfigMap; podAnnotations go on its pods.
func jobTemplateYAML(podAnnotations string) string {
	return `apiVersion: batch/v1
kind: Job
metadata:
  labels: {team: payments}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations: {` + podAnnotations + `}
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: smoke
        image: registry.example.com/team/smoke@sha256:` + zeros + `
`
}

func (a *app) jobTemplate(name, tmpl string) {
	a.t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"job.yaml": tmpl}}
	if _, err := a.kube.CoreV1().ConfigMaps(a.ns).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		a.t.Fatal(err)
	}
}

func (a *app) jobs() []batchv1.Job {
	a.t.Helper()
	l, err := a.kube.BatchV1().Jobs(a.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		a.t.Fatal(err)
	}
	return l.Items
}

// TestJobCheckVerdicts: the job check runs a Job from a ConfigMap's template on the control plane (its pods on
// the KWOK nodes): a Job that completes gives a healthy verdict, one whose pod fails an unhealthy one at once. The
// Job is canaryline's (labelled, annotated with its analysis, with a TTL), a rerun of the analysis finds it rather
// than creating a second, the evidence says why there is no log, and a team's Job of the same name is refused
// (exit 2 naming JOBS) and left as it is.
func TestJobCheckVerdicts(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	if r := a.shift(10, nil); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	a.jobTemplate("smoke-job", jobTemplateYAML(""))
	a.jobTemplate("failing-job", jobTemplateYAML(devcluster.JobPodFailAnnotation+": 'true'"))
	env := func(jobs string) map[string]string {
		return map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1", "INTERVAL": "500ms", "COUNT": "4",
			"EVIDENCE_DIR": filepath.Join(t.TempDir(), "evidence"), "JOBS": jobs}
	}

	e := env("- {name: smoke, configMap: smoke-job, timeout: 2m}")
	r := runStep(t, "verify-health", a.kubeconfig, e)
	if r.code != 0 || r.results["VERDICT"] != "healthy" || !strings.Contains(r.results["REASON"], "smoke Job shop-smoke-") {
		t.Fatalf("succeeding job: exit %d results %v; want 0 healthy naming the Job\n%s", r.code, r.results, r.stdout)
	}
	jobs := a.jobs()
	if len(jobs) != 1 {
		t.Fatalf("%d Jobs; want 1", len(jobs))
	}
	first := jobs[0]
	if first.Labels["app.kubernetes.io/managed-by"] != "canaryline" || first.Labels["canaryline.dev/check"] != "smoke" || first.Labels["team"] != "payments" ||
		!strings.Contains(first.Annotations["canaryline.dev/analysis"], "release=shop-release-1 weight=10") || first.Spec.TTLSecondsAfterFinished == nil {
		t.Errorf("the Job is not marked as canaryline's: labels %v annotations %v ttl %v", first.Labels, first.Annotations, first.Spec.TTLSecondsAfterFinished)
	}
	if d := checkDetails(t, e["EVIDENCE_DIR"], "smoke"); !strings.Contains(d, "never ran in a container runtime") {
		t.Errorf("the evidence does not say why the KWOK pod has no log:\n%s", d)
	}

	// A rerun of the same analysis waits on its Job.
	if r := runStep(t, "verify-health", a.kubeconfig, env("- {name: smoke, configMap: smoke-job, timeout: 2m}")); r.code != 0 {
		t.Fatalf("rerun: exit %d results %v", r.code, r.results)
	}
	if jobs := a.jobs(); len(jobs) != 1 || jobs[0].UID != first.UID {
		t.Errorf("after a rerun: %d Jobs; want the first one alone", len(jobs))
	}

	r = runStep(t, "verify-health", a.kubeconfig, env("- {name: e2e, configMap: failing-job, timeout: 2m}"))
	if r.code != 4 || r.results["VERDICT"] != "unhealthy" || !strings.Contains(r.results["REASON"], "e2e") || !strings.Contains(r.results["REASON"], "failed") {
		t.Fatalf("failing job: exit %d results %v; want 4 unhealthy naming e2e\n%s", r.code, r.results, r.stdout)
	}

	// A team's Job under the name the smoke check uses: refused, untouched.
	ctx := context.Background()
	if err := a.kube.BatchV1().Jobs(a.ns).Delete(ctx, first.Name, metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationBackground)}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the Job to go", func() bool {
		_, err := a.kube.BatchV1().Jobs(a.ns).Get(ctx, first.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	theirs := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: first.Name, Labels: map[string]string{"team": "payments"}},
		Spec: batchv1.JobSpec{Suspend: ptr(true), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "theirs", Image: stableImage}}}}}}
	theirs, err := a.kube.BatchV1().Jobs(a.ns).Create(ctx, theirs, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r = runStep(t, "verify-health", a.kubeconfig, env("- {name: smoke, configMap: smoke-job, timeout: 2m}"))
	if r.code != 2 || !strings.Contains(r.stderr, "JOBS") || !strings.Contains(r.stderr, first.Name) {
		t.Errorf("a team's Job of the name: exit %d; want 2 naming JOBS and the Job\n%s", r.code, r.stderr)
	}
	after, err := a.kube.BatchV1().Jobs(a.ns).Get(ctx, first.Name, metav1.GetOptions{})
	if err != nil || after.UID != theirs.UID || after.Labels["app.kubernetes.io/managed-by"] != "" || after.Annotations["canaryline.dev/analysis"] != "" {
		t.Errorf("the team's Job was changed: %v %+v", err, after.ObjectMeta)
	}
}

// TestJobCheckOnTheRealNode: on the real node the Job's pod runs in a container runtime, and the evidence holds
// the end of its real log: the pod's hostname (its name) for a Job that completes, the error for one that fails.
func TestJobCheckOnTheRealNode(t *testing.T) {
	t.Parallel()
	devclustertest.RequireRealNode(t, cluster)
	a := newApp(t, "route", 2)
	if r := a.shift(10, nil); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	realJob := func(args string) string {
		image := cluster.Node().Pinned(devcluster.SampleAppImage)
		return `apiVersion: batch/v1
kind: Job
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      nodeSelector: {` + devcluster.RealNodeLabel + `: "true"}
      tolerations:
      - {key: ` + devcluster.RealNodeToleration.Key + `, operator: Equal, value: 'true', effect: NoSchedule}
      containers:
      - name: main
        image: ` + image + `
        imagePullPolicy: IfNotPresent
        command: ["/usr/local/bin/sample-app", "cat", ` + args + `]
`
	}
	a.jobTemplate("cat-hostname", realJob(`"/etc/hostname"`))
	a.jobTemplate("cat-missing", realJob(`"/no/such/file"`))
	for _, tc := range []struct {
		check, configMap string
		code             int
		want             func(pod string) string
	}{
		{"hostname", "cat-hostname", 0, func(pod string) string { return pod }},
		{"missing", "cat-missing", 4, func(string) string { return "/no/such/file: no such file or directory" }},
	} {
		skipUnderDiskPressure(t, a)
		dir := filepath.Join(t.TempDir(), "evidence")
		r := runStep(t, "verify-health", a.kubeconfig, map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1", "INTERVAL": "1s", "COUNT": "3",
			"EVIDENCE_DIR": dir, "JOBS": "- {name: " + tc.check + ", configMap: " + tc.configMap + ", timeout: 2m}"})
		if r.code != tc.code {
			skipUnderDiskPressure(t, a)
			t.Fatalf("%s: exit %d results %v; want %d\n%s\n%s", tc.check, r.code, r.results, tc.code, r.stdout, a.jobState())
		}
		pods, err := a.kube.CoreV1().Pods(a.ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod := ""
		for _, p := range pods.Items {
			if strings.HasPrefix(p.Name, "shop-"+tc.check+"-") {
				pod = p.Name
			}
		}
		d := checkDetails(t, dir, tc.check)
		if pod == "" || !strings.Contains(d, "logs of pod "+pod) || !strings.Contains(d, tc.want(pod)) {
			skipUnderDiskPressure(t, a)
			t.Errorf("%s: the evidence lacks the real log of pod %q (%q):\n%s\n%s", tc.check, pod, tc.want(pod), d, a.jobState())
		}
	}
}

// jobState describes the namespace's Jobs, pods and events, for a failure's message.
func (a *app) jobState() string {
	ctx := context.Background()
	var b strings.Builder
	for _, j := range a.jobs() {
		fmt.Fprintf(&b, "job %s: %+v\n", j.Name, j.Status)
	}
	pods, _ := a.kube.CoreV1().Pods(a.ns).List(ctx, metav1.ListOptions{})
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "pod %s on %q: %s %s %s %+v\n", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.Reason, p.Status.Message, p.Status.ContainerStatuses)
	}
	nodes, _ := a.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	for _, n := range nodes.Items {
		fmt.Fprintf(&b, "node %s: taints %v\n", n.Name, n.Spec.Taints)
	}
	events, _ := a.kube.CoreV1().Events(a.ns).List(ctx, metav1.ListOptions{})
	for _, e := range events.Items {
		fmt.Fprintf(&b, "event %s %s: %s %s\n", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
	}
	return b.String()
}

// skipUnderDiskPressure skips t when the real node is short of disk, or rejected a pod of a's for it: its kubelet
// then rejects new pods, which run nowhere, and there is no log to read. That is the machine's state, not the
// job check's.
func skipUnderDiskPressure(t *testing.T, a *app) {
	t.Helper()
	ctx := context.Background()
	if n, err := a.kube.CoreV1().Nodes().Get(ctx, devcluster.RealNodeName, metav1.GetOptions{}); err == nil {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeDiskPressure && c.Status == corev1.ConditionTrue {
				t.Skipf("the real node is under disk pressure (%s): its kubelet rejects new pods", c.Message)
			}
		}
	}
	pods, _ := a.kube.CoreV1().Pods(a.ns).List(ctx, metav1.ListOptions{})
	for _, p := range pods.Items {
		if p.Status.Reason == "Evicted" && strings.Contains(p.Status.Message, "DiskPressure") {
			t.Skipf("the real node rejected pod %s: %s", p.Name, p.Status.Message)
		}
	}
}
