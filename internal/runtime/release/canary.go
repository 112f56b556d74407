package release

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/client-go/util/retry"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/traffic"
)

// Labels and annotations on what a release creates or changes.
const (
	ReleaseLabel       = "canaryline.dev/release"
	ReleaseAnnotation  = traffic.ReleaseAnnotation
	ImageAnnotation    = traffic.ImageAnnotation
	WeightAnnotation   = traffic.WeightAnnotation
	PromotedAnnotation = "canaryline.dev/promoted-release"
)

// releaseAnnotations are put on every object a release creates or changes: which release, which image.
func releaseAnnotations(st *State) map[string]string {
	return map[string]string{ReleaseAnnotation: st.ID, ImageAnnotation: st.Image}
}

// routerAnnotations are put on the router object: the release's annotations and the canary weight it carries,
// under the keys of app, the application (a router object may serve several).
func routerAnnotations(app string, st *State) map[string]string {
	a := map[string]string{}
	for k, v := range releaseAnnotations(st) {
		a[traffic.AppAnnotation(app, k)] = v
	}
	a[traffic.AppAnnotation(app, WeightAnnotation)] = fmt.Sprint(st.Weight)
	return a
}

// labelValue makes a release id usable as a label value.
func labelValue(s string) string {
	if len(s) > 63 {
		s = s[:63]
	}
	return strings.Trim(s, "-.")
}

// trackDeployment is a copy of the stable Deployment for track, named name, with the release's mark (track and
// release labels, release annotations on the Deployment itself) and replicas.
//
// The canary (image not empty) has the stable's selector and its pod template with the release's image in the
// release's container, and nothing else changed: its ReplicaSet is then the one the stable Deployment takes over on
// promotion (its template is the one the stable gets), and its pods are told from the stable's by their
// pod-template-hash. The baseline (image empty), and the canary of a release whose pods carry the track label
// (REUSE_CANARY=false), have the track and release labels on their selector and pods: they are never taken over.
func trackDeployment(stable *appsv1.Deployment, st *State, name, track, image string, replicas int32) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: stable.Namespace, Labels: maps.Clone(stable.Labels), Annotations: releaseAnnotations(st)},
		Spec:       *stable.Spec.DeepCopy(),
	}
	if d.Labels == nil {
		d.Labels = map[string]string{}
	}
	d.Labels[naming.TrackLabel], d.Labels[ReleaseLabel] = track, labelValue(st.ID)
	d.Spec.Replicas = &replicas
	d.Spec.Paused = false
	if image != "" {
		setImage(&d.Spec.Template, st.Container, image)
		if !st.TrackPods {
			return d
		}
	}
	if d.Spec.Selector.MatchLabels == nil {
		d.Spec.Selector.MatchLabels = map[string]string{}
	}
	d.Spec.Selector.MatchLabels[naming.TrackLabel] = track
	if d.Spec.Template.Labels == nil {
		d.Spec.Template.Labels = map[string]string{}
	}
	d.Spec.Template.Labels[naming.TrackLabel] = track
	d.Spec.Template.Labels[ReleaseLabel] = labelValue(st.ID)
	return d
}

// setImage puts image in the template's container, and says whether that changed it.
func setImage(t *corev1.PodTemplateSpec, container, image string) bool {
	changed := false
	for i := range t.Spec.Containers {
		if c := &t.Spec.Containers[i]; c.Name == container && c.Image != image {
			c.Image, changed = image, true
		}
	}
	return changed
}

// specHashAnnotation is a hash of the spec canaryline asked for, to tell without an update whether an existing
// canary or baseline object is already what a later shift wants.
const specHashAnnotation = "canaryline.dev/spec-hash"

func specHash(spec any) string {
	data, _ := json.Marshal(spec)
	h := fnv.New64a()
	h.Write(data)
	return strconv.FormatUint(h.Sum64(), 36)
}

// notOurs is an object, found where the release creates one of its own, that does not carry the release's mark:
// it is never changed.
func notOurs(kind string, obj metav1.Object, release string) error {
	return fmt.Errorf("%s %s/%s exists and was not made by release %s (its %s label is %q, its release %q): it is left as it is",
		kind, obj.GetNamespace(), obj.GetName(), release, naming.TrackLabel, obj.GetLabels()[naming.TrackLabel], obj.GetAnnotations()[ReleaseAnnotation])
}

