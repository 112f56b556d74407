package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/canaryline/canaryline/internal/dev/argorollouts"
	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/faultproxy"
	"github.com/canaryline/canaryline/internal/runtime/steps"
)

// The release both ways: a replica-based canary of an application of argoReplicas pods through argoWeights,
// then promote, no analysis; and the large case, argoLargeReplicas pods each Ready argoReadyDelay after start.
const (
	argoReplicas      = 4
	argoLargeReplicas = 40
	argoReadyDelay    = 2 * time.Second
	// argoSettle is waited before and after each measured release: the previous one's last pod events and
	// requests are not counted, this one's are.
	argoSettle = time.Second
)

var argoWeights = []int{10, 30, 60}

// sideCost is what one release cost one side.
type sideCost struct {
	wall     time.Duration  // the release
	requests int            // API requests of Argo's controller, or of canaryline's steps
	cpu      cpuUse         // CPU of everything on the machine taking part (the other side's controller excluded)
	pods     int            // pods created
	verbs    map[string]int // requests by verb
	promote  time.Duration  // Argo: from the last setWeight step completing to Healthy; canaryline: promote-or-rollback
}

// argoResult is what the argo part measured.
type argoResult struct {
	argo, canaryline           []sideCost      // the 4-replica releases, interleaved
	argoRollback, clRollback   []time.Duration // rollbacks after weight 30
	rss                        []int64         // Argo's controller between releases
	argoLarge, canarylineLarge sideCost        // 40 replicas with a readiness delay
	// routed is one canaryline release of the 4-replica application through the route router with one canary
	// replica (the router gives it its share), beside the replica-ratio releases Argo's are compared with.
	routed sideCost
}

// argoBench is what the argo part's releases share.
type argoBench struct {
	c                  *cluster
	dyn                dynamic.Interface
	ctrl               *argorollouts.Controller
	argoProxy, clProxy *faultproxy.Proxy
	pods               *podWatch
	seq                int
	// routed has canaryline's shifts use the route router with one canary replica, not the replicas router.
	routed bool
}

// argoFigures builds (or finds cached) Argo Rollouts' controller, runs it beside canaryline on this control plane
// and releases the same application both ways, interleaved, runs times each; then the large case once each way.
func (c *cluster) argoFigures(ctx context.Context, runs int, cacheDir string) ([]Measurement, error) {
	t0 := time.Now()
	build, err := argorollouts.Ensure(ctx, cacheDir, c.log)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c.log, "bench: Argo Rollouts %s ready in %s\n", argorollouts.Version, time.Since(t0).Round(time.Second))
	if err := argorollouts.InstallCRDs(ctx, c.cfg, build); err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(c.cfg)
	if err != nil {
		return nil, err
	}
	quiet := *c
	quiet.noRSS = true // the CPU figures count this process's
	b := &argoBench{c: &quiet, dyn: dyn}
	defer b.close()
	if b.pods, err = watchPods(ctx, c.kube); err != nil {
		return nil, err
	}
	if err := b.start(ctx, build); err != nil {
		return nil, err
	}
	res, err := b.run(ctx, runs)
	if err != nil {
		return nil, err
	}
	return argoRows(res), nil
}

// start starts the two counting proxies and Argo's controller behind one of them.
func (b *argoBench) start(ctx context.Context, build argorollouts.Build) error {
	var err error
	if b.argoProxy, err = faultproxy.Start(faultproxy.Options{Upstream: b.c.upstream, UpstreamCA: b.c.caData}); err != nil {
		return err
	}
	if b.clProxy, err = faultproxy.Start(faultproxy.Options{Upstream: b.c.upstream, UpstreamCA: b.c.caData}); err != nil {
		return err
	}
	kc := filepath.Join(b.c.work, "argo-rollouts.kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: b.argoProxy.URL, CertificateAuthorityData: b.argoProxy.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: b.c.cfg.BearerToken}
	cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "admin"}
	cfg.CurrentContext = "c"
	if err := clientcmd.WriteToFile(*cfg, kc); err != nil {
		return err
	}
	b.ctrl, err = argorollouts.Start(ctx, build, kc, filepath.Join(b.c.work, "argo-rollouts.log"))
	return err
}

