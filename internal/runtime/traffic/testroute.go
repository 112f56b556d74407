package traffic

import (
	"context"
	"fmt"
	"strings"

	routev1 "github.com/openshift/api/route/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The OpenShift Route has no header matching: for test requests, the route router makes a separate test Route,
// named like the canary Service, marked as the release's, to the canary Service alone, with the stable Route's
// path, port and TLS termination, on TEST_HOST or, without it, the host OpenShift generates for it
// (<canary>-<namespace>.<router domain>). A later shift without MATCH or TEST_HOST, and Restore, delete it.

// testRouteName is the name of the release's test Route: the canary Service's.
func testRouteName(b Backends) string { return b.Canary }

// getTestRoute returns the Route named like the test Route, or nil when there is none.
func (r *route) getTestRoute(ctx context.Context, b Backends) (*routev1.Route, error) {
	rt, err := r.c.Route.Routes(b.Namespace).Get(ctx, testRouteName(b), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get Route %s/%s: %w", b.Namespace, testRouteName(b), err)
	}
	return rt, nil
}

// checkTestRoute refuses, read-only, a test Route the release could not make: a Route of its name that is not
// canaryline's, or a TEST_HOST that the stable Route or another Route of the namespace serves.
func (r *route) checkTestRoute(ctx context.Context, b Backends, stable *routev1.Route) error {
	if !r.rt.TestRoute() {
		return nil
	}
	if t, err := r.getTestRoute(ctx, b); err != nil {
		return err
	} else if t != nil && !b.Marked(t.Annotations) {
		return &CheckError{Param: "CANARY_NAME", Msg: fmt.Sprintf("Route %s/%s exists and was not made by canaryline: the test Route of MATCH or TEST_HOST is named like the canary Service",
			b.Namespace, t.Name), Fix: "give the canary another name with CANARY_NAME, or delete that Route if it is left over"}
	}
	host := r.rt.TestHost
	if host == "" {
		return nil
	}
	if stable.Spec.Host == host {
		return &CheckError{Param: "TEST_HOST", Msg: fmt.Sprintf("%q is the host of the stable Route %s", host, stable.Name),
			Fix: "give the test Route a host of its own, or leave TEST_HOST empty for a generated one"}
	}
	list, err := r.c.Route.Routes(b.Namespace).List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) {
		return nil // a Role without list: OpenShift's router refuses a claimed host on the test Route itself
	}
	if err != nil {
		return fmt.Errorf("list Routes in %s: %w", b.Namespace, err)
	}
	for _, o := range list.Items {
		if o.Spec.Host == host && o.Name != testRouteName(b) {
			return &CheckError{Param: "TEST_HOST", Msg: fmt.Sprintf("%q is the host of Route %s/%s", host, b.Namespace, o.Name),
				Fix: "give the test Route a host no other Route serves, or leave TEST_HOST empty for a generated one"}
		}
	}
	return nil
}

// testRouteSpec is the test Route's spec: stable's path, port and TLS termination (without the stable host's
// certificate and key), to the canary Service alone, on TEST_HOST or the host it has (generated).
func (r *route) testRouteSpec(stable *routev1.Route, cur *routev1.Route, b Backends) routev1.RouteSpec {
	weight := int32(100)
	spec := routev1.RouteSpec{Host: r.rt.TestHost, Path: stable.Spec.Path, To: routev1.RouteTargetReference{Kind: "Service", Name: b.Canary, Weight: &weight},
		WildcardPolicy: routev1.WildcardPolicyNone}
	if spec.Host == "" && cur != nil {
		spec.Host = cur.Spec.Host // OpenShift generated it
	}
	if stable.Spec.Port != nil {
		spec.Port = stable.Spec.Port.DeepCopy()
	}
	if t := stable.Spec.TLS; t != nil {
		spec.TLS = &routev1.TLSConfig{Termination: t.Termination, InsecureEdgeTerminationPolicy: t.InsecureEdgeTerminationPolicy,
			DestinationCACertificate: t.DestinationCACertificate}
	}
	return spec
}

