// Package pipelinegen generates canaryline's Pipelines from one source: the canary release with 1, 3 and 5 weight
// steps, blue-green, and their variants for an image built elsewhere. Tekton has no loops, so the weight steps are
// unrolled here rather than copied by hand. `make pipelines` writes them; a test fails when pipelines/ is stale.
package pipelinegen

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/canaryline/canaryline/internal/tools/image"
)

// Variant is one generated Pipeline.
type Variant struct {
	Name      string
	BlueGreen bool
	Prebuilt  bool
	Weights   []string // canary weights in percent, one shift-canary + verify-health pair each
	// Approval is the gate before promotion: "" none, ApprovalTask (OpenShift Pipelines' ApprovalTask, whose
	// Approve and Reject buttons the console shows) or ApprovalCLI (the last analysis waits for canaryline
	// approve/reject, where no approval controller runs).
	Approval string
}

// Approval gates.
const (
	ApprovalTask = "approval-task"
	ApprovalCLI  = "approval-cli"
)

// Variants are the Pipelines canaryline ships.
var Variants = []Variant{
	{Name: "canary-release", Weights: []string{"10", "30", "60"}},
	{Name: "canary-release-1", Weights: []string{"20"}},
	{Name: "canary-release-5", Weights: []string{"5", "10", "25", "50", "75"}},
	{Name: "canary-release-prebuilt", Prebuilt: true, Weights: []string{"10", "30", "60"}},
	{Name: "canary-release-approval", Weights: []string{"10", "30", "60"}, Approval: ApprovalTask},
	{Name: "canary-release-approval-cli", Weights: []string{"10", "30", "60"}, Approval: ApprovalCLI},
	{Name: "blue-green", BlueGreen: true},
	{Name: "blue-green-prebuilt", BlueGreen: true, Prebuilt: true},
}

type param struct{ name, def, desc string }