func (b *argoBench) close() {
	if b.ctrl != nil {
		b.ctrl.Stop()
	}
	for _, p := range []*faultproxy.Proxy{b.argoProxy, b.clProxy} {
		if p != nil {
			p.Close()
		}
	}
	if b.pods != nil {
		b.pods.stop()
	}
}

// run sets up both applications and measures: the interleaved releases and rollbacks, then the large case.
func (b *argoBench) run(ctx context.Context, runs int) (argoResult, error) {
	const argoNS, rbNS, clApp = "bench-argo", "bench-argo-rollback", "bench-argo-cl"
	var r argoResult
	if err := b.setupRollout(ctx, argoNS, argoReplicas, false, 0); err != nil {
		return r, err
	}
	if err := b.setupRollout(ctx, rbNS, argoReplicas, true, 0); err != nil {
		return r, err
	}
	kc, err := b.setupApp(ctx, clApp, argoReplicas, 0)
	if err != nil {
		return r, err
	}
	for i := range runs {
		if err := b.interleaved(ctx, &r, i, argoNS, rbNS, clApp, kc); err != nil {
			return r, err
		}
		fmt.Fprintf(b.c.log, "bench: argo: run %d/%d: Argo %s, canaryline %s\n", i+1, runs,
			r.argo[i].wall.Round(time.Millisecond), r.canaryline[i].wall.Round(time.Millisecond))
	}
	if err := b.routedRelease(ctx, &r); err != nil {
		return r, err
	}
	return r, b.large(ctx, &r)
}

// routedRelease releases a 4-replica application once through the route router with one canary replica.
func (b *argoBench) routedRelease(ctx context.Context, r *argoResult) error {
	const app = "bench-argo-cl-route"
	kc, err := b.setupApp(ctx, app, argoReplicas, 0)
	if err != nil {
		return err
	}
	b.routed = true
	defer func() { b.routed = false }()
	r.routed, err = b.cost(app, b.clProxy, b.ctrl.PID, func() (time.Duration, error) { return b.canarylineRelease(ctx, app, kc, app+"-1") })
	return err
}

// interleaved runs one release and one rollback each way, Argo first on even runs and canaryline first on odd ones.
func (b *argoBench) interleaved(ctx context.Context, r *argoResult, i int, argoNS, rbNS, clApp, kc string) error {
	argo := func() error {
		rss, err := b.ctrl.RSS()
		if err != nil {
			return err
		}
		r.rss = append(r.rss, rss)
		c, err := b.cost(argoNS, b.argoProxy, 0, func() (time.Duration, error) { return b.argoRelease(ctx, argoNS) })
		if err != nil {
			return err
		}
		r.argo = append(r.argo, c)
		d, err := b.argoRollback(ctx, rbNS)
		r.argoRollback = append(r.argoRollback, d)
		return err
	}
	cl := func() error {
		c, err := b.cost(clApp, b.clProxy, b.ctrl.PID, func() (time.Duration, error) {
			return b.canarylineRelease(ctx, clApp, kc, fmt.Sprintf("%s-%d", clApp, i))
		})
		if err != nil {
			return err
		}
		r.canaryline = append(r.canaryline, c)
		d, err := b.canarylineRollback(ctx, clApp, kc, fmt.Sprintf("%s-rb-%d", clApp, i))
		r.clRollback = append(r.clRollback, d)
		return err
	}
	first, second := argo, cl
	if i%2 == 1 {
		first, second = cl, argo
	}
	if err := first(); err != nil {
		return err
	}
	return second()
}

// large releases argoLargeReplicas pods, each Ready argoReadyDelay after it starts, once each way.
func (b *argoBench) large(ctx context.Context, r *argoResult) error {
	const argoNS, clApp = "bench-argo-large", "bench-argo-cl-large"
	if err := b.setupRollout(ctx, argoNS, argoLargeReplicas, false, argoReadyDelay); err != nil {
		return err
	}
	kc, err := b.setupApp(ctx, clApp, argoLargeReplicas, argoReadyDelay)
	if err != nil {
		return err
	}
	if r.argoLarge, err = b.cost(argoNS, b.argoProxy, 0, func() (time.Duration, error) { return b.argoRelease(ctx, argoNS) }); err != nil {
		return err
	}
	r.canarylineLarge, err = b.cost(clApp, b.clProxy, b.ctrl.PID, func() (time.Duration, error) {
		return b.canarylineRelease(ctx, clApp, kc, clApp+"-1")
	})
	return err
}

