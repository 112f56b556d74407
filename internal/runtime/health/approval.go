package health

import (
	"context"
	"errors"
	"fmt"

	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/notify"
	"github.com/canaryline/canaryline/internal/runtime/release"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// awaitApproval is the approval gate after a healthy analysis (APPROVAL=required): it waits, watching the release
// Lease, for a person's answer. Approved keeps the verdict healthy; rejected makes it unhealthy (the release is
// rolled back); no answer within APPROVAL_TIMEOUT makes it inconclusive (rolled back too). The lock is renewed
// meanwhile, so the waiting release is never taken for an abandoned one.
func (v *verification) awaitApproval(ctx context.Context, out Verdict) (Verdict, error) {
	cfg := v.cfg
	v.log.Info(fmt.Sprintf("waiting up to %s for approval of release %s: canaryline approve %s -n %s (or canaryline reject %s -n %s)",
		cfg.ApprovalTimeout, cfg.ReleaseID, cfg.App, v.ns, cfg.App, v.ns))
	notify.New(cfg.Notify, v.log).Send(ctx, notify.Event{Kind: notify.AwaitingApproval, App: cfg.App, Namespace: v.ns,
		Release: cfg.ReleaseID, Image: out.CanaryImage, Weight: fmt.Sprint(out.Weight), Reason: out.Reason})
	a, err := release.AwaitApproval(ctx, v.d.Kube.CoordinationV1().Leases(v.ns), cfg.App, cfg.ReleaseID, cfg.ApprovalTimeout)
	var timeout *release.ApprovalTimeoutError
	switch {
	case errors.As(err, &timeout):
		out.Verdict, out.Reason = naming.Inconclusive, timeout.Error()
		return out, &step.InconclusiveError{Msg: "verdict: inconclusive: " + out.Reason}
	case err != nil:
		return Verdict{}, fmt.Errorf("waiting for approval: %w", err)
	case a.Decision == release.Reject:
		out.Verdict, out.Reason = naming.Unhealthy, a.String()
		return out, step.Failed("verdict: unhealthy: %s", out.Reason)
	}
	out.Reason = a.String() + "; " + out.Reason
	v.log.Info("verdict: healthy: " + out.Reason)
	return out, nil
}
