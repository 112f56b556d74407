package health

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/evidence"
	"github.com/canaryline/canaryline/internal/kubeclient"
	"github.com/canaryline/canaryline/internal/stats"
	"github.com/canaryline/canaryline/internal/step"
)

// Verdict is what verify-health hands on.
type Verdict struct {
	Verdict, Reason, Evidence string
}

// maxReason keeps the REASON result small.
const maxReason = 400

// Results are verify-health's Tekton results.
func (v Verdict) Results() map[string]string {
	r := v.Reason
	if len(r) > maxReason {
		r = r[:maxReason-1] + "…"
	}
	return map[string]string{"VERDICT": v.Verdict, "REASON": r, "EVIDENCE": v.Evidence}
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
	tracks, against, err := resolveTracks(ctx, cfg, ns, d.Kube)
	if err != nil {
		return Verdict{}, err
	}
	usesProm := len(cfg.queries) > 0 || len(cfg.compares) > 0
	if usesProm && d.Prom == nil {
		if d.Prom, err = newQuerier(cfg); err != nil {
			return Verdict{}, err
		}
	}
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
		checks = append(checks, &podsCheck{kube: d.Kube, ns: ns, name: cfg.CanaryDeployment, maxRestarts: int32(cfg.MaxRestarts)})
	}
	probeCtx, stopProbes := context.WithCancel(ctx)
	defer stopProbes()
	if len(cfg.urls) > 0 {
		client, err := newHTTPClient(cfg.HTTPCAFile, cfg.InsecureSkipTLSVerify, cfg.HTTPTimeout)
		if err != nil {
			return Verdict{}, err
		}
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
	log.Info(fmt.Sprintf("analysing the canary of %s/%s: %d checks, %d measurements every %s", ns, cfg.App, len(checks), cfg.count, cfg.Interval),
		"against", against, "noData", cfg.NoData, "failureLimit", cfg.FailureLimit)
	a := &analysis{cfg: cfg, checks: checks, log: log, now: d.Now}
	ev := a.run(ctx)
	stopProbes()
	ev.App, ev.Namespace, ev.Release = cfg.App, ns, cfg.ReleaseID
	redactEvidence(ev)
	fmt.Fprintln(out, step.Redact(ev.Table()))
	v := Verdict{Verdict: ev.Verdict, Reason: ev.Reason}
	if cfg.EvidenceDir != "" {
		files, err := ev.WriteFiles(cfg.EvidenceDir)
		if err != nil {
			return v, fmt.Errorf("write the evidence to %s: %w", cfg.EvidenceDir, err)
		}
		v.Evidence = files.Markdown
		log.Info("evidence written", "json", files.JSON, "report", files.Markdown, "chart", files.SVG)
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

// resolveTracks finds the canary, baseline and stable Deployments and their pod-template hashes for templates,
// and what comparisons hold the canary against.
func resolveTracks(ctx context.Context, cfg *Config, ns string, kube kubeclient.Interface) (Tracks, string, error) {
	t := Tracks{Namespace: ns, App: cfg.App, CanaryTrack: "canary", BaselineTrack: "baseline", StableTrack: "stable",
		CanaryDeployment: cfg.CanaryDeployment, BaselineDeployment: cfg.App + "-baseline"}
	hash := func(name string) (string, bool, error) {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return "", false, nil
		}
		if err != nil {
			return "", false, fmt.Errorf("get Deployment %s/%s: %w", ns, name, err)
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			return "", true, err
		}
		rss, err := kube.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return "", true, fmt.Errorf("list ReplicaSets of %s/%s: %w", ns, name, err)
		}
		rev := d.Annotations["deployment.kubernetes.io/revision"]
		for _, rs := range rss.Items {
			if rs.Annotations["deployment.kubernetes.io/revision"] == rev {
				for _, o := range rs.OwnerReferences {
					if o.UID == d.UID {
						return rs.Labels["pod-template-hash"], true, nil
					}
				}
			}
		}
		return "", true, nil
	}
	var err error
	var ok bool
	if t.StableHash, ok, err = hash(cfg.App); err != nil {
		return t, "", err
	} else if !ok {
		return t, "", step.Invalid("APP", "give the stable Deployment's name (oc get deploy), and NAMESPACE when it is in another namespace", "Deployment %s/%s does not exist", ns, cfg.App)
	}
	if t.CanaryHash, ok, err = hash(cfg.CanaryDeployment); err != nil {
		return t, "", err
	} else if !ok && (cfg.Pods || len(cfg.compares) > 0) {
		return t, "", step.Invalid("CANARY_DEPLOYMENT", "run shift-canary first, or name the canary Deployment", "Deployment %s/%s does not exist", ns, cfg.CanaryDeployment)
	}
	var hasBaseline bool
	if t.BaselineHash, hasBaseline, err = hash(t.BaselineDeployment); err != nil {
		return t, "", err
	}
	t.CanaryPods = podRegex(cfg.CanaryDeployment, t.CanaryHash)
	t.StablePods = podRegex(cfg.App, t.StableHash)
	t.BaselinePods = podRegex(t.BaselineDeployment, t.BaselineHash)
	against := cfg.CompareAgainst
	switch {
	case against == "auto" && hasBaseline:
		against = "baseline"
	case against == "auto":
		against = "stable"
	case against == "baseline" && !hasBaseline && len(cfg.compares)+boolInt(cfg.HTTPBaselineURL != "") > 0:
		return t, "", step.Invalid("COMPARE_AGAINST", "run shift-canary with BASELINE=true, or compare against stable", "there is no baseline Deployment %s/%s", ns, t.BaselineDeployment)
	}
	return t, against, nil
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