// cost measures one release: its wall time, and over it and argoSettle after it the API requests through proxy,
// the CPU used (less that of the process exclude, the other side's controller) and the pods created in ns.
func (b *argoBench) cost(ns string, proxy *faultproxy.Proxy, exclude int, release func() (time.Duration, error)) (sideCost, error) {
	time.Sleep(argoSettle)
	pods, reqs := b.pods.created(ns), proxy.Stats()
	cpu0, ex0 := cpuNow(), pidCPU(exclude)
	t0 := time.Now()
	promote, err := release()
	wall := time.Since(t0)
	if err != nil {
		return sideCost{}, err
	}
	time.Sleep(argoSettle)
	cpu := cpuNow().sub(cpu0)
	cpu.ControlPlane -= pidCPU(exclude) - ex0
	after := proxy.Stats()
	verbs := map[string]int{}
	for v, n := range after.ByVerb {
		if d := n - reqs.ByVerb[v]; d > 0 {
			verbs[v] = d
		}
	}
	return sideCost{wall: wall, requests: after.Requests - reqs.Requests, cpu: cpu, pods: b.pods.created(ns) - pods,
		promote: promote, verbs: verbs}, nil
}

// image is a new image for the application of ns: any digest will do, KWOK pulls nothing.
func (b *argoBench) image(ns string) string {
	b.seq++
	sum := sha256.Sum256([]byte(ns + "-" + strconv.Itoa(b.seq)))
	return "image-registry.openshift-image-registry.svc:5000/" + ns + "/app@sha256:" + hex.EncodeToString(sum[:])
}

// setupApp sets canaryline's application up as c.app does, with replicas pods (each Ready delay after it starts
// when delay is not 0), and returns the steps' kubeconfig through the counting proxy.
func (b *argoBench) setupApp(ctx context.Context, app string, replicas int32, delay time.Duration) (string, error) {
	kc, err := b.c.app(ctx, app)
	if err != nil {
		return "", err
	}
	deps := b.c.kube.AppsV1().Deployments(app)
	d, err := deps.Get(ctx, app, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	d.Spec.Replicas = &replicas
	if delay > 0 {
		d.Spec.Template.Annotations = map[string]string{devcluster.PodReadyDelayAnnotation: delay.String()}
	}
	if _, err := deps.Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		return "", err
	}
	if err := waitDeployment(ctx, b.c.kube.AppsV1().Deployments(app), app, replicas); err != nil {
		return "", err
	}
	return b.clProxy.Kubeconfig(kc, filepath.Join(b.c.work, app))
}

