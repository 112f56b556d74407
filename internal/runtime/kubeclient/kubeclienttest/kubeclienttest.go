// Package kubeclienttest adapts client-go's clientset (and so its fake) to kubeclient.Interface, and
// openshift/client-go's route and build clients to osclient's interfaces, for tests. The step binary must not import it:
// it links k8s.io/client-go/kubernetes/scheme.
package kubeclienttest

import (
	"context"
	"io"

	buildv1client "github.com/openshift/client-go/build/clientset/versioned/typed/build/v1"
	routev1client "github.com/openshift/client-go/route/clientset/versioned/typed/route/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/osclient"
)

// Wrap returns k as a kubeclient.Interface.
func Wrap(k kubernetes.Interface) kubeclient.Interface { return wrapped{k} }

type wrapped struct{ k kubernetes.Interface }

func (w wrapped) AppsV1() kubeclient.AppsV1Interface                 { return apps{w} }
func (w wrapped) BatchV1() kubeclient.BatchV1Interface               { return batch{w} }
func (w wrapped) CoreV1() kubeclient.CoreV1Interface                 { return core{w} }
func (w wrapped) CoordinationV1() kubeclient.CoordinationV1Interface { return coordination{w} }
func (w wrapped) DiscoveryV1() kubeclient.DiscoveryV1Interface       { return discovery{w} }
func (w wrapped) NetworkingV1() kubeclient.NetworkingV1Interface     { return networking{w} }

type apps struct{ wrapped }

func (g apps) Deployments(ns string) kubeclient.DeploymentInterface {
	return g.k.AppsV1().Deployments(ns)
}
func (g apps) ReplicaSets(ns string) kubeclient.ReplicaSetInterface {
	return g.k.AppsV1().ReplicaSets(ns)
}

type batch struct{ wrapped }

func (g batch) Jobs(ns string) kubeclient.JobInterface { return g.k.BatchV1().Jobs(ns) }

type core struct{ wrapped }

func (g core) ConfigMaps(ns string) kubeclient.ConfigMapInterface {
	return g.k.CoreV1().ConfigMaps(ns)
}
func (g core) PodLogs(ctx context.Context, ns, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	return g.k.CoreV1().Pods(ns).GetLogs(pod, opts).Stream(ctx)
}

func (g core) Services(ns string) kubeclient.ServiceInterface { return g.k.CoreV1().Services(ns) }
func (g core) Pods(ns string) kubeclient.PodInterface         { return g.k.CoreV1().Pods(ns) }
func (g core) Events(ns string) kubeclient.EventInterface     { return g.k.CoreV1().Events(ns) }
func (g core) Namespaces() kubeclient.NamespaceInterface      { return g.k.CoreV1().Namespaces() }

type coordination struct{ wrapped }

func (g coordination) Leases(ns string) kubeclient.LeaseInterface {
	return g.k.CoordinationV1().Leases(ns)
}

type discovery struct{ wrapped }

func (g discovery) EndpointSlices(ns string) kubeclient.EndpointSliceInterface {
	return g.k.DiscoveryV1().EndpointSlices(ns)
}

type networking struct{ wrapped }

func (g networking) Ingresses(ns string) kubeclient.IngressInterface {
	return g.k.NetworkingV1().Ingresses(ns)
}

// WrapRoute returns openshift/client-go's route.openshift.io/v1 client (or its fake's) as an
// osclient.RouteV1Interface.
func WrapRoute(r routev1client.RouteV1Interface) osclient.RouteV1Interface { return routes{r} }

type routes struct {
	r routev1client.RouteV1Interface
}

func (g routes) Routes(ns string) osclient.RouteInterface { return g.r.Routes(ns) }

// WrapBuild returns openshift/client-go's build.openshift.io/v1 client (or its fake's) as an
// osclient.BuildV1Interface.
func WrapBuild(b buildv1client.BuildV1Interface) osclient.BuildV1Interface { return builds{b} }

type builds struct {
	b buildv1client.BuildV1Interface
}

func (g builds) RESTClient() rest.Interface                           { return g.b.RESTClient() }
func (g builds) Builds(ns string) osclient.BuildInterface             { return g.b.Builds(ns) }
func (g builds) BuildConfigs(ns string) osclient.BuildConfigInterface { return g.b.BuildConfigs(ns) }
