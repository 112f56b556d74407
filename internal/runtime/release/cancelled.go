package release

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"

	"github.com/canaryline/canaryline/internal/runtime/step"
)

// A step of a release (shift-canary, verify-health) that Tekton stops with SIGTERM leaves the release to the
// Pipeline's finally task, except when the PipelineRun was cancelled with spec.status Cancelled, timed out
// (timeouts.pipeline), or is being deleted: Tekton runs no finally task then, and the canary would keep its
// traffic until the lock expires and the next release rolls it back. The stopped step rolls the release back
// itself in those cases.

var (
	taskRunGVR     = schema.GroupVersionResource{Group: "tekton.dev", Version: "v1", Resource: "taskruns"}
	pipelineRunGVR = schema.GroupVersionResource{Group: "tekton.dev", Version: "v1", Resource: "pipelineruns"}
)

const (
	// pipelineRunLabel is the label Tekton puts on a PipelineRun's TaskRuns, naming it.
	pipelineRunLabel = "tekton.dev/pipelineRun"
	// afterStopTimeout bounds what a stopped step does: Tekton's pods get 30 s (terminationGracePeriodSeconds)
	// between SIGTERM and SIGKILL.
	afterStopTimeout = 25 * time.Second
	// defaultPipelineTimeout is Tekton's default-timeout-minutes (config-defaults): the timeout of a PipelineRun
	// without timeouts.pipeline. Tekton's webhook sets the field on every PipelineRun, so it is rarely used.
	defaultPipelineTimeout = 60 * time.Minute
	// clockSkew is how far the step's clock may lag the Tekton controller's: a deadline that close counts as
	// passed (the controller stopped the step because it had passed).
	clockSkew = 5 * time.Second
	// The defaults of LOCK_TTL and ROLLOUT_TIMEOUT (envconfig applies them only to configs it loads).
	defaultLockTTL        = 10 * time.Minute
	defaultRolloutTimeout = 10 * time.Minute
)

// Stopped is a step of a release whose context was cancelled (SIGTERM) before it finished.
type Stopped struct {
	// TaskRun is the step's TaskRun ($(context.taskRun.name)) in the step's own namespace; empty off Tekton.
	TaskRun string
	// Target is the release: APP, NAMESPACE, the id it is recorded under, and LOCK_TTL (10m when zero).
	Target Target
}

// CheckTaskRun checks TASKRUN_NAME: empty (not on Tekton) or a TaskRun's name.
func CheckTaskRun(name string) error {
	if name != "" && len(validation.IsDNS1123Subdomain(name)) > 0 {
		return step.Invalid("TASKRUN_NAME", "set it to $(context.taskRun.name) in the step's env, or leave it empty off Tekton",
			"%q is not a TaskRun name", name)
	}
	return nil
}

// AfterStop is what shift-canary and verify-health do when they were stopped on Tekton: read their TaskRun and its
// PipelineRun and, when the PipelineRun's finally tasks will not run (noFinallyAfter), roll the release back as
// promote-or-rollback does. It runs on a context of its own, bounded by afterStopTimeout, and logs what it does.
func AfterStop(env func(string) (string, bool), s Stopped, log *slog.Logger) error {
	if s.TaskRun == "" {
		return nil
	}
	c, ns, err := clients(env)
	if err != nil {
		log.Error("stopped: the release is left to the PipelineRun's finally tasks: " + err.Error())
		return err
	}
	return afterStop(context.Background(), s, ns, c, log)
}

// afterStop is AfterStop with its clients; ns is the step's (and so its TaskRun's) namespace.
func afterStop(parent context.Context, s Stopped, ns string, c Clients, log *slog.Logger) error {
	if s.TaskRun == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(parent, afterStopTimeout)
	defer cancel()
	pr, err := pipelineRunOf(ctx, c.Dynamic, ns, s.TaskRun)
	if err != nil {
		log.Error("stopped: the release is left to the PipelineRun's finally tasks: " + err.Error())
		return err
	}
	if pr == nil {
		log.Info(fmt.Sprintf("stopped: TaskRun %s/%s is not found or not part of a PipelineRun: nothing done; end the release with promote-or-rollback", ns, s.TaskRun))
		return nil
	}
	stop, why := noFinallyAfter(pr, time.Now())
	if !stop {
		log.Info("stopped: " + why + ": the PipelineRun's finally tasks end the release; nothing done here")
		return nil
	}
	t := s.Target
	if t.ReleaseID == "" {
		log.Warn(fmt.Sprintf("stopped: %s and its finally tasks do not run, but RELEASE_ID is empty: the release is not rolled back here; "+
			"roll it back with promote-or-rollback DECISION=rollback APP=%s", why, t.App))
		return nil
	}
	if t.LockTTL == 0 {
		t.LockTTL = defaultLockTTL
	}
	// auto with PIPELINE_STATUS None rolls back the release in progress when it is this one, and does nothing when
	// it never started, ended already (finally ran after all), or another release is in progress.
	cfg := &DecideConfig{Target: t, Decision: DecisionAuto, PipelineStatus: "None", Reason: why + ": finally does not run",
		RolloutTimeout: defaultRolloutTimeout}
	if err := cfg.Validate(); err != nil {
		log.Error("stopped: the release is not rolled back: " + err.Error())
		return err
	}
	if t.Namespace != "" {
		ns = t.Namespace
	}
	log.Warn(fmt.Sprintf("stopped: %s and its finally tasks do not run: rolling back release %s of %s here", why, t.ReleaseID, describe(ns, t.App)))
	if _, err := Decide(ctx, cfg, ns, c, log); err != nil {
		err = fmt.Errorf("the rollback of release %s did not finish (%w); the Lease records how far it got: finish it with "+
			"promote-or-rollback DECISION=rollback RELEASE_ID=%s", t.ReleaseID, err, t.ReleaseID)
		log.Error("stopped: " + err.Error())
		return err
	}
	return nil
}