// Params common to every variant; the build or image params are added per variant.
var (
	appParams = []param{
		{"app", "", "Name of the application's stable Deployment (and, by default, of its Service, Route and BuildConfig)."},
		{"namespace", "", "The application's namespace; empty is the PipelineRun's namespace."},
	}
	buildParams = []param{
		{"build-config", "", "The application's BuildConfig; empty is app."},
		{"git-url", "", "The pushed repository (for the record: the BuildConfig names its source)."},
		{"git-revision", "", "The pushed commit SHA; empty builds the BuildConfig's ref."},
		{"git-branch", "", "The pushed branch (for the record)."},
		{"git-author", "", "The commit's author, \"Name <email>\"."},
		{"git-message", "", "The commit's message."},
		{"build-timeout", "30m", "How long the build may take before it is cancelled."},
	}
	imageParams = []param{
		{"image", "", "An image built elsewhere (e.g. quay.io/team/app:v1.2); resolved to its digest."},
		{"insecure-registry", "false", "\"true\" allows plain HTTP or an untrusted certificate for image's registry."},
	}
	trafficParams = []param{
		{"router", "route", "Router kind: route, httproute, istio, nginx or replicas."},
		{"router-name", "", "The router object; empty is the stable Service's name."},
		{"stable-service", "", "The Service in front of the stable Deployment; empty is app."},
		{"container", "", "The container that gets the new image; empty is the only one, or the one named like app, or the one running the built image."},
		{"canary-name", "", "Name of the canary's Deployment and Service; empty is app-canary. Set it when another object has that name."},

		{"canary-replicas", "1", "Canary size: a count, or a share of the stable replicas such as \"25%\"."},
		{"baseline", "false", "\"true\" runs a baseline next to the canary for like-with-like comparisons."},
		{"baseline-name", "", "Name of the baseline's Deployment and Service; empty is app-baseline."},
		{"reuse-canary", "true", "\"true\": promotion hands the canary's pods to the stable Deployment (they carry its labels); \"false\": they are labelled canaryline.dev/track=canary, and promotion rolls the stable out anew."},
		{"match", "", "Requests that match go to the canary at every step, whatever its weight: one rule a line, \"header NAME: VALUE\", \"header NAME ~ REGEX\" or \"cookie NAME=VALUE\" (route router: a separate test Route; replicas: refused). Empty: none."},
		{"test-host", "", "route router: the host of the test Route that match makes; empty lets OpenShift generate one."},
		{"mirror", "0", "Percent of the stable's requests copied to the canary at every step, answers discarded (httproute and istio only). 0: none."},
		{"ready-timeout", "5m", "How long the canary may take to become Ready before any traffic moves."},
		{"rollout-timeout", "10m", "How long promotion may take: the canary scaled to the stable's size and taken over (or the image rolled out anew)."},
		{"lock-ttl", "10m", "How long the release lock outlives a step that stops renewing it."},
	}
	analysisParams = []param{
		{"interval", "30s", "Time between measurements."},
		{"count", "10", "Measurements per analysis."},
		{"failure-limit", "0", "A check fails the analysis when it has more failures than this."},
		{"no-data", "inconclusive", "What no data counts as: inconclusive, fail or pass."},
		{"min-samples", "10", "Samples per side before a statistical verdict."},
		{"statistics", "sequential", "How comparisons decide: sequential (one error budget per release) or fixed (Mann-Whitney per step)."},
		{"alpha", "0.01", "False-alarm probability of the sequential comparisons over the whole release."},
		{"confidence", "0.98", "Confidence of the canary-vs-baseline comparison (statistics fixed)."},
		{"tolerance", "0.1", "Relative difference from the baseline that is not a regression."},
		{"http-urls", "", "URLs to probe, one a line (typically the canary Service; {{.CanaryService}} and {{.Namespace}} are filled in)."},
		{"http-method", "", "The probes' method (GET when empty); with http-body, the probes are load for a quiet canary."},
		{"http-body", "", "The body of each probe request (POST, PUT or PATCH)."},
		{"prometheus-url", "", "Prometheus or the OpenShift Thanos querier."},
		{"queries", "", "PromQL checks: a YAML list of {name, query, threshold}."},
		{"compare", "", "Canary-vs-baseline comparisons: a YAML list of {name, query, direction, tolerance}."},
		{"webhooks", "", "Webhook checks: a YAML list of {name, url, timeout, successField, successValue}."},
		{"jobs", "", "Job checks: a YAML list of {name, configMap, key, timeout}; a Job from the ConfigMap's template per analysis."},
	}
	// approvalParams are the gate's, by Variant.Approval (the ApprovalTask's approvers, an array, are added apart).
	approvalParams = map[string][]param{
		ApprovalTask: {{"approvals-required", "1", "How many of the approvers must approve before promotion."}},
		ApprovalCLI:  {{"approval-timeout", "1h", "How long the last analysis waits for canaryline approve (or reject) before it rolls the release back."}},
	}
	notifyParams = []param{
		{"notify-secret", "canaryline-notify", "A Secret whose key url is a Slack, Microsoft Teams or JSON webhook told of the outcome (an unhealthy verdict, the promotion or rollback); without it nothing is posted."},
		{"notify-format", "auto", "The message's shape: slack, teams, webhook, or auto (from the webhook's host)."},
		{"console-url", "", "The OpenShift console's address, for a link to the PipelineRun in the message."},
	}
)

// notifyEnv are the notification params of verify-health and promote-or-rollback.
func notifyEnv() v1.Params {
	return kv("NOTIFY_SECRET", "$(params.notify-secret)", "NOTIFY_FORMAT", "$(params.notify-format)", "CONSOLE_URL", "$(params.console-url)",
		"PIPELINE_RUN", "$(context.pipelineRun.name)")
}

// Generate returns the Pipelines as YAML, by file name.
func Generate() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, v := range Variants {
		p := v.Pipeline()
		data, err := marshal(p)
		if err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", v.Name, err)
		}
		out[v.Name+".yaml"] = data
	}
	return out, nil
}

