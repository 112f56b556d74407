package health

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/canaryline/canaryline/internal/runtime/evidence"
	"github.com/canaryline/canaryline/internal/runtime/kubeclient/kubeclienttest"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// answer is what a webhook answers.
type answer struct {
	status int
	body   string
	delay  time.Duration
}

// webhookServer answers every POST with status and body (after delay), and records the contexts it was sent.
type webhookServer struct {
	status int
	body   string
	delay  time.Duration

	mu   sync.Mutex
	got  []WebhookContext
	kind []string
}

func (s *webhookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var c WebhookContext
	data, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(data, &c)
	s.mu.Lock()
	s.got = append(s.got, c)
	s.kind = append(s.kind, r.Method+" "+r.Header.Get("Content-Type"))
	s.mu.Unlock()
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(s.status)
	_, _ = io.WriteString(w, s.body)
}

// startWebhook serves s on 127.0.0.1 until the test ends.
func startWebhook(t *testing.T, s *webhookServer) string {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("the test server is at %s, not on loopback", srv.URL)
	}
	return srv.URL
}

// webhookFor is the webhook check of one WEBHOOKS entry, validated as verify-health validates it.
func webhookFor(t *testing.T, entry string) *webhookCheck {
	t.Helper()
	cfg, err := load(map[string]string{"APP": "exp", "WEBHOOKS": entry})
	if err != nil {
		t.Fatal(err)
	}
	client, err := newWebhookClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &webhookCheck{w: cfg.webhooks[0], client: client, context: WebhookContext{Namespace: "team", App: "exp", Check: cfg.webhooks[0].Name}}
}

// TestWebhookCheckJudgesTheAnswer: 2xx passes, any other status fails, a named field must hold its value, no answer
// in time and an oversized answer (when a field is looked for) are errors, never failures.
func TestWebhookCheckJudgesTheAnswer(t *testing.T) {
	t.Parallel()
	big := `{"pad": "` + strings.Repeat("x", 200<<10) + `", "ok": true}`
	for _, tc := range []struct {
		name      string
		srv       answer
		extra     string // more of the WEBHOOKS entry
		want      string // a status, or "error"
		wantText  string // in the measurement's text, detail or error
		wantValue float64
	}{
		{"200 passes", answer{status: 200, body: "fine"}, "", evidence.Pass, "200 in", 200},
		{"204 passes", answer{status: 204}, "", evidence.Pass, "204 in", 204},
		{"500 fails", answer{status: 500, body: "broken canary"}, "", evidence.Fail, "answered 500 (not 2xx)", 500},
		{"404 fails", answer{status: 404}, "", evidence.Fail, "answered 404", 404},
		{"a redirect is not followed", answer{status: 302}, "", evidence.Fail, "answered 302", 302},
		{"field true", answer{status: 200, body: `{"status": {"ok": true}}`}, ", successField: status.ok", evidence.Pass, "status.ok = true", 200},
		{"field false", answer{status: 200, body: `{"status": {"ok": false}}`}, ", successField: status.ok", evidence.Fail, `status.ok is "false", not "true"`, 200},
		{"field value", answer{status: 200, body: `{"results": [{"state": "passed"}]}`}, ", successField: '{.results[0].state}', successValue: passed", evidence.Pass, "= passed", 200},
		{"field other value", answer{status: 200, body: `{"results": [{"state": "regressed"}]}`}, ", successField: '{.results[0].state}', successValue: passed", evidence.Fail, `"regressed", not "passed"`, 200},
		{"field number", answer{status: 200, body: `{"score": 3}`}, ", successField: score, successValue: '3'", evidence.Pass, "score = 3", 200},
		{"field missing", answer{status: 200, body: `{"other": 1}`}, ", successField: status.ok", "error", "status.ok", 0},
		{"answer not json", answer{status: 200, body: "<html>"}, ", successField: status.ok", "error", "not JSON", 0},
		{"field on a 500 fails", answer{status: 500, body: `{"status": {"ok": true}}`}, ", successField: status.ok", evidence.Fail, "answered 500", 500},
		{"timeout is an error", answer{status: 200, delay: 5 * time.Second}, ", timeout: 200ms", "error", "deadline exceeded", 0},
		{"oversized answer is bounded", answer{status: 200, body: big}, ", successField: ok", "error", "longer than 64 KiB", 0},
		{"oversized answer without a field passes", answer{status: 200, body: big}, "", evidence.Pass, "200 in", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := startWebhook(t, &webhookServer{status: tc.srv.status, body: tc.srv.body, delay: tc.srv.delay})
			c := webhookFor(t, "- {name: gate, url: '"+url+"/judge'"+tc.extra+"}")
			start := time.Now()
			m, err := c.Measure(context.Background(), time.Now())
			got, text := m.Status, m.Text+" "+m.Detail
			if err != nil {
				got, text = "error", err.Error()
			}
			if got != tc.want || !strings.Contains(text, tc.wantText) || (err == nil && m.Value != tc.wantValue) {
				t.Errorf("got %s value %v %q; want %s value %v with %q", got, m.Value, text, tc.want, tc.wantValue, tc.wantText)
			}
			if time.Since(start) > 4*time.Second {
				t.Errorf("the measurement took %s: the timeout was not applied", time.Since(start))
			}
			if err != nil && !strings.Contains(err.Error(), "webhook gate") {
				t.Errorf("the error does not name the webhook: %v", err)
			}
		})
	}
}

