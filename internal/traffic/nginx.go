package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/util/retry"

	"github.com/canaryline/canaryline/internal/kubeclient"
)

// NGINX Ingress controller canary annotations.
const (
	nginxCanaryAnnotation            = "nginx.ingress.kubernetes.io/canary"
	nginxCanaryWeightAnnotation      = "nginx.ingress.kubernetes.io/canary-weight"
	nginxCanaryWeightTotalAnnotation = "nginx.ingress.kubernetes.io/canary-weight-total"
	// nginxLegacyClassAnnotation selects the controller on Ingresses without spec.ingressClassName.
	nginxLegacyClassAnnotation = "kubernetes.io/ingress.class"
)

// nginx is the NGINX Ingress controller's canary: the primary Ingress (name) keeps routing to the stable Service
// and is never changed; a second Ingress, <name>-canary, with the same hosts and paths going to the canary
// Service, takes canary-weight percent of their requests. NGINX allows one canary Ingress per host and path, so
// there is no baseline.
type nginx struct {
	name string
	c    Clients
}

var _ Router = (*nginx)(nil)

func (r *nginx) Kind() string { return KindNginx }

func (r *nginx) ingresses(ns string) kubeclient.IngressInterface {
	return r.c.Kube.NetworkingV1().Ingresses(ns)
}

// canaryName is the name of the canary Ingress.
func (r *nginx) canaryName() string { return r.name + "-canary" }

func (r *nginx) getPrimary(ctx context.Context, ns string) (*networkingv1.Ingress, error) {
	ing, err := r.ingresses(ns).Get(ctx, r.name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get Ingress %s/%s: %w", ns, r.name, err)
	}
	return ing, nil
}

// getCanary returns the canary Ingress, or nil when there is none.
func (r *nginx) getCanary(ctx context.Context, ns string) (*networkingv1.Ingress, error) {
	ing, err := r.ingresses(ns).Get(ctx, r.canaryName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get Ingress %s/%s: %w", ns, r.canaryName(), err)
	}
	return ing, nil
}

// nginxOwned says whether the release (or the abandoned one it takes over) made ing: it carries its mark.
func nginxOwned(ing *networkingv1.Ingress, b Backends) bool {
	return b.Marked(ing.Annotations)
}

// notOwnedError is the CheckError for a canary Ingress that the release did not make.
func (r *nginx) notOwnedError(b Backends) error {
	return checkErrorf(fmt.Sprintf("delete it (kubectl delete ingress -n %s %s) if it is left over, or release through another router: "+
		"NGINX takes one canary Ingress per host", b.Namespace, r.canaryName()),
		"Ingress %s/%s exists and was not made by canaryline", b.Namespace, r.canaryName())
}

// errNginxUnmarked is a release without annotations: the canary Ingress could not be told from one made by
// someone else.
var errNginxUnmarked = errors.New("the nginx router needs release annotations (Backends.Annotations) to mark the canary Ingress as its own")

func (r *nginx) Check(ctx context.Context, b Backends) error {
	if len(b.Annotations) == 0 {
		return errNginxUnmarked
	}
	if b.Baseline != "" {
		return checkErrorf("use another router or BASELINE=false", "the nginx router cannot send traffic to a baseline")
	}
	if errs := validation.IsDNS1123Subdomain(r.canaryName()); len(errs) > 0 {
		return checkErrorf("use an Ingress with a shorter name", "the canary Ingress name %q is not valid: %v", r.canaryName(), errs)
	}
	primary, err := r.getPrimary(ctx, b.Namespace)
	if apierrors.IsNotFound(err) {
		return checkErrorf(fmt.Sprintf("create it with rules whose backends go to Service %s, or set ROUTER_NAME to the Ingress that serves the application", b.Stable),
			"Ingress %s/%s does not exist", b.Namespace, r.name)
	}
	if err != nil {
		return err
	}
	if primary.Annotations[nginxCanaryAnnotation] == "true" {
		return checkErrorf("set ROUTER_NAME to the primary Ingress", "Ingress %s/%s is itself a canary Ingress (%s: \"true\")", b.Namespace, r.name, nginxCanaryAnnotation)
	}
	if len(nginxCanaryRules(primary, b)) == 0 {
		return checkErrorf(fmt.Sprintf("add a path whose backend is Service %s to its rules, or set ROUTER_NAME to the Ingress that has one", b.Stable),
			"Ingress %s/%s has no rule with a backend on the stable Service %s", b.Namespace, r.name, b.Stable)
	}
	canary, err := r.getCanary(ctx, b.Namespace)
	if err != nil {
		return err
	}
	if canary != nil && !nginxOwned(canary, b) {
		return r.notOwnedError(b)
	}
	return nil
}