// ensureDeployment creates d, or brings an existing one of the release to d's template, replicas and annotations,
// and returns it as stored. An existing Deployment without the release's mark is never changed. When known is set
// (a later shift of the release: it most likely exists), it reads first, and an object that is already as asked
// costs that one read. keepReplicas leaves an existing one's replicas as they are (the router sizes it): they are
// then no part of what is asked.
func ensureDeployment(ctx context.Context, kube kubeclient.Interface, d *appsv1.Deployment, release string, known, keepReplicas bool) (*appsv1.Deployment, error) {
	api := kube.AppsV1().Deployments(d.Namespace)
	track := d.Labels[naming.TrackLabel]
	asked := []any{d.Spec.Template, d.Spec.Replicas, d.Annotations}
	if keepReplicas {
		asked = []any{d.Spec.Template, d.Annotations}
	}
	d.Annotations[specHashAnnotation] = specHash(asked)
	if known {
		cur, err := api.Get(ctx, d.Name, metav1.GetOptions{})
		if err == nil && !marked(cur, track, release) {
			return nil, notOurs("Deployment", cur, release)
		}
		if err == nil && cur.Annotations[specHashAnnotation] == d.Annotations[specHashAnnotation] {
			return cur, nil
		}
	}
	created, err := api.Create(ctx, d, metav1.CreateOptions{})
	if err == nil {
		return created, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	var updated *appsv1.Deployment
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := api.Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !marked(cur, track, release) {
			return notOurs("Deployment", cur, release)
		}
		if cur.Annotations[specHashAnnotation] == d.Annotations[specHashAnnotation] {
			updated = cur
			return nil
		}
		cur.Spec.Template = d.Spec.Template
		if !keepReplicas {
			cur.Spec.Replicas = d.Spec.Replicas
		}
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		maps.Copy(cur.Annotations, d.Annotations)
		updated, err = api.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("update Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	return updated, nil
}

// trackService is a copy of the stable Service for track, selecting what the stable Service selected and, of those,
// the track's pods alone: sel adds the canary's pod-template-hash, or the track label where the pods carry it.
func trackService(stable *corev1.Service, st *State, name, track string, sel map[string]string) *corev1.Service {
	selector := maps.Clone(st.StableSelector)
	maps.Copy(selector, sel)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: stable.Namespace, Labels: maps.Clone(stable.Labels), Annotations: releaseAnnotations(st)},
		Spec:       corev1.ServiceSpec{Selector: selector, Type: corev1.ServiceTypeClusterIP},
	}
	if svc.Labels == nil {
		svc.Labels = map[string]string{}
	}
	svc.Labels[naming.TrackLabel], svc.Labels[ReleaseLabel] = track, labelValue(st.ID)
	for _, p := range stable.Spec.Ports {
		p.NodePort = 0
		svc.Spec.Ports = append(svc.Spec.Ports, p)
	}
	return svc
}