// TestWebhookCheckReadsAtMost64KiB: however long the answer, no more than 64 KiB (and one byte) of it is read.
func TestWebhookCheckReadsAtMost64KiB(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	written := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		chunk := []byte(strings.Repeat("x", 4096))
		for range 4096 { // 16 MiB, unless the client stops reading
			n, err := w.Write(chunk)
			mu.Lock()
			written += n
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	c := webhookFor(t, "- {name: gate, url: '"+srv.URL+"', successField: ok}")
	_, _, long, err := c.post(context.Background(), []byte("{}"))
	if err != nil || !long {
		t.Fatalf("post: long %v, err %v; want a long answer", long, err)
	}
	srv.CloseClientConnections()
	mu.Lock()
	defer mu.Unlock()
	if written >= 16<<20 {
		t.Errorf("the server wrote all %d bytes: the answer was read to its end", written)
	}
}

// TestWebhookCheckSendsTheReleaseContext: verify-health posts the release's context as JSON each interval: the
// namespace, application, release, the canary's and stable's Deployments and hashes, and the measurement number.
func TestWebhookCheckSendsTheReleaseContext(t *testing.T) {
	t.Parallel()
	srv := &webhookServer{status: 200, body: `{"verdict": "pass"}`}
	url := startWebhook(t, srv)
	v, log, err := verify(t, map[string]string{"RELEASE_ID": "exp-release", "PODS": "false",
		"WEBHOOKS": "- {name: smoke, url: '" + url + "', successField: verdict, successValue: pass}"}, Deps{})
	if err != nil || v.Verdict != evidence.Healthy {
		t.Fatalf("verdict %+v err %v; want healthy\n%s", v, err, log)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.got) != 3 {
		t.Fatalf("the webhook was called %d times; want 3 (COUNT)", len(srv.got))
	}
	for i, c := range srv.got {
		if c.Namespace != "team" || c.App != "exp" || c.Release != "exp-release" || c.Check != "smoke" || c.Measurement != i+1 ||
			c.Canary != (Side{Deployment: "exp-canary", Hash: "c1"}) || c.Stable != (Side{Deployment: "exp", Hash: "s1"}) || c.Time.IsZero() {
			t.Errorf("call %d sent %+v", i+1, c)
		}
		if srv.kind[i] != "POST application/json" {
			t.Errorf("call %d was %s; want a JSON POST", i+1, srv.kind[i])
		}
	}
}

// TestWebhookCheckFailsTheAnalysis: a webhook answering 500 makes the canary unhealthy, and the reason names it.
func TestWebhookCheckFailsTheAnalysis(t *testing.T) {
	t.Parallel()
	url := startWebhook(t, &webhookServer{status: 500, body: "smoke test failed: checkout"})
	v, log, err := verify(t, map[string]string{"PODS": "false", "WEBHOOKS": "- {name: smoke, url: '" + url + "'}"}, Deps{})
	if step.ExitCode(err) != step.ExitFailed || v.Verdict != evidence.Unhealthy || !strings.Contains(v.Reason, "smoke") ||
		!strings.Contains(v.Reason, "smoke test failed: checkout") {
		t.Errorf("verdict %+v err %v; want unhealthy naming the webhook and its answer\n%s", v, err, log)
	}
}

const jobTemplate = `apiVersion: batch/v1
kind: Job
metadata:
  name: copied-from-a-live-job
  labels: {team: payments}
spec:
  backoffLimit: 0
  selector: {matchLabels: {batch.kubernetes.io/controller-uid: old}}
  template:
    metadata:
      labels: {batch.kubernetes.io/controller-uid: old, role: smoke}
    spec:
      restartPolicy: Never
      containers:
      - name: smoke
        image: registry.example.com/smoke:1
`

// jobFake is a fake API server with a release of exp and ConfigMap smoke-job holding tmpl.
func jobFake(tmpl string) *kubefake.Clientset {
	objs := releaseObjects(false)
	objs = append(objs, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "smoke-job", Namespace: "team"}, Data: map[string]string{"job.yaml": tmpl}})
	return kubefake.NewSimpleClientset(objs...)
}

