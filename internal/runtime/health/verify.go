package health

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/canaryline/canaryline/internal/runtime/evidence"
	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/release"
	"github.com/canaryline/canaryline/internal/runtime/stats"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// Verdict is what verify-health hands on. EvidenceError says why the evidence could not be written (empty when
// it was, or when there is no evidence workspace): the verdict stands all the same.
type Verdict struct {
	Verdict, Reason, Evidence, EvidenceError string
	// CanaryImage and Weight are the canary's image and traffic weight, for a notification.
	CanaryImage string
	Weight      int32
}

// maxReason keeps the REASON result small; maxEvidenceError the EVIDENCE_ERROR result.
const (
	maxReason        = 400
	maxEvidenceError = 300
)

// Results are verify-health's Tekton results. EVIDENCE_ERROR is always written, empty when all is well.
func (v Verdict) Results() map[string]string {
	return map[string]string{"VERDICT": v.Verdict, "REASON": cut(v.Reason, maxReason), "EVIDENCE": v.Evidence,
		"EVIDENCE_ERROR": cut(v.EvidenceError, maxEvidenceError)}
}

// cut shortens s to fewer than n bytes plus "…", at a rune boundary, when it is longer than n.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n - 1
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// Deps are what verify-health uses: the Kubernetes API (for the pods check and the tracks' pod-template hashes)
// and, when queries are configured, a Prometheus querier.
type Deps struct {
	Kube kubeclient.Interface
	Prom querier
	Now  func() time.Time
}

// Verify measures the canary and decides. The verdict is also the error: nil for healthy, a FailedError for
// unhealthy, an InconclusiveError for inconclusive.
func Verify(ctx context.Context, cfg *Config, ns string, d Deps, out io.Writer, log *slog.Logger) (Verdict, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	v := &verification{cfg: cfg, ns: ns, d: d, out: out, log: log}
	if err := v.prepare(ctx); err != nil {
		return Verdict{}, err
	}
	// The release's lock is renewed while the analysis runs; a lost lock stops it (exit 5): another release's
	// canary is never judged as this one's.
	hold, held, err := release.HoldRelease(ctx, d.Kube, ns, cfg.App, cfg.ReleaseID, log)
	if err != nil {
		return Verdict{}, err
	}
	defer hold.Stop()
	v.carryState(hold)
	v.canaryHash = hold.CanaryHash(v.res.canary)
	if hold.CanaryPodsUnlabelled() && cfg.templatesUse(".Track", ".CanaryTrack") {
		log.Warn("the queries select pods by {{.Track}} or {{.CanaryTrack}}, but this release's canary pods carry no canaryline.dev/track label " +
			"(REUSE_CANARY=true: they become the stable's pods on promotion), so the canary side may have no data: select them by " +
			"{{.Hash}}, {{.Pods}}, {{.CanaryHash}} or {{.CanaryPods}}, or run shift-canary with REUSE_CANARY=false")
	}
	v.warnInsecure()
	if err := v.prepareJobs(held); err != nil {
		return Verdict{}, err
	}
	ev, err := v.analyse(held)
	if err != nil {
		return Verdict{}, err
	}
	if err := hold.Check(ctx, held); err != nil {
		return Verdict{}, err
	}
	verdict, err := v.report(ev)
	if err != nil || cfg.Approval != ApprovalRequired {
		return verdict, err
	}
	verdict, err = v.awaitApproval(held, verdict)
	if cerr := hold.Check(ctx, held); cerr != nil {
		return Verdict{}, cerr
	}
	return verdict, err
}

// verification is one run of verify-health: what it read and built before the analysis.
type verification struct {
	cfg *Config
	ns  string
	d   Deps
	out io.Writer
	log *slog.Logger

	res resolved
	// usesProm says whether a check queries Prometheus; client is the HTTP probes' client (nil: no probes).
	usesProm bool
	client   *http.Client
	// store is the sequential tests' data of the release; weight the canary's traffic weight now.
	store  *carry
	weight int32
	// canaryHash is the canary pods' hash as the release recorded it ("" when it did not, or not for this spec).
	canaryHash string
	// webhookClient posts to WEBHOOKS; jobs are the job checks of JOBS.
	webhookClient *http.Client
	jobs          []*jobCheck
}

