// Package kubeclient is the part of the Kubernetes API the steps use. client-go's typed clients (even one group's)
// link k8s.io/client-go/kubernetes/scheme, which registers every API group (several MB in the step image); these
// clients are client-go's generic typed client (gentype) over REST clients whose scheme holds only the five groups
// the steps use. Requests are the same as the typed clients' (protobuf preferred, JSON accepted).
//
// client-go's typed resource interfaces satisfy Resource, so a kubernetes.Interface (and its fake) can stand in
// for Interface through kubeclienttest.Wrap.
package kubeclient

import (
	"context"
	"io"
	"net/http"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/gentype"
	"k8s.io/client-go/rest"
)

// Resource is one resource type in one namespace: the verbs the steps use. client-go's typed interfaces (for
// example typed/apps/v1.DeploymentInterface) satisfy it.
type Resource[T, L runtime.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
}

// The resources the steps use.
type (
	DeploymentInterface    = Resource[*appsv1.Deployment, *appsv1.DeploymentList]
	ReplicaSetInterface    = Resource[*appsv1.ReplicaSet, *appsv1.ReplicaSetList]
	ServiceInterface       = Resource[*corev1.Service, *corev1.ServiceList]
	PodInterface           = Resource[*corev1.Pod, *corev1.PodList]
	EventInterface         = Resource[*corev1.Event, *corev1.EventList]
	LeaseInterface         = Resource[*coordinationv1.Lease, *coordinationv1.LeaseList]
	EndpointSliceInterface = Resource[*discoveryv1.EndpointSlice, *discoveryv1.EndpointSliceList]
	IngressInterface       = Resource[*networkingv1.Ingress, *networkingv1.IngressList]
	NamespaceInterface     = Resource[*corev1.Namespace, *corev1.NamespaceList]
	ConfigMapInterface     = Resource[*corev1.ConfigMap, *corev1.ConfigMapList]
	JobInterface           = Resource[*batchv1.Job, *batchv1.JobList]
)

// AppsV1Interface is the apps/v1 resources the steps use.
type AppsV1Interface interface {
	Deployments(namespace string) DeploymentInterface
	ReplicaSets(namespace string) ReplicaSetInterface
}

// CoreV1Interface is the core/v1 resources the steps use.
type CoreV1Interface interface {
	Services(namespace string) ServiceInterface
	Pods(namespace string) PodInterface
	Events(namespace string) EventInterface
	ConfigMaps(namespace string) ConfigMapInterface
	// PodLogs streams the log of a pod's container (the pods/log subresource).
	PodLogs(ctx context.Context, namespace, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error)
	// Namespaces is cluster-scoped: steps read their namespace only to tell a missing one from a missing object.
	Namespaces() NamespaceInterface
}

// LeasesGetter is the coordination.k8s.io/v1 resources the steps use.
type LeasesGetter interface {
	Leases(namespace string) LeaseInterface
}

// CoordinationV1Interface is the coordination.k8s.io/v1 resources the steps use.
type CoordinationV1Interface = LeasesGetter

// DiscoveryV1Interface is the discovery.k8s.io/v1 resources the steps use.
type DiscoveryV1Interface interface {
	EndpointSlices(namespace string) EndpointSliceInterface
}

// NetworkingV1Interface is the networking.k8s.io/v1 resources the steps use.
type NetworkingV1Interface interface {
	Ingresses(namespace string) IngressInterface
}

// BatchV1Interface is the batch/v1 resources the steps use.
type BatchV1Interface interface {
	Jobs(namespace string) JobInterface
}

// Interface is the Kubernetes API groups the steps use.
type Interface interface {
	AppsV1() AppsV1Interface
	BatchV1() BatchV1Interface
	CoreV1() CoreV1Interface
	CoordinationV1() CoordinationV1Interface
	DiscoveryV1() DiscoveryV1Interface
	NetworkingV1() NetworkingV1Interface
}

// scheme holds the types of the groups (and the meta/v1 types every group version uses), as
// k8s.io/client-go/kubernetes/scheme does for all groups.
var (
	scheme         = runtime.NewScheme()
	codecs         = serializer.NewCodecFactory(scheme)
	parameterCodec = runtime.NewParameterCodec(scheme)
)

func init() {
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	for _, add := range []func(*runtime.Scheme) error{
		appsv1.AddToScheme, batchv1.AddToScheme, corev1.AddToScheme, coordinationv1.AddToScheme, discoveryv1.AddToScheme, networkingv1.AddToScheme,
	} {
		utilruntime.Must(add(scheme))
	}
}

