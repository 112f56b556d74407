package release

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/step"
	"github.com/canaryline/canaryline/internal/runtime/traffic"
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

// shift is one run of shift-canary: what it read and checked before its first change, then the release.
type shift struct {
	cfg *ShiftConfig
	ns  string
	c   Clients
	log *slog.Logger

	id                     string
	stable                 *appsv1.Deployment
	svc                    *corev1.Service
	container, stableImage string
	names                  Names
	baseline               bool
	routerName             string
	router                 traffic.Router
	lk                     *lock
	// recorded is the release the Lease records (nil: none); ours says it is this one (a later shift, a rerun).
	recorded *State
	ours     bool
	// found is the release recorded when the lock was taken.
	found *State
}

// Shift brings the canary up (first call), waits until it is Ready, then moves WEIGHT percent of traffic to it.
// Everything is read and checked before the first change: a name clash or any other bad input changes nothing.
func Shift(ctx context.Context, cfg *ShiftConfig, ns string, c Clients, log *slog.Logger) (Shifted, error) {
	s := &shift{cfg: cfg, ns: ns, c: c, log: log}
	if err := s.preflight(ctx); err != nil {
		return Shifted{}, err
	}
	ctx, stop, err := s.lock(ctx)
	if err != nil {
		return Shifted{}, err
	}
	defer stop()
	out, err := s.shift(ctx)
	return out, lostLock(ctx, err)
}

// shift is the release from the lock on: the record, the stable Service pinned, the tracks, the traffic.
func (s *shift) shift(ctx context.Context) (Shifted, error) {
	st, err := s.takeOverAndRecord(ctx)
	if err != nil {
		return Shifted{}, err
	}
	ready := map[string]int32{} // ready endpoints as counted, for the router's effective shares
	if err := s.pinStable(ctx, st, ready); err != nil {
		return Shifted{}, err
	}
	if err := s.bringUpTracks(ctx, st, ready); err != nil {
		return Shifted{}, err
	}
	return s.setTraffic(ctx, st, ready)
}

// preflight reads the stable version, the Lease and the router object, and checks them and every name the
// release will use. It writes nothing.
func (s *shift) preflight(ctx context.Context) error {
	t, kube := &s.cfg.Target, s.c.Kube
	var err error
	if s.stable, err = kube.AppsV1().Deployments(s.ns).Get(ctx, t.App, metav1.GetOptions{}); err != nil {
		if p := step.NamespaceProblem(ctx, err, s.ns, "get deployments", kube.CoreV1().Namespaces()); p != nil {
			return p
		}
		return notFound(err, "APP", fmt.Sprintf("Deployment %s/%s does not exist", s.ns, t.App), "give the stable Deployment's name (oc get deploy)")
	}
	if s.svc, err = kube.CoreV1().Services(s.ns).Get(ctx, t.stableService(), metav1.GetOptions{}); err != nil {
		return notFound(err, "STABLE_SERVICE", fmt.Sprintf("Service %s/%s does not exist", s.ns, t.stableService()), "give the Service in front of the stable Deployment")
	}
	s.routerName = s.cfg.RouterName
	if s.routerName == "" {
		s.routerName = t.stableService()
	}
	if s.router, err = newRouter(s.cfg.Router, s.routerName, s.cfg.routerOptions(), s.c); err != nil {
		return err
	}
	s.id = releaseID(t, s.cfg.Image)
	s.lk = newLock(kube.CoordinationV1(), s.ns, t.App, s.id, t.LockTTL, s.log)
	lease, st, _, err := s.lk.read(ctx)
	if err != nil {
		return err
	}
	if err := s.lk.busy(lease); err != nil {
		return err
	}
	s.recorded, s.ours = st, st != nil && st.ID == s.id
	if s.ours {
		err = s.continuing()
	} else {
		err = s.starting(ctx, lease)
	}
	if err != nil {
		return err
	}
	b := s.backends(&State{ID: s.id, Image: s.cfg.Image})
	if st != nil && !s.ours {
		b.Abandoned = st.ID
	}
	return checkError(s.router.Check(ctx, b))
}

