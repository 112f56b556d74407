// Package release holds the shift-canary and promote-or-rollback steps: bring a canary up next to the stable
// version, move traffic to it through a router, and promote it or put everything back as it was. A release is
// recorded on a Lease per application, which is also its lock: one release at a time, taken over safely when a
// crashed run lets it expire.
package release

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/notify"
	"github.com/canaryline/canaryline/internal/runtime/step"
	"github.com/canaryline/canaryline/internal/runtime/traffic"
)

// Target names the application and its release; shift-canary and promote-or-rollback share it.
type Target struct {
	// App is the stable Deployment's name.
	App       string `env:"APP"`
	Namespace string `env:"NAMESPACE"`
	// StableService is the Service the router sends stable traffic to; APP when empty.
	StableService string `env:"STABLE_SERVICE"`
	// ReleaseID names the release (the PipelineRun's name); steps of one release share it.
	ReleaseID string `env:"RELEASE_ID"`
	// LockTTL is how long the release's lock outlives a step that stops renewing it (a crash).
	LockTTL time.Duration `env:"LOCK_TTL, default=10m"`
}

func (t *Target) validate() error {
	if t.App == "" {
		return step.Invalid("APP", "give the name of the application's stable Deployment", "is required")
	}
	if errs := validation.IsDNS1123Label(t.App); len(errs) > 0 {
		return step.Invalid("APP", "give the stable Deployment's name (oc get deploy)", "%q is not a valid name: %s", t.App, strings.Join(errs, "; "))
	}
	if len(t.App) > 50 {
		return step.Invalid("APP", "use a Deployment name of at most 50 characters (canaryline adds -canary and -baseline)", "%q is too long", t.App)
	}
	if t.Namespace != "" && len(validation.IsDNS1123Label(t.Namespace)) > 0 {
		return step.Invalid("NAMESPACE", "give a namespace name, or leave it empty for the step's own", "%q is not a valid namespace", t.Namespace)
	}
	if t.StableService != "" && len(validation.IsDNS1035Label(t.StableService)) > 0 {
		return step.Invalid("STABLE_SERVICE", "give the stable Service's name, or leave it empty for APP", "%q is not a valid Service name", t.StableService)
	}
	if t.ReleaseID != "" && len(validation.IsDNS1123Subdomain(t.ReleaseID)) > 0 {
		return step.Invalid("RELEASE_ID", "map it to $(context.pipelineRun.name)", "%q is not a valid name", t.ReleaseID)
	}
	if t.LockTTL < 10*time.Second || t.LockTTL > 24*time.Hour {
		return step.Invalid("LOCK_TTL", "give a Go duration between 10s and 24h; steps renew the lock every third of it", "%s is out of range", t.LockTTL)
	}
	return nil
}

func (t *Target) stableService() string {
	if t.StableService != "" {
		return t.StableService
	}
	return t.App
}

// ShiftConfig is shift-canary's configuration.
type ShiftConfig struct {
	step.Common
	Target
	// Image is the canary's image, pinned by digest (wait-build's IMAGE_URL).
	Image string `env:"IMAGE"`
	// Container is the container that takes the image; when empty, the only one, or the one named like APP, or
	// the one running an image of IMAGE's repository.
	Container string `env:"CONTAINER"`
	// CanaryName and BaselineName name the canary's (baseline's) Deployment and Service; <APP>-canary
	// (-baseline) when empty.
	CanaryName   string `env:"CANARY_NAME"`
	BaselineName string `env:"BASELINE_NAME"`
	// Router is the router kind, RouterName the router object (APP's Service name when empty).
	Router     string `env:"ROUTER, default=route"`
	RouterName string `env:"ROUTER_NAME"`
	// Weight is the canary's share of traffic in percent.
	Weight string `env:"WEIGHT"`
	// CanaryReplicas is a count ("2") or a share of the stable replicas ("25%").
	CanaryReplicas string `env:"CANARY_REPLICAS, default=1"`
	// Baseline runs the stable image at the canary's size and age, with the same share of traffic.
	Baseline bool `env:"BASELINE, default=false"`
	// ReuseCanary gives the canary the stable's pod labels, so that promotion hands its pods to the stable
	// Deployment; false labels them canaryline.dev/track=canary too, and promotion rolls the stable out anew.
	ReuseCanary bool `env:"REUSE_CANARY, default=true"`
	// ReadyTimeout is how long the canary may take to become Ready before any traffic moves.
	ReadyTimeout time.Duration `env:"READY_TIMEOUT, default=5m"`
	// KeepCookies leaves the OpenShift router's sticky cookies on during the release (route router).
	KeepCookies bool `env:"KEEP_COOKIES, default=false"`
	// Match sends requests that match its rules to the canary whatever the weight (traffic.MatchSyntax); with the
	// route router, it makes a separate test Route.
	Match string `env:"MATCH"`
	// TestHost is the host of the route router's test Route; empty lets OpenShift generate one.
	TestHost string `env:"TEST_HOST"`
	// Mirror is the share of the stable's requests, in percent, copied to the canary (httproute and istio).
	Mirror string `env:"MIRROR, default=0"`
	// TaskRun is the step's TaskRun ($(context.taskRun.name), not a Task param); empty off Tekton. A step stopped
	// in a PipelineRun whose finally tasks will not run rolls the release back itself (AfterStop).
	TaskRun string `env:"TASKRUN_NAME"`

	weight  int32
	routing traffic.Routing
}

