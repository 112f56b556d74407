package release

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/canaryline/canaryline/internal/kubeclient"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/step"
	"github.com/canaryline/canaryline/internal/traffic"
)

// Shifted is what shift-canary hands on.
type Shifted struct {
	ReleaseID          string
	Weight             int32
	EffectiveCanary    float64
	CanaryDeployment   string
	CanaryService      string
	BaselineDeployment string
}

// Results are shift-canary's Tekton results.
func (s Shifted) Results() map[string]string {
	return map[string]string{"RELEASE_ID": s.ReleaseID, "CANARY_WEIGHT": fmt.Sprint(s.Weight),
		"CANARY_SHARE": fmt.Sprintf("%.2f", s.EffectiveCanary), "CANARY_DEPLOYMENT": s.CanaryDeployment,
		"CANARY_SERVICE": s.CanaryService, "BASELINE_DEPLOYMENT": s.BaselineDeployment}
}

// releaseID is RELEASE_ID, or for a run outside a pipeline, one derived from the image digest.
func releaseID(t *Target, image string) string {
	if t.ReleaseID != "" {
		return t.ReleaseID
	}
	_, digest, _ := strings.Cut(image, "@sha256:")
	if len(digest) >= 12 {
		return t.App + "-" + digest[:12]
	}
	return ""
}

