package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/notify"
	"github.com/canaryline/canaryline/internal/runtime/osclient"
	"github.com/canaryline/canaryline/internal/runtime/step"
	"github.com/canaryline/canaryline/internal/runtime/traffic"
)

// Clients are the API clients of the release steps.
type Clients struct {
	Kube    kubeclient.Interface
	Route   osclient.RouteV1Interface
	Dynamic dynamic.Interface
}

// Decided is what promote-or-rollback hands on.
type Decided struct {
	Decision    string
	ReleaseID   string
	Weight      int32 // the canary's final weight: 0
	StableImage string
	Reason      string
	// Image is the release's image; Ended says this run ended the release (not a rerun that found it ended).
	Image string
	Ended bool
}

// Results are promote-or-rollback's Tekton results.
func (d Decided) Results() map[string]string {
	return map[string]string{"DECISION": d.Decision, "RELEASE_ID": d.ReleaseID, "CANARY_WEIGHT": fmt.Sprint(d.Weight),
		"STABLE_IMAGE": d.StableImage}
}

// decision is what auto decides: promote only a release whose pipeline succeeded and whose canary was not found
// unhealthy; anything else (a failure, a cancellation, a timeout) rolls back.
func decision(cfg *DecideConfig) (string, string) {
	what, why := autoDecision(cfg)
	if cfg.Reason != "" && what == DecisionRollback && cfg.Decision == DecisionAuto {
		why = cfg.Reason + " (" + why + ")"
	}
	return what, why
}

func autoDecision(cfg *DecideConfig) (string, string) {
	if cfg.Decision != DecisionAuto {
		reason := cfg.Reason
		if reason == "" {
			reason = "asked for " + cfg.Decision
		}
		return cfg.Decision, reason
	}
	switch {
	case cfg.Verdict == naming.Unhealthy:
		return DecisionRollback, "verify-health found the canary unhealthy"
	case cfg.PipelineStatus == "Succeeded" || cfg.PipelineStatus == "Completed":
		if cfg.Verdict == naming.Inconclusive {
			return DecisionRollback, "the verdict was inconclusive"
		}
		return DecisionPromote, "the pipeline succeeded"
	case cfg.PipelineStatus == "None":
		return DecisionRollback, "the pipeline was cancelled or timed out before it finished"
	}
	return DecisionRollback, "the pipeline failed (tasks.status " + cfg.PipelineStatus + ")"
}

// Decide promotes or rolls back the application's release in progress.
func Decide(ctx context.Context, cfg *DecideConfig, ns string, c Clients, log *slog.Logger) (Decided, error) {
	d := &decider{cfg: cfg, ns: ns, c: c, log: log}
	st, last, err := d.read(ctx)
	if err != nil {
		return Decided{}, err
	}
	if st == nil || (cfg.ReleaseID != "" && st.ID != cfg.ReleaseID) {
		return d.nothingInProgress(st, last)
	}
	what, reason := d.decide(st)
	lk, err := d.lock(ctx, st)
	if err != nil {
		return Decided{}, err
	}
	ctx, stop := lk.keep(ctx)
	defer stop()
	if err := d.end(ctx, lk, st, what, reason); err != nil {
		return Decided{}, lostLock(ctx, err)
	}
	out := Decided{Decision: what, ReleaseID: st.ID, StableImage: st.Image, Reason: reason, Image: st.Image, Ended: true}
	if what == DecisionRollback {
		out.StableImage = st.StableImage
	}
	return out, nil
}

// decider is one run of promote-or-rollback.
type decider struct {
	cfg *DecideConfig
	ns  string
	c   Clients
	log *slog.Logger
	// probe is the lock as read before it is taken: the lock taken reuses its read.
	probe *lock
}