// finishJobs plays the Job controller: each Job created gets a pod and, after a moment, the condition cond.
func finishJobs(t *testing.T, kube *kubefake.Clientset, cond batchv1.JobConditionType) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := kube.BatchV1().Jobs("team").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			job, ok := ev.Object.(*batchv1.Job)
			if !ok || ev.Type != "ADDED" || len(job.Status.Conditions) > 0 {
				continue
			}
			job = job.DeepCopy()
			job.UID = "uid-" + "job"
			_, _ = kube.CoreV1().Pods("team").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: job.Name + "-p1", Namespace: "team",
				Labels: map[string]string{batchv1.ControllerUidLabel: string(job.UID)}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "smoke"}}},
				Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "smoke", ContainerID: "containerd://1"}}}}, metav1.CreateOptions{})
			time.Sleep(20 * time.Millisecond)
			job.Status.Conditions = []batchv1.JobCondition{{Type: cond, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded"}}
			_, _ = kube.BatchV1().Jobs("team").UpdateStatus(ctx, job, metav1.UpdateOptions{})
		}
	}()
}

func jobCreates(kube *kubefake.Clientset) int {
	n := 0
	for _, a := range kube.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "jobs" {
			n++
		}
	}
	return n
}

// TestJobCheckVerdicts: a Job that completes passes, one that fails makes the canary unhealthy; the Job is made
// from the template with canaryline's marks and a TTL, and its pod's log is in the evidence.
func TestJobCheckVerdicts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cond    batchv1.JobConditionType
		verdict string
	}{{batchv1.JobComplete, evidence.Healthy}, {batchv1.JobFailed, evidence.Unhealthy}} {
		t.Run(string(tc.cond), func(t *testing.T) {
			t.Parallel()
			kube := jobFake(jobTemplate)
			finishJobs(t, kube, tc.cond)
			env := map[string]string{"RELEASE_ID": "exp-release", "PODS": "false", "JOBS": "- {name: smoke, configMap: smoke-job}", "INTERVAL": "50ms", "COUNT": "4"}
			v, log, err := verify(t, env, Deps{Kube: kubeclienttest.Wrap(kube)})
			if v.Verdict != tc.verdict {
				t.Fatalf("verdict %+v err %v; want %s\n%s", v, err, tc.verdict, log)
			}
			jobs, _ := kube.BatchV1().Jobs("team").List(context.Background(), metav1.ListOptions{})
			if len(jobs.Items) != 1 {
				t.Fatalf("%d Jobs; want 1", len(jobs.Items))
			}
			job := jobs.Items[0]
			if !strings.HasPrefix(job.Name, "exp-smoke-") || job.Labels[jobManagedByLabel] != "canaryline" || job.Labels["team"] != "payments" ||
				job.Annotations[JobAnalysisAnnotation] == "" || job.Spec.TTLSecondsAfterFinished == nil || job.Spec.Selector != nil ||
				job.Spec.Template.Labels[batchv1.ControllerUidLabel] != "" || job.Spec.Template.Labels["role"] != "smoke" {
				t.Errorf("the Job is not the template marked as canaryline's: %+v", job.ObjectMeta)
			}
			if !strings.Contains(log, "fake logs") && !strings.Contains(v.Reason, "fake logs") {
				t.Errorf("the pod's log is not in the evidence:\n%s", log)
			}
			if tc.verdict == evidence.Unhealthy && (!strings.Contains(v.Reason, "smoke") || !strings.Contains(v.Reason, "BackoffLimitExceeded")) {
				t.Errorf("the reason %q does not say the Job failed", v.Reason)
			}
		})
	}
}

// TestJobCheckRerunFindsItsJob: a rerun of the same analysis waits on the Job the first run created, and creates
// none; another weight of the release is another analysis, with its own Job.
func TestJobCheckRerunFindsItsJob(t *testing.T) {
	t.Parallel()
	kube := jobFake(jobTemplate)
	finishJobs(t, kube, batchv1.JobComplete)
	env := map[string]string{"PODS": "false", "JOBS": "- {name: smoke, configMap: smoke-job}", "INTERVAL": "50ms", "COUNT": "2"}
	for run := 1; run <= 2; run++ {
		if v, log, err := verify(t, env, Deps{Kube: kubeclienttest.Wrap(kube)}); v.Verdict != evidence.Healthy {
			t.Fatalf("run %d: verdict %+v err %v\n%s", run, v, err, log)
		}
	}
	if n := jobCreates(kube); n != 1 {
		t.Errorf("%d Jobs created over two runs of one analysis; want 1", n)
	}
}