// carryState reads the sequential tests' data that earlier verify steps of the release left on its Lease, and
// has the lock's renewals write it back as it grows.
func (v *verification) carryState(hold *release.Hold) {
	var why string
	v.store, why = newCarry(v.cfg.ReleaseID, hold.Carried())
	if why != "" {
		v.log.Warn(why)
	}
	v.weight = hold.Weight()
	if v.cfg.Statistics == naming.StatsSequential && (len(v.cfg.compares) > 0 || v.cfg.HTTPBaselineURL != "") {
		hold.Carry(v.store.JSON)
	}
}

// prepare reads the tracks and builds everything a bad param can break (the Prometheus client, its token and CA
// files, the HTTP client) before the lock is renewed: bad input changes nothing in the cluster.
func (v *verification) prepare(ctx context.Context) error {
	cfg := v.cfg
	var err error
	if v.res, err = resolveTracks(ctx, cfg, v.ns, v.d.Kube); err != nil {
		return err
	}
	v.usesProm = len(cfg.queries) > 0 || len(cfg.compares) > 0
	if v.usesProm && v.d.Prom == nil {
		if v.d.Prom, err = newQuerier(cfg); err != nil {
			return err
		}
	}
	if cfg.HTTPURLs != "" && cfg.Namespace == "" {
		if err = cfg.ExpandURLs(v.ns); err != nil { // {{.Namespace}} is the step's own
			return err
		}
	}
	if err = v.prepareChecks(ctx); err != nil {
		return err
	}
	if len(cfg.urls) > 0 {
		if v.client, err = newHTTPClient(cfg.HTTPCAFile, cfg.InsecureSkipTLSVerify, cfg.HTTPTimeout); err != nil {
			return err
		}
	}
	return nil
}

// warnInsecure says, with INSECURE_SKIP_TLS_VERIFY, what TLS certificates go unverified.
func (v *verification) warnInsecure() {
	cfg := v.cfg
	if !cfg.InsecureSkipTLSVerify {
		return
	}
	var what []string
	if len(cfg.urls) > 0 {
		what = append(what, "the HTTP probes")
	}
	if v.usesProm {
		what = append(what, "Prometheus "+step.Redact(cfg.PrometheusURL))
	}
	if len(what) == 0 {
		what = append(what, "nothing (no HTTP_URLS, no Prometheus)")
	}
	v.log.Warn("INSECURE_SKIP_TLS_VERIFY=true: TLS certificate verification is off for " + strings.Join(what, " and ") +
		"; any server can answer in their place. Trust a private CA with HTTP_CA_FILE or PROMETHEUS_CA_FILE instead")
}

// analyse builds the checks, starts the HTTP probes, and runs the analysis under ctx (the held lock's); the
// probes stop with it.
func (v *verification) analyse(ctx context.Context) (*evidence.Evidence, error) {
	var checks []Check
	if v.cfg.Pods {
		pc, err := v.podsCheck(ctx)
		if err != nil {
			return nil, err
		}
		checks = append(checks, pc)
	}
	probeCtx, stopProbes := context.WithCancel(ctx)
	defer stopProbes()
	checks = append(checks, v.httpChecks(probeCtx)...)
	checks = append(checks, v.promChecks()...)
	checks = append(checks, v.webhookChecks()...)
	for _, j := range v.jobs {
		j.start(probeCtx)
		checks = append(checks, j)
	}
	v.logStart(checks)
	a := &analysis{cfg: v.cfg, checks: checks, log: v.log, now: v.d.Now}
	ev := a.run(ctx)
	stopProbes()
	return ev, nil
}