// read reads the release Lease: the release in progress and the last one that ended (nil when none). A missing
// namespace is bad input.
func (d *decider) read(ctx context.Context) (*State, *Outcome, error) {
	t, ns := &d.cfg.Target, d.ns
	d.probe = newLock(d.c.Kube.CoordinationV1(), ns, t.App, "", t.LockTTL, d.log)
	lease, st, last, err := d.probe.read(ctx)
	if err != nil {
		if p := step.NamespaceProblem(ctx, errors.Unwrap(err), ns, "get leases", nil); p != nil {
			return nil, nil, p
		}
		return nil, nil, err
	}
	if lease == nil {
		// No release of APP was ever recorded here: say so when it is the namespace that does not exist.
		if p := step.NamespaceProblem(ctx, apierrors.NewNotFound(coordinationv1.Resource("leases"), d.probe.name), ns, "get leases", d.c.Kube.CoreV1().Namespaces()); p != nil {
			return nil, nil, p
		}
	}
	return st, last, nil
}

// nothingInProgress answers when nothing of this release is in progress: it finished already (a rerun, which
// answers as it ended), or never moved traffic (nothing to do for auto, bad input for an explicit decision).
func (d *decider) nothingInProgress(st *State, last *Outcome) (Decided, error) {
	t, ns := &d.cfg.Target, d.ns
	if last != nil && (t.ReleaseID == "" || last.ID == t.ReleaseID) && t.ReleaseID != "" {
		d.log.Info(fmt.Sprintf("release %s already ended: %s", last.ID, last.Decision), "stableImage", last.StableImage)
		return Decided{Decision: last.Decision, ReleaseID: last.ID, StableImage: last.StableImage, Reason: last.Reason}, nil
	}
	if d.cfg.Decision == DecisionAuto {
		d.log.Info("no release of " + describe(ns, t.App) + " to decide on: nothing to do")
		return Decided{Decision: DecisionNone, ReleaseID: t.ReleaseID}, nil
	}
	if st != nil {
		return Decided{}, step.Invalid("RELEASE_ID", "give the id of the release in progress, or leave RELEASE_ID empty",
			"the release in progress for %s is %s, not %s", t.App, st.ID, t.ReleaseID)
	}
	return Decided{}, step.Invalid("APP", "check APP and NAMESPACE", "no release of %s is in progress", describe(ns, t.App))
}

// decide is the decision and its reason. A release that was being promoted or rolled back when a step stopped
// is finished that way, whatever is asked now.
func (d *decider) decide(st *State) (string, string) {
	what, reason := decision(d.cfg)
	switch st.Phase {
	case PhasePromoting:
		if what != DecisionPromote {
			d.log.Warn("the release was being promoted when the step stopped: the promotion is finished instead of rolled back")
		}
		what = DecisionPromote
	case PhaseRollingBack:
		if what != DecisionRollback {
			d.log.Warn("the release was being rolled back when the step stopped: the rollback is finished")
		}
		what, reason = DecisionRollback, st.Reason
	}
	return what, reason
}

// lock takes the release's lock for st, from the Lease as read already (no second read).
func (d *decider) lock(ctx context.Context, st *State) (*lock, error) {
	t := &d.cfg.Target
	lk := newLock(d.c.Kube.CoordinationV1(), d.ns, t.App, st.ID, t.LockTTL, d.log)
	lk.read1, lk.haveRead1 = d.probe.read1, d.probe.haveRead1
	if _, err := lk.acquire(ctx); err != nil {
		return nil, err
	}
	return lk, nil
}

// end promotes (recording the verdict with the reason) or rolls back the release.
func (d *decider) end(ctx context.Context, lk *lock, st *State, what, reason string) error {
	if what != DecisionPromote {
		return rollback(ctx, lk, st, d.c, reason, d.log)
	}
	if d.cfg.Verdict != "" {
		st.Reason = "verdict " + d.cfg.Verdict + "; " + reason
	} else {
		st.Reason = reason
	}
	return promote(ctx, lk, st, d.c, d.cfg.RolloutTimeout, d.log)
}

// Parts of promoting and rolling back, recorded in State.Done as they finish.
const (
	partServiceRestored = "stable-service-restored"
	partStableUpdated   = "stable-updated"
	partTrafficZero     = "canary-traffic-zero"
	partCanaryRemoved   = "canary-removed"
	partCanaryScaled    = "canary-scaled"
	partRouterRestored  = "router-restored"
)

