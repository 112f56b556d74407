package release

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/canaryline/canaryline/internal/runtime/naming"
)

// How a release is promoted (State.Promotion), chosen once when its promotion starts.
const (
	// promoteAdopt: the canary Deployment is scaled to the stable's replicas, then deleted leaving its
	// ReplicaSet, which the stable Deployment (paused meanwhile, with the canary's template) takes over. The
	// canary's pods become the stable's: none is created twice.
	promoteAdopt = "adopt"
	// promoteRollOut: the stable Deployment rolls the release's image out on new pods, and the canary is removed.
	promoteRollOut = "roll-out"
)

// PausedByAnnotation is put on the stable Deployment when promote-or-rollback pauses it for the hand-over, and
// removed when it resumes it: a Deployment paused by anyone else is never resumed.
const PausedByAnnotation = "canaryline.dev/paused-by"

// adoptWait bounds the wait for the stable Deployment to take over the canary's ReplicaSet. After it, the stable
// Deployment is resumed anyway: it then rolls the release's image out on new pods, the same end.
const adoptWait = 30 * time.Second

// choose decides how the release is promoted: by adoption when the stable Deployment, given the release's image,
// has exactly the canary's pod template and no ReplicaSet of that template already; else by a roll-out. It reads
// the stable Deployment, the canary Deployment and the stable's ReplicaSets, and writes nothing.
func (p *promotion) choose(ctx context.Context) (string, string, error) {
	st, ns, apps := p.st, p.ns, p.c.Kube.AppsV1()
	var err error
	if p.stable, err = apps.Deployments(ns).Get(ctx, st.App, metav1.GetOptions{}); err != nil {
		return "", "", fmt.Errorf("get Deployment %s/%s: %w", ns, st.App, err)
	}
	name := st.names().CanaryDeployment
	canary, err := apps.Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return promoteRollOut, "the canary Deployment " + name + " is gone", nil
	case err != nil:
		return "", "", fmt.Errorf("get Deployment %s/%s: %w", ns, name, err)
	case !marked(canary, naming.TrackCanary, st.ID):
		return promoteRollOut, notOurs("Deployment", canary, st.ID).Error(), nil
	}
	p.canary = canary
	if st.TrackPods {
		return promoteRollOut, "the canary's pods carry the track label (REUSE_CANARY=false): the stable Deployment rolls the image out on new pods", nil
	}
	want := p.stable.Spec.Template.DeepCopy()
	setImage(want, st.Container, st.Image)
	switch {
	case !apiequality.Semantic.DeepEqual(canary.Spec.Selector, p.stable.Spec.Selector):
		return promoteRollOut, "the canary does not have the stable Deployment's selector (it was brought up by an older canaryline): the stable rolls the image out on new pods", nil
	case !apiequality.Semantic.DeepEqual(*want, canary.Spec.Template):
		return promoteRollOut, "the stable Deployment's pod template changed during the release: its pods are rolled out anew", nil
	}
	return p.chooseAgainstHistory(ctx, want)
}

// chooseAgainstHistory refuses adoption when the stable Deployment owns a ReplicaSet of the template it is about to
// get (the release brings back an image it ran before): the Deployment controller would take that one.
func (p *promotion) chooseAgainstHistory(ctx context.Context, want *corev1.PodTemplateSpec) (string, string, error) {
	d := p.stable
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return "", "", err
	}
	rss, err := p.c.Kube.AppsV1().ReplicaSets(p.ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return "", "", fmt.Errorf("list ReplicaSets of Deployment %s/%s: %w", p.ns, d.Name, err)
	}
	for _, rs := range rss.Items {
		if c := metav1.GetControllerOf(&rs); c != nil && c.UID == d.UID && equalIgnoringHash(&rs.Spec.Template, want) {
			return promoteRollOut, fmt.Sprintf("Deployment %s already has ReplicaSet %s of this template (revision %s): it takes that one",
				d.Name, rs.Name, rs.Annotations[naming.RevisionAnnotation]), nil
		}
	}
	return promoteAdopt, "the stable Deployment takes over the canary's ReplicaSet and pods", nil
}

