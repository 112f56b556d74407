package traffic

import (
	"context"
	"fmt"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReadyEndpoints counts the ready endpoints of a Service, from its EndpointSlices.
func ReadyEndpoints(ctx context.Context, kube kubeclient.Interface, ns, svc string) (int32, error) {
	slices, err := kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		return 0, fmt.Errorf("list EndpointSlices of Service %s/%s: %w", ns, svc, err)
	}
	return CountReady(slices.Items), nil
}

// CountReady counts the ready endpoints of a Service's EndpointSlices, each pod once.
func CountReady(slices []discoveryv1.EndpointSlice) int32 {
	seen := map[string]bool{}
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if key := EndpointKey(ep); key != "" {
				seen[key] = true
			}
		}
	}
	return int32(len(seen))
}

// EndpointKey identifies an endpoint: its pod when it names one (pod IPs need not be unique across fake
// nodes), else its first address.
func EndpointKey(ep discoveryv1.Endpoint) string {
	if ep.TargetRef != nil && ep.TargetRef.Name != "" {
		return ep.TargetRef.Namespace + "/" + ep.TargetRef.Name
	}
	if len(ep.Addresses) > 0 {
		return ep.Addresses[0]
	}
	return ""
}