// TestJobCheckNeverTouchesATeamsJob: a Job of the check's name that canaryline did not create for this analysis
// is refused (exit 2 naming JOBS) before anything is created, and left as it is.
func TestJobCheckNeverTouchesATeamsJob(t *testing.T) {
	t.Parallel()
	kube := jobFake(jobTemplate)
	// The name the check would use: made as the check makes it.
	cfg, err := load(map[string]string{"APP": "exp", "JOBS": "- {name: smoke, configMap: smoke-job}"})
	if err != nil {
		t.Fatal(err)
	}
	v := &verification{cfg: cfg, ns: "team", d: Deps{Kube: kubeclienttest.Wrap(kube)}}
	v.res.tracks.CanaryHash = "c1"
	if err := v.prepareJobs(context.Background()); err != nil {
		t.Fatal(err)
	}
	name := v.jobs[0].name
	theirs := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team", Labels: map[string]string{"team": "payments"}}}
	if _, err := kube.BatchV1().Jobs("team").Create(context.Background(), theirs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kube.ClearActions()
	_, log, err := verify(t, map[string]string{"PODS": "false", "JOBS": "- {name: smoke, configMap: smoke-job, timeout: 1s}"}, Deps{Kube: kubeclienttest.Wrap(kube)})
	if step.ExitCode(err) != step.ExitInvalid || !strings.Contains(err.Error(), "JOBS") || !strings.Contains(err.Error(), name) {
		t.Errorf("err %v (exit %d); want exit 2 naming JOBS and the Job\n%s", err, step.ExitCode(err), log)
	}
	for _, a := range kube.Actions() {
		if a.GetResource().Resource == "jobs" && a.GetVerb() != "get" {
			t.Errorf("%s %s: the team's Job was touched", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

// TestJobTemplateIsCheckedFirst: a missing ConfigMap or key, or a template that is not a Job a Job controller
// runs, is bad input (exit 2 naming JOBS) before anything is written.
func TestJobTemplateIsCheckedFirst(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, jobs, tmpl, want string }{
		{"no configmap", "- {name: smoke, configMap: nothing-here}", jobTemplate, "does not exist"},
		{"no key", "- {name: smoke, configMap: smoke-job, key: other.yaml}", jobTemplate, "no key"},
		{"not yaml", "- {name: smoke, configMap: smoke-job}", "kind: [", "smoke-job"},
		{"a deployment", "- {name: smoke, configMap: smoke-job}", "apiVersion: apps/v1\nkind: Deployment\n", "not a batch/v1 Job"},
		{"restart always", "- {name: smoke, configMap: smoke-job}", strings.Replace(jobTemplate, "Never", "Always", 1), "restartPolicy"},
		{"no container", "- {name: smoke, configMap: smoke-job}", "apiVersion: batch/v1\nkind: Job\nspec: {template: {spec: {restartPolicy: Never}}}\n", "no container"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kube := jobFake(tc.tmpl)
			kube.ClearActions()
			_, _, err := verify(t, map[string]string{"RELEASE_ID": "exp-release", "JOBS": tc.jobs}, Deps{Kube: kubeclienttest.Wrap(kube)})
			if step.ExitCode(err) != step.ExitInvalid || !strings.Contains(err.Error(), "JOBS") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v (exit %d); want exit 2 naming JOBS with %q", err, step.ExitCode(err), tc.want)
			}
			for _, a := range kube.Actions() {
				if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
					t.Errorf("%s %s before the template was checked", v, a.GetResource().Resource)
				}
			}
		})
	}
}

// TestLoadGeneration: the http check sends HTTP_METHOD with HTTP_BODY to HTTP_URLS, whose {{.Namespace}} is the
// step's namespace.
func TestLoadGeneration(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+string(body))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	v, log, err := verify(t, map[string]string{"PODS": "false", "HTTP_URLS": srv.URL + "/{{.Namespace}}/{{.App}}/orders", "HTTP_METHOD": "POST",
		"HTTP_BODY": `{"item": 42}`, "HTTP_RATE": "100", "INTERVAL": "100ms"}, Deps{})
	if err != nil || v.Verdict != evidence.Healthy {
		t.Fatalf("verdict %+v err %v\n%s", v, err, log)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 {
		t.Fatal("no request was sent")
	}
	for _, r := range got {
		if r != `POST /team/exp/orders {"item": 42}` {
			t.Fatalf("request %q; want POST /team/exp/orders with the body", r)
		}
	}
}