// podsCheck is the pods check of the canary Deployment.
func (v *verification) podsCheck(ctx context.Context) (*podsCheck, error) {
	hash := v.res.tracks.CanaryHash
	if hash == "" {
		hash = v.canaryHash
	}
	if hash == "" {
		current, err := currentReplicaSets(ctx, v.d.Kube, v.ns, v.res.stable, []*appsv1.Deployment{v.res.canary})
		if err != nil {
			return nil, err
		}
		hash, _ = hashAndPods(current[v.res.canary], v.res.canary.Name)
	}
	pc, err := newPodsCheck(v.d.Kube, v.ns, v.res.canary, hash, int32(v.cfg.MaxRestarts))
	if err != nil {
		return nil, err
	}
	if v.cfg.InitialDelay == 0 {
		pc.first = v.res.canary // the first measurement is now: the Deployment just read is current
	}
	return pc, nil
}

// httpChecks start the probes of HTTP_URLS (and HTTP_BASELINE_URL) until ctx ends, and are the checks on them:
// the canary's success and latency, and its latencies compared with the baseline's.
func (v *verification) httpChecks(ctx context.Context) []Check {
	cfg := v.cfg
	if len(cfg.urls) == 0 {
		return nil
	}
	canary := &prober{client: v.client, urls: cfg.urls, headers: cfg.headers, rate: cfg.HTTPRate, method: cfg.HTTPMethod, body: cfg.HTTPBody}
	go canary.run(ctx)
	checks := []Check{&httpCheck{p: canary, minSuccess: cfg.HTTPMinSuccess, percentile: cfg.HTTPPercentile, maxLatency: cfg.HTTPMaxLatency}}
	if cfg.HTTPBaselineURL == "" {
		return checks
	}
	base := &prober{client: v.client, urls: urlsOf(cfg.HTTPBaselineURL), headers: cfg.headers, rate: cfg.HTTPRate, method: cfg.HTTPMethod, body: cfg.HTTPBody}
	go base.run(ctx)
	if cfg.Statistics == naming.StatsSequential {
		o, against := v.seqOptions(nil), v.res.against
		return append(checks,
			newSeqCheck("http-errors", against, stats.Increase, o, &httpCounts{canary: canary, baseline: base, against: against}, v.store, v.weight, cfg.HTTPURLs, cfg.HTTPBaselineURL),
			newSeqCheck("http-latency", against, stats.Increase, o, &httpPairs{httpSampler: httpSampler{canary: canary, baseline: base}, against: against}, v.store, v.weight, cfg.HTTPURLs, cfg.HTTPBaselineURL))
	}
	return append(checks, &compareCheck{name: "http-latency", against: v.res.against, dir: stats.Increase,
		opts: statsOptions(cfg, nil), src: &httpSampler{canary: canary, baseline: base},
		unit: func(v float64) string {
			return time.Duration(v * float64(time.Second)).Round(time.Millisecond).String()
		}})
}

// promChecks are the checks of QUERIES and COMPARE: each comparison measures the canary's track and the one it
// is held against.
func (v *verification) promChecks() []Check {
	cfg, tracks, against := v.cfg, v.res.tracks, v.res.against
	var checks []Check
	for _, q := range cfg.queries {
		checks = append(checks, &promCheck{api: v.d.Prom, q: q, tracks: tracks})
	}
	for _, cmp := range cfg.compares {
		c, b := tracks, tracks
		c.Track, c.Hash, c.Pods = tracks.CanaryTrack, tracks.CanaryHash, tracks.CanaryPods
		if against == naming.TrackBaseline {
			b.Track, b.Hash, b.Pods = tracks.BaselineTrack, tracks.BaselineHash, tracks.BaselinePods
		} else {
			b.Track, b.Hash, b.Pods = tracks.StableTrack, tracks.StableHash, tracks.StablePods
		}
		checks = append(checks, v.compareCheck(cmp, c, b))
	}
	return checks
}