// starting checks what a new release needs: a settled stable version, a stable Service that selects it, the
// container to change, and names that no object of someone else's holds.
func (s *shift) starting(ctx context.Context, lease *coordinationv1.Lease) error {
	t, ns := &s.cfg.Target, s.ns
	if t.ReleaseID != "" && lease != nil {
		if past, ok := ended(lease, t.ReleaseID); ok {
			return step.Invalid("RELEASE_ID", "a release id names one release: start a new PipelineRun (its name is the id), or give another RELEASE_ID",
				"release %s of %s already ended (%s); it cannot start again", t.ReleaseID, describe(ns, t.App), past)
		}
	}
	var err error
	if s.container, s.stableImage, err = pickContainer(s.stable, s.cfg.Container, t.App, s.cfg.Image); err != nil {
		return err
	}
	if err := s.stableSettled(ctx); err != nil {
		return err
	}
	sel := s.svc.Spec.Selector
	if s.recorded != nil {
		sel = s.recorded.StableSelector // an abandoned release pinned it; it will be restored
	}
	if len(sel) == 0 || !labelsMatch(sel, s.stable.Spec.Template.Labels) {
		return step.Invalid("STABLE_SERVICE", "give the Service whose selector matches the stable pods",
			"Service %s (selector %v) does not select the pods of Deployment %s", describe(ns, s.svc.Name), sel, t.App)
	}
	s.baseline = s.cfg.Baseline
	s.names = trackNames(t, s.cfg.CanaryName, s.cfg.BaselineName, s.baseline)
	releases := []string{s.id}
	if s.recorded != nil {
		releases = append(releases, s.recorded.ID) // its objects are rolled back before this release starts
	}
	return checkClashes(ctx, s.c.Kube, ns, s.names, releases...)
}

// stableSettled checks that the stable version can be compared with and keep its share: it has replicas, its
// current template runs on all of them, and they are all available. It says what is wrong when not.
func (s *shift) stableSettled(ctx context.Context) error {
	d, app, ns := s.stable, s.cfg.App, s.ns
	want := ptrOr(d.Spec.Replicas, 1)
	switch {
	case want == 0:
		return step.Invalid("APP", fmt.Sprintf("scale it up first (oc scale deploy/%s --replicas=N -n %s)", app, ns),
			"Deployment %s has 0 replicas: with no stable pods there is nothing to compare the canary with, and every request would go to the canary", describe(ns, app))
	case d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas < want || d.Status.Replicas > want:
		return step.Invalid("APP", fmt.Sprintf("wait for the stable Deployment's rollout to finish (oc rollout status deploy/%s -n %s)", app, ns),
			"Deployment %s is rolling out (%d of %d replicas updated, %d pods in all)", describe(ns, app), d.Status.UpdatedReplicas, want, d.Status.Replicas)
	case d.Status.AvailableReplicas < want:
		return step.Invalid("APP", fmt.Sprintf("make the stable version healthy first (oc describe deploy/%s -n %s): a canary is compared with it", app, ns),
			"Deployment %s runs its current version, but only %d of %d replicas are available%s", describe(ns, app), d.Status.AvailableReplicas, want, whyNotReady(ctx, s.c.Kube, d))
	}
	return nil
}

// continuing checks a later shift (or a rerun) of the release in progress against what the release recorded.
func (s *shift) continuing() error {
	st, cfg := s.recorded, s.cfg
	switch {
	case st.Image != cfg.Image:
		return step.Invalid("IMAGE", "a release keeps one image: start another PipelineRun for another image",
			"release %s is in progress with image %s, not %s", s.id, st.Image, cfg.Image)
	case st.Phase != PhaseShifting:
		return step.Invalid("RELEASE_ID", "the release is ending; start a new one", "release %s is %s", s.id, st.Phase)
	case cfg.Container != "" && cfg.Container != st.Container:
		return step.Invalid("CONTAINER", "a release keeps one container: give the one it started with, or leave CONTAINER empty",
			"release %s changes container %q, not %q", s.id, st.Container, cfg.Container)
	}
	s.container, s.stableImage, s.baseline, s.names = st.Container, st.StableImage, st.Baseline, st.names()
	if cfg.CanaryName != "" && cfg.CanaryName != s.names.CanaryDeployment {
		return step.Invalid("CANARY_NAME", "a release keeps its names: give the one it started with, or leave CANARY_NAME empty",
			"release %s runs its canary as %s, not %s", s.id, s.names.CanaryDeployment, cfg.CanaryName)
	}
	return nil
}