var digestRE = regexp.MustCompile(`^[^@\s]+@sha256:[0-9a-f]{64}$`)

// Validate checks every param before anything is read or changed.
func (c *ShiftConfig) Validate() error {
	if err := c.Target.validate(); err != nil {
		return err
	}
	if c.Image == "" {
		return step.Invalid("IMAGE", "pass wait-build's IMAGE_URL result", "is required")
	}
	if !digestRE.MatchString(c.Image) {
		return step.Invalid("IMAGE", "pass an image pinned by digest, such as wait-build's IMAGE_URL (repository@sha256:...)", "%q is not pinned by digest", c.Image)
	}
	if !slices.Contains(traffic.Kinds, c.Router) {
		return step.Invalid("ROUTER", "use one of "+strings.Join(traffic.Kinds, ", "), "unknown router kind %q", c.Router)
	}
	if c.RouterName != "" && len(validation.IsDNS1123Subdomain(c.RouterName)) > 0 {
		return step.Invalid("ROUTER_NAME", "give the router object's name", "%q is not a valid name", c.RouterName)
	}
	w, err := strconv.Atoi(c.Weight)
	if c.Weight == "" || err != nil || w < 0 || w > 100 {
		return step.Invalid("WEIGHT", "give the canary's share of traffic as a whole percent from 0 to 100", "%q is not a percentage", c.Weight)
	}
	c.weight = int32(w)
	if c.Baseline && 2*w > 100 {
		return step.Invalid("WEIGHT", "with BASELINE the canary and the baseline each take WEIGHT: give at most 50", "%d%% twice is over 100%%", w)
	}
	if err := c.traits().CheckRelease(c.weight, c.Baseline); err != nil {
		return checkError(err)
	}
	if err := c.validateRouting(); err != nil {
		return err
	}
	if _, _, err := parseReplicas(c.CanaryReplicas); err != nil {
		return err
	}
	if c.ReadyTimeout <= 0 {
		return step.Invalid("READY_TIMEOUT", "give a positive Go duration such as 5m", "%s is not positive", c.ReadyTimeout)
	}
	if c.Container != "" && len(validation.IsDNS1123Label(c.Container)) > 0 {
		return step.Invalid("CONTAINER", "give the container's name from the Deployment's pod template", "%q is not a container name", c.Container)
	}
	if err := CheckTaskRun(c.TaskRun); err != nil {
		return err
	}
	return c.validateNames()
}

// traits are what the router kind needs from the release and can do (Validate checks the kind first).
func (c *ShiftConfig) traits() traffic.Traits {
	t, _ := traffic.TraitsOf(c.Router)
	return t
}

// validateRouting checks MATCH, TEST_HOST and MIRROR, and that the router kind can carry them out.
func (c *ShiftConfig) validateRouting() error {
	rules, err := traffic.ParseMatch(c.Match)
	if err != nil {
		return checkError(err)
	}
	m, err := 0, error(nil) // empty: no mirror
	if strings.TrimSpace(c.Mirror) != "" {
		m, err = strconv.Atoi(strings.TrimSpace(c.Mirror))
	}
	if err != nil || m < 0 || m > 100 {
		return step.Invalid("MIRROR", "give the share of the stable's requests to copy to the canary as a whole percent from 0 (none) to 100", "%q is not a percentage", c.Mirror)
	}
	if c.TestHost != "" {
		if errs := validation.IsDNS1123Subdomain(c.TestHost); len(errs) > 0 || !strings.Contains(c.TestHost, ".") {
			return step.Invalid("TEST_HOST", "give a host name such as shop-test.apps.example.com (lowercase, with a domain), or leave it empty for a generated one",
				"%q is not a host name", c.TestHost)
		}
	}
	c.routing = traffic.Routing{Match: rules, Mirror: int32(m), TestHost: c.TestHost}
	return checkError(c.traits().CheckRouting(c.Router, c.routing))
}

// routerOptions are the router's options for this shift.
func (c *ShiftConfig) routerOptions() traffic.Options {
	return traffic.Options{KeepCookies: c.KeepCookies, Routing: c.routing}
}

