package step

import (
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/osclient"
)

// Cluster is what a step talks to the cluster with: the clients the steps use, all built from one REST config
// (RESTConfig), and the namespaces.
type Cluster struct {
	Kube    kubeclient.Interface
	Build   osclient.BuildV1Interface
	Image   osclient.ImageV1Interface
	Route   osclient.RouteV1Interface
	Dynamic dynamic.Interface
	// Namespace is where the step works: its NAMESPACE param when given, else Own.
	Namespace string
	// Own is the step's own namespace, its TaskRun's: the pod's, or the kubeconfig context's outside a pod.
	Own string
}

// Connect loads the step's REST config from env (RESTConfig) and builds its clients. namespace is the step's
// NAMESPACE param: the namespace it works in when not empty.
func Connect(env func(string) (string, bool), namespace string) (*Cluster, error) {
	rc, own, err := RESTConfig(env)
	if err != nil {
		return nil, err
	}
	return Clients(rc, own, namespace)
}

// Clients builds the step clients from rc: own is the namespace rc's context or pod is in, namespace the one to
// work in when not empty (WorkNamespace). The tools that act as a step does (canaryline abort) connect this way
// with a config they loaded once.
func Clients(rc *rest.Config, own, namespace string) (*Cluster, error) {
	var err error
	c := &Cluster{Own: own, Namespace: WorkNamespace(namespace, own)}
	if c.Kube, err = kubeclient.NewForConfig(rc); err != nil {
		return nil, err
	}
	if c.Build, err = osclient.NewBuildV1ForConfig(rc); err != nil {
		return nil, err
	}
	if c.Image, err = osclient.NewImageV1ForConfig(rc); err != nil {
		return nil, err
	}
	if c.Route, err = osclient.NewRouteV1ForConfig(rc); err != nil {
		return nil, err
	}
	if c.Dynamic, err = dynamic.NewForConfig(rc); err != nil {
		return nil, err
	}
	return c, nil
}

// WorkNamespace is the namespace rule of every step: the NAMESPACE param when given, else the step's own
// namespace.
func WorkNamespace(param, own string) string {
	if param != "" {
		return param
	}
	return own
}