// lock takes the lock and keeps renewing it: the context returned ends when the lock is lost.
func (s *shift) lock(ctx context.Context) (context.Context, func(), error) {
	found, err := s.lk.acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	s.found = found
	kctx, stop := s.lk.keep(ctx)
	return kctx, stop, nil
}

// takeOverAndRecord rolls back an abandoned release first, and records a new release on the Lease before its
// first change, so that any later step or rerun can undo it. A later shift continues the recorded release.
func (s *shift) takeOverAndRecord(ctx context.Context) (*State, error) {
	found := s.found
	if found != nil && found.ID != s.id {
		if err := s.takeOver(ctx, found); err != nil {
			return nil, err
		}
		found = nil
	}
	if found != nil {
		return found, nil
	}
	return s.record(ctx)
}

// takeOver rolls back an abandoned release (its lock expired) before this one starts, then reads again what that
// rollback changed: the stable Service and the router object.
func (s *shift) takeOver(ctx context.Context, found *State) error {
	s.log.Warn(fmt.Sprintf("release %s was abandoned at weight %d%% (its lock expired): rolling it back first", found.ID, found.Weight))
	if err := rollback(ctx, s.lk, found, s.c, "abandoned: its lock expired", s.log); err != nil {
		return fmt.Errorf("roll back the abandoned release %s: %w", found.ID, err)
	}
	if _, err := s.lk.acquire(ctx); err != nil {
		return err
	}
	var err error
	if s.svc, err = s.c.Kube.CoreV1().Services(s.ns).Get(ctx, s.svc.Name, metav1.GetOptions{}); err != nil {
		return fmt.Errorf("get Service %s/%s: %w", s.ns, s.svc.Name, err)
	}
	s.router, err = newRouter(s.cfg.Router, s.routerName, s.cfg.routerOptions(), s.c) // nothing cached from before the rollback
	return err
}

// record saves the new release on the Lease: what it will change and how to undo it.
func (s *shift) record(ctx context.Context) (*State, error) {
	t := &s.cfg.Target
	snap, err := s.router.Snapshot(ctx, s.backends(&State{ID: s.id, Image: s.cfg.Image}))
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	st := &State{ID: s.id, App: t.App, Image: s.cfg.Image, Container: s.container, StableImage: s.stableImage, Router: s.cfg.Router,
		RouterName: s.routerName, RouterSnapshot: snap, StableService: s.svc.Name, StableSelector: s.svc.Spec.Selector,
		Baseline: s.baseline, Names: s.names, KeepCookies: s.cfg.KeepCookies, TrackPods: !s.cfg.ReuseCanary, Phase: PhaseShifting, StartedAt: now, UpdatedAt: now}
	if err := s.lk.save(ctx, st); err != nil {
		return nil, err
	}
	s.log.Info(fmt.Sprintf("release %s of %s started: %s -> %s (container %s)", s.id, describe(s.ns, t.App), s.stableImage, s.cfg.Image, s.container),
		"router", s.cfg.Router+"/"+s.routerName)
	return st, nil
}

// pinStable keeps the stable Service from sending traffic to canary or baseline pods: it is pinned to the stable
// ReplicaSet before any of them exists, and the step waits until its endpoints are the stable pods alone. A later
// shift finds it pinned already.
func (s *shift) pinStable(ctx context.Context, st *State, ready map[string]int32) error {
	if !s.cfg.traits().PinsStable {
		return nil
	}
	kube := s.c.Kube
	hash := s.svc.Spec.Selector[naming.PodTemplateHashLabel]
	if !s.ours || hash == "" {
		var err error
		if hash, err = currentHash(ctx, kube, s.stable); err != nil {
			return err
		}
	}
	sel := maps.Clone(st.StableSelector)
	sel[naming.PodTemplateHashLabel] = hash
	if err := setServiceSelector(ctx, kube, s.svc, sel, releaseAnnotations(st)); err != nil {
		return err
	}
	n := ptrOr(s.stable.Spec.Replicas, 1)
	got, err := untilEndpoints(ctx, kube, s.ns, s.svc.Name, func(got int32) bool { return got == n }, fmt.Sprintf("exactly %d", n), s.cfg.ReadyTimeout)
	if err != nil {
		return fmt.Errorf("no traffic was moved: %w", err)
	}
	ready[s.svc.Name] = got
	return nil
}

