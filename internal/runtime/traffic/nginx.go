package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/util/retry"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/naming"
)

// NGINX Ingress controller canary annotations.
const (
	nginxCanaryAnnotation            = "nginx.ingress.kubernetes.io/canary"
	nginxCanaryWeightAnnotation      = "nginx.ingress.kubernetes.io/canary-weight"
	nginxCanaryWeightTotalAnnotation = "nginx.ingress.kubernetes.io/canary-weight-total"
	nginxCanaryByHeader              = "nginx.ingress.kubernetes.io/canary-by-header"
	nginxCanaryByHeaderValue         = "nginx.ingress.kubernetes.io/canary-by-header-value"
	nginxCanaryByHeaderPattern       = "nginx.ingress.kubernetes.io/canary-by-header-pattern"
	nginxCanaryByCookie              = "nginx.ingress.kubernetes.io/canary-by-cookie"
	// nginxLegacyClassAnnotation selects the controller on Ingresses without spec.ingressClassName.
	nginxLegacyClassAnnotation = "kubernetes.io/ingress.class"
)

// nginx is the NGINX Ingress controller's canary: the primary Ingress (name) keeps routing to the stable Service
// and is never changed; a second Ingress of the release's own (NginxCanaryName), with the same hosts and the paths
// that go to the stable Service, going to the canary Service, takes canary-weight percent of their requests.
// NGINX allows one canary Ingress per host and path, so there is no baseline; applications that share the primary
// Ingress have paths, and so canary Ingresses, of their own.
type nginx struct {
	name string
	c    Clients
	rt   Routing // MATCH as canary-by-header and canary-by-cookie; no mirror
}

var _ Router = (*nginx)(nil)

func (r *nginx) Kind() string { return KindNginx }

func (r *nginx) ingresses(ns string) kubeclient.IngressInterface {
	return r.c.Kube.NetworkingV1().Ingresses(ns)
}

// NginxCanaryName is the canary Ingress that a release of the application behind the stable Service makes for
// the Ingress ingress: <ingress>-canary when the Ingress is named like the Service (as ROUTER_NAME is by default),
// else <ingress>-<stable>-canary, so that every application sharing an Ingress has its own.
func NginxCanaryName(ingress, stable string) string {
	if ingress == stable {
		return naming.Canary(ingress)
	}
	return naming.Canary(ingress + "-" + stable)
}

// canaryName is the name of the release's canary Ingress.
func (r *nginx) canaryName(b Backends) string { return NginxCanaryName(r.name, b.Stable) }

// legacyCanaryName is the canary Ingress's name for releases recorded before canary Ingresses were named per
// application.
func (r *nginx) legacyCanaryName() string { return naming.Canary(r.name) }

func (r *nginx) getPrimary(ctx context.Context, ns string) (*networkingv1.Ingress, error) {
	ing, err := r.ingresses(ns).Get(ctx, r.name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get Ingress %s/%s: %w", ns, r.name, err)
	}
	return ing, nil
}

// getIngress returns the Ingress name, or nil when there is none.
func (r *nginx) getIngress(ctx context.Context, ns, name string) (*networkingv1.Ingress, error) {
	ing, err := r.ingresses(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get Ingress %s/%s: %w", ns, name, err)
	}
	return ing, nil
}

// getCanary returns the name of the release's canary Ingress and the Ingress of that name (nil: none). A release
// recorded before canary Ingresses were named per application made <ingress>-canary: when the Ingress has its own
// name free and <ingress>-canary carries the release's mark, that one is the release's. Another application's
// <ingress>-canary (or one a per-application Role does not let it read) is never.
func (r *nginx) getCanary(ctx context.Context, b Backends) (string, *networkingv1.Ingress, error) {
	name := r.canaryName(b)
	ing, err := r.getIngress(ctx, b.Namespace, name)
	if err != nil || ing != nil || name == r.legacyCanaryName() {
		return name, ing, err
	}
	old, err := r.ingresses(b.Namespace).Get(ctx, r.legacyCanaryName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) || apierrors.IsForbidden(err):
		return name, nil, nil
	case err != nil:
		return name, nil, fmt.Errorf("get Ingress %s/%s: %w", b.Namespace, r.legacyCanaryName(), err)
	case b.Marked(old.Annotations):
		return old.Name, old, nil
	}
	return name, nil, nil
}