// ensureService is ensureDeployment for the track's Service.
func ensureService(ctx context.Context, kube kubeclient.Interface, svc *corev1.Service, release string, known bool) (*corev1.Service, error) {
	api := kube.CoreV1().Services(svc.Namespace)
	track := svc.Labels[naming.TrackLabel]
	svc.Annotations[specHashAnnotation] = specHash([]any{svc.Spec.Selector, svc.Spec.Ports, svc.Annotations})
	if known {
		cur, err := api.Get(ctx, svc.Name, metav1.GetOptions{})
		if err == nil && !marked(cur, track, release) {
			return nil, notOurs("Service", cur, release)
		}
		if err == nil && cur.Annotations[specHashAnnotation] == svc.Annotations[specHashAnnotation] {
			return cur, nil
		}
	}
	created, err := api.Create(ctx, svc, metav1.CreateOptions{})
	if err == nil {
		return created, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create Service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	var updated *corev1.Service
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := api.Get(ctx, svc.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !marked(cur, track, release) {
			return notOurs("Service", cur, release)
		}
		if cur.Annotations[specHashAnnotation] == svc.Annotations[specHashAnnotation] {
			updated = cur
			return nil
		}
		cur.Spec.Selector, cur.Spec.Ports = svc.Spec.Selector, svc.Spec.Ports
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		maps.Copy(cur.Annotations, svc.Annotations)
		updated, err = api.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("update Service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return updated, nil
}

// currentHash is the pod-template-hash of the Deployment's current ReplicaSet.
func currentHash(ctx context.Context, kube kubeclient.Interface, d *appsv1.Deployment) (string, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return "", err
	}
	rss, err := kube.AppsV1().ReplicaSets(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return "", fmt.Errorf("list ReplicaSets of Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	if hash := naming.CurrentHash(d, rss.Items); hash != "" {
		return hash, nil
	}
	return "", fmt.Errorf("Deployment %s/%s: no ReplicaSet of its revision %s", d.Namespace, d.Name, d.Annotations[naming.RevisionAnnotation])
}

// setServiceSelector makes the Service select sel, with annotations ann added. cur is the Service as just read
// (when it is already so, nothing is sent); after a conflict it is read again.
func setServiceSelector(ctx context.Context, kube kubeclient.Interface, cur *corev1.Service, sel, ann map[string]string) error {
	api := kube.CoreV1().Services(cur.Namespace)
	svc := cur.DeepCopy()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if svc == nil {
			var err error
			if svc, err = api.Get(ctx, cur.Name, metav1.GetOptions{}); err != nil {
				return err
			}
		}
		if svc.Annotations == nil {
			svc.Annotations = map[string]string{}
		}
		changed := !maps.Equal(svc.Spec.Selector, sel)
		for k, v := range ann {
			if svc.Annotations[k] != v {
				svc.Annotations[k] = v
				changed = true
			}
		}
		if !changed {
			return nil
		}
		svc.Spec.Selector = sel
		_, err := api.Update(ctx, svc, metav1.UpdateOptions{})
		svc = nil // read it again after a conflict
		return err
	})
	if err != nil {
		return fmt.Errorf("update Service %s/%s: %w", cur.Namespace, cur.Name, err)
	}
	return nil
}

// rolledOut reports whether a Deployment runs its current template on all replicas, all available.
func rolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == want &&
		d.Status.AvailableReplicas == want && d.Status.Replicas == want
}

// untilRolledOut waits with list+watch until the Deployment is rolled out, or timeout; the error then says why.
func untilRolledOut(ctx context.Context, kube kubeclient.Interface, ns, name string, timeout time.Duration) (*appsv1.Deployment, error) {
	parent, start := ctx, time.Now()
	last, err := untilDeployment(ctx, kube, ns, name, timeout, rolledOut)
	if err == nil {
		return last, nil
	}
	if last == nil {
		return nil, fmt.Errorf("wait for Deployment %s/%s: %w", ns, name, waited(parent, start, err))
	}
	what := fmt.Sprintf("is not ready after %s", timeout)
	if parent.Err() != nil {
		what = fmt.Sprintf("was not ready yet when the step was interrupted after %s", time.Since(start).Round(100*time.Millisecond))
	}
	return last, fmt.Errorf("Deployment %s/%s %s: %d of %d replicas available, %d updated%s",
		ns, name, what, last.Status.AvailableReplicas, ptrOr(last.Spec.Replicas, 1), last.Status.UpdatedReplicas, whyNotReady(ctx, kube, last))
}

// untilDeployment waits with list+watch until the Deployment satisfies ok, or timeout. It returns the Deployment
// as last seen (nil when never), and the wait's error.
func untilDeployment(ctx context.Context, kube kubeclient.Interface, ns, name string, timeout time.Duration, ok func(*appsv1.Deployment) bool) (*appsv1.Deployment, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	api := kube.AppsV1().Deployments(ns)
	// A consistent read: a list from the API server's cache may not have the step's own last write yet, and show
	// the Deployment as it was before it (rolled out, at its old generation).
	lw := kubeclient.ListWatchByName(name, true, api.List, api.Watch)
	var last *appsv1.Deployment
	_, err := watchtools.UntilWithSync(ctx, lw, &appsv1.Deployment{}, nil, func(e watch.Event) (bool, error) {
		d, isD := e.Object.(*appsv1.Deployment)
		if !isD {
			return false, nil
		}
		last = d
		return ok(d), nil
	})
	return last, err
}

// waited says why a wait that began at start ended with err: the step was interrupted (parent ended), or err.
func waited(parent context.Context, start time.Time, err error) error {
	if parent.Err() != nil {
		return fmt.Errorf("interrupted after %s: %w", time.Since(start).Round(100*time.Millisecond), parent.Err())
	}
	return err
}

func ptrOr(p *int32, d int32) int32 {
	if p == nil {
		return d
	}
	return *p
}

