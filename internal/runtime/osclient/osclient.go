// Package osclient is the part of the OpenShift API the steps use: builds, image stream tags and routes.
// openshift/client-go's typed clients link k8s.io/client-go/kubernetes/scheme (through its apply configurations
// and discovery), which registers every Kubernetes API group; these are client-go's generic typed client
// (gentype) over REST clients whose scheme holds only the one OpenShift group, set up as openshift/client-go sets
// up its own, so that the requests are the same.
//
// openshift/client-go's typed resource interfaces satisfy the resource interfaces here, so its fakes can stand
// in through kubeclienttest.
package osclient

import (
	"context"
	"sync"

	buildv1 "github.com/openshift/api/build/v1"
	imagev1 "github.com/openshift/api/image/v1"
	routev1 "github.com/openshift/api/route/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/gentype"
	"k8s.io/client-go/rest"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
)

// BuildConfigInterface is the BuildConfig verbs the steps use.
type BuildConfigInterface interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*buildv1.BuildConfig, error)
	// Instantiate starts a build of the BuildConfig (POST buildconfigs/NAME/instantiate).
	Instantiate(ctx context.Context, name string, req *buildv1.BuildRequest, opts metav1.CreateOptions) (*buildv1.Build, error)
}

// BuildInterface is the builds of one namespace.
type BuildInterface = kubeclient.Resource[*buildv1.Build, *buildv1.BuildList]

// BuildV1Interface is the build.openshift.io/v1 resources the steps use.
type BuildV1Interface interface {
	// RESTClient is the group's REST client, for the builds/NAME/log subresource.
	RESTClient() rest.Interface
	BuildConfigs(namespace string) BuildConfigInterface
	Builds(namespace string) BuildInterface
}

// ImageStreamTagInterface is the ImageStreamTag verbs the steps use.
type ImageStreamTagInterface interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*imagev1.ImageStreamTag, error)
}

// ImageV1Interface is the image.openshift.io/v1 resources the steps use.
type ImageV1Interface interface {
	ImageStreamTags(namespace string) ImageStreamTagInterface
}

// RouteInterface is the routes of one namespace.
type RouteInterface = kubeclient.Resource[*routev1.Route, *routev1.RouteList]

// RouteV1Interface is the route.openshift.io/v1 resources the steps use.
type RouteV1Interface interface {
	Routes(namespace string) RouteInterface
}

// groupScheme is one OpenShift group's scheme, codecs and parameter codec, as openshift/client-go's
// clientset/versioned/scheme packages make them.
type groupScheme struct {
	scheme         *runtime.Scheme
	codecs         serializer.CodecFactory
	parameterCodec runtime.ParameterCodec
}

func newGroupScheme(add func(*runtime.Scheme) error) func() *groupScheme {
	return sync.OnceValue(func() *groupScheme {
		s := runtime.NewScheme()
		metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
		utilruntime.Must(add(s))
		return &groupScheme{scheme: s, codecs: serializer.NewCodecFactory(s), parameterCodec: runtime.NewParameterCodec(s)}
	})
}

var (
	buildScheme = newGroupScheme(buildv1.AddToScheme)
	imageScheme = newGroupScheme(imagev1.AddToScheme)
	routeScheme = newGroupScheme(routev1.AddToScheme)
)

// restClientFor returns a REST client for gv with its own HTTP client, as openshift/client-go's NewForConfig.
func restClientFor(cfg *rest.Config, gv schema.GroupVersion, gs *groupScheme) (*rest.RESTClient, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return kubeclient.RESTClientFor(cfg, hc, gv, gs.scheme, gs.codecs)
}

// NewBuildV1ForConfig returns the build.openshift.io/v1 client.
func NewBuildV1ForConfig(cfg *rest.Config) (BuildV1Interface, error) {
	gs := buildScheme()
	rc, err := restClientFor(cfg, buildv1.GroupVersion, gs)
	if err != nil {
		return nil, err
	}
	return &buildV1{rc: rc, pc: gs.parameterCodec}, nil
}

// NewImageV1ForConfig returns the image.openshift.io/v1 client.
func NewImageV1ForConfig(cfg *rest.Config) (ImageV1Interface, error) {
	gs := imageScheme()
	rc, err := restClientFor(cfg, imagev1.GroupVersion, gs)
	if err != nil {
		return nil, err
	}
	return &imageV1{rc: rc, pc: gs.parameterCodec}, nil
}

// NewRouteV1ForConfig returns the route.openshift.io/v1 client.
func NewRouteV1ForConfig(cfg *rest.Config) (RouteV1Interface, error) {
	gs := routeScheme()
	rc, err := restClientFor(cfg, routev1.GroupVersion, gs)
	if err != nil {
		return nil, err
	}
	return &routeV1{rc: rc, pc: gs.parameterCodec}, nil
}

type buildV1 struct {
	rc *rest.RESTClient
	pc runtime.ParameterCodec
}

func (g *buildV1) RESTClient() rest.Interface { return g.rc }

func (g *buildV1) Builds(ns string) BuildInterface {
	return gentype.NewClientWithList("builds", g.rc, g.pc, ns,
		func() *buildv1.Build { return &buildv1.Build{} }, func() *buildv1.BuildList { return &buildv1.BuildList{} })
}

func (g *buildV1) BuildConfigs(ns string) BuildConfigInterface {
	return &buildConfigs{
		Client: gentype.NewClient("buildconfigs", g.rc, g.pc, ns, func() *buildv1.BuildConfig { return &buildv1.BuildConfig{} }),
		pc:     g.pc,
	}
}

type buildConfigs struct {
	*gentype.Client[*buildv1.BuildConfig]
	pc runtime.ParameterCodec
}

// Instantiate is openshift/client-go's BuildConfigInterface.Instantiate.
func (c *buildConfigs) Instantiate(ctx context.Context, name string, req *buildv1.BuildRequest, opts metav1.CreateOptions) (*buildv1.Build, error) {
	result := &buildv1.Build{}
	err := c.GetClient().Post().
		Namespace(c.GetNamespace()).
		Resource("buildconfigs").
		Name(name).
		SubResource("instantiate").
		VersionedParams(&opts, c.pc).
		Body(req).
		Do(ctx).
		Into(result)
	return result, err
}

type imageV1 struct {
	rc *rest.RESTClient
	pc runtime.ParameterCodec
}

func (g *imageV1) ImageStreamTags(ns string) ImageStreamTagInterface {
	return gentype.NewClient("imagestreamtags", g.rc, g.pc, ns, func() *imagev1.ImageStreamTag { return &imagev1.ImageStreamTag{} })
}

type routeV1 struct {
	rc *rest.RESTClient
	pc runtime.ParameterCodec
}

func (g *routeV1) Routes(ns string) RouteInterface {
	return gentype.NewClientWithList("routes", g.rc, g.pc, ns,
		func() *routev1.Route { return &routev1.Route{} }, func() *routev1.RouteList { return &routev1.RouteList{} })
}
