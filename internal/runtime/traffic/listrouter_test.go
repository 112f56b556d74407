package traffic

import (
	"context"
	"strings"
	"testing"
)

// Snapshots are stored with the releases in progress: their format does not change (these are what the
// HTTPRoute and Istio routers wrote before they shared the list-router core).
func TestListRouterSnapshotFormat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		r    func() *listRouter
		want string
	}{
		{"httproute", func() *listRouter {
			r, _ := httpRouteTestRouter(routerTestObject(t, strings.Replace(httpRouteTestManifest, "team: payments", "team: payments\n    shop.canaryline.dev/weight: \"3\"", 1)))
			return r
		}, `{"kind":"httproute","name":"shop","stable":[{"name":"shop","port":8080},{"filters":[{"responseHeaderModifier":{"set":[{"name":"x-served-by","value":"shop"}]},"type":"ResponseHeaderModifier"}],"kind":"Service","name":"shop","port":8080,"weight":1}],"annotations":{"shop.canaryline.dev/weight":"3"}}`},
		{"istio", func() *listRouter {
			r, _ := istioTestRouter(routerTestObject(t, strings.Replace(istioTestManifest, "{team: payments}", "{team: payments, shop.canaryline.dev/weight: \"3\"}", 1)))
			return r
		}, `{"kind":"istio","name":"shop","stable":[{"destination":{"host":"shop.apps.svc.cluster.local","port":{"number":8080},"subset":"v1"},"headers":{"response":{"set":{"x-served-by":"shop"}}}},{"destination":{"host":"shop"}}],"annotations":{"shop.canaryline.dev/weight":"3"}}`},
	} {
		got, err := tc.r().Snapshot(context.Background(), routerTestBackends(true))
		if err != nil || got != tc.want {
			t.Errorf("%s: Snapshot = %s, %v; want %s", tc.name, got, err, tc.want)
		}
	}
}
