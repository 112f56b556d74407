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

	"github.com/canaryline/canaryline/internal/evidence"
	"github.com/canaryline/canaryline/internal/kubeclient"
	"github.com/canaryline/canaryline/internal/release"
	"github.com/canaryline/canaryline/internal/stats"
	"github.com/canaryline/canaryline/internal/step"
)

// Verdict is what verify-health hands on. EvidenceError says why the evidence could not be written (empty when
// it was, or when there is no evidence workspace): the verdict stands all the same.
type Verdict struct {
	Verdict, Reason, Evidence, EvidenceError string
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
	res, err := resolveTracks(ctx, cfg, ns, d.Kube)
	if err != nil {
		return Verdict{}, err
	}
	tracks, against := res.tracks, res.against
	// Everything a bad param can break (the Prometheus client, its token and CA files, the HTTP client) is built
	// before the lock is renewed: bad input changes nothing in the cluster.
	usesProm := len(cfg.queries) > 0 || len(cfg.compares) > 0
	if usesProm && d.Prom == nil {
		if d.Prom, err = newQuerier(cfg); err != nil {
			return Verdict{}, err
		}
	}
	var client *http.Client
	if len(cfg.urls) > 0 {
		if client, err = newHTTPClient(cfg.HTTPCAFile, cfg.InsecureSkipTLSVerify, cfg.HTTPTimeout); err != nil {
			return Verdict{}, err
		}
	}
	// The release's lock is renewed while the analysis runs; a lost lock stops it (exit 5): another release's
	// canary is never judged as this one's.
	hold, held, err := release.HoldRelease(ctx, d.Kube, ns, cfg.App, cfg.ReleaseID, log)
	if err != nil {
		return Verdict{}, err
	}
	defer hold.Stop()
	outer := ctx
	ctx = held
	if cfg.InsecureSkipTLSVerify {
		var what []string
		if len(cfg.urls) > 0 {
			what = append(what, "the HTTP probes")
		}
		if usesProm {
			what = append(what, "Prometheus "+step.Redact(cfg.PrometheusURL))
		}
		if len(what) == 0 {
			what = append(what, "nothing (no HTTP_URLS, no Prometheus)")
		}
		log.Warn("INSECURE_SKIP_TLS_VERIFY=true: TLS certificate verification is off for " + strings.Join(what, " and ") +
			"; any server can answer in their place. Trust a private CA with HTTP_CA_FILE or PROMETHEUS_CA_FILE instead")
	}
	var checks []Check
	if cfg.Pods {
		pc, err := newPodsCheck(d.Kube, ns, res.canary, int32(cfg.MaxRestarts))
		if err != nil {
			return Verdict{}, err
		}
		if cfg.InitialDelay == 0 {
			pc.first = res.canary // the first measurement is now: the Deployment just read is current
		}
		checks = append(checks, pc)
	}
	probeCtx, stopProbes := context.WithCancel(ctx)
	defer stopProbes()
	if len(cfg.urls) > 0 {
		canary := &prober{client: client, urls: cfg.urls, headers: cfg.headers, rate: cfg.HTTPRate}
		go canary.run(probeCtx)
		checks = append(checks, &httpCheck{p: canary, minSuccess: cfg.HTTPMinSuccess, percentile: cfg.HTTPPercentile, maxLatency: cfg.HTTPMaxLatency})
		if cfg.HTTPBaselineURL != "" {
			base := &prober{client: client, urls: urlsOf(cfg.HTTPBaselineURL), headers: cfg.headers, rate: cfg.HTTPRate}
			go base.run(probeCtx)
			checks = append(checks, &compareCheck{name: "http-latency", against: against, dir: stats.Increase,
				opts: statsOptions(cfg, nil), src: &httpSampler{canary: canary, baseline: base},
				unit: func(v float64) string {
					return time.Duration(v * float64(time.Second)).Round(time.Millisecond).String()
				}})
		}
	}
	for _, q := range cfg.queries {
		checks = append(checks, &promCheck{api: d.Prom, q: q, tracks: tracks})
	}
	for _, cmp := range cfg.compares {
		c, b := tracks, tracks
		c.Track, c.Hash, c.Pods = tracks.CanaryTrack, tracks.CanaryHash, tracks.CanaryPods
		if against == "baseline" {
			b.Track, b.Hash, b.Pods = tracks.BaselineTrack, tracks.BaselineHash, tracks.BaselinePods
		} else {
			b.Track, b.Hash, b.Pods = tracks.StableTrack, tracks.StableHash, tracks.StablePods
		}
		checks = append(checks, &compareCheck{name: cmp.Name, against: against, dir: cmp.dir, opts: statsOptions(cfg, cmp.Tolerance),
			src: &promSampler{api: d.Prom, cmp: cmp, canary: c, base: b}, unit: func(v float64) string { return fmt.Sprintf("%.4g", v) }})
	}
	attrs := []any{"noData", cfg.NoData, "failureLimit", cfg.FailureLimit}
	if against != "" {
		attrs = append([]any{"against", against}, attrs...)
	}
	log.Info(fmt.Sprintf("analysing the canary of %s/%s: %s, %s (%s) every %s", ns, cfg.App, plural(len(checks), "check"),
		plural(cfg.count, "measurement"), cfg.countFrom, cfg.Interval), attrs...)
	a := &analysis{cfg: cfg, checks: checks, log: log, now: d.Now}
	ev := a.run(ctx)
	stopProbes()
	if err := hold.Check(outer, held); err != nil {
		return Verdict{}, err
	}
	ev.App, ev.Namespace, ev.Release = cfg.App, ns, cfg.ReleaseID
	ev.Container, ev.StableImage, ev.CanaryImage = res.released(cfg.Container)
	redactEvidence(ev)
	fmt.Fprintln(out, step.Redact(ev.Table()))
	v := Verdict{Verdict: ev.Verdict, Reason: ev.Reason}
	if cfg.EvidenceDir != "" {
		// The verdict is reached: a failed write is reported (EVIDENCE_ERROR), never turned into a failure that
		// would roll a healthy canary back.
		if files, err := ev.WriteFiles(cfg.EvidenceDir); err != nil {
			v.EvidenceError = step.Redact(fmt.Sprintf("write the evidence to %s: %v", cfg.EvidenceDir, err))
			log.Warn(v.EvidenceError + "; the verdict stands (result EVIDENCE_ERROR)")
		} else {
			v.Evidence = files.Markdown
			log.Info("evidence written", "json", files.JSON, "report", files.Markdown, "chart", files.SVG)
		}
	}
	switch ev.Verdict {
	case evidence.Healthy:
		log.Info("verdict: healthy: " + ev.Reason)
		return v, nil
	case evidence.Unhealthy:
		return v, step.Failed("verdict: unhealthy: %s", ev.Reason)
	default:
		return v, &step.InconclusiveError{Msg: "verdict: inconclusive: " + ev.Reason}
	}
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
	baselineName := cfg.BaselineDeployment
	if baselineName == "" {
		baselineName = cfg.App + "-baseline"
	}
	t := Tracks{Namespace: ns, App: cfg.App, CanaryTrack: "canary", BaselineTrack: "baseline", StableTrack: "stable",
		CanaryDeployment: cfg.CanaryDeployment, BaselineDeployment: baselineName}
	r := resolved{tracks: t}
	get := func(name string) (*appsv1.Deployment, error) {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get Deployment %s/%s: %w", ns, name, err)
		}
		return d, nil
	}
	comparisons := len(cfg.compares) + boolInt(cfg.HTTPBaselineURL != "")
	// sideUses: a comparison's template uses the side's own hash ({{.Hash}}, {{.Pods}}), for the canary and the
	// side it is held against.
	sideUses := cfg.comparesUse(".Hash", ".Pods")
	needCanaryHash := cfg.templatesUse(".CanaryHash", ".CanaryPods") || sideUses
	needBaselineHash := cfg.templatesUse(".BaselineHash", ".BaselinePods")

	stable, err := kube.AppsV1().Deployments(ns).Get(ctx, cfg.App, metav1.GetOptions{})
	if err != nil {
		if p := step.NamespaceProblem(ctx, err, ns, "get deployments", kube.CoreV1().Namespaces()); p != nil {
			return r, p
		}
		if !apierrors.IsNotFound(err) {
			return r, fmt.Errorf("get Deployment %s/%s: %w", ns, cfg.App, err)
		}
		stable = nil
	}
	if stable == nil {
		return r, step.Invalid("APP", "give the stable Deployment's name (oc get deploy), and NAMESPACE when it is in another namespace", "Deployment %s/%s does not exist", ns, cfg.App)
	}
	canaryRequired := cfg.Pods || len(cfg.compares) > 0
	var canary *appsv1.Deployment
	if canaryRequired || needCanaryHash {
		if canary, err = get(cfg.CanaryDeployment); err != nil {
			return r, err
		}
		if canary == nil && canaryRequired {
			return r, step.Invalid("CANARY_DEPLOYMENT", "run shift-canary first, or name the canary Deployment", "Deployment %s/%s does not exist", ns, cfg.CanaryDeployment)
		}
	}
	var baseline *appsv1.Deployment
	againstBaseline := cfg.CompareAgainst == "baseline" || cfg.CompareAgainst == "auto"
	if (comparisons > 0 && againstBaseline) || needBaselineHash {
		if baseline, err = get(t.BaselineDeployment); err != nil {
			return r, err
		}
		if baseline != nil && cfg.BaselineDeployment == "" && baseline.Labels["canaryline.dev/track"] != "baseline" {
			baseline = nil // APP-baseline is not canaryline's baseline: nothing to compare with
		}
	}
	against := cfg.CompareAgainst
	switch {
	case against == "auto" && baseline != nil:
		against = "baseline"
	case against == "auto" && comparisons > 0:
		against = "stable"
	case against == "auto":
		against = "" // nothing is compared; the baseline was not looked up
	case against == "baseline" && baseline == nil && comparisons > 0:
		return r, step.Invalid("COMPARE_AGAINST", "run shift-canary with BASELINE=true, or compare against stable", "there is no baseline Deployment %s/%s", ns, t.BaselineDeployment)
	}
	needStableHash := cfg.templatesUse(".StableHash", ".StablePods") || (sideUses && against == "stable")
	needBaselineHash = needBaselineHash || (sideUses && against == "baseline")

	var need []*appsv1.Deployment
	for _, n := range []struct {
		d    *appsv1.Deployment
		need bool
	}{{stable, needStableHash}, {canary, needCanaryHash}, {baseline, needBaselineHash}} {
		if n.d != nil && n.need {
			need = append(need, n.d)
		}
	}
	hashes, err := podTemplateHashes(ctx, kube, ns, stable, need)
	if err != nil {
		return r, err
	}
	t.StableHash = hashes[stable]
	if canary != nil {
		t.CanaryHash = hashes[canary]
	}
	if baseline != nil {
		t.BaselineHash = hashes[baseline]
	}
	t.CanaryPods = podRegex(cfg.CanaryDeployment, t.CanaryHash)
	t.StablePods = podRegex(cfg.App, t.StableHash)
	t.BaselinePods = podRegex(t.BaselineDeployment, t.BaselineHash)
	return resolved{tracks: t, against: against, stable: stable, canary: canary}, nil
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

