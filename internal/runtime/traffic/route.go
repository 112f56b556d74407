package traffic

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	routev1 "github.com/openshift/api/route/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// DisableCookiesAnnotation turns off the OpenShift router's sticky cookies for a Route. With cookies on, a client
// keeps going to the backend that served it first, even after that backend's weight drops to 0, until its pods
// are gone. During a release the route router sets it, so the weights apply to every request and a rollback
// reaches every client at once; Restore puts the Route's own setting back.
const DisableCookiesAnnotation = "haproxy.router.openshift.io/disable_cookies"

// routeScale is the OpenShift Route weight range: 0..256.
const routeScale = 256

// route is an OpenShift Route: spec.to is the stable Service, alternateBackends hold the canary (and baseline).
type route struct {
	name string
	c    Clients
	// KeepCookies leaves sticky cookies as they are during the release.
	KeepCookies bool
	// rt is the routing beside the weights: MATCH or TEST_HOST make a test Route (testroute.go); no mirror.
	rt Routing
	// last is the Route as last read or written in this run: Snapshot and the first attempt of SetWeights use it
	// instead of reading again (a conflict reads it again).
	last *routev1.Route
}

var _ Router = (*route)(nil)

func (r *route) Kind() string { return KindRoute }

func (r *route) get(ctx context.Context, ns string) (*routev1.Route, error) {
	rt, err := r.c.Route.Routes(ns).Get(ctx, r.name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get Route %s/%s: %w", ns, r.name, err)
	}
	r.last = rt.DeepCopy()
	return rt, nil
}

// current is the Route as last read in this run, or read now.
func (r *route) current(ctx context.Context, ns string) (*routev1.Route, error) {
	if r.last != nil && r.last.Namespace == ns {
		return r.last.DeepCopy(), nil
	}
	return r.get(ctx, ns)
}

func (r *route) Check(ctx context.Context, b Backends) error {
	if err := checkAnnotations(b); err != nil {
		return err
	}
	rt, err := r.get(ctx, b.Namespace)
	if apierrors.IsNotFound(err) {
		return checkErrorf(fmt.Sprintf("create it (oc expose service %s) or set ROUTER_NAME to the Route that serves the application", b.Stable),
			"Route %s/%s does not exist", b.Namespace, r.name)
	}
	if err != nil {
		return err
	}
	if rt.Spec.To.Kind != "Service" || rt.Spec.To.Name != b.Stable {
		return checkErrorf("point spec.to at the stable Service, or set STABLE_SERVICE",
			"Route %s/%s sends traffic to %s %q, not to the stable Service %q", b.Namespace, r.name, rt.Spec.To.Kind, rt.Spec.To.Name, b.Stable)
	}
	ours := map[string]bool{b.Canary: true, b.Baseline: true}
	for _, alt := range rt.Spec.AlternateBackends {
		switch {
		case !ours[alt.Name]:
			return checkErrorf("remove it (oc set route-backends "+r.name+" "+b.Stable+"=100) before the release",
				"Route %s/%s already has an alternate backend %q: the shares of a release could not be controlled", b.Namespace, r.name, alt.Name)
		case !b.Marked(rt.Annotations):
			return &CheckError{Param: "CANARY_NAME", Msg: fmt.Sprintf("Route %s/%s already sends traffic to %q, and no canaryline release set it: "+
				"it is not the release's canary", b.Namespace, r.name, alt.Name),
				Fix: "give the release's canary another name with CANARY_NAME, or remove the backend (oc set route-backends " + r.name + " " + b.Stable + "=100) before the release"}
		}
	}
	if err := kindTraits[KindRoute].CheckRouting(KindRoute, r.rt); err != nil {
		return err
	}
	return r.checkTestRoute(ctx, b, rt)
}

// routeSnapshot is what the release changes on a Route.
// Releases recorded before also saved the alternate backends ("alternateBackends"). Restore does not need them: it
// removes the release's alternate backends and keeps every other (routeRestored).
type routeSnapshot struct {
	To             routev1.RouteTargetReference `json:"to"`
	DisableCookies *string                      `json:"disableCookies,omitempty"`
}

func (r *route) Snapshot(ctx context.Context, b Backends) (string, error) {
	rt, err := r.current(ctx, b.Namespace)
	if err != nil {
		return "", err
	}
	s := routeSnapshot{To: rt.Spec.To}
	if v, ok := rt.Annotations[DisableCookiesAnnotation]; ok {
		s.DisableCookies = &v
	}
	data, err := json.Marshal(s)
	return string(data), err
}

// routeWeights turns percent into Route weights (0..256): the largest share gets 256, the others in proportion,
// and a non-zero share never rounds to 0.
func routeWeights(w Weights) (stable, canary, baseline int32) {
	max := w.Stable()
	if w.Canary > max {
		max = w.Canary
	}
	if w.Baseline > max {
		max = w.Baseline
	}
	scale := func(p int32) int32 {
		if p == 0 {
			return 0
		}
		v := int32(math.Round(float64(p) * routeScale / float64(max)))
		if v < 1 {
			v = 1
		}
		return v
	}
	return scale(w.Stable()), scale(w.Canary), scale(w.Baseline)
}