// whyNotReady collects what the Deployment and its pods say about it: failed conditions, waiting reasons.
func whyNotReady(ctx context.Context, kube kubeclient.Interface, d *appsv1.Deployment) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var reasons []string
	for _, c := range d.Status.Conditions {
		if c.Status != corev1.ConditionTrue || c.Type == appsv1.DeploymentReplicaFailure {
			reasons = append(reasons, fmt.Sprintf("%s: %s", c.Reason, c.Message))
		}
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err == nil {
		if rss, err := kube.AppsV1().ReplicaSets(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()}); err == nil {
			for _, rs := range rss.Items {
				for _, c := range rs.Status.Conditions {
					if c.Type == appsv1.ReplicaSetReplicaFailure && c.Status == corev1.ConditionTrue {
						reasons = append(reasons, fmt.Sprintf("ReplicaSet %s: %s: %s", rs.Name, c.Reason, c.Message))
					}
				}
			}
		}
		if pods, err := kube.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()}); err == nil {
			for _, p := range pods.Items {
				for _, cs := range p.Status.ContainerStatuses {
					if w := cs.State.Waiting; w != nil && w.Reason != "" {
						reasons = append(reasons, fmt.Sprintf("pod %s container %s: %s %s", p.Name, cs.Name, w.Reason, w.Message))
					}
				}
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
						reasons = append(reasons, fmt.Sprintf("pod %s: %s: %s", p.Name, c.Reason, c.Message))
					}
				}
			}
		}
	}
	if len(reasons) == 0 {
		return ""
	}
	if len(reasons) > 5 {
		reasons = append(reasons[:5], fmt.Sprintf("and %d more", len(reasons)-5))
	}
	return " (" + strings.Join(reasons, "; ") + ")"
}

// untilEndpoints waits with list+watch until the number of the Service's ready endpoints satisfies ok (want says
// how many, for the error): then the router can send it traffic without a 503, or without reaching other pods.
func untilEndpoints(ctx context.Context, kube kubeclient.Interface, ns, svc string, ok func(int32) bool, want string, timeout time.Duration) (int32, error) {
	parent, start := ctx, time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	api := kube.DiscoveryV1().EndpointSlices(ns)
	sel := labels.Set{discoveryv1.LabelServiceName: svc}.String()
	// One list first: when the endpoints are there already (a later shift), that is the only request. Otherwise
	// the informer starts from that list and watches.
	first, err := api.List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return 0, fmt.Errorf("list EndpointSlices of Service %s/%s: %w", ns, svc, err)
	}
	if n := traffic.CountReady(first.Items); ok(n) {
		return n, nil
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			if first != nil && o.ResourceVersion == "" || first != nil && o.ResourceVersion == "0" {
				l := first
				first = nil
				return l, nil
			}
			o.LabelSelector = sel
			return api.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = sel
			return api.Watch(ctx, o)
		},
	}
	ready := func(store cache.Store) int32 {
		var slices []discoveryv1.EndpointSlice
		for _, obj := range store.List() {
			slices = append(slices, *obj.(*discoveryv1.EndpointSlice))
		}
		return traffic.CountReady(slices)
	}
	var store cache.Store
	_, err = watchtools.UntilWithSync(ctx, lw, &discoveryv1.EndpointSlice{}, func(s cache.Store) (bool, error) {
		store = s
		return ok(ready(s)), nil
	}, func(watch.Event) (bool, error) { return ok(ready(store)), nil })
	if err != nil {
		got := int32(0)
		if store != nil {
			got = ready(store)
		}
		if parent.Err() != nil {
			return got, fmt.Errorf("Service %s/%s had %d ready endpoints, not %s, when the step was interrupted after %s", ns, svc, got, want,
				time.Since(start).Round(100*time.Millisecond))
		}
		return got, fmt.Errorf("Service %s/%s has %d ready endpoints after %s, not %s: %w", ns, svc, got, timeout, want, err)
	}
	return ready(store), nil
}

// replicasFor is the canary size: a count, or a share of the stable replicas (at least 1).
func replicasFor(spec string, stable int32) int32 {
	count, percent, _ := parseReplicas(spec)
	if percent == 0 {
		return count
	}
	n := int32(math.Ceil(float64(stable) * float64(percent) / 100))
	if n < 1 {
		n = 1
	}
	return n
}

func deleteIgnoringNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