// Shift brings the canary up (first call), waits until it is Ready, then moves WEIGHT percent of traffic to it.
// Everything is read and checked before the first change.
func Shift(ctx context.Context, cfg *ShiftConfig, ns string, c Clients, log *slog.Logger) (Shifted, error) {
	kube := c.Kube
	t := &cfg.Target
	// Read and check everything first.
	stable, err := kube.AppsV1().Deployments(ns).Get(ctx, t.App, metav1.GetOptions{})
	if err != nil {
		return Shifted{}, notFound(err, "APP", fmt.Sprintf("Deployment %s/%s does not exist", ns, t.App), "give the stable Deployment's name (oc get deploy)")
	}
	container := cfg.Container
	if container == "" {
		container = stable.Spec.Template.Spec.Containers[0].Name
	}
	stableImage := ""
	for _, ct := range stable.Spec.Template.Spec.Containers {
		if ct.Name == container {
			stableImage = ct.Image
		}
	}
	if stableImage == "" {
		return Shifted{}, step.Invalid("CONTAINER", "name a container of the stable Deployment's pod template", "Deployment %s has no container %q", describe(ns, t.App), container)
	}
	svc, err := kube.CoreV1().Services(ns).Get(ctx, t.stableService(), metav1.GetOptions{})
	if err != nil {
		return Shifted{}, notFound(err, "STABLE_SERVICE", fmt.Sprintf("Service %s/%s does not exist", ns, t.stableService()), "give the Service in front of the stable Deployment")
	}
	routerName := cfg.RouterName
	if routerName == "" {
		routerName = t.stableService()
	}
	router, err := newRouter(cfg.Router, routerName, cfg.KeepCookies, c)
	if err != nil {
		return Shifted{}, err
	}
	id := releaseID(t, cfg.Image)
	lk := newLock(kube.CoordinationV1(), ns, t.App, id, t.LockTTL, log)
	lease, st, _, err := lk.read(ctx)
	if err != nil {
		return Shifted{}, err
	}
	if err := lk.busy(lease); err != nil {
		return Shifted{}, err
	}
	ours := st != nil && st.ID == id
	if !ours {
		// A new release: the stable version must be settled, and the stable Service must select it.
		if !rolledOut(stable) {
			return Shifted{}, step.Invalid("APP", "wait for the stable Deployment's rollout to finish (oc rollout status deploy/"+t.App+")",
				"Deployment %s is rolling out (%d of %d replicas updated and available)", describe(ns, t.App), stable.Status.AvailableReplicas, ptrOr(stable.Spec.Replicas, 1))
		}
		sel := svc.Spec.Selector
		if st != nil {
			sel = st.StableSelector // an abandoned release pinned it; it will be restored
		}
		if len(sel) == 0 || !labelsMatch(sel, stable.Spec.Template.Labels) {
			return Shifted{}, step.Invalid("STABLE_SERVICE", "give the Service whose selector matches the stable pods",
				"Service %s (selector %v) does not select the pods of Deployment %s", describe(ns, svc.Name), sel, t.App)
		}
	} else if st.Image != cfg.Image {
		return Shifted{}, step.Invalid("IMAGE", "a release keeps one image: start another PipelineRun for another image",
			"release %s is in progress with image %s, not %s", id, st.Image, cfg.Image)
	} else if st.Phase != PhaseShifting {
		return Shifted{}, step.Invalid("RELEASE_ID", "the release is ending; start a new one", "release %s is %s", id, st.Phase)
	}
	b := backends(t, ns, cfg.Baseline, &State{ID: id, Image: cfg.Image})
	if err := router.Check(ctx, b); err != nil {
		return Shifted{}, checkError(err)
	}

	// The lock: one release per application.
	found, err := lk.acquire(ctx)
	if err != nil {
		return Shifted{}, err
	}
	stop := lk.keep(ctx)
	defer stop()
	if found != nil && found.ID != id {
		log.Warn(fmt.Sprintf("release %s was abandoned at weight %d%% (its lock expired): rolling it back first", found.ID, found.Weight))
		if err := rollback(ctx, lk, found, c, "abandoned: its lock expired", log); err != nil {
			return Shifted{}, fmt.Errorf("roll back the abandoned release %s: %w", found.ID, err)
		}
		if _, err := lk.acquire(ctx); err != nil {
			return Shifted{}, err
		}
		found = nil
		// The rollback restored the stable Service: read it again.
		if svc, err = kube.CoreV1().Services(ns).Get(ctx, t.stableService(), metav1.GetOptions{}); err != nil {
			return Shifted{}, fmt.Errorf("get Service %s/%s: %w", ns, t.stableService(), err)
		}
	}
	st = found
	if st == nil {
		snap, err := router.Snapshot(ctx, b)
		if err != nil {
			return Shifted{}, err
		}
		now := time.Now().UTC()
		st = &State{ID: id, App: t.App, Image: cfg.Image, Container: container, StableImage: stableImage, Router: cfg.Router,
			RouterName: routerName, RouterSnapshot: snap, StableService: svc.Name, StableSelector: svc.Spec.Selector,
			Baseline: cfg.Baseline, KeepCookies: cfg.KeepCookies, Phase: PhaseShifting, StartedAt: now, UpdatedAt: now}
		// Recorded before the first change, so that any later step or rerun can undo it.
		if err := lk.save(ctx, st); err != nil {
			return Shifted{}, err
		}
		log.Info(fmt.Sprintf("release %s of %s started: %s -> %s", id, describe(ns, t.App), stableImage, cfg.Image), "router", cfg.Router+"/"+routerName)
	}
	b = backends(t, ns, st.Baseline, st)

	ready := map[string]int32{} // ready endpoints as counted below, for the router's effective shares
	if cfg.Router != traffic.KindReplicas {
		// The stable Service must not send traffic to canary or baseline pods: pin it to the stable ReplicaSet
		// before any of them exists, and wait until its endpoints are the stable pods alone. A later shift finds
		// it pinned already.
		hash := svc.Spec.Selector[podTemplateHash]
		if !ours || hash == "" {
			if hash, err = stableHash(ctx, kube, stable); err != nil {
				return Shifted{}, err
			}
		}
		sel := maps.Clone(st.StableSelector)
		sel[podTemplateHash] = hash
		if err := setServiceSelector(ctx, kube, svc, sel, releaseAnnotations(st), false); err != nil {
			return Shifted{}, err
		}
		n := ptrOr(stable.Spec.Replicas, 1)
		got, err := untilEndpoints(ctx, kube, ns, svc.Name, func(got int32) bool { return got == n }, fmt.Sprintf("exactly %d", n), cfg.ReadyTimeout)
		if err != nil {
			return Shifted{}, fmt.Errorf("no traffic was moved: %w", err)
		}
		ready[svc.Name] = got
	}

	// The canary (and baseline) next to stable.
	size := replicasFor(cfg.CanaryReplicas, ptrOr(stable.Spec.Replicas, 1))
	if cfg.Router == traffic.KindReplicas {
		size = 0 // the router sizes it from the weight
		if cur, err := kube.AppsV1().Deployments(ns).Get(ctx, canaryName(t.App), metav1.GetOptions{}); err == nil {
			size = ptrOr(cur.Spec.Replicas, 0)
		}
	}
	tracks := []struct {
		track, image, deployment, service string
	}{{TrackCanary, cfg.Image, b.CanaryDeployment, b.Canary}}
	if st.Baseline {
		tracks = append(tracks, struct{ track, image, deployment, service string }{TrackBaseline, "", b.BaselineDeployment, b.Baseline})
	}
	rolled := map[string]bool{}
	for _, tr := range tracks {
		d, err := ensureDeployment(ctx, kube, trackDeployment(stable, st, tr.track, tr.image, size), ours)
		if err != nil {
			return Shifted{}, err
		}
		rolled[tr.deployment] = size > 0 && rolledOut(d)
		if err := ensureService(ctx, kube, trackService(svc, st, tr.service, tr.track), ours); err != nil {
			return Shifted{}, err
		}
	}
	// No traffic moves before the canary is Ready, and its Service has the endpoints.
	if size > 0 {
		for _, d := range []string{b.CanaryDeployment, b.BaselineDeployment} {
			if d == "" || rolled[d] {
				continue
			}
			if _, err := untilRolledOut(ctx, kube, ns, d, cfg.ReadyTimeout); err != nil {
				return Shifted{}, fmt.Errorf("no traffic was moved: %w", err)
			}
		}
		for _, s := range []string{b.Canary, b.Baseline} {
			if s == "" {
				continue
			}
			got, err := untilEndpoints(ctx, kube, ns, s, func(got int32) bool { return got >= size }, fmt.Sprint(size), cfg.ReadyTimeout)
			if err != nil {
				return Shifted{}, fmt.Errorf("no traffic was moved: %w", err)
			}
			ready[s] = got
		}
	}

	w := traffic.Weights{Canary: cfg.weight}
	if st.Baseline {
		w.Baseline = cfg.weight
	}
	st.Weight = cfg.weight
	b.Annotations = routerAnnotations(st)
	b.Ready = ready
	applied, err := router.SetWeights(ctx, b, w)
	if err != nil {
		return Shifted{}, err
	}
	if cfg.Router == traffic.KindReplicas && cfg.weight > 0 {
		for _, d := range []string{b.CanaryDeployment, b.BaselineDeployment} {
			if d != "" {
				if _, err := untilRolledOut(ctx, kube, ns, d, cfg.ReadyTimeout); err != nil {
					return Shifted{}, err
				}
			}
		}
	}
	for _, warn := range applied.Warnings {
		log.Warn(warn)
	}
	st.UpdatedAt = time.Now().UTC()
	if err := lk.save(ctx, st); err != nil {
		return Shifted{}, err
	}
	msg := fmt.Sprintf("canary weight %d%% (%s; effective canary share %.1f%%)", cfg.weight, applied.Detail, applied.EffectiveCanary)
	log.Info(msg, "release", id, "weight", cfg.weight, "effective", fmt.Sprintf("%.2f", applied.EffectiveCanary))
	event(ctx, kube, stable, corev1.EventTypeNormal, "CanaryWeight", fmt.Sprintf("release %s: %s", id, msg), log)
	out := Shifted{ReleaseID: id, Weight: cfg.weight, EffectiveCanary: applied.EffectiveCanary,
		CanaryDeployment: b.CanaryDeployment, CanaryService: b.Canary, BaselineDeployment: b.BaselineDeployment}
	return out, nil
}

