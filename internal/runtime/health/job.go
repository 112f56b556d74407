package health

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/yaml"

	"github.com/canaryline/canaryline/internal/runtime/evidence"
	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// The marks on the Jobs that the job check creates: canaryline's, for this analysis.
const (
	jobManagedByLabel = "app.kubernetes.io/managed-by"
	jobManagedBy      = "canaryline"
	jobCheckLabel     = "canaryline.dev/check"
	// JobAnalysisAnnotation names the analysis a Job was created for (namespace, application, release, weight,
	// canary hash and check): a rerun of the same analysis finds its Job by it.
	JobAnalysisAnnotation = "canaryline.dev/analysis"
)

const (
	defaultJobKey     = "job.yaml"
	defaultJobTimeout = 10 * time.Minute
	// jobTTL is the ttlSecondsAfterFinished of a Job whose template sets none: the Job and its pods are removed by
	// Kubernetes an hour after they finish.
	jobTTL = int32(3600)
	// maxJobLog is how much of the end of a Job pod's log the evidence keeps.
	maxJobLog = 4 << 10
)

// JobSpec is one entry of JOBS: a Job run from a template in a ConfigMap, once per analysis.
type JobSpec struct {
	Name      string `json:"name"`
	ConfigMap string `json:"configMap"`
	// Key is the ConfigMap's key holding the Job (YAML); job.yaml when empty.
	Key string `json:"key"`
	// Timeout is how long the Job may run (default 10m): one still running then is an error, not a failure.
	Timeout string `json:"timeout"`

	timeout  time.Duration
	template *batchv1.Job
}

// validateJobs reads JOBS: each a name, a ConfigMap and its key, and a timeout. The templates are read from the
// cluster before the analysis (loadJobTemplates).
func (c *Config) validateJobs() error {
	if c.Jobs == "" {
		return nil
	}
	const fix = "give a YAML list of {name, configMap, key, timeout}, such as - {name: smoke, configMap: smoke-job}"
	if err := yaml.UnmarshalStrict([]byte(c.Jobs), &c.jobs); err != nil {
		return step.Invalid("JOBS", fix, "%v", err)
	}
	if len(c.jobs) == 0 {
		return step.Invalid("JOBS", fix, "the list is empty")
	}
	for i := range c.jobs {
		j := &c.jobs[i]
		if len(validation.IsDNS1123Label(j.Name)) > 0 {
			return step.Invalid("JOBS", "give each job a name of lower-case letters, digits and '-'", "entry %d: name %q is not valid", i+1, j.Name)
		}
		if len(validation.IsDNS1123Subdomain(j.ConfigMap)) > 0 {
			return step.Invalid("JOBS", "name the ConfigMap that holds the Job template (oc get configmap)", "job %s: configMap %q is not a valid name", j.Name, j.ConfigMap)
		}
		if j.Key == "" {
			j.Key = defaultJobKey
		}
		j.timeout = defaultJobTimeout
		if j.Timeout != "" {
			d, err := time.ParseDuration(j.Timeout)
			if err != nil || d <= 0 {
				return step.Invalid("JOBS", "give a positive Go duration such as 10m", "job %s: timeout %q", j.Name, j.Timeout)
			}
			j.timeout = d
		}
		if err := c.claimName(j.Name, "JOBS"); err != nil {
			return err
		}
	}
	return nil
}

// loadJobTemplates reads each job's template from its ConfigMap and checks it: a batch/v1 Job whose pods restart
// Never or OnFailure. Nothing is written before they all are read.
func loadJobTemplates(ctx context.Context, kube kubeclient.Interface, ns string, jobs []JobSpec) error {
	for i := range jobs {
		j := &jobs[i]
		cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, j.ConfigMap, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return step.Invalid("JOBS", "create the ConfigMap with the Job template in the application's namespace", "job %s: ConfigMap %s/%s does not exist", j.Name, ns, j.ConfigMap)
		case err != nil:
			return fmt.Errorf("job %s: get ConfigMap %s/%s: %w", j.Name, ns, j.ConfigMap, err)
		}
		text, ok := cm.Data[j.Key]
		if !ok {
			return step.Invalid("JOBS", "give the key that holds the Job (key, job.yaml by default)", "job %s: ConfigMap %s has no key %q", j.Name, j.ConfigMap, j.Key)
		}
		if j.template, err = parseJobTemplate(text); err != nil {
			return step.Invalid("JOBS", "put a batch/v1 Job in the ConfigMap, with restartPolicy Never or OnFailure", "job %s: ConfigMap %s key %s: %v", j.Name, j.ConfigMap, j.Key, err)
		}
	}
	return nil
}