// compareCheck is comparison cmp of canary against base: a sequential test, or Kayenta's fixed one.
func (v *verification) compareCheck(cmp Comparison, canary, base Tracks) Check {
	against := v.res.against
	if v.cfg.Statistics == naming.StatsSequential {
		o := v.seqOptions(cmp.Tolerance)
		var src batcher = &promPairs{promSampler: promSampler{api: v.d.Prom, cmp: cmp, canary: canary, base: base}}
		if cmp.counts() {
			src = &promCounts{api: v.d.Prom, cmp: cmp, canary: canary, base: base}
		}
		return newSeqCheck(cmp.Name, against, cmp.dir, o, src, v.store, v.weight, cmp.Query, cmp.Errors, cmp.Requests)
	}
	var src sampler = &promSampler{api: v.d.Prom, cmp: cmp, canary: canary, base: base}
	if cmp.counts() {
		src = &countRatios{counts: &promCounts{api: v.d.Prom, cmp: cmp, canary: canary, base: base}}
	}
	return &compareCheck{name: cmp.Name, against: against, dir: cmp.dir, opts: statsOptions(v.cfg, cmp.Tolerance),
		src: src, unit: func(v float64) string { return fmt.Sprintf("%.4g", v) }}
}

// seqOptions are the sequential tests' options: ALPHA, and the comparison's tolerance or TOLERANCE.
func (v *verification) seqOptions(tolerance *float64) stats.SeqOptions {
	o := stats.SeqOptions{Alpha: v.cfg.Alpha, Tolerance: v.cfg.Tolerance}
	if tolerance != nil {
		o.Tolerance = *tolerance
	}
	return o
}

// logStart says what the analysis measures, how often, and against what.
func (v *verification) logStart(checks []Check) {
	cfg := v.cfg
	attrs := []any{"noData", cfg.NoData, "failureLimit", cfg.FailureLimit}
	if v.res.against != "" {
		attrs = append([]any{"against", v.res.against}, attrs...)
	}
	v.log.Info(fmt.Sprintf("analysing the canary of %s/%s: %s, %s (%s) every %s", v.ns, cfg.App, plural(len(checks), "check"),
		plural(cfg.count, "measurement"), cfg.countFrom, cfg.Interval), attrs...)
}

// report completes the evidence, prints its table, writes its files, and turns its verdict into the step's.
func (v *verification) report(ev *evidence.Evidence) (Verdict, error) {
	cfg := v.cfg
	ev.App, ev.Namespace, ev.Release = cfg.App, v.ns, cfg.ReleaseID
	ev.Container, ev.StableImage, ev.CanaryImage = v.res.released(cfg.Container)
	redactEvidence(ev)
	fmt.Fprintln(v.out, step.Redact(ev.Table()))
	out := Verdict{Verdict: ev.Verdict, Reason: ev.Reason, CanaryImage: ev.CanaryImage, Weight: v.weight}
	if cfg.EvidenceDir != "" {
		out.Evidence, out.EvidenceError = v.writeEvidence(ev)
	}
	switch ev.Verdict {
	case evidence.Healthy:
		v.log.Info("verdict: healthy: " + ev.Reason)
		return out, nil
	case evidence.Unhealthy:
		return out, step.Failed("verdict: unhealthy: %s", ev.Reason)
	default:
		return out, &step.InconclusiveError{Msg: "verdict: inconclusive: " + ev.Reason}
	}
}

// writeEvidence writes the evidence files to EVIDENCE_DIR, and returns the report's path, or why they could not
// be written. The verdict is reached: a failed write is reported (EVIDENCE_ERROR), never turned into a failure
// that would roll a healthy canary back.
func (v *verification) writeEvidence(ev *evidence.Evidence) (report, problem string) {
	dir := v.cfg.EvidenceDir
	files, err := ev.WriteFiles(dir)
	if err != nil {
		problem = step.Redact(fmt.Sprintf("write the evidence to %s: %v", dir, err))
		v.log.Warn(problem + "; the verdict stands (result EVIDENCE_ERROR)")
		return "", problem
	}
	v.log.Info("evidence written", "json", files.JSON, "report", files.Markdown, "chart", files.SVG)
	return files.Markdown, ""
}