// equalIgnoringHash says whether two pod templates are the same but for the pod-template-hash label.
func equalIgnoringHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, naming.PodTemplateHashLabel)
	delete(b.Labels, naming.PodTemplateHashLabel)
	return apiequality.Semantic.DeepEqual(a, b)
}

// scaleCanary gives the canary Deployment the stable's replicas and waits until they are all available, so that
// the stable Deployment takes it over whole.
func (p *promotion) scaleCanary(ctx context.Context) error {
	st, ns := p.st, p.ns
	apps := p.c.Kube.AppsV1().Deployments(ns)
	name := st.names().CanaryDeployment
	if err := p.readStable(ctx); err != nil {
		return err
	}
	n := ptrOr(p.stable.Spec.Replicas, 1)
	gone := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := p.canary
		p.canary = nil // read it again after a conflict
		if d == nil {
			var err error
			if d, err = apps.Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
				gone = true // handed over already (a rerun), or deleted: the hand-over goes on without it
				return nil
			} else if err != nil {
				return err
			}
		}
		if !marked(d, naming.TrackCanary, st.ID) {
			return notOurs("Deployment", d, st.ID)
		}
		if ptrOr(d.Spec.Replicas, 1) == n {
			return nil
		}
		d.Spec.Replicas = &n
		_, err := apps.Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("scale Deployment %s/%s to %d: %w", ns, name, n, err)
	}
	if gone {
		return nil
	}
	p.log.Info(fmt.Sprintf("scaling the canary %s to the stable's %d replicas, for the stable Deployment to take over", describe(ns, name), n))
	_, err = untilRolledOut(ctx, p.c.Kube, ns, name, p.timeout)
	return err
}

// readStable reads the stable Deployment unless this run has it already.
func (p *promotion) readStable(ctx context.Context) error {
	if p.stable != nil {
		return nil
	}
	var err error
	p.stable, err = p.c.Kube.AppsV1().Deployments(p.ns).Get(ctx, p.st.App, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get Deployment %s/%s: %w", p.ns, p.st.App, err)
	}
	return nil
}

// adopt hands the canary's ReplicaSet over to the stable Deployment: the stable is paused and given the canary's
// template, the canary Deployment is deleted leaving its ReplicaSet, the stable's controller takes that over (it
// matches the stable's selector and template) and scales the old ReplicaSet down, and the stable is resumed.
func (p *promotion) adopt(ctx context.Context) error {
	st, ns := p.st, p.ns
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error { return p.pauseWithTemplate(ctx) }); err != nil {
		return fmt.Errorf("update Deployment %s/%s to %s: %w", ns, st.App, st.Image, err)
	}
	if err := p.orphanCanary(ctx); err != nil {
		return err
	}
	last, err := p.untilAdopted(ctx)
	if err != nil {
		return err
	}
	p.stable = last
	if err := p.resume(ctx); err != nil {
		return err
	}
	if last != nil && rolledOut(last) {
		return nil // resuming it changes no pod
	}
	p.stable, err = untilRolledOut(ctx, p.c.Kube, ns, st.App, p.timeout)
	return err
}

// pauseWithTemplate is one attempt at giving the stable Deployment the release's image and the promoted release's
// annotation, paused (unless it was paused already) so that its controller creates no ReplicaSet of its own.
func (p *promotion) pauseWithTemplate(ctx context.Context) error {
	st, apps := p.st, p.c.Kube.AppsV1().Deployments(p.ns)
	d := p.stable
	p.stable = nil // read it again after a conflict
	if d == nil {
		var err error
		if d, err = apps.Get(ctx, st.App, metav1.GetOptions{}); err != nil {
			return err
		}
	}
	if containerImage(d, st.Container) == "" {
		return fmt.Errorf("Deployment %s/%s has no container %q any more (renamed during the release?): the release changes that container only; "+
			"roll it back (DECISION=rollback), or put the container back and promote again", p.ns, st.App, st.Container)
	}
	changed := setImage(&d.Spec.Template, st.Container, st.Image)
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	if changed && !d.Spec.Paused {
		d.Spec.Paused, d.Annotations[PausedByAnnotation] = true, st.ID
	}
	if !changed && d.Annotations[PromotedAnnotation] == st.ID {
		p.stable = d
		return nil
	}
	d.Annotations[PromotedAnnotation] = st.ID
	return p.update(ctx, d)
}