// waitDeployment waits (up to 2 minutes) for Deployment name to have rolled out replicas available pods.
func waitDeployment(ctx context.Context, deps interface {
	Get(context.Context, string, metav1.GetOptions) (*appsv1.Deployment, error)
}, name string, replicas int32) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		d, err := deps.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s := d.Status
		if s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == replicas && s.AvailableReplicas == replicas && s.Replicas == replicas {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Deployment %s: not rolled out after 2 minutes: %+v", name, s)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// shift runs shift-canary to each of weights for image (ROUTER=replicas, or route with one canary replica when
// b.routed), as processes.
func (b *argoBench) shift(ctx context.Context, app, kc, id, image string, weights []int) error {
	for _, w := range weights {
		env := map[string]string{"APP": app, "IMAGE": image, "WEIGHT": strconv.Itoa(w), "RELEASE_ID": id, "ROUTER": "replicas"}
		if b.routed {
			env["ROUTER"], env["CANARY_REPLICAS"] = "route", "1"
		}
		if _, _, err := b.c.runStep(ctx, steps.ShiftCanary, kc, env); err != nil {
			return err
		}
	}
	return nil
}

// canarylineRelease runs shift-canary through argoWeights and then promote-or-rollback DECISION=promote, as
// processes, and returns promote-or-rollback's duration.
func (b *argoBench) canarylineRelease(ctx context.Context, app, kc, id string) (time.Duration, error) {
	if err := b.shift(ctx, app, kc, id, b.image(app), argoWeights); err != nil {
		return 0, err
	}
	t0 := time.Now()
	_, _, err := b.c.runStep(ctx, steps.PromoteOrRollback, kc, map[string]string{"APP": app, "RELEASE_ID": id, "DECISION": "promote"})
	return time.Since(t0), err
}

// canarylineRollback shifts a new image to 10 and 30, then times promote-or-rollback DECISION=rollback until the
// canary's pods are gone.
func (b *argoBench) canarylineRollback(ctx context.Context, app, kc, id string) (time.Duration, error) {
	image := b.image(app)
	if err := b.shift(ctx, app, kc, id, image, argoWeights[:2]); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if _, _, err := b.c.runStep(ctx, steps.PromoteOrRollback, kc, map[string]string{"APP": app, "RELEASE_ID": id, "DECISION": "rollback"}); err != nil {
		return 0, err
	}
	if err := b.pods.waitGone(ctx, app, image); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// setupRollout creates namespace ns and in it Rollout "app" of replicas pods (a pause after weight 30 when pause),
// and waits for it to be Healthy.
func (b *argoBench) setupRollout(ctx context.Context, ns string, replicas int, pause bool, delay time.Duration) error {
	if _, err := b.c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	ro := rollout(ns, b.image(ns), replicas, pause, delay)
	u, err := b.dyn.Resource(argorollouts.RolloutsResource).Namespace(ns).Create(ctx, ro, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create Rollout %s/app: %w", ns, err)
	}
	return b.waitRollout(ctx, ns, 2*time.Minute, func(r *unstructured.Unstructured) bool { return rolloutHealthy(r, u.GetGeneration()) })
}

// rollout is the Rollout "app": replicas pods of image, a canary through argoWeights without traffic routing (an
// indefinite pause after weight 30 when pause), each pod Ready delay after it starts when delay is not 0.
func rollout(ns, image string, replicas int, pause bool, delay time.Duration) *unstructured.Unstructured {
	var stepsList []any
	for _, w := range argoWeights {
		stepsList = append(stepsList, map[string]any{"setWeight": int64(w)})
		if pause && w == 30 {
			stepsList = append(stepsList, map[string]any{"pause": map[string]any{}})
		}
	}
	meta := map[string]any{"labels": map[string]any{"app": "app"}}
	if delay > 0 {
		meta["annotations"] = map[string]any{devcluster.PodReadyDelayAnnotation: delay.String()}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": "app", "namespace": ns},
		"spec": map[string]any{
			"replicas": int64(replicas),
			"selector": map[string]any{"matchLabels": map[string]any{"app": "app"}},
			"template": map[string]any{"metadata": meta, "spec": map[string]any{"containers": []any{map[string]any{
				"name": "app", "image": image, "ports": []any{map[string]any{"containerPort": int64(8080)}}}}}},
			"strategy": map[string]any{"canary": map[string]any{"steps": stepsList}},
		},
	}}
}

// setImage changes the Rollout's image and returns its new generation.
func (b *argoBench) setImage(ctx context.Context, ns, image string) (int64, error) {
	patch := fmt.Sprintf(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":%q}]`, image)
	u, err := b.dyn.Resource(argorollouts.RolloutsResource).Namespace(ns).Patch(ctx, "app", types.JSONPatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return 0, fmt.Errorf("set the image of Rollout %s/app: %w", ns, err)
	}
	return u.GetGeneration(), nil
}

// argoRelease changes the Rollout's image and waits for it to be Healthy on it; it returns the time from its last
// setWeight step completing to Healthy.
func (b *argoBench) argoRelease(ctx context.Context, ns string) (time.Duration, error) {
	gen, err := b.setImage(ctx, ns, b.image(ns))
	if err != nil {
		return 0, err
	}
	var lastStep time.Time
	err = b.waitRollout(ctx, ns, 5*time.Minute, func(r *unstructured.Unstructured) bool {
		idx, _, _ := unstructured.NestedInt64(r.Object, "status", "currentStepIndex")
		if lastStep.IsZero() && observed(r, gen) && idx == int64(len(argoWeights)) {
			lastStep = time.Now()
		}
		return rolloutHealthy(r, gen)
	})
	if err != nil || lastStep.IsZero() {
		return 0, err
	}
	return time.Since(lastStep), nil
}

// argoRollback changes the Rollout's image, waits for its pause after weight 30, aborts it and times the abort
// until the Rollout is Degraded (aborted) and the canary's pods are gone.
func (b *argoBench) argoRollback(ctx context.Context, ns string) (time.Duration, error) {
	image := b.image(ns)
	gen, err := b.setImage(ctx, ns, image)
	if err != nil {
		return 0, err
	}
	rs := b.dyn.Resource(argorollouts.RolloutsResource).Namespace(ns)
	err = b.waitRollout(ctx, ns, 2*time.Minute, func(r *unstructured.Unstructured) bool {
		idx, _, _ := unstructured.NestedInt64(r.Object, "status", "currentStepIndex")
		paused, _, _ := unstructured.NestedSlice(r.Object, "status", "pauseConditions")
		return observed(r, gen) && idx == 2 && len(paused) > 0
	})
	if err != nil {
		return 0, fmt.Errorf("Rollout %s/app: no pause at weight 30: %w", ns, err)
	}
	t0 := time.Now()
	// As `kubectl argo rollouts abort` does.
	if _, err := rs.Patch(ctx, "app", types.MergePatchType, []byte(`{"status":{"abort":true}}`), metav1.PatchOptions{}, "status"); err != nil {
		return 0, fmt.Errorf("abort Rollout %s/app: %w", ns, err)
	}
	err = b.waitRollout(ctx, ns, 2*time.Minute, func(r *unstructured.Unstructured) bool {
		phase, _, _ := unstructured.NestedString(r.Object, "status", "phase")
		abort, _, _ := unstructured.NestedBool(r.Object, "status", "abort")
		return phase == "Degraded" && abort
	})
	if err == nil {
		err = b.pods.waitGone(ctx, ns, image)
	}
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	// Untimed: the stable pods are back before the next run.
	return d, b.waitRollout(ctx, ns, 2*time.Minute, func(r *unstructured.Unstructured) bool {
		n, _, _ := unstructured.NestedInt64(r.Object, "status", "availableReplicas")
		return n == argoReplicas
	})
}

// observed reports whether the Rollout's status is of its spec, of generation gen or later (the controller
// itself updates the spec, filling in defaults). Argo writes observedGeneration as a string.
func observed(r *unstructured.Unstructured, gen int64) bool {
	v, ok, _ := unstructured.NestedFieldNoCopy(r.Object, "status", "observedGeneration")
	return ok && r.GetGeneration() >= gen && fmt.Sprint(v) == strconv.FormatInt(r.GetGeneration(), 10)
}

// rolloutHealthy reports whether the Rollout is Healthy on generation gen's template: its stable ReplicaSet is
// the current pod template's.
func rolloutHealthy(r *unstructured.Unstructured, gen int64) bool {
	phase, _, _ := unstructured.NestedString(r.Object, "status", "phase")
	stable, _, _ := unstructured.NestedString(r.Object, "status", "stableRS")
	current, _, _ := unstructured.NestedString(r.Object, "status", "currentPodHash")
	return observed(r, gen) && phase == "Healthy" && stable != "" && stable == current
}

// waitRollout watches Rollout ns/app until cond holds, for up to timeout.
func (b *argoBench) waitRollout(ctx context.Context, ns string, timeout time.Duration, cond func(*unstructured.Unstructured) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ri := b.dyn.Resource(argorollouts.RolloutsResource).Namespace(ns)
	sel := fields.OneTermEqualSelector("metadata.name", "app").String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return ri.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return ri.Watch(ctx, o)
		},
	}
	var last *unstructured.Unstructured
	_, err := watchtools.UntilWithSync(ctx, lw, &unstructured.Unstructured{}, nil, func(e watch.Event) (bool, error) {
		u, ok := e.Object.(*unstructured.Unstructured)
		if !ok {
			return false, nil
		}
		last = u
		return cond(u), nil
	})
	if err != nil && last != nil {
		st, _, _ := unstructured.NestedMap(last.Object, "status")
		return fmt.Errorf("Rollout %s/app: %w; its status: %v", ns, err, st)
	}
	return err
}
