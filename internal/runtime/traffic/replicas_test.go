package traffic

import (
	"context"
	"math"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient/kubeclienttest"
)

// replicasTestDeployment is a Deployment of namespace apps with n replicas.
func replicasTestDeployment(name string, n int32) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: routerTestNS}, Spec: appsv1.DeploymentSpec{Replicas: &n}}
}

// replicasFixture is the replicas router for the contract suite: the stable Deployment shop at 4 replicas, and the
// canary and baseline Deployments the release made, at 0.
func replicasFixture() routerFixture {
	return routerFixture{
		kind: KindReplicas,
		setup: func(t *testing.T, o fixtureOptions) *routerEnv {
			objs := []runtime.Object{replicasTestDeployment("shop-canary", 0), replicasTestDeployment("shop-baseline", 0)}
			if !o.missing {
				objs = append(objs, replicasTestDeployment("shop", 4))
			}
			kube := kubefake.NewClientset(objs...)
			sizeOf := func(t *testing.T, name string) int32 {
				d, err := kube.AppsV1().Deployments(routerTestNS).Get(context.Background(), name, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				return *d.Spec.Replicas
			}
			return &routerEnv{r: &replicas{c: Clients{Kube: kubeclienttest.Wrap(kube)}}, fakes: []*k8stesting.Fake{&kube.Fake}, fake: &kube.Fake,
				resource: "deployments",
				// The router never scales the stable Deployment; the release removes the others.
				state: func(t *testing.T) any { return sizeOf(t, "shop") },
				held: func(t *testing.T, b Backends) Weights {
					stable, canary, baseline := sizeOf(t, "shop"), sizeOf(t, "shop-canary"), int32(0)
					if b.Baseline != "" {
						baseline = sizeOf(t, "shop-baseline")
					}
					pct := func(n int32) int32 { return int32(math.Round(100 * float64(n) / float64(stable+canary+baseline))) }
					return Weights{Canary: pct(canary), Baseline: pct(baseline)}
				},
				want: func(*testing.T, Backends, Weights) any { return int32(4) },
			}
		},
		steps: []contractStep{
			{w: Weights{}, want: Applied{Detail: "replicas: stable 4, canary 0"}},
			{w: Weights{Canary: 20}, want: Applied{Stored: Weights{Canary: 20}, EffectiveCanary: 20, Detail: "replicas: stable 4, canary 1"}},
			{w: Weights{Canary: 50}, want: Applied{Stored: Weights{Canary: 50}, EffectiveCanary: 50, Detail: "replicas: stable 4, canary 4"}},
			{baseline: true, w: Weights{}, want: Applied{Detail: "replicas: stable 4, canary 0, baseline 0"}},
			{baseline: true, w: Weights{Canary: 25, Baseline: 25}, want: Applied{Stored: Weights{Canary: 25, Baseline: 25},
				EffectiveCanary: 25, EffectiveBaseline: 25, Detail: "replicas: stable 4, canary 2, baseline 2"}},
		},
		quietRestore: true, restoresDeleted: true, setConflict: "update",
		apiErrors: []apiErrorCase{
			{name: "check get", verb: "get", op: "check", verbObject: "get Deployment apps/shop"},
			{name: "set weights update", verb: "update", op: "set", verbObject: "scale Deployment apps/shop-canary to 1"},
		},
	}
}