// backends names the release's objects.
func backends(t *Target, ns string, baseline bool, st *State) traffic.Backends {
	b := traffic.Backends{Namespace: ns, Stable: t.stableService(), Canary: canaryName(t.stableService()),
		StableDeployment: t.App, CanaryDeployment: canaryName(t.App)}
	if baseline {
		b.Baseline, b.BaselineDeployment = baselineName(t.stableService()), baselineName(t.App)
	}
	if st != nil {
		b.Annotations = routerAnnotations(st)
	}
	return b
}

func newRouter(kind, name string, keepCookies bool, c Clients) (traffic.Router, error) {
	r, err := traffic.New(kind, name, traffic.Clients{Kube: c.Kube, Route: c.Route, Dynamic: c.Dynamic}, traffic.Options{KeepCookies: keepCookies})
	var unknown *traffic.UnknownKindError
	if errors.As(err, &unknown) {
		return nil, step.Invalid("ROUTER", "use one of "+strings.Join(traffic.Kinds, ", "), "%v", err)
	}
	return r, err
}

func checkError(err error) error {
	var ce *traffic.CheckError
	if errors.As(err, &ce) {
		return &step.InvalidError{Param: "ROUTER_NAME", Msg: ce.Msg, Fix: ce.Fix}
	}
	return err
}

func notFound(err error, param, msg, fix string) error {
	if apierrors.IsNotFound(err) {
		return &step.InvalidError{Param: param, Msg: msg, Fix: fix}
	}
	if apierrors.IsForbidden(err) {
		return &step.InvalidError{Msg: "permission denied: " + err.Error(), Fix: "bind the step's ServiceAccount to the Role that `oc apply -k .` installs (`oc apply -k install/ROUTER` for the httproute, istio and nginx routers), or to the Role `canaryline generate role --app APP --router ROUTER` prints for this application (a Role for another application cannot touch it)"}
	}
	return err
}

func labelsMatch(sel, lbls map[string]string) bool {
	for k, v := range sel {
		if lbls[k] != v {
			return false
		}
	}
	return true
}

// event records a Kubernetes Event on the stable Deployment. It is best effort: a release does not fail for it.
func event(ctx context.Context, kube kubeclient.Interface, d *appsv1.Deployment, typ, reason, msg string, log *slog.Logger) {
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: d.Name + ".", Namespace: d.Namespace},
		InvolvedObject: corev1.ObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, Namespace: d.Namespace,
			UID: d.UID, ResourceVersion: d.ResourceVersion},
		Reason: reason, Message: msg, Type: typ, FirstTimestamp: now, LastTimestamp: now, Count: 1,
		Source: corev1.EventSource{Component: "canaryline"}, ReportingController: "canaryline.dev/canaryline", ReportingInstance: "canaryline",
	}
	if _, err := kube.CoreV1().Events(d.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		log.Warn("could not record an Event", "reason", reason, "error", err)
	}
}
