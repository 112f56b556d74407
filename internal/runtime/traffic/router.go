// Package traffic moves an application's traffic between its stable, canary and baseline Services. Each router
// kind is one file behind the Router interface, chosen by an explicit factory.
package traffic

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/osclient"
)

// Router kinds.
const (
	KindRoute     = "route"     // OpenShift Route: spec.to / alternateBackends weights
	KindHTTPRoute = "httproute" // Gateway API HTTPRoute: backendRefs weights
	KindIstio     = "istio"     // Istio VirtualService: http route destination weights
	KindNginx     = "nginx"     // NGINX Ingress canary: a second Ingress with canary annotations
	KindReplicas  = "replicas"  // no router: the replica ratio behind the shared stable Service
)

// Kinds lists the router kinds.
var Kinds = []string{KindRoute, KindHTTPRoute, KindIstio, KindNginx, KindReplicas}

// Backends are the objects that share an application's traffic.
type Backends struct {
	Namespace string
	// Services. Baseline is empty when the release has no baseline.
	Stable, Canary, Baseline string
	// Deployments behind them (the replicas router scales these).
	StableDeployment, CanaryDeployment, BaselineDeployment string
	// Annotations the release puts on every object it changes (removed again by Restore), under the
	// application's own keys (AppAnnotation). The application's ReleaseAnnotation is the release's mark.
	Annotations map[string]string
	// Abandoned is the release recorded as in progress whose lock expired, which this release rolls back before
	// it starts: objects carrying its mark are canaryline's too.
	Abandoned string
	// Ready is the ready endpoints of Services as the caller just counted them; a router that needs them reads
	// the others.
	Ready map[string]int32
}

// The release's annotations. A router object can serve several applications (one rule, http entry or path
// each), so on router objects a release uses its application's own keys (AppAnnotation): each release's marks are
// its own, and one release's end never removes another's. ReleaseAnnotation alone, the shared key, was the mark
// of releases recorded before, and is still read as theirs; it also marks the canary and baseline Deployments
// and Services.
const (
	// ReleaseAnnotation carries the id of the release that changed a router object, or made a canary Ingress: the
	// mark that makes its canary and baseline backends canaryline's own.
	ReleaseAnnotation = "canaryline.dev/release"
	ImageAnnotation   = "canaryline.dev/image"  // the release's image
	WeightAnnotation  = "canaryline.dev/weight" // the canary weight the router object carries
)

// legacyAnnotations are the shared keys releases recorded before put on router objects.
var legacyAnnotations = []string{ReleaseAnnotation, ImageAnnotation, WeightAnnotation}

// AppAnnotation is the application app's own key for one of the keys above: "shop.canaryline.dev/release". Its
// prefix, app's name and the domain, is a DNS subdomain of at most 253 characters (checkAnnotations).
func AppAnnotation(app, key string) string { return app + "." + key }

// markKey is the key whose value is the release's id: its application's ReleaseAnnotation.
func (b Backends) markKey() string {
	if b.StableDeployment == "" {
		return ReleaseAnnotation
	}
	return AppAnnotation(b.StableDeployment, ReleaseAnnotation)
}

// release is the release's id, as its annotations carry it.
func (b Backends) release() string { return b.Annotations[b.markKey()] }

// Marked says whether an object with annotations anns carries the mark of this release or of the abandoned one
// it takes over: under the application's own key, or under the shared key of a release recorded before. A router
// never takes a backend or an object for its own by its name alone, nor by the mark of another application's
// release.
func (b Backends) Marked(anns map[string]string) bool {
	for _, id := range []string{anns[b.markKey()], anns[ReleaseAnnotation]} {
		if id != "" && (id == b.release() || id == b.Abandoned) {
			return true
		}
	}
	return false
}

// checkAnnotations refuses, before any write, release annotations that cannot be keys: the application's name
// makes their prefix, which the API allows up to 253 characters.
func checkAnnotations(b Backends) error {
	for k := range b.Annotations {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return &CheckError{Param: "APP", Msg: fmt.Sprintf("the release would mark the router object with the annotation %q, which is not a valid key: %s",
				k, strings.Join(errs, "; ")), Fix: fmt.Sprintf("release an application whose name has at most %d characters", 253-len(".canaryline.dev"))}
		}
	}
	return nil
}