// validateNames checks CANARY_NAME and BASELINE_NAME: valid Service names, distinct from each other and from the
// stable Deployment and Service.
func (c *ShiftConfig) validateNames() error {
	for _, n := range []struct{ param, value string }{{"CANARY_NAME", c.CanaryName}, {"BASELINE_NAME", c.BaselineName}} {
		if n.value == "" {
			continue
		}
		if errs := validation.IsDNS1035Label(n.value); len(errs) > 0 {
			return step.Invalid(n.param, "give a name of lowercase letters, digits and '-', starting with a letter, at most 63 characters (it names a Deployment and a Service)",
				"%q is not a valid name: %s", n.value, strings.Join(errs, "; "))
		}
		if n.value == c.App || n.value == c.stableService() {
			return step.Invalid(n.param, "give a name of its own: the stable Deployment and Service are never replaced", "%q is the stable version's name", n.value)
		}
	}
	if c.CanaryName != "" && c.CanaryName == c.BaselineName {
		return step.Invalid("BASELINE_NAME", "give the baseline a name of its own", "%q is CANARY_NAME too", c.BaselineName)
	}
	if c.BaselineName != "" && !c.Baseline {
		return step.Invalid("BASELINE_NAME", "set BASELINE=true, or leave BASELINE_NAME empty", "names a baseline, but BASELINE is false")
	}
	return nil
}

// parseReplicas reads "3" (a count) or "25%" (a share of stable).
func parseReplicas(s string) (count int32, percent int32, err error) {
	bad := step.Invalid("CANARY_REPLICAS", `give a count such as "2" or a share of the stable replicas such as "25%"`, "%q is not a count or a percentage", s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 100 {
			return 0, 0, bad
		}
		return 0, int32(n), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1000 {
		return 0, 0, bad
	}
	return int32(n), 0, nil
}

// Decisions of promote-or-rollback.
const (
	DecisionPromote  = "promote"
	DecisionRollback = "rollback"
	DecisionAuto     = "auto"
	DecisionNone     = "none" // there was no release to decide on
)

// DecideConfig is promote-or-rollback's configuration.
type DecideConfig struct {
	step.Common
	Target
	// Decision is promote, rollback, or auto (from PIPELINE_STATUS and VERDICT, for a finally task).
	Decision string `env:"DECISION, default=auto"`
	// PipelineStatus is $(tasks.status) in a finally task: Succeeded, Completed, Failed or None.
	PipelineStatus string `env:"PIPELINE_STATUS"`
	// Verdict is verify-health's VERDICT result: healthy, unhealthy or inconclusive.
	Verdict string `env:"VERDICT"`
	// Reason is recorded with a rollback.
	Reason string `env:"REASON"`
	// RolloutTimeout is how long the stable Deployment may take to roll out the promoted image.
	RolloutTimeout time.Duration `env:"ROLLOUT_TIMEOUT, default=10m"`
	// Notify posts the outcome to the team's webhook.
	Notify notify.Config
	// NotifyProblem is why the notification settings were set aside: under DECISION=auto (a finally task) they
	// never stop the release from ending, so a bad one is a warning and nothing is posted.
	NotifyProblem error
}

// Validate checks every param before anything is read or changed.
func (c *DecideConfig) Validate() error {
	if err := c.Target.validate(); err != nil {
		return err
	}
	switch c.Decision {
	case DecisionPromote, DecisionRollback, DecisionAuto:
	default:
		return step.Invalid("DECISION", `say "promote", "rollback" or "auto"`, "unknown decision %q", c.Decision)
	}
	switch c.PipelineStatus {
	case "", "Succeeded", "Completed", "Failed", "None":
	default:
		return step.Invalid("PIPELINE_STATUS", "map it to $(tasks.status) in a finally task", "%q is not a Tekton aggregate status", c.PipelineStatus)
	}
	switch c.Verdict {
	case "", naming.Healthy, naming.Unhealthy, naming.Inconclusive:
	default:
		return step.Invalid("VERDICT", "pass verify-health's VERDICT result (healthy, unhealthy or inconclusive)", "unknown verdict %q", c.Verdict)
	}
	if c.Decision == DecisionAuto && c.PipelineStatus == "" {
		return step.Invalid("PIPELINE_STATUS", "auto decides from $(tasks.status): map it in the finally task, or say DECISION=promote or rollback", "is required with DECISION=auto")
	}
	if c.RolloutTimeout <= 0 {
		return step.Invalid("ROLLOUT_TIMEOUT", "give a positive Go duration such as 10m", "%s is not positive", c.RolloutTimeout)
	}
	if err := c.Notify.Validate(); err != nil {
		if c.Decision != DecisionAuto {
			return err
		}
		c.NotifyProblem, c.Notify.URL = err, ""
	}
	if len(c.Reason) > 500 {
		return step.Invalid("REASON", "keep it under 500 characters", "is %d characters", len(c.Reason))
	}
	return nil
}

func describe(ns, name string) string { return fmt.Sprintf("%s/%s", ns, name) }