func (r *route) SetWeights(ctx context.Context, b Backends, w Weights) (Applied, error) {
	stable, canary, baseline := routeWeights(w)
	var rt *routev1.Route
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := r.current(ctx, b.Namespace)
		if err != nil {
			return err
		}
		r.last = nil // after a conflict, read it again
		r.setBackends(cur, b, stable, canary, baseline)
		rt, err = r.c.Route.Routes(b.Namespace).Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return Applied{}, fmt.Errorf("update Route %s/%s: %w", b.Namespace, r.name, err)
	}
	// Check what was stored: the update's answer is the Route as the API server stored it.
	r.last = rt.DeepCopy()
	got := map[string]int32{rt.Spec.To.Name: weightOf(rt.Spec.To.Weight)}
	for _, a := range rt.Spec.AlternateBackends {
		got[a.Name] = weightOf(a.Weight)
	}
	if got[b.Stable] != stable || got[b.Canary] != canary || (b.Baseline != "" && got[b.Baseline] != baseline) {
		return Applied{}, fmt.Errorf("Route %s/%s holds weights %v after the update; want %s=%d %s=%d", b.Namespace, r.name, got, b.Stable, stable, b.Canary, canary)
	}
	a := Applied{Stored: percentOf(got, b), Detail: fmt.Sprintf("Route %s: to %s=%d, alternates %s", r.name, b.Stable, stable, altDetail(rt))}
	eps, err := r.readyEndpoints(ctx, b)
	if err != nil {
		return a, err
	}
	// The OpenShift router divides each Service's weight among its endpoints: what each will really get.
	a.Detail += fmt.Sprintf("; ready endpoints: %s=%d %s=%d", b.Stable, eps[b.Stable], b.Canary, eps[b.Canary])
	shares := haproxyShares(got, eps)
	a.EffectiveCanary, a.EffectiveBaseline = shares[b.Canary], shares[b.Baseline]
	a.Warnings = shareWarnings(w, a.EffectiveCanary, a.EffectiveBaseline, eps, b)
	t, err := r.setTestRoute(ctx, b, rt)
	if err != nil {
		return a, err
	}
	return a, r.testRouteApplied(t, b, &a)
}

// setBackends points rt at the stable Service with weight stable and the canary (and baseline) as alternates,
// keeping the alternates that are not the release's, and marks it with the release's annotations.
func (r *route) setBackends(rt *routev1.Route, b Backends, stable, canary, baseline int32) {
	rt.Spec.To.Weight = &stable
	alts := append(routeOthers(rt.Spec.AlternateBackends, b), routev1.RouteTargetReference{Kind: "Service", Name: b.Canary, Weight: &canary})
	if b.Baseline != "" {
		alts = append(alts, routev1.RouteTargetReference{Kind: "Service", Name: b.Baseline, Weight: &baseline})
	}
	rt.Spec.AlternateBackends = alts
	if rt.Annotations == nil {
		rt.Annotations = map[string]string{}
	}
	for k, v := range b.Annotations {
		rt.Annotations[k] = v
	}
	if !r.KeepCookies {
		rt.Annotations[DisableCookiesAnnotation] = "true"
	}
	if r.rt.TestRoute() {
		// Before the test Route is made, and until Restore removes it: only a Route marked so is looked for.
		rt.Annotations[b.testRouteKey()] = testRouteName(b)
	}
}

// readyEndpoints counts the ready endpoints of the release's Services: from b.Ready where the caller counted them,
// else from the API.
func (r *route) readyEndpoints(ctx context.Context, b Backends) (map[string]int32, error) {
	eps := map[string]int32{}
	for _, svc := range []string{b.Stable, b.Canary, b.Baseline} {
		if svc == "" {
			continue
		}
		if n, ok := b.Ready[svc]; ok {
			eps[svc] = n
			continue
		}
		n, err := ReadyEndpoints(ctx, r.c.Kube, b.Namespace, svc)
		if err != nil {
			return nil, err
		}
		eps[svc] = n
	}
	return eps, nil
}

func weightOf(w *int32) int32 {
	if w == nil {
		return 100 // the Route API's default
	}
	return *w
}

func altDetail(rt *routev1.Route) string {
	var parts []string
	for _, a := range rt.Spec.AlternateBackends {
		parts = append(parts, fmt.Sprintf("%s=%d", a.Name, weightOf(a.Weight)))
	}
	return strings.Join(parts, " ")
}

// percentOf turns stored Route weights back into whole percent of the total.
func percentOf(got map[string]int32, b Backends) Weights {
	total := got[b.Stable] + got[b.Canary] + got[b.Baseline]
	if total == 0 {
		return Weights{}
	}
	pct := func(v int32) int32 { return int32(math.Round(float64(v) * 100 / float64(total))) }
	w := Weights{Canary: pct(got[b.Canary])}
	if b.Baseline != "" {
		w.Baseline = pct(got[b.Baseline])
	}
	return w
}