// nginxSnapshot records whether a canary Ingress existed before the release (one made by an earlier release).
type nginxSnapshot struct {
	Kind          string `json:"kind"`
	Name          string `json:"name"`
	CanaryIngress string `json:"canaryIngress"`
	CanaryExisted bool   `json:"canaryExisted"`
}

func (r *nginx) Snapshot(ctx context.Context, b Backends) (string, error) {
	if _, err := r.getPrimary(ctx, b.Namespace); err != nil {
		return "", err
	}
	canary, err := r.getCanary(ctx, b.Namespace)
	if err != nil {
		return "", err
	}
	data, err := json.Marshal(nginxSnapshot{Kind: KindNginx, Name: r.name, CanaryIngress: r.canaryName(), CanaryExisted: canary != nil})
	if err != nil {
		return "", fmt.Errorf("encode the Ingress snapshot: %w", err)
	}
	return string(data), nil
}

// nginxCanaryRules copies the rules of primary that go to the stable Service, keeping only those paths, with
// their backends on the canary Service (same port). Paths to other backends stay with the primary alone.
func nginxCanaryRules(primary *networkingv1.Ingress, b Backends) []networkingv1.IngressRule {
	var rules []networkingv1.IngressRule
	for _, rule := range primary.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		var paths []networkingv1.HTTPIngressPath
		for _, p := range rule.HTTP.Paths {
			if p.Backend.Service == nil || p.Backend.Service.Name != b.Stable {
				continue
			}
			p = *p.DeepCopy()
			p.Backend.Service.Name = b.Canary
			paths = append(paths, p)
		}
		if len(paths) > 0 {
			rules = append(rules, networkingv1.IngressRule{Host: rule.Host, IngressRuleValue: networkingv1.IngressRuleValue{
				HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}})
		}
	}
	return rules
}

// nginxCanaryAnnotations are the canary Ingress's annotations for a canary share of percent.
func nginxCanaryAnnotations(primary *networkingv1.Ingress, b Backends, percent int32) map[string]string {
	anns := map[string]string{}
	if v, ok := primary.Annotations[nginxLegacyClassAnnotation]; ok {
		anns[nginxLegacyClassAnnotation] = v
	}
	for k, v := range b.Annotations {
		anns[k] = v
	}
	anns[nginxCanaryAnnotation] = "true"
	anns[nginxCanaryWeightAnnotation] = strconv.Itoa(int(percent))
	anns[nginxCanaryWeightTotalAnnotation] = "100"
	return anns
}

func (r *nginx) SetWeights(ctx context.Context, b Backends, w Weights) (Applied, error) {
	if b.Baseline != "" || w.Baseline != 0 {
		return Applied{}, fmt.Errorf("weights %s: the nginx router cannot send traffic to a baseline", w)
	}
	if err := weightsFit(b, w); err != nil {
		return Applied{}, err
	}
	if len(b.Annotations) == 0 {
		return Applied{}, errNginxUnmarked
	}
	var warnings []string
	var stored *networkingv1.Ingress
	err := retry.OnError(retry.DefaultRetry, func(err error) bool {
		// Conflict: the canary Ingress changed since it was read; AlreadyExists: it was made since.
		return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
	}, func() error {
		primary, err := r.getPrimary(ctx, b.Namespace)
		if err != nil {
			return err
		}
		rules := nginxCanaryRules(primary, b)
		if len(rules) == 0 {
			return fmt.Errorf("update Ingress %s/%s: Ingress %s/%s has no rule with a backend on the stable Service %s",
				b.Namespace, r.canaryName(), b.Namespace, r.name, b.Stable)
		}
		warnings = nil
		if d := primary.Spec.DefaultBackend; d != nil && d.Service != nil && d.Service.Name == b.Stable {
			warnings = append(warnings, fmt.Sprintf("the default backend of Ingress %s goes to the stable Service %s and keeps doing so: "+
				"only the paths of its rules are split", r.name, b.Stable))
		}
		spec := networkingv1.IngressSpec{IngressClassName: primary.Spec.IngressClassName, Rules: rules}
		for _, t := range primary.Spec.TLS {
			spec.TLS = append(spec.TLS, *t.DeepCopy())
		}
		anns := nginxCanaryAnnotations(primary, b, w.Canary)
		canary, err := r.getCanary(ctx, b.Namespace)
		if err != nil {
			return err
		}
		if canary == nil {
			ing := &networkingv1.Ingress{
				ObjectMeta: metav1.ObjectMeta{Name: r.canaryName(), Namespace: b.Namespace, Annotations: anns},
				Spec:       spec,
			}
			if stored, err = r.ingresses(b.Namespace).Create(ctx, ing, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create Ingress %s/%s: %w", b.Namespace, r.canaryName(), err)
			}
			return nil
		}
		if !nginxOwned(canary, b) {
			return fmt.Errorf("update Ingress %s/%s: %w", b.Namespace, r.canaryName(), r.notOwnedError(b))
		}
		canary.Annotations = anns
		canary.Spec = spec
		if stored, err = r.ingresses(b.Namespace).Update(ctx, canary, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update Ingress %s/%s: %w", b.Namespace, r.canaryName(), err)
		}
		return nil
	})
	if err != nil {
		return Applied{}, err
	}
	a, err := r.readBack(b, w, stored)
	a.Warnings = append(a.Warnings, warnings...)
	return a, err
}