// redactEvidence removes credentials from everything the evidence prints or writes: queries (URLs), details
// (errors quote URLs) and the reason.
func redactEvidence(ev *evidence.Evidence) {
	ev.Reason = step.Redact(ev.Reason)
	for i := range ev.Checks {
		c := &ev.Checks[i]
		c.Query, c.Last, c.Threshold = step.Redact(c.Query), step.Redact(c.Last), step.Redact(c.Threshold)
	}
	for i := range ev.Measurements {
		m := &ev.Measurements[i]
		m.Query, m.Detail, m.Text = step.Redact(m.Query), step.Redact(m.Detail), step.Redact(m.Text)
	}
}

func statsOptions(cfg *Config, tolerance *float64) stats.Options {
	o := stats.Options{Confidence: cfg.Confidence, Tolerance: cfg.Tolerance, MinSamples: cfg.MinSamples}
	if tolerance != nil {
		o.Tolerance = *tolerance
	}
	return o
}

func urlsOf(s string) []*url.URL {
	u, _ := url.Parse(s)
	return []*url.URL{u}
}

// resolved is what verify-health reads from the API before it measures: the tracks for the query templates, what
// comparisons hold the canary against, and the canary Deployment (nil when nothing needs it).
type resolved struct {
	tracks         Tracks
	against        string
	stable, canary *appsv1.Deployment
}

// resolveTracks finds the stable, canary and baseline Deployments and, for the templates that use them, their
// pod-template hashes, and what comparisons hold the canary against. It reads each object at most once, and only
// what is used: the stable Deployment always (APP must name one); the canary Deployment when the pods check or a
// comparison measures it, or a template uses its hash; the baseline Deployment only when a comparison (COMPARE,
// HTTP_BASELINE_URL) is held against it or a template uses its hash; ReplicaSets only for the hashes templates
// use, in one list when one selector covers them all.
func resolveTracks(ctx context.Context, cfg *Config, ns string, kube kubeclient.Interface) (resolved, error) {
	r := &resolver{cfg: cfg, ns: ns, kube: kube}
	r.res.tracks = r.names()
	for _, read := range []func(context.Context) error{r.readStable, r.readCanary, r.readBaseline, r.chooseAgainst, r.readHashes} {
		if err := read(ctx); err != nil {
			return resolved{tracks: r.res.tracks}, err
		}
	}
	return r.res, nil
}

// resolver is one resolveTracks: what it needs, and what it has found so far.
type resolver struct {
	cfg  *Config
	ns   string
	kube kubeclient.Interface

	res      resolved
	baseline *appsv1.Deployment
	// comparisons counts the comparisons (COMPARE, HTTP_BASELINE_URL); sideUses says a comparison's template uses
	// the side's own hash ({{.Hash}}, {{.Pods}}), for the canary and the side it is held against.
	comparisons int
	sideUses    bool
}

// names are the tracks and the names of their Deployments; the hashes come later.
func (r *resolver) names() Tracks {
	cfg := r.cfg
	baselineName := cfg.BaselineDeployment
	if baselineName == "" {
		baselineName = naming.Baseline(cfg.App)
	}
	r.comparisons = len(cfg.compares) + boolInt(cfg.HTTPBaselineURL != "")
	r.sideUses = cfg.comparesUse(".Hash", ".Pods")
	return Tracks{Namespace: r.ns, App: cfg.App, CanaryTrack: naming.TrackCanary, BaselineTrack: naming.TrackBaseline,
		StableTrack: naming.TrackStable, CanaryDeployment: cfg.CanaryDeployment, BaselineDeployment: baselineName}
}

// get reads Deployment name (nil when there is none).
func (r *resolver) get(ctx context.Context, name string) (*appsv1.Deployment, error) {
	d, err := r.kube.AppsV1().Deployments(r.ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get Deployment %s/%s: %w", r.ns, name, err)
	}
	return d, nil
}

// readStable reads the stable Deployment, which APP must name.
func (r *resolver) readStable(ctx context.Context) error {
	cfg, ns, kube := r.cfg, r.ns, r.kube
	stable, err := kube.AppsV1().Deployments(ns).Get(ctx, cfg.App, metav1.GetOptions{})
	if err != nil {
		if p := step.NamespaceProblem(ctx, err, ns, "get deployments", kube.CoreV1().Namespaces()); p != nil {
			return p
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("get Deployment %s/%s: %w", ns, cfg.App, err)
		}
		stable = nil
	}
	if stable == nil {
		return step.Invalid("APP", "give the stable Deployment's name (oc get deploy), and NAMESPACE when it is in another namespace", "Deployment %s/%s does not exist", ns, cfg.App)
	}
	r.res.stable = stable
	return nil
}