// Pipeline builds the variant.
func (v Variant) Pipeline() *v1.Pipeline {
	b := &builder{v: v}
	b.addParams()
	b.buildTasks()
	b.releaseTasks()
	b.promoteTask()
	display, summary := v.describe()
	p := &v1.Pipeline{
		TypeMeta: metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "Pipeline"},
		ObjectMeta: metav1.ObjectMeta{Name: v.Name,
			Labels: map[string]string{"app.kubernetes.io/name": "canaryline", "app.kubernetes.io/version": "0.1"},
			Annotations: map[string]string{
				"tekton.dev/pipelines.minVersion": "0.56.0",
				"tekton.dev/categories":           "Deployment, Openshift",
				"tekton.dev/tags":                 "canary, progressive-delivery, blue-green, openshift",
				"tekton.dev/displayName":          display,
				"tekton.dev/platforms":            strings.Join(image.Platforms, ","), // what the step image index holds
			}},
		Spec: v1.PipelineSpec{
			DisplayName: display,
			Description: summary + "\n\nEvery param has a default; app is the one to set. The finally task end-release promotes " +
				"the release when every task succeeded and rolls it back after any failure, cancellation or timeout.",
			Params: b.params,
			Workspaces: []v1.PipelineWorkspaceDeclaration{
				{Name: "evidence", Optional: true, Description: "Where verify-health writes its evidence, report and chart."},
			},
			Tasks:   b.pt,
			Finally: []v1.PipelineTask{endRelease()},
			Results: []v1.PipelineResult{
				{Name: "image-url", Description: "The released image, pinned by digest.", Value: *v1.NewStructuredValues(b.image)},
				{Name: "verdict", Description: "The last analysis' verdict.", Value: *v1.NewStructuredValues("$(tasks." + b.lastVerify + ".results.VERDICT)")},
				{Name: "decision", Description: "promote", Value: *v1.NewStructuredValues("$(tasks.promote.results.DECISION)")},
			},
		},
	}
	if v.Prebuilt {
		p.Spec.Workspaces = append(p.Spec.Workspaces, v1.PipelineWorkspaceDeclaration{Name: "dockerconfig", Optional: true,
			Description: "A docker config to read the image's manifest from its registry."})
	}
	return p
}

// addParams declares the variant's params: the app's, the build's or the image's, the traffic's (no baseline
// for blue-green), the weights or the green size, and the analysis'.
func (b *builder) addParams() {
	v := b.v
	params := append([]param{}, appParams...)
	if v.Prebuilt {
		params = append(params, imageParams...)
	} else {
		params = append(params, buildParams...)
	}
	for _, p := range trafficParams {
		// A baseline takes WEIGHT too, so a blue-green switch to 100% could never have one: no such param.
		if !(v.BlueGreen && strings.HasPrefix(p.name, "baseline")) {
			params = append(params, p)
		}
	}
	if v.BlueGreen {
		params = append(params, param{"green-replicas", "100%", "Size of the new version before the switch: a count, or a share of the stable replicas."})
	} else {
		for i, w := range v.Weights {
			params = append(params, param{fmt.Sprintf("weight-%d", i+1), w, fmt.Sprintf("Canary weight of step %d, in percent.", i+1)})
		}
	}
	params = append(params, analysisParams...)
	params = append(params, notifyParams...)
	params = append(params, approvalParams[v.Approval]...)
	for _, p := range params {
		if v.Approval == ApprovalTask && p.name == "lock-ttl" {
			p.def, p.desc = "2h", p.desc+" Longer than the approval's 1h timeout: no one renews the lock while the ApprovalTask waits."
		}
		b.params = append(b.params, v1.ParamSpec{Name: p.name, Type: v1.ParamTypeString, Default: v1.NewStructuredValues(p.def), Description: p.desc})
	}
	if v.Approval == ApprovalTask {
		b.params = append(b.params, v1.ParamSpec{Name: "approvers", Type: v1.ParamTypeArray, Default: &v1.ParamValue{Type: v1.ParamTypeArray, ArrayVal: []string{"group:system:cluster-admins"}},
			Description: "Who may approve the promotion: user names, or group:NAME for a group."})
	}
}