// run does one part of ending a release: skipped when State.Done has it. Every part is safe to do again, so a
// finished part is recorded on the Lease only when record is set (a part worth not repeating, such as waiting
// for a rollout); the others ride along with the next write of the Lease.
func run(ctx context.Context, lk *lock, st *State, part string, record bool, f func() error) error {
	if st.done(part) {
		return nil
	}
	if err := f(); err != nil {
		return err
	}
	st.Done = append(st.Done, part)
	st.UpdatedAt = time.Now().UTC()
	if !record {
		return nil
	}
	return lk.save(ctx, st)
}

// promote makes the canary's image stable: the stable Service selects every pod again, the stable Deployment
// takes over the canary's pods (or, when it cannot, rolls out the canary's image), the router goes back to
// all-stable, and what is left of the canary is removed.
func promote(ctx context.Context, lk *lock, st *State, c Clients, timeout time.Duration, log *slog.Logger) error {
	p := &promotion{lk: lk, st: st, c: c, ns: lk.lease.Namespace, timeout: timeout, log: log}
	if st.Promotion == "" {
		how, why, err := p.choose(ctx)
		if err != nil {
			return err
		}
		st.Promotion = how
		log.Info("promotion: "+why, "promotion", how)
	}
	st.Phase = PhasePromoting
	if err := lk.save(ctx, st); err != nil {
		return err
	}
	if err := run(ctx, lk, st, partServiceRestored, false, func() error { return restoreStableService(ctx, c.Kube, p.ns, st) }); err != nil {
		return err
	}
	if err := p.updateStable(ctx); err != nil {
		return err
	}
	router, err := newRouter(st.Router, st.RouterName, traffic.Options{KeepCookies: st.KeepCookies}, c)
	if err != nil {
		return err
	}
	if err := run(ctx, lk, st, partRouterRestored, false, func() error { return router.Restore(ctx, backendsOf(p.ns, st), st.RouterSnapshot) }); err != nil {
		return err
	}
	keep := st.Promotion == promoteAdopt // the canary Deployment went with the hand-over; its ReplicaSet is the stable's
	if err := run(ctx, lk, st, partCanaryRemoved, false, func() error { return removeTracks(ctx, c.Kube, p.ns, st, keep, log) }); err != nil {
		return err
	}
	return p.finish(ctx)
}

// updateStable brings the stable Deployment to the release's image: by taking over the canary's pods (the canary
// scaled to the stable's size first), or by rolling it out.
func (p *promotion) updateStable(ctx context.Context) error {
	lk, st := p.lk, p.st
	if st.Promotion != promoteAdopt {
		return run(ctx, lk, st, partStableUpdated, true, func() error { return p.rollOutStable(ctx) })
	}
	// Scaling again is cheap (the replicas are as wanted, the rollout done): not worth a write of the Lease.
	if err := run(ctx, lk, st, partCanaryScaled, false, func() error { return p.scaleCanary(ctx) }); err != nil {
		return err
	}
	// Handing over again is cheap too (each part sees it done, nothing is written): not worth a write of the Lease.
	return run(ctx, lk, st, partStableUpdated, false, func() error { return p.adopt(ctx) })
}

// promotion is one promote: the release, and the stable (and canary) Deployment as last written or read.
type promotion struct {
	lk      *lock
	st      *State
	c       Clients
	ns      string
	timeout time.Duration
	log     *slog.Logger

	stable, canary *appsv1.Deployment
}

// rollOutStable puts the canary's image in the stable Deployment's container (and the promoted release on its
// annotations), and waits until it is rolled out.
func (p *promotion) rollOutStable(ctx context.Context) error {
	st, ns := p.st, p.ns
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error { return p.setImage(ctx) }); err != nil {
		return fmt.Errorf("update Deployment %s/%s to %s: %w", ns, st.App, st.Image, err)
	}
	p.log.Info(fmt.Sprintf("rolling out %s on Deployment %s, container %s", st.Image, describe(ns, st.App), st.Container))
	var err error
	p.stable, err = untilRolledOut(ctx, p.c.Kube, ns, st.App, p.timeout)
	return err
}