// orphanCanary deletes the release's canary Deployment (the very one it created), leaving its ReplicaSet and
// pods. Gone already is fine.
func (p *promotion) orphanCanary(ctx context.Context) error {
	st, ns := p.st, p.ns
	name := st.names().CanaryDeployment
	orphan := metav1.DeletePropagationOrphan
	opts := metav1.DeleteOptions{PropagationPolicy: &orphan}
	if uid := types.UID(st.UIDs["Deployment/"+name]); uid != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	err := p.c.Kube.AppsV1().Deployments(ns).Delete(ctx, name, opts)
	switch {
	case apierrors.IsConflict(err):
		p.log.Warn(fmt.Sprintf("Deployment %s/%s is not the one release %s created (it was replaced): it is left as it is", ns, name, st.ID))
	case err != nil && !apierrors.IsNotFound(err):
		return fmt.Errorf("delete Deployment %s/%s leaving its ReplicaSet: %w", ns, name, err)
	}
	return nil
}

// untilAdopted waits until the stable Deployment's controller has taken the canary's ReplicaSet over: the stable
// runs its new template on some pods. When those are all its replicas (the canary was scaled to them), it waits
// on until the old pods are gone too, so that resuming the stable changes no pod. After adoptWait it goes on (the
// stable, resumed, then rolls out on new pods), with a warning.
func (p *promotion) untilAdopted(ctx context.Context) (*appsv1.Deployment, error) {
	st := p.st
	last, err := untilDeployment(ctx, p.c.Kube, p.ns, st.App, adoptWait, func(d *appsv1.Deployment) bool {
		adopted := d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas > 0
		return adopted && (rolledOut(d) || d.Status.UpdatedReplicas != ptrOr(d.Spec.Replicas, 1))
	})
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("wait for Deployment %s/%s to take over the canary's pods: %w", p.ns, st.App, ctx.Err())
	}
	if err != nil {
		p.log.Warn(fmt.Sprintf("Deployment %s did not take over the canary's ReplicaSet within %s: it rolls the release out on new pods instead", describe(p.ns, st.App), adoptWait))
		return nil, nil
	}
	return last, nil
}

// resume resumes the stable Deployment when this release paused it (its annotation says so), with one JSON patch
// that tests the annotation, removes it and unpauses: a Deployment paused by anyone else stays paused, and no
// write of another (its controller's status) makes it conflict.
func (p *promotion) resume(ctx context.Context) error {
	st, apps := p.st, p.c.Kube.AppsV1().Deployments(p.ns)
	if p.stable != nil && p.stable.Annotations[PausedByAnnotation] != st.ID {
		return nil // as last seen, not paused by this release (a rerun after it resumed it)
	}
	key := strings.ReplaceAll(strings.ReplaceAll(PausedByAnnotation, "~", "~0"), "/", "~1")
	patch, err := json.Marshal([]map[string]any{
		{"op": "test", "path": "/metadata/annotations/" + key, "value": st.ID},
		{"op": "remove", "path": "/metadata/annotations/" + key},
		{"op": "replace", "path": "/spec/paused", "value": false},
	})
	if err != nil {
		return err
	}
	d, err := apps.Patch(ctx, st.App, types.JSONPatchType, patch, metav1.PatchOptions{})
	if err == nil {
		p.stable = d
		return nil
	}
	// The test failed (the annotation is gone or another's), or the patch did: read what it is now.
	cur, gerr := apps.Get(ctx, st.App, metav1.GetOptions{})
	if gerr != nil {
		return fmt.Errorf("resume Deployment %s/%s: %w (and reading it: %v)", p.ns, st.App, err, gerr)
	}
	if cur.Annotations[PausedByAnnotation] == st.ID {
		return fmt.Errorf("resume Deployment %s/%s: %w", p.ns, st.App, err)
	}
	p.stable = cur
	return nil
}

// update writes the stable Deployment, and keeps it as written (after a failure, the next attempt reads it again).
func (p *promotion) update(ctx context.Context, d *appsv1.Deployment) error {
	updated, err := p.c.Kube.AppsV1().Deployments(p.ns).Update(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	p.stable = updated
	return nil
}