// buildTasks adds the tasks that produce the image (start-build and wait-build, or resolve-image) and notes
// where the image comes from.
func (b *builder) buildTasks() {
	b.image = "$(tasks.wait-build.results.IMAGE_URL)"
	if b.v.Prebuilt {
		b.task("resolve-image", "Resolve the image to its digest", "wait-build", nil, kv("IMAGE", "$(params.image)", "INSECURE_REGISTRY", "$(params.insecure-registry)",
			"NAMESPACE", "$(params.namespace)"), "dockerconfig")
		b.image = "$(tasks.resolve-image.results.IMAGE_URL)"
	} else {
		b.task("start-build", "Start the build of $(params.app)", "start-build", nil, kv("APP", "$(params.app)", "BUILD_CONFIG", "$(params.build-config)", "COMMIT", "$(params.git-revision)",
			"COMMIT_AUTHOR", "$(params.git-author)", "COMMIT_MESSAGE", "$(params.git-message)",
			"PIPELINE_RUN", "$(context.pipelineRun.name)", "NAMESPACE", "$(params.namespace)"), "")
		b.task("wait-build", "Follow the build to its image", "wait-build", []string{"start-build"}, kv("BUILD_NAME", "$(tasks.start-build.results.BUILD_NAME)",
			"TIMEOUT", "$(params.build-timeout)", "NAMESPACE", "$(params.namespace)"), "")
	}
	b.prev = b.pt[len(b.pt)-1].Name
}

// releaseTasks adds the shift-canary and verify-health pairs: bring up green and switch for blue-green, one per
// weight step for a canary release.
func (b *builder) releaseTasks() {
	if b.v.BlueGreen {
		b.shift("bring-up-green", "Bring up green with no traffic", "0", "$(params.green-replicas)")
		b.verify("verify-green", "Analyse green before the switch")
		b.shift("switch-to-green", "Switch all traffic to green", "100", "$(params.green-replicas)")
		b.verify("verify-after-switch", "Analyse green after the switch")
	} else {
		for i := range b.v.Weights {
			w := fmt.Sprintf("$(params.weight-%d)", i+1)
			b.shift(fmt.Sprintf("shift-%d", i+1), "Shift "+w+"% of traffic to the canary", w, "$(params.canary-replicas)")
			b.verify(fmt.Sprintf("verify-%d", i+1), "Analyse the canary at "+w+"%")
		}
	}
	b.lastVerify = b.prev
	b.gate()
}

// gate adds the variant's approval gate before promotion: an ApprovalTask after the last analysis, or the last
// analysis made to wait for canaryline approve.
func (b *builder) gate() {
	switch b.v.Approval {
	case ApprovalCLI:
		last := &b.pt[len(b.pt)-1]
		last.DisplayName += ", then wait for approval"
		last.Params = append(last.Params, kv("APPROVAL", "required", "APPROVAL_TIMEOUT", "$(params.approval-timeout)")...)
	case ApprovalTask:
		b.pt = append(b.pt, v1.PipelineTask{Name: "approve", DisplayName: "Approve the promotion of $(params.app)",
			TaskRef: &v1.TaskRef{APIVersion: "openshift-pipelines.org/v1alpha1", Kind: "ApprovalTask"}, RunAfter: []string{b.prev},
			Params: v1.Params{
				{Name: "approvers", Value: *v1.NewStructuredValues("$(params.approvers[*])")},
				{Name: "numberOfApprovalsRequired", Value: *v1.NewStructuredValues("$(params.approvals-required)")},
				{Name: "description", Value: *v1.NewStructuredValues("Promote $(params.app) to the canary's image? " +
					"The canary passed its analysis at every weight. Rejecting, or no answer within 1h, rolls the release back.")},
			},
			Timeout: &metav1.Duration{Duration: time.Hour}})
		b.prev = "approve"
	}
}