// setImage is one attempt at updating the stable Deployment; when it is as wanted already, nothing is sent.
func (p *promotion) setImage(ctx context.Context) error {
	st, ns := p.st, p.ns
	apps := p.c.Kube.AppsV1().Deployments(ns)
	d, err := apps.Get(ctx, st.App, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if containerImage(d, st.Container) == "" {
		return fmt.Errorf("Deployment %s/%s has no container %q any more (renamed during the release?): the release changes that container only; "+
			"roll it back (DECISION=rollback), or put the container back and promote again", ns, st.App, st.Container)
	}
	changed := false
	for i := range d.Spec.Template.Spec.Containers {
		if ct := &d.Spec.Template.Spec.Containers[i]; ct.Name == st.Container && ct.Image != st.Image {
			ct.Image, changed = st.Image, true
		}
	}
	if d.Annotations[PromotedAnnotation] != st.ID {
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[PromotedAnnotation], changed = st.ID, true
	}
	if !changed {
		p.stable = d
		return nil
	}
	return p.update(ctx, d)
}

// finish says the release is promoted (in the log and in an Event on the stable Deployment), and ends it on the
// Lease.
func (p *promotion) finish(ctx context.Context) error {
	st := p.st
	msg := fmt.Sprintf("release %s promoted: %s is now stable in container %s (was %s)", st.ID, st.Image, st.Container, st.StableImage)
	p.log.Info(msg)
	if p.stable == nil {
		p.stable, _ = p.c.Kube.AppsV1().Deployments(p.ns).Get(ctx, st.App, metav1.GetOptions{})
	}
	if p.stable != nil && p.stable.Name != "" {
		event(ctx, p.c.Kube, p.stable, corev1.EventTypeNormal, "CanaryPromoted", msg, p.log)
	}
	return p.lk.finish(ctx, Outcome{ID: st.ID, Decision: DecisionPromote, Container: st.Container, StableImage: st.Image, Reason: st.Reason, FinishedAt: time.Now().UTC()})
}

// restoreStableService gives the stable Service its selector from before the release, without the
// pod-template-hash the release pinned it to and without the release's annotations: it selects every pod of the
// application again. It is one merge patch of just those keys, whatever the Service is now (restoring twice is
// the same), so it needs no read; a conflict, rare on a merge patch, is retried.
func restoreStableService(ctx context.Context, kube kubeclient.Interface, ns string, st *State) error {
	sel := map[string]any{}
	for k, v := range st.StableSelector {
		sel[k] = v
	}
	if _, ok := sel[naming.PodTemplateHashLabel]; !ok {
		sel[naming.PodTemplateHashLabel] = nil
	}
	ann := map[string]any{}
	for k := range releaseAnnotations(st) {
		ann[k] = nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}, "spec": map[string]any{"selector": sel}})
	if err != nil {
		return err
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error { // a 409 is rare on a merge patch, but not impossible
		_, err := kube.CoreV1().Services(ns).Patch(ctx, st.StableService, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("restore the selector of Service %s/%s: %w", ns, st.StableService, err)
	}
	return nil
}

// rollback puts everything back as it was, the canary's traffic first. The stable Deployment is never touched.
func rollback(ctx context.Context, lk *lock, st *State, c Clients, reason string, log *slog.Logger) error {
	ns := lk.lease.Namespace
	if st.Phase != PhaseRollingBack {
		st.Phase, st.Reason = PhaseRollingBack, reason
		if err := lk.save(ctx, st); err != nil {
			return err
		}
	}
	b := backendsOf(ns, st)
	router, err := newRouter(st.Router, st.RouterName, traffic.Options{KeepCookies: st.KeepCookies}, c)
	if err != nil {
		return err
	}
	// First of all, no traffic to the canary.
	if err := run(ctx, lk, st, partTrafficZero, true, func() error {
		a, err := router.SetWeights(ctx, b, traffic.Weights{})
		if err != nil {
			return err
		}
		log.Info("canary traffic is 0", "detail", a.Detail)
		return nil
	}); err != nil {
		return err
	}
	if err := run(ctx, lk, st, partCanaryRemoved, false, func() error { return removeTracks(ctx, c.Kube, ns, st, false, log) }); err != nil {
		return err
	}
	if err := run(ctx, lk, st, partRouterRestored, false, func() error { return router.Restore(ctx, b, st.RouterSnapshot) }); err != nil {
		return err
	}
	if err := run(ctx, lk, st, partServiceRestored, false, func() error { return restoreStableService(ctx, c.Kube, ns, st) }); err != nil {
		return err
	}
	msg := fmt.Sprintf("release %s rolled back: %s; %s stays stable", st.ID, st.Reason, st.StableImage)
	log.Info(msg)
	if d, err := c.Kube.AppsV1().Deployments(ns).Get(ctx, st.App, metav1.GetOptions{}); err == nil {
		event(ctx, c.Kube, d, corev1.EventTypeWarning, "CanaryRolledBack", msg, log)
	}
	return lk.finish(ctx, Outcome{ID: st.ID, Decision: DecisionRollback, Container: st.Container, StableImage: st.StableImage, Reason: st.Reason, FinishedAt: time.Now().UTC()})
}

// removeTracks deletes the release's canary and baseline Deployments and Services: only objects that carry the
// release's mark, the very ones it created when it recorded their UIDs. Gone already is fine; an object of someone
// else's under one of the names is left as it is, with a warning. keepCanary leaves the canary Deployment alone
// (a promotion by adoption deleted it, leaving its ReplicaSet to the stable).
func removeTracks(ctx context.Context, kube kubeclient.Interface, ns string, st *State, keepCanary bool, log *slog.Logger) error {
	n := st.names()
	if keepCanary {
		n.CanaryDeployment = ""
	}
	apps, core := kube.AppsV1().Deployments(ns), kube.CoreV1().Services(ns)
	for _, o := range []struct {
		kind, name, track string
		get               func(context.Context, string, metav1.GetOptions) (metav1.Object, error)
		del               func(context.Context, string, metav1.DeleteOptions) error
	}{
		{"Deployment", n.CanaryDeployment, naming.TrackCanary, getter(apps.Get), apps.Delete},
		{"Deployment", n.BaselineDeployment, naming.TrackBaseline, getter(apps.Get), apps.Delete},
		{"Service", n.CanaryService, naming.TrackCanary, getter(core.Get), core.Delete},
		{"Service", n.BaselineService, naming.TrackBaseline, getter(core.Get), core.Delete},
	} {
		if o.name == "" {
			continue
		}
		uid := types.UID(st.UIDs[o.kind+"/"+o.name])
		if uid == "" {
			obj, err := o.get(ctx, o.name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("get %s %s/%s: %w", o.kind, ns, o.name, err)
			}
			if !marked(obj, o.track, st.ID) {
				log.Warn(notOurs(o.kind, obj, st.ID).Error())
				continue
			}
			uid = obj.GetUID()
		}
		fg := metav1.DeletePropagationBackground
		err := o.del(ctx, o.name, metav1.DeleteOptions{PropagationPolicy: &fg, Preconditions: &metav1.Preconditions{UID: &uid}})
		switch {
		case apierrors.IsConflict(err):
			log.Warn(fmt.Sprintf("%s %s/%s is not the one release %s created (it was replaced): it is left as it is", o.kind, ns, o.name, st.ID))
		case err != nil && !apierrors.IsNotFound(err):
			return fmt.Errorf("delete %s %s/%s: %w", o.kind, ns, o.name, err)
		}
	}
	return nil
}

// getter adapts a typed Get to one returning the object's metadata.
func getter[T metav1.Object](get func(context.Context, string, metav1.GetOptions) (T, error)) func(context.Context, string, metav1.GetOptions) (metav1.Object, error) {
	return func(ctx context.Context, name string, o metav1.GetOptions) (metav1.Object, error) {
		obj, err := get(ctx, name, o)
		return obj, err
	}
}

// event is the notification of the outcome.
func (d Decided) event(app, ns string) notify.Event {
	kind := notify.Promoted
	if d.Decision == DecisionRollback {
		kind = notify.RolledBack
	}
	return notify.Event{Kind: kind, App: app, Namespace: ns, Release: d.ReleaseID, Image: d.Image, StableImage: d.StableImage, Reason: d.Reason}
}