// nginxOwned says whether the release (or the abandoned one it takes over) made ing: it carries its mark.
func nginxOwned(ing *networkingv1.Ingress, b Backends) bool {
	return b.Marked(ing.Annotations)
}

// notOwnedError is the CheckError for a canary Ingress, name, that the release did not make.
func (r *nginx) notOwnedError(b Backends, name string) error {
	return checkErrorf(fmt.Sprintf("delete it (kubectl delete ingress -n %s %s) if it is left over, or release through another router: "+
		"NGINX takes one canary Ingress per host", b.Namespace, name),
		"Ingress %s/%s exists and was not made by canaryline", b.Namespace, name)
}

// errNginxUnmarked is a release without annotations: the canary Ingress could not be told from one made by
// someone else.
var errNginxUnmarked = errors.New("the nginx router needs release annotations (Backends.Annotations) to mark the canary Ingress as its own")

func (r *nginx) Check(ctx context.Context, b Backends) error {
	if len(b.Annotations) == 0 {
		return errNginxUnmarked
	}
	if err := kindTraits[KindNginx].CheckRouting(KindNginx, r.rt); err != nil {
		return err
	}
	if b.Baseline != "" {
		return checkErrorf("use another router or BASELINE=false", "the nginx router cannot send traffic to a baseline")
	}
	if errs := validation.IsDNS1123Subdomain(r.canaryName(b)); len(errs) > 0 {
		return checkErrorf("use an Ingress (ROUTER_NAME) or a stable Service (STABLE_SERVICE) with a shorter name: the canary Ingress is named after both",
			"the canary Ingress name %q is not valid: %v", r.canaryName(b), errs)
	}
	if err := checkAnnotations(b); err != nil {
		return err
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
	name, canary, err := r.getCanary(ctx, b)
	if err != nil {
		return err
	}
	if canary != nil && !nginxOwned(canary, b) {
		return r.notOwnedError(b, name)
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
	name, canary, err := r.getCanary(ctx, b)
	if err != nil {
		return "", err
	}
	data, err := json.Marshal(nginxSnapshot{Kind: KindNginx, Name: r.name, CanaryIngress: name, CanaryExisted: canary != nil})
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

// nginxMatchAnnotations are the canary Ingress's annotations for the MATCH rules (CheckRouting allowed them): a
// header rule as canary-by-header with its value or pattern, a cookie rule as canary-by-cookie. NGINX reads the
// header first, then the cookie, then the weight.
func nginxMatchAnnotations(rules []MatchRule) map[string]string {
	anns := map[string]string{}
	for _, m := range rules {
		switch {
		case m.Kind == MatchCookie:
			anns[nginxCanaryByCookie] = m.Name
		case m.Regex:
			anns[nginxCanaryByHeader], anns[nginxCanaryByHeaderPattern] = m.Name, m.Value
		default:
			anns[nginxCanaryByHeader], anns[nginxCanaryByHeaderValue] = m.Name, m.Value
		}
	}
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
	name := r.canaryName(b)
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
				b.Namespace, name, b.Namespace, r.name, b.Stable)
		}
		warnings = r.defaultBackendWarnings(primary, b)
		spec := nginxCanarySpec(primary, rules)
		anns := nginxCanaryAnnotations(primary, b, w.Canary)
		maps.Copy(anns, nginxMatchAnnotations(r.rt.Match))
		name, stored, err = r.putCanary(ctx, b, anns, spec)
		return err
	})
	if err != nil {
		return Applied{}, err
	}
	a, err := r.readBack(b, w, name, stored)
	a.Warnings = append(a.Warnings, warnings...)
	return a, err
}

// defaultBackendWarnings warns when primary's default backend is the stable Service, which no split reaches.
func (r *nginx) defaultBackendWarnings(primary *networkingv1.Ingress, b Backends) []string {
	if d := primary.Spec.DefaultBackend; d != nil && d.Service != nil && d.Service.Name == b.Stable {
		return []string{fmt.Sprintf("the default backend of Ingress %s goes to the stable Service %s and keeps doing so: "+
			"only the paths of its rules are split", r.name, b.Stable)}
	}
	return nil
}