// pipelineRun is what tells whether a PipelineRun's finally tasks will run.
type pipelineRun struct {
	Name string
	// Status is spec.status: "", Cancelled, CancelledRunFinally, StoppedRunFinally, PipelineRunPending.
	Status string
	// Timeout is spec.timeouts.pipeline; nil when absent, 0 for none.
	Timeout *time.Duration
	// Start is status.startTime, else the creation time.
	Start    time.Time
	Deleting bool
}

// pipelineRunOf reads TaskRun taskRun and its PipelineRun (label tekton.dev/pipelineRun). It is nil when the
// TaskRun is not found (not on Tekton) or belongs to no PipelineRun. A PipelineRun that is gone already is
// returned as being deleted.
func pipelineRunOf(ctx context.Context, dyn dynamic.Interface, ns, taskRun string) (*pipelineRun, error) {
	tr, err := dyn.Resource(taskRunGVR).Namespace(ns).Get(ctx, taskRun, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, tektonReadError("TaskRun", ns, taskRun, err)
	}
	name := tr.GetLabels()[pipelineRunLabel]
	if name == "" {
		return nil, nil
	}
	u, err := dyn.Resource(pipelineRunGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &pipelineRun{Name: name, Deleting: true}, nil
	}
	if err != nil {
		return nil, tektonReadError("PipelineRun", ns, name, err)
	}
	return parsePipelineRun(u)
}

func tektonReadError(kind, ns, name string, err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("get %s %s/%s: %w; grant the step's ServiceAccount get on tekton.dev taskruns and pipelineruns "+
			"(tasks/role.yaml: oc apply -k .)", kind, ns, name, err)
	}
	return fmt.Errorf("get %s %s/%s: %w", kind, ns, name, err)
}

// parsePipelineRun reads the fields of pipelineRun from a tekton.dev/v1 PipelineRun.
func parsePipelineRun(u *unstructured.Unstructured) (*pipelineRun, error) {
	pr := &pipelineRun{Name: u.GetName(), Deleting: u.GetDeletionTimestamp() != nil, Start: u.GetCreationTimestamp().Time}
	pr.Status, _, _ = unstructured.NestedString(u.Object, "spec", "status")
	if v, ok, _ := unstructured.NestedString(u.Object, "spec", "timeouts", "pipeline"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("PipelineRun %s/%s: spec.timeouts.pipeline %q: %w", u.GetNamespace(), pr.Name, v, err)
		}
		pr.Timeout = &d
	}
	if v, ok, _ := unstructured.NestedString(u.Object, "status", "startTime"); ok && v != "" {
		start, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, fmt.Errorf("PipelineRun %s/%s: status.startTime %q: %w", u.GetNamespace(), pr.Name, v, err)
		}
		pr.Start = start
	}
	return pr, nil
}

// noFinallyAfter says whether Tekton will run no finally task of pr, now that it stopped one of its TaskRuns, and
// why: pr was cancelled (spec.status Cancelled), timed out (timeouts.pipeline passed; 60m when absent, none when
// 0), or is being deleted. A PipelineRun cancelled or stopped with CancelledRunFinally or StoppedRunFinally before
// its deadline, or whose TaskRun stopped for another reason (its own timeout, timeouts.tasks, the pod evicted),
// runs its finally tasks.
func noFinallyAfter(pr *pipelineRun, now time.Time) (bool, string) {
	if pr.Deleting {
		return true, fmt.Sprintf("PipelineRun %s is being deleted", pr.Name)
	}
	if pr.Status == "Cancelled" || pr.Status == "PipelineRunCancelled" { // the second is v1beta1's deprecated spelling
		return true, fmt.Sprintf("PipelineRun %s was cancelled (spec.status %s)", pr.Name, pr.Status)
	}
	timeout := defaultPipelineTimeout
	if pr.Timeout != nil {
		timeout = *pr.Timeout
	}
	if timeout > 0 && !pr.Start.IsZero() && !now.Add(clockSkew).Before(pr.Start.Add(timeout)) {
		return true, fmt.Sprintf("PipelineRun %s timed out (timeouts.pipeline %s)", pr.Name, timeout)
	}
	switch {
	case pr.Status != "":
		return false, fmt.Sprintf("PipelineRun %s was stopped with spec.status %s", pr.Name, pr.Status)
	case timeout <= 0:
		return false, fmt.Sprintf("PipelineRun %s was not cancelled and has no timeout (timeouts.pipeline 0)", pr.Name)
	case pr.Start.IsZero():
		return false, fmt.Sprintf("PipelineRun %s was not cancelled and has no start time", pr.Name)
	}
	return false, fmt.Sprintf("PipelineRun %s was neither cancelled nor timed out (timeouts.pipeline %s, started %s)",
		pr.Name, timeout, pr.Start.UTC().Format(time.RFC3339))
}
