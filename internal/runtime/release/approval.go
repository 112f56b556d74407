package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/client-go/util/retry"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// ApprovalAnnotation on the release Lease records a person's answer to the release's approval gate (verify-health
// with APPROVAL=required): who may approve is who may update the release record.
const ApprovalAnnotation = "canaryline.dev/approval"

// Answers to an approval gate.
const (
	Approve = "approve"
	Reject  = "reject"
)

// Approval is one answer to a release's approval gate.
type Approval struct {
	// Release is the release answered; an answer to another release is not this one's.
	Release  string    `json:"release"`
	Decision string    `json:"decision"`
	By       string    `json:"by"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
}

// String is the answer for a log line or a verdict's reason: "approved by alice: looks good".
func (a Approval) String() string {
	s := map[string]string{Approve: "approved", Reject: "rejected"}[a.Decision] + " by " + a.By
	if a.Reason != "" {
		s += ": " + a.Reason
	}
	return s
}

// approvalOf is the answer the Lease records for release id, if any.
func approvalOf(lease *coordinationv1.Lease, id string) (Approval, bool) {
	var a Approval
	if lease == nil || id == "" {
		return Approval{}, false
	}
	raw := lease.Annotations[ApprovalAnnotation]
	if raw == "" || json.Unmarshal([]byte(raw), &a) != nil || a.Release != id || (a.Decision != Approve && a.Decision != Reject) {
		return Approval{}, false
	}
	return a, true
}

// RecordApproval records a's decision for the release of app in progress (a.Release, when set, must be that
// release). Answering again the same way changes nothing; a different answer to an answered release is refused.
// It returns the answer as recorded.
func RecordApproval(ctx context.Context, leases kubeclient.LeaseInterface, app string, a Approval) (Approval, error) {
	var out Approval
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		lease, err := leases.Get(ctx, leaseName(app), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return step.Invalid("APP", "check the application's name and namespace", "no release of %s was ever recorded here", app)
		}
		if err != nil {
			return err
		}
		st, _, err := decode(lease)
		if err != nil {
			return err
		}
		var fresh bool
		if out, fresh, err = answer(lease, app, st, a); err != nil || !fresh {
			return err // refused, or answered so already
		}
		data, _ := json.Marshal(out)
		lease.Annotations[ApprovalAnnotation] = string(data)
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		return err
	})
	return out, err
}

// answer is a as it is to be recorded on lease, whose release in progress is st; fresh is false when the release
// was answered so already (the earlier answer is returned).
func answer(lease *coordinationv1.Lease, app string, st *State, a Approval) (Approval, bool, error) {
	if st == nil || st.Phase != PhaseShifting {
		return Approval{}, false, step.Invalid("APP", "approve or reject while the release waits for it (canaryline status APP)",
			"no release of %s is in progress", app)
	}
	if a.Release != "" && a.Release != st.ID {
		return Approval{}, false, step.Invalid("--release", "name the release in progress, or leave it out",
			"the release in progress is %s, not %s", st.ID, a.Release)
	}
	a.Release = st.ID
	if prev, ok := approvalOf(lease, st.ID); ok {
		if prev.Decision != a.Decision {
			return Approval{}, false, step.Invalid("APP", "an answer stands: roll the release back (canaryline abort APP) or let it go on",
				"release %s was already %s", st.ID, prev)
		}
		return prev, false, nil
	}
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	return a, true, nil
}

// ApprovalTimeoutError is an approval gate that no one answered in time.
type ApprovalTimeoutError struct{ Waited time.Duration }

func (e *ApprovalTimeoutError) Error() string {
	return fmt.Sprintf("no one approved or rejected the release within %s", e.Waited)
}

// AwaitApproval waits, watching the release Lease of app, until the release id is approved or rejected, for at most
// timeout (then an ApprovalTimeoutError).
func AwaitApproval(ctx context.Context, leases kubeclient.LeaseInterface, app, id string, timeout time.Duration) (Approval, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lw := kubeclient.ListWatchByName(leaseName(app), false, leases.List, leases.Watch)
	var got Approval
	_, err := watchtools.UntilWithSync(wctx, lw, &coordinationv1.Lease{}, nil, func(e watch.Event) (bool, error) {
		lease, ok := e.Object.(*coordinationv1.Lease)
		if !ok {
			return false, nil
		}
		got, ok = approvalOf(lease, id)
		return ok, nil
	})
	if err != nil && ctx.Err() == nil && errors.Is(wctx.Err(), context.DeadlineExceeded) {
		return Approval{}, &ApprovalTimeoutError{Waited: timeout}
	}
	return got, err
}
