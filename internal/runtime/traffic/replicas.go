package traffic

import (
	"context"
	"fmt"
	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"math"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// replicas is no router at all: the stable Service selects the pods of every track, so the share of traffic is
// the share of Ready pods. Setting a weight scales the canary (and baseline) Deployment against the stable one.
type replicas struct {
	c  Clients
	rt Routing // refused: there is no router object to match or mirror on
}

var _ Router = (*replicas)(nil)

func (r *replicas) Kind() string { return KindReplicas }

func (r *replicas) Check(ctx context.Context, b Backends) error {
	if err := kindTraits[KindReplicas].CheckRouting(KindReplicas, r.rt); err != nil {
		return err
	}
	if _, err := r.c.Kube.AppsV1().Deployments(b.Namespace).Get(ctx, b.StableDeployment, metav1.GetOptions{}); err != nil {
		return fmt.Errorf("get Deployment %s/%s: %w", b.Namespace, b.StableDeployment, err)
	}
	return nil
}

// Snapshot: the replicas router changes nothing but the canary's own Deployment, which the release removes.
func (r *replicas) Snapshot(context.Context, Backends) (string, error) { return "{}", nil }

// canaryReplicas is the canary size for share percent of traffic next to stable pods: at least 1 for any
// non-zero share. 100% cannot be expressed without scaling the stable Deployment, which this router never does.
func canaryReplicas(stable int32, percent int32) (int32, error) {
	switch {
	case percent <= 0:
		return 0, nil
	case percent >= 100:
		return 0, fmt.Errorf("the replicas router cannot send 100%% of traffic to the canary (it never scales the stable Deployment)")
	}
	n := int32(math.Round(float64(stable) * float64(percent) / float64(100-percent)))
	if n < 1 {
		n = 1
	}
	return n, nil
}

func (r *replicas) SetWeights(ctx context.Context, b Backends, w Weights) (Applied, error) {
	apps := r.c.Kube.AppsV1().Deployments(b.Namespace)
	st, err := apps.Get(ctx, b.StableDeployment, metav1.GetOptions{})
	if err != nil {
		return Applied{}, fmt.Errorf("get Deployment %s/%s: %w", b.Namespace, b.StableDeployment, err)
	}
	stable := int32(1)
	if st.Spec.Replicas != nil {
		stable = *st.Spec.Replicas
	}
	want, err := trackReplicas(b, w, stable)
	if err != nil {
		return Applied{}, err
	}
	got, err := scale(ctx, apps, b.Namespace, want)
	if err != nil {
		return Applied{}, err
	}
	got[b.StableDeployment] = stable
	return replicasApplied(b, w, got), nil
}

// trackReplicas is how many replicas the canary (and baseline) Deployments get for w beside stable replicas.
func trackReplicas(b Backends, w Weights, stable int32) (map[string]int32, error) {
	want := map[string]int32{}
	n, err := canaryReplicas(stable, w.Canary+w.Baseline)
	if err != nil {
		return nil, err
	}
	want[b.CanaryDeployment] = n
	if b.BaselineDeployment != "" {
		// The baseline runs at the canary's size and takes the same share.
		half := int32(math.Round(float64(n) / 2))
		if w.Canary > 0 && half < 1 {
			half = 1
		}
		want[b.CanaryDeployment], want[b.BaselineDeployment] = half, half
		if w.Canary == 0 {
			want[b.CanaryDeployment], want[b.BaselineDeployment] = 0, 0
		}
	}
	return want, nil
}

// scale sets each Deployment of want to its replicas, retrying on conflicts, and returns the replicas each has as
// written (or as read, when it had them already).
func scale(ctx context.Context, apps kubeclient.DeploymentInterface, namespace string, want map[string]int32) (map[string]int32, error) {
	got := map[string]int32{}
	for name, n := range want {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			d, err := apps.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if d.Spec.Replicas != nil && *d.Spec.Replicas == n {
				got[name] = n
				return nil
			}
			d.Spec.Replicas = &n
			if d, err = apps.Update(ctx, d, metav1.UpdateOptions{}); err != nil {
				return err
			}
			got[name] = *d.Spec.Replicas
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("scale Deployment %s/%s to %d: %w", namespace, name, n, err)
		}
	}
	return got, nil
}

// replicasApplied is the share of requests the replica counts got give each track, and a warning when the canary's
// is more than a point away from w.
func replicasApplied(b Backends, w Weights, got map[string]int32) Applied {
	total := float64(got[b.StableDeployment] + got[b.CanaryDeployment] + got[b.BaselineDeployment])
	a := Applied{Detail: fmt.Sprintf("replicas: stable %d, canary %d", got[b.StableDeployment], got[b.CanaryDeployment])}
	a.EffectiveCanary = 100 * float64(got[b.CanaryDeployment]) / total
	a.Stored.Canary = int32(math.Round(a.EffectiveCanary))
	if b.BaselineDeployment != "" {
		a.EffectiveBaseline = 100 * float64(got[b.BaselineDeployment]) / total
		a.Stored.Baseline = int32(math.Round(a.EffectiveBaseline))
		a.Detail += fmt.Sprintf(", baseline %d", got[b.BaselineDeployment])
	}
	if d := a.EffectiveCanary - float64(w.Canary); math.Abs(d) > 1 {
		a.Warnings = append(a.Warnings, fmt.Sprintf("the canary gets %.1f%% of requests, not %d%%: with %d stable pods the nearest replica ratio is %s",
			a.EffectiveCanary, w.Canary, got[b.StableDeployment], a.Detail))
	}
	return a
}

// Restore: nothing to put back; the release removes the canary Deployment.
func (r *replicas) Restore(context.Context, Backends, string) error { return nil }