// nginxCanarySpec is the canary Ingress's spec: primary's class and TLS, with rules.
func nginxCanarySpec(primary *networkingv1.Ingress, rules []networkingv1.IngressRule) networkingv1.IngressSpec {
	spec := networkingv1.IngressSpec{IngressClassName: primary.Spec.IngressClassName, Rules: rules}
	for _, t := range primary.Spec.TLS {
		spec.TLS = append(spec.TLS, *t.DeepCopy())
	}
	return spec
}

// putCanary creates the canary Ingress with anns and spec, or updates the release's own; it refuses one that is not
// the release's. It returns the Ingress's name and the API server's answer.
func (r *nginx) putCanary(ctx context.Context, b Backends, anns map[string]string, spec networkingv1.IngressSpec) (string, *networkingv1.Ingress, error) {
	name, canary, err := r.getCanary(ctx, b)
	if err != nil {
		return name, nil, err
	}
	if canary == nil {
		ing := &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: b.Namespace, Annotations: anns},
			Spec:       spec,
		}
		stored, err := r.ingresses(b.Namespace).Create(ctx, ing, metav1.CreateOptions{})
		if err != nil {
			return name, nil, fmt.Errorf("create Ingress %s/%s: %w", b.Namespace, name, err)
		}
		return name, stored, nil
	}
	if !nginxOwned(canary, b) {
		return name, nil, fmt.Errorf("update Ingress %s/%s: %w", b.Namespace, name, r.notOwnedError(b, name))
	}
	canary.Annotations = anns
	canary.Spec = spec
	stored, err := r.ingresses(b.Namespace).Update(ctx, canary, metav1.UpdateOptions{})
	if err != nil {
		return name, nil, fmt.Errorf("update Ingress %s/%s: %w", b.Namespace, name, err)
	}
	return name, stored, nil
}

// readBack checks that the canary Ingress name as stored (the create's or update's answer) is a canary holding the
// weight of w.
func (r *nginx) readBack(b Backends, w Weights, name string, canary *networkingv1.Ingress) (Applied, error) {
	if canary == nil {
		return Applied{}, fmt.Errorf("read back Ingress %s/%s: it is gone after the update", b.Namespace, name)
	}
	anns := canary.Annotations
	if anns[nginxCanaryAnnotation] != "true" || anns[nginxCanaryWeightTotalAnnotation] != "100" {
		return Applied{}, fmt.Errorf("Ingress %s/%s holds %s=%q %s=%q after the update; want \"true\" and \"100\"", b.Namespace, name,
			nginxCanaryAnnotation, anns[nginxCanaryAnnotation], nginxCanaryWeightTotalAnnotation, anns[nginxCanaryWeightTotalAnnotation])
	}
	v, err := strconv.ParseInt(anns[nginxCanaryWeightAnnotation], 10, 32)
	if err != nil {
		return Applied{}, fmt.Errorf("read back Ingress %s/%s: %s: %w", b.Namespace, name, nginxCanaryWeightAnnotation, err)
	}
	canaryPct := int32(v)
	for k, want := range nginxMatchAnnotations(r.rt.Match) {
		if anns[k] != want {
			return Applied{}, fmt.Errorf("Ingress %s/%s holds %s=%q after the update; want %q", b.Namespace, name, k, anns[k], want)
		}
	}
	a := Applied{
		Stored:          Weights{Canary: canaryPct},
		EffectiveCanary: float64(canaryPct),
		Detail:          splitDetail("Ingress "+name+" (canary of "+r.name+")", 100-canaryPct, canaryPct, 0, false),
	}
	if len(r.rt.Match) > 0 {
		a.Detail += "; " + r.rt.describe()
	}
	if canaryPct != w.Canary {
		return a, fmt.Errorf("Ingress %s/%s holds %s=%d after the update; want %d", b.Namespace, name, nginxCanaryWeightAnnotation, canaryPct, w.Canary)
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
	name, canary, err := r.getCanary(ctx, b)
	if err != nil || canary == nil {
		return err
	}
	if !nginxOwned(canary, b) {
		return fmt.Errorf("delete Ingress %s/%s: %v", b.Namespace, name, r.notOwnedError(b, name)) // not a CheckError: Restore takes no input
	}
	var opts metav1.DeleteOptions
	if uid := canary.UID; uid != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &uid} // delete the Ingress that was checked, not a newer one
	}
	err = r.ingresses(b.Namespace).Delete(ctx, name, opts)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Ingress %s/%s: %w", b.Namespace, name, err)
	}
	return nil
}
