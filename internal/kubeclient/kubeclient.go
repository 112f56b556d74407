// Package kubeclient is the part of the Kubernetes API the steps use. The full clientset links a typed client and
// apply configurations for every API group (several MB in the step image); this links only five groups.
// kubernetes.Interface, and its fake, satisfy Interface.
package kubeclient

import (
	appsv1 "k8s.io/client-go/kubernetes/typed/apps/v1"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	discoveryv1 "k8s.io/client-go/kubernetes/typed/discovery/v1"
	networkingv1 "k8s.io/client-go/kubernetes/typed/networking/v1"
	"k8s.io/client-go/rest"
)

// Interface is the Kubernetes API groups the steps use.
type Interface interface {
	AppsV1() appsv1.AppsV1Interface
	CoreV1() corev1.CoreV1Interface
	CoordinationV1() coordinationv1.CoordinationV1Interface
	DiscoveryV1() discoveryv1.DiscoveryV1Interface
	NetworkingV1() networkingv1.NetworkingV1Interface
}

type clients struct {
	apps         *appsv1.AppsV1Client
	core         *corev1.CoreV1Client
	coordination *coordinationv1.CoordinationV1Client
	discovery    *discoveryv1.DiscoveryV1Client
	networking   *networkingv1.NetworkingV1Client
}

func (c *clients) AppsV1() appsv1.AppsV1Interface                         { return c.apps }
func (c *clients) CoreV1() corev1.CoreV1Interface                         { return c.core }
func (c *clients) CoordinationV1() coordinationv1.CoordinationV1Interface { return c.coordination }
func (c *clients) DiscoveryV1() discoveryv1.DiscoveryV1Interface          { return c.discovery }
func (c *clients) NetworkingV1() networkingv1.NetworkingV1Interface       { return c.networking }

// NewForConfig returns the clients, sharing one HTTP client.
func NewForConfig(cfg *rest.Config) (Interface, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	c := &clients{}
	if c.apps, err = appsv1.NewForConfigAndClient(cfg, hc); err != nil {
		return nil, err
	}
	if c.core, err = corev1.NewForConfigAndClient(cfg, hc); err != nil {
		return nil, err
	}
	if c.coordination, err = coordinationv1.NewForConfigAndClient(cfg, hc); err != nil {
		return nil, err
	}
	if c.discovery, err = discoveryv1.NewForConfigAndClient(cfg, hc); err != nil {
		return nil, err
	}
	if c.networking, err = networkingv1.NewForConfigAndClient(cfg, hc); err != nil {
		return nil, err
	}
	return c, nil
}