// bringUpTracks creates or updates the canary (and baseline) Deployment and Service next to stable, and waits
// until they are Ready with endpoints: no traffic moves before.
func (s *shift) bringUpTracks(ctx context.Context, st *State, ready map[string]int32) error {
	kube, ns := s.c.Kube, s.ns
	// The canary's (and baseline's) size is CANARY_REPLICAS, or for a router that sizes them from the weight,
	// the size they have (0 at first).
	sized := s.cfg.traits().SizesTracks
	size := int32(0)
	if !sized {
		size = replicasFor(s.cfg.CanaryReplicas, ptrOr(s.stable.Spec.Replicas, 1))
	}
	if st.UIDs == nil {
		st.UIDs = map[string]string{}
	}
	tracks := s.tracks(st)
	for i, tr := range tracks {
		d, err := ensureDeployment(ctx, kube, trackDeployment(s.stable, st, tr.deployment, tr.track, tr.image, size), st.ID, s.ours, sized)
		if err != nil {
			return err
		}
		st.UIDs["Deployment/"+d.Name] = string(d.UID)
		tracks[i].d = d
	}
	if sized {
		size = ptrOr(tracks[0].d.Spec.Replicas, 0)
	}
	for _, tr := range tracks {
		if err := s.trackService(ctx, st, tr); err != nil {
			return err
		}
	}
	if size == 0 {
		return nil
	}
	for _, tr := range tracks {
		got, err := untilEndpoints(ctx, kube, ns, tr.service, func(got int32) bool { return got >= size }, fmt.Sprint(size), s.cfg.ReadyTimeout)
		if err != nil {
			return fmt.Errorf("no traffic was moved: %w", err)
		}
		ready[tr.service] = got
	}
	return nil
}

// track is one of the release's tracks: its name, the image it runs ("" for the stable's), its Deployment's and
// Service's names, and its Deployment as last written or read.
type track struct {
	track, image, deployment, service string
	d                                 *appsv1.Deployment
}

// tracks are the release's tracks: the canary, and the baseline when it has one.
func (s *shift) tracks(st *State) []track {
	b := s.backends(st)
	out := []track{{track: naming.TrackCanary, image: s.cfg.Image, deployment: b.CanaryDeployment, service: b.Canary}}
	if st.Baseline {
		out = append(out, track{track: naming.TrackBaseline, deployment: b.BaselineDeployment, service: b.Baseline})
	}
	return out
}

// trackService waits until the track's Deployment is rolled out (at 0 replicas: until its controller has seen
// it), then creates or updates the track's Service: the canary's selects the pod-template-hash of the canary's
// pods, the baseline's its track label.
func (s *shift) trackService(ctx context.Context, st *State, tr track) error {
	d := tr.d
	if !rolledOut(d) {
		var err error
		if d, err = untilRolledOut(ctx, s.c.Kube, s.ns, tr.deployment, s.cfg.ReadyTimeout); err != nil {
			return fmt.Errorf("no traffic was moved: %w", err)
		}
	}
	sel := map[string]string{naming.TrackLabel: tr.track}
	if tr.track == naming.TrackCanary && !st.TrackPods {
		hash, err := s.canaryHash(ctx, st, d)
		if err != nil {
			return err
		}
		sel = map[string]string{naming.PodTemplateHashLabel: hash}
	}
	svc, err := ensureService(ctx, s.c.Kube, trackService(s.svc, st, tr.service, tr.track, sel), st.ID, s.ours)
	if err != nil {
		return err
	}
	st.UIDs["Service/"+svc.Name] = string(svc.UID)
	return nil
}

