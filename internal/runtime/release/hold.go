package release

import (
	"context"
	"errors"
	"fmt"
	appsv1 "k8s.io/api/apps/v1"
	"log/slog"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// Hold is the lock of a release in progress, held by a step that does not take it (verify-health) while it runs:
// it is renewed every third of its LOCK_TTL, as shift-canary and promote-or-rollback renew it, so that a long
// analysis never lets the lock expire under the release it measures.
type Hold struct {
	lk   *lock
	stop func()
	// carried is the verify state the Lease held for this release when the step began; weight the canary's
	// traffic weight then.
	carried string
	weight  int32
	// canary is the canary Deployment's name, hash its pods' pod-template-hash as shift-canary recorded it, for
	// the canary Deployment's spec spec.
	canary, hash, spec string
	// unlabelled says the release's canary pods carry no track label (REUSE_CANARY=true).
	unlabelled bool
}

// HoldRelease renews the application's lock for release id while the step runs, when the Lease records that
// release in progress. When another release holds the lock, it is a BusyError (exit 5). When no release is in
// progress (or an abandoned other one is recorded), there is nothing to hold: the step runs without. The context
// returned ends when the lock is lost to another release; Check says so at the end.
func HoldRelease(ctx context.Context, kube kubeclient.Interface, ns, app, id string, log *slog.Logger) (*Hold, context.Context, error) {
	if id == "" {
		return &Hold{}, ctx, nil
	}
	lk := newLock(kube.CoordinationV1(), ns, app, id, time.Minute, log)
	lease, st, _, err := lk.read(ctx)
	if err != nil {
		if p := step.NamespaceProblem(ctx, errors.Unwrap(err), ns, "get leases", nil); p != nil {
			return nil, nil, p
		}
		return nil, nil, err
	}
	if err := lk.busy(lease); err != nil {
		return nil, nil, err
	}
	if st == nil || st.ID != id {
		return &Hold{}, ctx, nil
	}
	if lease.Spec.LeaseDurationSeconds != nil && *lease.Spec.LeaseDurationSeconds > 0 {
		lk.ttl = time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second
	}
	if _, err := lk.acquire(ctx); err != nil {
		return nil, nil, err
	}
	kctx, stop := lk.keep(ctx)
	return &Hold{lk: lk, stop: stop, carried: lease.Annotations[naming.VerifyStateAnnotation], weight: st.Weight,
		canary: st.names().CanaryDeployment, hash: st.CanaryHash, spec: st.CanarySpec, unlabelled: !st.TrackPods}, kctx, nil
}

// CanaryPodsUnlabelled says the release's canary pods carry no canaryline.dev/track label: they have the stable's
// labels (REUSE_CANARY=true), so that promotion hands them to the stable Deployment. Queries must then tell them
// apart by their pod-template-hash or names. False when no release is held.
func (h *Hold) CanaryPodsUnlabelled() bool { return h.unlabelled }

// CanaryHash is the pod-template-hash of the pods of canary Deployment d as shift-canary recorded it with the
// release, while d's spec is the one it recorded it for ("" otherwise: read it from d's ReplicaSets).
func (h *Hold) CanaryHash(d *appsv1.Deployment) string {
	if h.hash == "" || d == nil || d.Name != h.canary || d.Annotations[specHashAnnotation] != h.spec {
		return ""
	}
	return h.hash
}

// Carried is the verify state this release's earlier verify steps (or an earlier run of this one) left on the
// Lease: "" when there is none, or no release is held.
func (h *Hold) Carried() string { return h.carried }

// Weight is the canary's traffic weight the release records (0 when no release is held).
func (h *Hold) Weight() int32 { return h.weight }

// Carry has every renewal of the lock, and Check, write state() to the Lease: the verify state goes with the
// requests the lock makes anyway. Without a release held, it does nothing.
func (h *Hold) Carry(state func() string) {
	if h.lk == nil {
		return
	}
	h.lk.setRenewal(func(lease *coordinationv1.Lease) {
		if s := state(); s != "" {
			lease.Annotations[naming.VerifyStateAnnotation] = s
		}
	})
}

// Check says, at the end of the step, whether the release still holds its lock: a BusyError naming the new holder
// when it lost it, so that no verdict is handed on about another release's canary.
func (h *Hold) Check(ctx context.Context, kctx context.Context) error {
	if h.lk == nil {
		return nil
	}
	var busy *step.BusyError
	if c := context.Cause(kctx); errors.As(c, &busy) {
		return c
	}
	if renew := h.lk.renewal(); renew != nil {
		// The last write of the verify state: update checks the holder as the Get below does.
		return h.lk.update(ctx, renew)
	}
	lease, err := h.lk.leases.Get(ctx, h.lk.name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get Lease %s: %w", h.lk.name, err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != h.lk.holder {
		return h.lk.lost(lease)
	}
	return nil
}

// Stop ends the renewals.
func (h *Hold) Stop() {
	if h != nil && h.stop != nil {
		h.stop()
	}
}