// needCanaryHash says whether a template uses the canary's hash.
func (r *resolver) needCanaryHash() bool {
	return r.cfg.templatesUse(".CanaryHash", ".CanaryPods") || r.sideUses || r.cfg.needsHashes()
}

// readCanary reads the canary Deployment when a check measures it (then it must exist) or a template uses its
// hash.
func (r *resolver) readCanary(ctx context.Context) error {
	cfg := r.cfg
	required := cfg.Pods || len(cfg.compares) > 0
	if !required && !r.needCanaryHash() {
		return nil
	}
	canary, err := r.get(ctx, cfg.CanaryDeployment)
	if err != nil {
		return err
	}
	if canary == nil && required {
		return step.Invalid("CANARY_DEPLOYMENT", "run shift-canary first, or name the canary Deployment", "Deployment %s/%s does not exist", r.ns, cfg.CanaryDeployment)
	}
	r.res.canary = canary
	return nil
}

// readBaseline reads the baseline Deployment when a comparison may be held against it or a template uses its
// hash. APP-baseline counts only when it is canaryline's baseline.
func (r *resolver) readBaseline(ctx context.Context) error {
	cfg := r.cfg
	againstBaseline := cfg.CompareAgainst == naming.TrackBaseline || cfg.CompareAgainst == againstAuto
	if !(r.comparisons > 0 && againstBaseline) && !cfg.templatesUse(".BaselineHash", ".BaselinePods") {
		return nil
	}
	baseline, err := r.get(ctx, r.res.tracks.BaselineDeployment)
	if err != nil {
		return err
	}
	if baseline != nil && cfg.BaselineDeployment == "" && baseline.Labels[naming.TrackLabel] != naming.TrackBaseline {
		baseline = nil // APP-baseline is not canaryline's baseline: nothing to compare with
	}
	r.baseline = baseline
	return nil
}

// chooseAgainst decides what comparisons hold the canary against: COMPARE_AGAINST, where auto is the baseline
// when there is one, else stable when anything is compared.
func (r *resolver) chooseAgainst(context.Context) error {
	against := r.cfg.CompareAgainst
	switch {
	case against == againstAuto && r.baseline != nil:
		against = naming.TrackBaseline
	case against == againstAuto && r.comparisons > 0:
		against = naming.TrackStable
	case against == againstAuto:
		against = "" // nothing is compared; the baseline was not looked up
	case against == naming.TrackBaseline && r.baseline == nil && r.comparisons > 0:
		return step.Invalid("COMPARE_AGAINST", "run shift-canary with BASELINE=true, or compare against stable", "there is no baseline Deployment %s/%s", r.ns, r.res.tracks.BaselineDeployment)
	}
	r.res.against = against
	return nil
}

// readHashes finds the hashes the templates use, and the pod patterns built from them.
func (r *resolver) readHashes(ctx context.Context) error {
	cfg, against, t := r.cfg, r.res.against, &r.res.tracks
	stable, canary, baseline := r.res.stable, r.res.canary, r.baseline
	needStableHash := cfg.templatesUse(".StableHash", ".StablePods") || (r.sideUses && against == naming.TrackStable) || len(cfg.webhooks) > 0
	needBaselineHash := cfg.templatesUse(".BaselineHash", ".BaselinePods") || (r.sideUses && against == naming.TrackBaseline)
	var need []*appsv1.Deployment
	for _, n := range []struct {
		d    *appsv1.Deployment
		need bool
	}{{stable, needStableHash}, {canary, r.needCanaryHash()}, {baseline, needBaselineHash}} {
		if n.d != nil && n.need {
			need = append(need, n.d)
		}
	}
	current, err := currentReplicaSets(ctx, r.kube, r.ns, stable, need)
	if err != nil {
		return err
	}
	t.StableHash, t.StablePods = hashAndPods(current[stable], cfg.App)
	t.CanaryHash, t.CanaryPods = hashAndPods(current[canary], cfg.CanaryDeployment)
	t.BaselineHash, t.BaselinePods = hashAndPods(current[baseline], t.BaselineDeployment)
	return nil
}