// canaryHash is the pod-template-hash of the canary's pods: as recorded with the release while the canary
// Deployment's spec is the one it was recorded for, else read from its current ReplicaSet.
func (s *shift) canaryHash(ctx context.Context, st *State, d *appsv1.Deployment) (string, error) {
	spec := d.Annotations[specHashAnnotation]
	if st.CanaryHash != "" && st.CanarySpec == spec {
		return st.CanaryHash, nil
	}
	hash, err := currentHash(ctx, s.c.Kube, d)
	if err != nil {
		return "", err
	}
	st.CanaryHash, st.CanarySpec = hash, spec
	return hash, nil
}

// setTraffic gives the canary (and baseline) WEIGHT percent through the router, and records it.
func (s *shift) setTraffic(ctx context.Context, st *State, ready map[string]int32) (Shifted, error) {
	kube, ns, weight := s.c.Kube, s.ns, s.cfg.weight
	w := traffic.Weights{Canary: weight}
	if st.Baseline {
		w.Baseline = weight
	}
	st.Weight = weight
	b := s.backends(st)
	b.Ready = ready
	applied, err := s.router.SetWeights(ctx, b, w)
	if err != nil {
		return Shifted{}, err
	}
	if s.cfg.traits().SizesTracks && weight > 0 {
		for _, d := range []string{b.CanaryDeployment, b.BaselineDeployment} {
			if d != "" {
				if _, err := untilRolledOut(ctx, kube, ns, d, s.cfg.ReadyTimeout); err != nil {
					return Shifted{}, err
				}
			}
		}
	}
	for _, warn := range applied.Warnings {
		s.log.Warn(warn)
	}
	st.UpdatedAt = time.Now().UTC()
	if err := s.lk.save(ctx, st); err != nil {
		return Shifted{}, err
	}
	msg := fmt.Sprintf("canary weight %d%% (%s; effective canary share %.1f%%)", weight, applied.Detail, applied.EffectiveCanary)
	s.log.Info(msg, "release", st.ID, "weight", weight, "effective", fmt.Sprintf("%.2f", applied.EffectiveCanary))
	event(ctx, kube, s.stable, corev1.EventTypeNormal, "CanaryWeight", fmt.Sprintf("release %s: %s", st.ID, msg), s.log)
	return Shifted{ReleaseID: st.ID, Weight: weight, EffectiveCanary: applied.EffectiveCanary,
		CanaryDeployment: b.CanaryDeployment, CanaryService: b.Canary, BaselineDeployment: b.BaselineDeployment}, nil
}

// backends names st's objects for the router: the stable ones, and this run's names for the release's.
func (s *shift) backends(st *State) traffic.Backends {
	n := s.names
	b := traffic.Backends{Namespace: s.ns, Stable: s.svc.Name, Canary: n.CanaryService, Baseline: n.BaselineService,
		StableDeployment: s.cfg.App, CanaryDeployment: n.CanaryDeployment, BaselineDeployment: n.BaselineDeployment}
	if st != nil {
		b.Annotations = routerAnnotations(s.cfg.App, st)
	}
	return b
}

// backendsOf names a recorded release's objects for the router.
func backendsOf(ns string, st *State) traffic.Backends {
	n := st.names()
	return traffic.Backends{Namespace: ns, Stable: st.StableService, Canary: n.CanaryService, Baseline: n.BaselineService,
		StableDeployment: st.App, CanaryDeployment: n.CanaryDeployment, BaselineDeployment: n.BaselineDeployment,
		Annotations: routerAnnotations(st.App, st)}
}

// newRouter is the router of kind for the router object name; an unknown kind is bad input (ROUTER).
func newRouter(kind, name string, o traffic.Options, c Clients) (traffic.Router, error) {
	r, err := traffic.New(kind, name, traffic.Clients{Kube: c.Kube, Route: c.Route, Dynamic: c.Dynamic}, o)
	var unknown *traffic.UnknownKindError
	if errors.As(err, &unknown) {
		return nil, step.Invalid("ROUTER", "use one of "+strings.Join(traffic.Kinds, ", "), "%v", err)
	}
	return r, err
}

func checkError(err error) error {
	var ce *traffic.CheckError
	if errors.As(err, &ce) {
		param := ce.Param
		if param == "" {
			param = "ROUTER_NAME"
		}
		return &step.InvalidError{Param: param, Msg: ce.Msg, Fix: ce.Fix}
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