// RESTClientFor returns a REST client for group version gv (APIPath /api for the core group, else /apis) over hc,
// set up as client-go's generated clients set theirs up, with codecs for the types in s.
func RESTClientFor(cfg *rest.Config, hc *http.Client, gv schema.GroupVersion, s *runtime.Scheme, c serializer.CodecFactory) (*rest.RESTClient, error) {
	config := *cfg
	config.GroupVersion = &gv
	config.APIPath = "/apis"
	if gv.Group == "" {
		config.APIPath = "/api"
	}
	config.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(s, c).WithoutConversion()
	if config.UserAgent == "" {
		config.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	return rest.RESTClientForConfigAndClient(&config, hc)
}

// NewForConfig returns the clients, sharing one HTTP client.
func NewForConfig(cfg *rest.Config) (Interface, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	c := &clients{}
	for _, g := range []struct {
		gv schema.GroupVersion
		rc **rest.RESTClient
	}{
		{appsv1.SchemeGroupVersion, &c.apps.rc},
		{batchv1.SchemeGroupVersion, &c.batch.rc},
		{corev1.SchemeGroupVersion, &c.core.rc},
		{coordinationv1.SchemeGroupVersion, &c.coordination.rc},
		{discoveryv1.SchemeGroupVersion, &c.discovery.rc},
		{networkingv1.SchemeGroupVersion, &c.networking.rc},
	} {
		if *g.rc, err = RESTClientFor(cfg, hc, g.gv, scheme, codecs); err != nil {
			return nil, err
		}
	}
	return c, nil
}

type clients struct {
	apps         apps
	batch        batch
	core         core
	coordination coordination
	discovery    discovery
	networking   networking
}

func (c *clients) AppsV1() AppsV1Interface                 { return c.apps }
func (c *clients) BatchV1() BatchV1Interface               { return c.batch }
func (c *clients) CoreV1() CoreV1Interface                 { return c.core }
func (c *clients) CoordinationV1() CoordinationV1Interface { return c.coordination }
func (c *clients) DiscoveryV1() DiscoveryV1Interface       { return c.discovery }
func (c *clients) NetworkingV1() NetworkingV1Interface     { return c.networking }

// resource is a typed client for one resource of a built-in group: protobuf preferred, as client-go's.
func resource[T interface {
	runtime.Object
	metav1.Object
}, L runtime.Object](rc rest.Interface, name, ns string, newObj func() T, newList func() L) Resource[T, L] {
	return gentype.NewClientWithList(name, rc, parameterCodec, ns, newObj, newList, gentype.PrefersProtobuf[T]())
}

type apps struct{ rc *rest.RESTClient }

func (g apps) Deployments(ns string) DeploymentInterface {
	return resource(g.rc, "deployments", ns, func() *appsv1.Deployment { return &appsv1.Deployment{} },
		func() *appsv1.DeploymentList { return &appsv1.DeploymentList{} })
}

func (g apps) ReplicaSets(ns string) ReplicaSetInterface {
	return resource(g.rc, "replicasets", ns, func() *appsv1.ReplicaSet { return &appsv1.ReplicaSet{} },
		func() *appsv1.ReplicaSetList { return &appsv1.ReplicaSetList{} })
}

type batch struct{ rc *rest.RESTClient }

func (g batch) Jobs(ns string) JobInterface {
	return resource(g.rc, "jobs", ns, func() *batchv1.Job { return &batchv1.Job{} },
		func() *batchv1.JobList { return &batchv1.JobList{} })
}

type core struct{ rc *rest.RESTClient }

func (g core) ConfigMaps(ns string) ConfigMapInterface {
	return resource(g.rc, "configmaps", ns, func() *corev1.ConfigMap { return &corev1.ConfigMap{} },
		func() *corev1.ConfigMapList { return &corev1.ConfigMapList{} })
}

func (g core) PodLogs(ctx context.Context, ns, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	return g.rc.Get().Namespace(ns).Resource("pods").Name(pod).SubResource("log").VersionedParams(opts, parameterCodec).Stream(ctx)
}

func (g core) Services(ns string) ServiceInterface {
	return resource(g.rc, "services", ns, func() *corev1.Service { return &corev1.Service{} },
		func() *corev1.ServiceList { return &corev1.ServiceList{} })
}

func (g core) Pods(ns string) PodInterface {
	return resource(g.rc, "pods", ns, func() *corev1.Pod { return &corev1.Pod{} },
		func() *corev1.PodList { return &corev1.PodList{} })
}

func (g core) Events(ns string) EventInterface {
	return resource(g.rc, "events", ns, func() *corev1.Event { return &corev1.Event{} },
		func() *corev1.EventList { return &corev1.EventList{} })
}

func (g core) Namespaces() NamespaceInterface {
	return resource(g.rc, "namespaces", "", func() *corev1.Namespace { return &corev1.Namespace{} },
		func() *corev1.NamespaceList { return &corev1.NamespaceList{} })
}

type coordination struct{ rc *rest.RESTClient }

func (g coordination) Leases(ns string) LeaseInterface {
	return resource(g.rc, "leases", ns, func() *coordinationv1.Lease { return &coordinationv1.Lease{} },
		func() *coordinationv1.LeaseList { return &coordinationv1.LeaseList{} })
}

type discovery struct{ rc *rest.RESTClient }

func (g discovery) EndpointSlices(ns string) EndpointSliceInterface {
	return resource(g.rc, "endpointslices", ns, func() *discoveryv1.EndpointSlice { return &discoveryv1.EndpointSlice{} },
		func() *discoveryv1.EndpointSliceList { return &discoveryv1.EndpointSliceList{} })
}

type networking struct{ rc *rest.RESTClient }

func (g networking) Ingresses(ns string) IngressInterface {
	return resource(g.rc, "ingresses", ns, func() *networkingv1.Ingress { return &networkingv1.Ingress{} },
		func() *networkingv1.IngressList { return &networkingv1.IngressList{} })
}