// shift adds a shift-canary task after the previous one.
func (b *builder) shift(name, display, weight, replicas string) {
	params := kv("APP", "$(params.app)", "IMAGE", b.image, "WEIGHT", weight,
		"ROUTER", "$(params.router)", "ROUTER_NAME", "$(params.router-name)", "STABLE_SERVICE", "$(params.stable-service)",
		"CONTAINER", "$(params.container)", "CANARY_NAME", "$(params.canary-name)",
		"CANARY_REPLICAS", replicas, "READY_TIMEOUT", "$(params.ready-timeout)", "REUSE_CANARY", "$(params.reuse-canary)",
		"MATCH", "$(params.match)", "TEST_HOST", "$(params.test-host)", "MIRROR", "$(params.mirror)",
		"RELEASE_ID", "$(context.pipelineRun.name)", "LOCK_TTL", "$(params.lock-ttl)", "NAMESPACE", "$(params.namespace)")
	if !b.v.BlueGreen {
		params = append(params, kv("BASELINE", "$(params.baseline)", "BASELINE_NAME", "$(params.baseline-name)")...)
	}
	b.task(name, display, "shift-canary", []string{b.prev}, params, "")
	b.pt[len(b.pt)-1].Retries = 1 // shift-canary converges when run again
	b.prev = name
}

// verify adds a verify-health task after the previous shift, writing its evidence in a subPath of its own.
func (b *builder) verify(name, display string) {
	prev := b.prev
	b.task(name, display, "verify-health", []string{prev}, kv("APP", "$(params.app)", "RELEASE_ID", "$(context.pipelineRun.name)",
		"CANARY_DEPLOYMENT", "$(tasks."+prev+".results.CANARY_DEPLOYMENT)", "BASELINE_DEPLOYMENT", "$(tasks."+prev+".results.BASELINE_DEPLOYMENT)",
		"CONTAINER", "$(params.container)",
		"INTERVAL", "$(params.interval)", "COUNT", "$(params.count)", "FAILURE_LIMIT", "$(params.failure-limit)",
		"NO_DATA", "$(params.no-data)", "MIN_SAMPLES", "$(params.min-samples)", "CONFIDENCE", "$(params.confidence)",
		"STATISTICS", "$(params.statistics)", "ALPHA", "$(params.alpha)",
		"TOLERANCE", "$(params.tolerance)", "HTTP_URLS", "$(params.http-urls)", "PROMETHEUS_URL", "$(params.prometheus-url)",
		"QUERIES", "$(params.queries)", "COMPARE", "$(params.compare)", "HTTP_METHOD", "$(params.http-method)", "HTTP_BODY", "$(params.http-body)",
		"WEBHOOKS", "$(params.webhooks)", "JOBS", "$(params.jobs)", "NAMESPACE", "$(params.namespace)"), "evidence")
	b.pt[len(b.pt)-1].Params = append(b.pt[len(b.pt)-1].Params, notifyEnv()...)
	b.pt[len(b.pt)-1].Workspaces[0].SubPath = name
	b.prev = name
}

// promoteTask adds the promote task after the last verification.
func (b *builder) promoteTask() {
	display := "Promote the canary to stable"
	if b.v.BlueGreen {
		display = "Promote green to stable"
	}
	b.task("promote", display, "promote-or-rollback", []string{b.prev}, kv("APP", "$(params.app)", "DECISION", "promote",
		"VERDICT", "$(tasks."+b.lastVerify+".results.VERDICT)", "RELEASE_ID", "$(context.pipelineRun.name)",
		"STABLE_SERVICE", "$(params.stable-service)", "ROLLOUT_TIMEOUT", "$(params.rollout-timeout)",
		"LOCK_TTL", "$(params.lock-ttl)", "NAMESPACE", "$(params.namespace)"), "")
	b.pt[len(b.pt)-1].Params = append(b.pt[len(b.pt)-1].Params, notifyEnv()...)
	b.pt[len(b.pt)-1].Retries = 1
}