// setTestRoute makes or updates the test Route when the routing asks for one, and deletes the release's
// otherwise. It returns the test Route as stored (nil: none).
func (r *route) setTestRoute(ctx context.Context, b Backends, stable *routev1.Route) (*routev1.Route, error) {
	if !r.rt.TestRoute() {
		return nil, r.deleteTestRouteOf(ctx, stable, b)
	}
	routes := r.c.Route.Routes(b.Namespace)
	cur, err := r.getTestRoute(ctx, b)
	if err != nil {
		return nil, err
	}
	spec := r.testRouteSpec(stable, cur, b)
	if cur == nil {
		t := &routev1.Route{ObjectMeta: metav1.ObjectMeta{Name: testRouteName(b), Namespace: b.Namespace, Annotations: annotationsWithRelease(nil, b.Annotations)}, Spec: spec}
		stored, err := routes.Create(ctx, t, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("create Route %s/%s: %w", b.Namespace, t.Name, err)
		}
		return stored, nil
	}
	if !b.Marked(cur.Annotations) {
		return nil, fmt.Errorf("update Route %s/%s: it was not made by canaryline", b.Namespace, cur.Name)
	}
	if apiequality.Semantic.DeepEqual(cur.Spec, spec) {
		return cur, nil
	}
	cur.Spec = spec
	stored, err := routes.Update(ctx, cur, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("update Route %s/%s: %w", b.Namespace, cur.Name, err)
	}
	return stored, nil
}

// TestRouteAnnotation, under the application's key on the stable Route, names the release's test Route from the
// shift that asks for one until Restore: without it there is none to look for (no request).
const TestRouteAnnotation = "canaryline.dev/test-route"

// testRouteKey is the application's TestRouteAnnotation.
func (b Backends) testRouteKey() string {
	if b.StableDeployment == "" {
		return TestRouteAnnotation
	}
	return AppAnnotation(b.StableDeployment, TestRouteAnnotation)
}

// deleteTestRouteOf deletes the release's test Route when the stable Route stable says the release made one.
func (r *route) deleteTestRouteOf(ctx context.Context, stable *routev1.Route, b Backends) error {
	if stable == nil || stable.Annotations[b.testRouteKey()] == "" {
		return nil
	}
	return r.deleteTestRoute(ctx, b)
}

// deleteTestRoute deletes the release's test Route, if there is one; a Route of that name that is not
// canaryline's is left as it is.
func (r *route) deleteTestRoute(ctx context.Context, b Backends) error {
	t, err := r.getTestRoute(ctx, b)
	if err != nil || t == nil || !b.Marked(t.Annotations) {
		return err
	}
	uid := t.UID
	opts := metav1.DeleteOptions{}
	if uid != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &uid} // the Route that was checked, not a newer one
	}
	if err := r.c.Route.Routes(b.Namespace).Delete(ctx, t.Name, opts); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Route %s/%s: %w", b.Namespace, t.Name, err)
	}
	return nil
}

// testRouteApplied checks the test Route as stored, t, and says what it is for the log.
func (r *route) testRouteApplied(t *routev1.Route, b Backends, a *Applied) error {
	if t == nil {
		return nil
	}
	if t.Spec.To.Name != b.Canary || len(t.Spec.AlternateBackends) > 0 {
		return fmt.Errorf("read back Route %s/%s: it sends traffic to %s %q, not to the canary Service %q alone", b.Namespace, t.Name, t.Spec.To.Kind, t.Spec.To.Name, b.Canary)
	}
	host := t.Spec.Host
	if host == "" {
		host = "generated by OpenShift"
	}
	a.Detail += fmt.Sprintf("; test Route %s (host %s) to %s", t.Name, host, b.Canary)
	if len(r.rt.Match) > 0 {
		a.Warnings = append(a.Warnings, fmt.Sprintf("the OpenShift Route cannot match requests by header or cookie (MATCH %q): test requests reach the canary through the test Route %s (host %s) instead",
			strings.ReplaceAll(FormatMatch(r.rt.Match), "\n", "; "), t.Name, host))
	}
	return nil
}