// podTemplateHashes finds the pod-template-hash of each Deployment's current ReplicaSet (the one it owns at its
// revision). The ReplicaSets are listed once with the stable Deployment's selector when it covers every
// Deployment's (the canary's and baseline's selectors are the stable's plus a track label), else once per
// selector.
func podTemplateHashes(ctx context.Context, kube kubeclient.Interface, ns string, stable *appsv1.Deployment, ds []*appsv1.Deployment) (map[*appsv1.Deployment]string, error) {
	out := map[*appsv1.Deployment]string{}
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
		out[d] = currentHash(d, l.items)
	}
	return out, nil
}

// currentHash is the pod-template-hash of the ReplicaSet that d owns at its revision ("" when there is none).
func currentHash(d *appsv1.Deployment, rss []appsv1.ReplicaSet) string {
	rev := d.Annotations["deployment.kubernetes.io/revision"]
	for _, rs := range rss {
		if rs.Annotations["deployment.kubernetes.io/revision"] == rev {
			for _, o := range rs.OwnerReferences {
				if o.UID == d.UID {
					return rs.Labels["pod-template-hash"]
				}
			}
		}
	}
	return ""
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

func podRegex(deployment, hash string) string {
	if hash == "" {
		return deployment + "-.*"
	}
	return deployment + "-" + hash + "-.*"
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