// Weights are shares of all traffic in percent. The stable Service gets the rest.
type Weights struct {
	Canary, Baseline int32
}

// Stable is the stable share.
func (w Weights) Stable() int32 { return 100 - w.Canary - w.Baseline }

func (w Weights) String() string {
	if w.Baseline > 0 {
		return fmt.Sprintf("stable %d%% / canary %d%% / baseline %d%%", w.Stable(), w.Canary, w.Baseline)
	}
	return fmt.Sprintf("stable %d%% / canary %d%%", w.Stable(), w.Canary)
}

// Applied is what the router stored, read back after the change.
type Applied struct {
	// Stored is what the router object holds now, in percent, read back from the API.
	Stored Weights
	// EffectiveCanary and EffectiveBaseline are the shares of requests the data plane will really send, in
	// percent: for the OpenShift router they depend on the endpoint counts; elsewhere they equal Stored.
	EffectiveCanary, EffectiveBaseline float64
	// Detail says how the router expresses it, for the log, e.g. "Route shop: to shop=230 alternate shop-canary=26".
	Detail string
	// Warnings are differences between what was asked and what will happen.
	Warnings []string
}

// Router moves traffic for one router object. Implementations never change anything in Check.
type Router interface {
	// Kind is the router kind.
	Kind() string
	// Check verifies, read-only, that the router object exists and routes to the stable Service, and that the
	// backends can be expressed (for example at most 3 alternate backends on a Route).
	Check(ctx context.Context, b Backends) error
	// Snapshot returns the router's state before the release (opaque; stored with the release).
	Snapshot(ctx context.Context, b Backends) (string, error)
	// SetWeights moves traffic to w, reads the object back and checks that what was stored is what was asked.
	SetWeights(ctx context.Context, b Backends, w Weights) (Applied, error)
	// Restore puts the router back as snapshot recorded it, removing what the release added.
	Restore(ctx context.Context, b Backends, snapshot string) error
}

// Clients are what the routers use.
type Clients struct {
	Kube    kubeclient.Interface
	Route   osclient.RouteV1Interface
	Dynamic dynamic.Interface
}

// UnknownKindError is a router kind that does not exist.
type UnknownKindError struct{ Kind string }

func (e *UnknownKindError) Error() string {
	return fmt.Sprintf("unknown router kind %q; use one of %s", e.Kind, strings.Join(Kinds, ", "))
}

// Options tune a router.
type Options struct {
	// KeepCookies leaves the OpenShift router's sticky cookies as they are during a release (route).
	KeepCookies bool
	// Routing is what SetWeights sends to the canary beside the weights (none when zero). Restore removes what
	// any shift of the release added, whatever Routing says.
	Routing Routing
}

// New returns the router of kind for the router object name. An unknown kind is an error, never a fallback.
func New(kind, name string, c Clients, o Options) (Router, error) {
	switch kind {
	case KindRoute:
		return &route{name: name, c: c, KeepCookies: o.KeepCookies, rt: o.Routing}, nil
	case KindHTTPRoute:
		return newHTTPRoute(name, c).with(o.Routing), nil
	case KindIstio:
		return newIstio(name, c).with(o.Routing), nil
	case KindNginx:
		return &nginx{name: name, c: c, rt: o.Routing}, nil
	case KindReplicas:
		return &replicas{c: c, rt: o.Routing}, nil
	}
	return nil, &UnknownKindError{Kind: kind}
}

// CheckError is a router object that cannot be used as it is: bad input, nothing was changed. Param is the param
// to change when it is not the router's (ROUTER_NAME).
type CheckError struct{ Param, Msg, Fix string }

func (e *CheckError) Error() string {
	if e.Fix == "" {
		return e.Msg
	}
	return e.Msg + "; " + e.Fix
}

func checkErrorf(fix, format string, args ...any) error {
	return &CheckError{Msg: fmt.Sprintf(format, args...), Fix: fix}
}