// parseJobTemplate reads a Job template: a batch/v1 Job with at least one container and a restartPolicy a Job
// accepts.
func parseJobTemplate(text string) (*batchv1.Job, error) {
	job := &batchv1.Job{}
	if err := yaml.UnmarshalStrict([]byte(text), job); err != nil {
		return nil, err
	}
	if (job.Kind != "" && job.Kind != "Job") || (job.APIVersion != "" && job.APIVersion != "batch/v1") {
		return nil, fmt.Errorf("it is a %s %s, not a batch/v1 Job", job.APIVersion, job.Kind)
	}
	spec := job.Spec.Template.Spec
	if len(spec.Containers) == 0 {
		return nil, fmt.Errorf("the Job's pod template has no container")
	}
	if spec.RestartPolicy != corev1.RestartPolicyNever && spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return nil, fmt.Errorf("restartPolicy %q: a Job's pods restart Never or OnFailure", spec.RestartPolicy)
	}
	return job, nil
}

// jobCheck runs one Job per analysis and passes when it completes, fails when it fails. It starts with the
// analysis and runs beside the other checks: measurements are pending until the Job finishes; a failed Job ends
// the analysis at once, and the analysis waits for one still running at its end.
type jobCheck struct {
	kube     kubeclient.Interface
	ns       string
	spec     JobSpec
	name     string
	identity string
	labels   map[string]string

	ctx  context.Context
	done chan struct{}
	res  evidence.Measurement
	err  error
}

var (
	_ Check = (*jobCheck)(nil)
	_ Final = (*jobCheck)(nil)
)

// newJobCheck is the job check of spec for the analysis identity (release, weight, canary): its Job's name is
// derived from the application, the check and the identity.
func newJobCheck(kube kubeclient.Interface, ns, app, release string, spec JobSpec, identity string) *jobCheck {
	sum := sha256.Sum256([]byte(identity))
	prefix := app + "-" + spec.Name // DNS labels: ASCII
	if len(prefix) > 52 {
		prefix = strings.TrimRight(prefix[:52], "-")
	}
	labels := map[string]string{jobManagedByLabel: jobManagedBy, jobCheckLabel: spec.Name}
	if release != "" && len(validation.IsValidLabelValue(release)) == 0 {
		labels["canaryline.dev/release"] = release
	}
	return &jobCheck{kube: kube, ns: ns, spec: spec, name: prefix + "-" + hex.EncodeToString(sum[:])[:10], identity: identity,
		labels: labels, done: make(chan struct{})}
}

func (j *jobCheck) Name() string { return j.spec.Name }
func (j *jobCheck) Kind() string { return "job" }
func (j *jobCheck) Query() string {
	return "Job " + j.ns + "/" + j.name + " from ConfigMap " + j.spec.ConfigMap
}
func (j *jobCheck) Threshold() string { return "Job Complete" }

// ours says whether job is the one this check creates: canaryline's, for this analysis.
func (j *jobCheck) ours(job *batchv1.Job) bool {
	return job.Labels[jobManagedByLabel] == jobManagedBy && job.Annotations[JobAnalysisAnnotation] == j.identity
}

// checkClash refuses, before anything is created, a Job of the check's name that is not this analysis's.
func (j *jobCheck) checkClash(ctx context.Context) error {
	job, err := j.kube.BatchV1().Jobs(j.ns).Get(ctx, j.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("job %s: get Job %s/%s: %w", j.spec.Name, j.ns, j.name, err)
	case !j.ours(job):
		return step.Invalid("JOBS", "rename the job check, or remove that Job if it is not needed (canaryline never changes a Job it did not create)",
			"job %s: Job %s/%s exists and is not this analysis's", j.spec.Name, j.ns, j.name)
	}
	return nil
}

// start runs the Job in the background until ctx ends.
func (j *jobCheck) start(ctx context.Context) {
	j.ctx = ctx
	go func() {
		defer close(j.done)
		j.res, j.err = j.run(ctx)
	}()
}