// readBack checks that the canary Ingress as stored (the create's or update's answer) is a canary holding the
// weight of w.
func (r *nginx) readBack(b Backends, w Weights, canary *networkingv1.Ingress) (Applied, error) {
	if canary == nil {
		return Applied{}, fmt.Errorf("read back Ingress %s/%s: it is gone after the update", b.Namespace, r.canaryName())
	}
	anns := canary.Annotations
	if anns[nginxCanaryAnnotation] != "true" || anns[nginxCanaryWeightTotalAnnotation] != "100" {
		return Applied{}, fmt.Errorf("Ingress %s/%s holds %s=%q %s=%q after the update; want \"true\" and \"100\"", b.Namespace, r.canaryName(),
			nginxCanaryAnnotation, anns[nginxCanaryAnnotation], nginxCanaryWeightTotalAnnotation, anns[nginxCanaryWeightTotalAnnotation])
	}
	v, err := strconv.ParseInt(anns[nginxCanaryWeightAnnotation], 10, 32)
	if err != nil {
		return Applied{}, fmt.Errorf("read back Ingress %s/%s: %s: %w", b.Namespace, r.canaryName(), nginxCanaryWeightAnnotation, err)
	}
	canaryPct := int32(v)
	a := Applied{
		Stored:          Weights{Canary: canaryPct},
		EffectiveCanary: float64(canaryPct),
		Detail:          splitDetail("Ingress "+r.canaryName()+" (canary of "+r.name+")", 100-canaryPct, canaryPct, 0, false),
	}
	if canaryPct != w.Canary {
		return a, fmt.Errorf("Ingress %s/%s holds %s=%d after the update; want %d", b.Namespace, r.canaryName(), nginxCanaryWeightAnnotation, canaryPct, w.Canary)
	}
	return a, nil
}

func (r *nginx) Restore(ctx context.Context, b Backends, snapshot string) error {
	var s nginxSnapshot
	if err := json.Unmarshal([]byte(snapshot), &s); err != nil {
		return fmt.Errorf("read the Ingress snapshot: %w", err)
	}
	if s.Kind != KindNginx {
		return fmt.Errorf("read the Ingress snapshot: it is of router kind %q", s.Kind)
	}
	canary, err := r.getCanary(ctx, b.Namespace)
	if err != nil || canary == nil {
		return err
	}
	if !nginxOwned(canary, b) {
		return fmt.Errorf("delete Ingress %s/%s: %v", b.Namespace, r.canaryName(), r.notOwnedError(b)) // not a CheckError: Restore takes no input
	}
	var opts metav1.DeleteOptions
	if uid := canary.UID; uid != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &uid} // delete the Ingress that was checked, not a newer one
	}
	err = r.ingresses(b.Namespace).Delete(ctx, r.canaryName(), opts)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Ingress %s/%s: %w", b.Namespace, r.canaryName(), err)
	}
	return nil
}