// haproxyShares computes the share of requests (percent) each Service gets from the OpenShift router, which
// divides each Service's weight among its endpoints, scales the largest endpoint weight to 256, truncates, and
// gives every endpoint of a non-zero weight at least 1 (openshift/router calculateServiceWeights).
func haproxyShares(weights map[string]int32, endpoints map[string]int32) map[string]float64 {
	epWeight := map[string]float64{}
	max := 0.0
	for svc, w := range weights {
		if n := endpoints[svc]; n > 0 {
			epWeight[svc] = float64(w) / float64(n)
			if epWeight[svc] > max {
				max = epWeight[svc]
			}
		}
	}
	out := map[string]float64{}
	if max == 0 {
		return out
	}
	scale := float32(256.0 / max)
	total := 0.0
	perSvc := map[string]float64{}
	for svc, ew := range epWeight {
		v := int32(float32(ew) * scale)
		if ew > 0 && v < 1 {
			v = 1
		}
		perSvc[svc] = float64(v) * float64(endpoints[svc])
		total += perSvc[svc]
	}
	for svc, v := range perSvc {
		out[svc] = 100 * v / total
	}
	return out
}

// shareWarnings says when the effective share differs from the requested one by more than a point.
func shareWarnings(w Weights, canary, baseline float64, eps map[string]int32, b Backends) []string {
	var out []string
	if d := canary - float64(w.Canary); math.Abs(d) > 1 {
		out = append(out, fmt.Sprintf("the canary gets %.1f%% of requests, not %d%%: the router splits each Service's weight across its endpoints "+
			"(stable %d, canary %d); fewer canary pods or a larger weight step brings them closer", canary, w.Canary, eps[b.Stable], eps[b.Canary]))
	}
	if b.Baseline != "" {
		if d := baseline - float64(w.Baseline); math.Abs(d) > 1 {
			out = append(out, fmt.Sprintf("the baseline gets %.1f%% of requests, not %d%% (baseline endpoints %d)", baseline, w.Baseline, eps[b.Baseline]))
		}
	}
	return out
}

// routeIsRelease says whether an alternate backend is the release's canary or baseline Service.
func routeIsRelease(alt routev1.RouteTargetReference, b Backends) bool {
	return (alt.Kind == "" || alt.Kind == "Service") && alt.Name != "" && (alt.Name == b.Canary || alt.Name == b.Baseline)
}

// routeOthers are the alternate backends that are not the release's (nil when none): a team may add one while
// a release runs (Check refuses a later shift then, but a rollback must not drop it).
func routeOthers(alts []routev1.RouteTargetReference, b Backends) []routev1.RouteTargetReference {
	var out []routev1.RouteTargetReference
	for _, alt := range alts {
		if !routeIsRelease(alt, b) {
			out = append(out, alt)
		}
	}
	return out
}

// routeRestored puts the backends of rt back by content: the release's alternate backends are removed, every
// other alternate backend is kept as it is now, and spec.to gets its weight from before the release when it is
// still the Service s recorded (a spec.to the team changed meanwhile stays as it is). An alternate backend a team
// added during the release keeps the weight the team gave it; its share is now taken against spec.to's weight
// from before the release, as it would have been had the team added it then.
func routeRestored(rt *routev1.Route, s routeSnapshot, b Backends) {
	if rt.Spec.To.Kind == s.To.Kind && rt.Spec.To.Name == s.To.Name {
		rt.Spec.To.Weight = s.To.Weight
	}
	rt.Spec.AlternateBackends = routeOthers(rt.Spec.AlternateBackends, b)
}

func (r *route) Restore(ctx context.Context, b Backends, snapshot string) error {
	var s routeSnapshot
	if err := json.Unmarshal([]byte(snapshot), &s); err != nil {
		return fmt.Errorf("read the Route snapshot: %w", err)
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		rt, err := r.current(ctx, b.Namespace)
		if err != nil {
			return err
		}
		r.last = nil // after a conflict, read it again
		if err := r.deleteTestRouteOf(ctx, rt, b); err != nil {
			return err // first: the mark that says where it is goes with the stable Route's restore
		}
		routeRestored(rt, s, b)
		rt.Annotations = annotationsAfterRestore(rt.Annotations, b, nil)
		delete(rt.Annotations, b.testRouteKey())
		if s.DisableCookies != nil {
			if rt.Annotations == nil {
				rt.Annotations = map[string]string{}
			}
			rt.Annotations[DisableCookiesAnnotation] = *s.DisableCookies
		} else {
			delete(rt.Annotations, DisableCookiesAnnotation)
		}
		updated, err := r.c.Route.Routes(b.Namespace).Update(ctx, rt, metav1.UpdateOptions{})
		if err == nil {
			r.last = updated
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("restore Route %s/%s: %w", b.Namespace, r.name, err)
	}
	return nil
}