// released names the released container and its stable and canary images, for the evidence: CONTAINER, else the
// one container whose image differs between the stable and the canary Deployment (the canary is read only when a
// check uses it).
func (r resolved) released(container string) (name, stableImage, canaryImage string) {
	image := func(d *appsv1.Deployment, name string) string {
		if d == nil {
			return ""
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == name {
				return c.Image
			}
		}
		return ""
	}
	if container == "" && r.stable != nil && r.canary != nil {
		for _, c := range r.stable.Spec.Template.Spec.Containers {
			if img := image(r.canary, c.Name); img != "" && img != c.Image {
				if container != "" {
					return "", "", "" // several differ: not told
				}
				container = c.Name
			}
		}
	}
	if container == "" {
		return "", "", ""
	}
	return container, image(r.stable, container), image(r.canary, container)
}

// currentReplicaSets finds each Deployment's current ReplicaSet (the one it owns at its revision). The ReplicaSets
// are listed once with the stable Deployment's selector when it covers every Deployment's (the canary's selector
// is the stable's, the baseline's the stable's plus a track label), else once per selector.
func currentReplicaSets(ctx context.Context, kube kubeclient.Interface, ns string, stable *appsv1.Deployment, ds []*appsv1.Deployment) (map[*appsv1.Deployment]*appsv1.ReplicaSet, error) {
	out := map[*appsv1.Deployment]*appsv1.ReplicaSet{}
	if len(ds) == 0 {
		return out, nil
	}
	sels := make([]labels.Selector, len(ds))
	for i, d := range ds {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			return nil, err
		}
		sels[i] = sel
	}
	type list struct {
		sel   labels.Selector
		items []appsv1.ReplicaSet
	}
	var lists []*list
	if len(ds) > 1 {
		if broad, err := metav1.LabelSelectorAsSelector(stable.Spec.Selector); err == nil {
			all := true
			for _, sel := range sels {
				all = all && covers(broad, sel)
			}
			if all {
				lists = append(lists, &list{sel: broad})
			}
		}
	}
	for i, d := range ds {
		var l *list
		for _, c := range lists {
			if covers(c.sel, sels[i]) {
				l = c
				break
			}
		}
		if l == nil {
			l = &list{sel: sels[i]}
			lists = append(lists, l)
		}
		if l.items == nil {
			rss, err := kube.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: l.sel.String()})
			if err != nil {
				return nil, fmt.Errorf("list ReplicaSets of %s/%s: %w", ns, d.Name, err)
			}
			l.items = rss.Items
			if l.items == nil {
				l.items = []appsv1.ReplicaSet{}
			}
		}
		out[d] = naming.CurrentReplicaSet(d, l.items)
	}
	return out, nil
}

// covers reports whether everything narrow selects, broad selects too: every requirement of broad is one of
// narrow's.
func covers(broad, narrow labels.Selector) bool {
	b, ok := broad.Requirements()
	if !ok {
		return false
	}
	n, ok := narrow.Requirements()
	if !ok {
		return false
	}
	have := map[string]bool{}
	for _, r := range n {
		have[r.String()] = true
	}
	for _, r := range b {
		if !have[r.String()] {
			return false
		}
	}
	return true
}

// hashAndPods are the pod-template-hash of a Deployment's current ReplicaSet rs and a regex of its pods' names
// (rs nil: no hash, and the pods of any ReplicaSet of the Deployment).
func hashAndPods(rs *appsv1.ReplicaSet, deployment string) (string, string) {
	if rs == nil {
		return "", deployment + "-.*"
	}
	return rs.Labels[naming.PodTemplateHashLabel], rs.Name + "-.*"
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