// run creates (or finds) the Job, waits for it to finish, and reads its logs.
func (j *jobCheck) run(ctx context.Context) (evidence.Measurement, error) {
	m := evidence.Measurement{Check: j.Name(), Threshold: j.Threshold(), Query: j.Query()}
	job, err := j.ensure(ctx)
	if err != nil {
		return m, err
	}
	wctx, cancel := context.WithTimeout(ctx, j.spec.timeout)
	defer cancel()
	job, err = j.wait(wctx, job)
	if err != nil {
		if wctx.Err() != nil && ctx.Err() == nil {
			return m, fmt.Errorf("job %s: Job %s/%s has not finished in %s (timeout)", j.spec.Name, j.ns, j.name, j.spec.timeout)
		}
		return m, err
	}
	failed, why := jobOutcome(job)
	logs := j.logs(ctx, job)
	m.Status, m.Value, m.Text = evidence.Pass, 1, fmt.Sprintf("Job %s complete", j.name)
	m.Detail = logs
	if failed {
		m.Status, m.Value, m.Text = evidence.Fail, 0, fmt.Sprintf("Job %s failed", j.name)
		m.Detail = fmt.Sprintf("job %s: Job %s failed: %s; %s", j.spec.Name, j.name, why, logs)
	}
	return m, nil
}

// ensure gets the analysis's Job, or creates it from the template. A Job of that name that is not the analysis's
// is never touched.
func (j *jobCheck) ensure(ctx context.Context) (*batchv1.Job, error) {
	jobs := j.kube.BatchV1().Jobs(j.ns)
	for range 3 {
		job, err := jobs.Get(ctx, j.name, metav1.GetOptions{})
		if err == nil {
			if !j.ours(job) {
				return nil, fmt.Errorf("job %s: Job %s/%s exists and is not this analysis's: it is left as it is", j.spec.Name, j.ns, j.name)
			}
			return job, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("job %s: get Job %s/%s: %w", j.spec.Name, j.ns, j.name, err)
		}
		job, err = jobs.Create(ctx, j.newJob(), metav1.CreateOptions{})
		if err == nil {
			return job, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("job %s: create Job %s/%s: %w", j.spec.Name, j.ns, j.name, err)
		}
	}
	return nil, fmt.Errorf("job %s: Job %s/%s keeps appearing and disappearing", j.spec.Name, j.ns, j.name)
}

// newJob is the Job made from the template: the check's name, canaryline's marks, and a TTL when the template
// has none. A template copied from a live Job loses its selector and the labels the Job controller set.
func (j *jobCheck) newJob() *batchv1.Job {
	t := j.spec.template.DeepCopy()
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: j.name, Namespace: j.ns, Labels: t.Labels, Annotations: t.Annotations}, Spec: t.Spec}
	if job.Labels == nil {
		job.Labels = map[string]string{}
	}
	if job.Annotations == nil {
		job.Annotations = map[string]string{}
	}
	for k, v := range j.labels {
		job.Labels[k] = v
	}
	job.Annotations[JobAnalysisAnnotation] = j.identity
	if job.Spec.ManualSelector == nil || !*job.Spec.ManualSelector {
		job.Spec.Selector = nil
		for _, k := range []string{"controller-uid", "job-name", batchv1.ControllerUidLabel, batchv1.JobNameLabel} {
			delete(job.Spec.Template.Labels, k)
		}
	}
	if job.Spec.TTLSecondsAfterFinished == nil {
		ttl := jobTTL
		job.Spec.TTLSecondsAfterFinished = &ttl
	}
	return job
}

// wait watches the Job until it is Complete or Failed (or ctx ends), and returns it then.
func (j *jobCheck) wait(ctx context.Context, job *batchv1.Job) (*batchv1.Job, error) {
	jobs := j.kube.BatchV1().Jobs(j.ns)
	for {
		if finished(job) {
			return job, nil
		}
		w, err := jobs.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + j.name, ResourceVersion: job.ResourceVersion})
		if err != nil {
			return nil, fmt.Errorf("job %s: watch Job %s/%s: %w", j.spec.Name, j.ns, j.name, err)
		}
		job = j.follow(ctx, w, job)
		w.Stop()
		if finished(job) {
			return job, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// The watch ended (expired, or the server closed it): read the Job again and watch from there.
		if job, err = jobs.Get(ctx, j.name, metav1.GetOptions{}); err != nil {
			return nil, fmt.Errorf("job %s: get Job %s/%s: %w", j.spec.Name, j.ns, j.name, err)
		}
	}
}