// endRelease is the finally task. Whatever happens (a failed check, a cancellation, a timeout), the release
// ends: promoted if everything succeeded, rolled back otherwise. No task result is used here: a finally task that
// references the result of a task that did not run is skipped, and this one must never be.
func endRelease() v1.PipelineTask {
	return v1.PipelineTask{Name: "end-release", DisplayName: "End the release: promote, or roll back after any failure", TaskRef: &v1.TaskRef{Name: "promote-or-rollback", Kind: v1.NamespacedTaskKind},
		Params: kv("APP", "$(params.app)", "DECISION", "auto", "PIPELINE_STATUS", "$(tasks.status)",
			"REASON", "PipelineRun $(context.pipelineRun.name) ended with $(tasks.status)", "RELEASE_ID", "$(context.pipelineRun.name)",
			"STABLE_SERVICE", "$(params.stable-service)", "ROLLOUT_TIMEOUT", "$(params.rollout-timeout)",
			"LOCK_TTL", "$(params.lock-ttl)", "NAMESPACE", "$(params.namespace)", "NOTIFY_SECRET", "$(params.notify-secret)",
			"NOTIFY_FORMAT", "$(params.notify-format)", "CONSOLE_URL", "$(params.console-url)", "PIPELINE_RUN", "$(context.pipelineRun.name)")}
}

// describe is the variant's display name and the first paragraph of its description.
func (v Variant) describe() (display, summary string) {
	summary = "Canary release: build the pushed commit with its BuildConfig, shift traffic in %d steps with an analysis after each, promote or roll back."
	display = "canaryline: canary release (%d steps)"
	switch {
	case v.BlueGreen && v.Prebuilt:
		summary, display = "Blue-green release of an image built elsewhere: bring the new version up, verify, switch all traffic at once, verify again.", "canaryline: blue-green release (prebuilt image)"
	case v.BlueGreen:
		summary, display = "Blue-green release: build, bring the new version up with no traffic, verify, switch all traffic at once, verify again.", "canaryline: blue-green release"
	case v.Prebuilt:
		summary, display = "Canary release of an image built elsewhere: shift traffic in %d steps with an analysis after each, promote or roll back.", "canaryline: canary release (prebuilt image, %d steps)"
	}
	if strings.Contains(summary, "%d") {
		summary = fmt.Sprintf(summary, len(v.Weights))
	}
	if strings.Contains(display, "%d") {
		display = fmt.Sprintf(display, len(v.Weights))
	}
	return display, summary
}

// builder accumulates a Pipeline's params and tasks: the image the tasks release, the task the next one runs
// after and the last verification.
type builder struct {
	v                       Variant
	params                  v1.ParamSpecs
	pt                      []v1.PipelineTask
	image, prev, lastVerify string
}

// task adds a PipelineTask; display is the name the OpenShift console and the Tekton Dashboard show for it (params
// are substituted in it).
func (b *builder) task(name, display, task string, after []string, params v1.Params, workspace string) {
	t := v1.PipelineTask{Name: name, DisplayName: display, TaskRef: &v1.TaskRef{Name: task, Kind: v1.NamespacedTaskKind}, RunAfter: after, Params: params}
	if workspace != "" {
		t.Workspaces = []v1.WorkspacePipelineTaskBinding{{Name: workspace, Workspace: workspace}}
	}
	b.pt = append(b.pt, t)
}

func kv(pairs ...string) v1.Params {
	var ps v1.Params
	for i := 0; i < len(pairs); i += 2 {
		ps = append(ps, v1.Param{Name: pairs[i], Value: *v1.NewStructuredValues(pairs[i+1])})
	}
	return ps
}

// marshal writes the Pipeline as YAML without the empty fields the API types carry (creationTimestamp: null).
func marshal(p *v1.Pipeline) ([]byte, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	out, err := yaml.Marshal(m)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Generated by `make pipelines` (internal/tools/pipelinegen). Do not edit.\n"), out...), nil
}

// Names lists the generated file names, sorted.
func Names() []string {
	var out []string
	for _, v := range Variants {
		out = append(out, v.Name+".yaml")
	}
	sort.Strings(out)
	return out
}