// follow reads w's events until the Job finishes, the watch ends, or ctx does, and returns the Job as last seen.
func (j *jobCheck) follow(ctx context.Context, w watch.Interface, job *batchv1.Job) *batchv1.Job {
	for !finished(job) {
		select {
		case <-ctx.Done():
			return job
		case ev, ok := <-w.ResultChan():
			if !ok {
				return job
			}
			if got, isJob := ev.Object.(*batchv1.Job); isJob && got.Name == j.name {
				job = got
			}
		}
	}
	return job
}

// finished says whether the Job is Complete or Failed.
func finished(job *batchv1.Job) bool {
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// jobOutcome says whether the finished Job failed, and why.
func jobOutcome(job *batchv1.Job) (failed bool, why string) {
	for _, c := range job.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return true, strings.TrimSpace(c.Reason + " " + c.Message)
		}
	}
	return false, ""
}

// logs is the end of the log of the Job's newest pod (its first container), or why there is none.
func (j *jobCheck) logs(ctx context.Context, job *batchv1.Job) string {
	pods, err := j.kube.CoreV1().Pods(j.ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.ControllerUidLabel + "=" + string(job.UID)})
	if err != nil {
		return "logs unavailable: list the Job's pods: " + err.Error()
	}
	var newest *corev1.Pod
	for i := range pods.Items {
		if p := &pods.Items[i]; newest == nil || newest.CreationTimestamp.Before(&p.CreationTimestamp) {
			newest = p
		}
	}
	if newest == nil || len(newest.Spec.Containers) == 0 {
		return "logs unavailable: the Job has no pod left"
	}
	tail, limit := int64(200), int64(1<<20)
	container := newest.Spec.Containers[0].Name
	if !ran(newest, container) {
		return fmt.Sprintf("logs unavailable: container %s of pod %s never ran in a container runtime (no container ID): it has no log", container, newest.Name)
	}
	r, err := j.kube.CoreV1().PodLogs(ctx, j.ns, newest.Name, &corev1.PodLogOptions{Container: container, TailLines: &tail, LimitBytes: &limit})
	if err != nil {
		return fmt.Sprintf("logs of pod %s unavailable: %v", newest.Name, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, limit))
	if err != nil {
		return fmt.Sprintf("logs of pod %s unavailable: %v", newest.Name, err)
	}
	if len(data) > maxJobLog {
		data = data[len(data)-maxJobLog:]
	}
	return fmt.Sprintf("logs of pod %s (container %s, last %d bytes at most):\n%s", newest.Name, container, maxJobLog, step.Redact(string(data)))
}

// Measure reports the Job's outcome once it finished, pending until then.
func (j *jobCheck) Measure(_ context.Context, now time.Time) (evidence.Measurement, error) {
	select {
	case <-j.done:
		m := j.res
		m.Time = now.UTC()
		return m, j.err
	default:
		m := measurement(j, now)
		m.Query, m.Status, m.Text = j.Query(), evidence.Pending, fmt.Sprintf("Job %s running", j.name)
		return m, nil
	}
}

// Certain says whether the Job failed: that failure is final.
func (j *jobCheck) Certain() bool {
	select {
	case <-j.done:
		return j.err == nil && j.res.Status == evidence.Fail
	default:
		return false
	}
}

// Final waits for the Job (until its timeout or the analysis ends) and reports its outcome; an error is reported
// as an error measurement.
func (j *jobCheck) Final(now time.Time) evidence.Measurement {
	select {
	case <-j.done:
	case <-j.ctx.Done():
	}
	m, err := j.Measure(j.ctx, now)
	if err != nil {
		m.Status, m.Detail = evidence.Error, err.Error()
	}
	if m.Status == evidence.Pending {
		m.Status, m.Detail = evidence.Error, "the analysis ended before the Job finished"
	}
	return m
}

// summary says how the Job did, for the verdict's reason.
func (j *jobCheck) summary(last evidence.Measurement) string {
	if last.Status == evidence.Pass {
		return "Job " + j.name + " completed"
	}
	return "Job " + j.name + " " + last.Status
}

// ran says whether container ran in a container runtime: its status has a container ID. A pod of a simulated
// node (KWOK) has none, and no kubelet to ask for a log.
func ran(pod *corev1.Pod, container string) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == container {
			return cs.ContainerID != ""
		}
	}
	return false
}
